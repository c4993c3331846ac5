import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// Fulfilling an order: `lock` → `commit` (pivot: the units leave stock) → `fulfilled`. Undo: `unlock`.
///
/// An order whose payment is only authorized (the store captures at fulfilment) is captured first: `lock` →
/// `capture` (pivot: nothing ships unpaid) → `commit` → `fulfilled`. A capture the processor refuses leaves
/// the order open, as it was.
///
/// Fulfilling some lines adds `split` after `lock` (undone by `merge`): their units become a part of the order's
/// reservation and `commit` acts on the part; the order stays open with the rest.
///
/// A saga like the others, so a fulfilment that a crash or a lost answer interrupts is resumed by the runner
/// instead of waiting for a client to call again.
enum FulfilOrderSaga: SagaDefinition {
    struct Context: LineContext {
        var orderID: UUID
        var unitsCommitted: Int64 = 0
        /// Whether the saga captures the payment before the units leave stock (`nil` in sagas from before).
        var captures: Bool?
        var paymentStatus: String?
        /// The units asked for (`nil`: every unit not cancelled or fulfilled).
        var lines: [LineQuantity]?
        var partID: UUID?
        var partLines: [ReserveRequest.Line]?

        init(orderID: UUID, captures: Bool, lines: [LineQuantity]? = nil) {
            self.orderID = orderID
            self.captures = captures
            self.lines = lines
        }
    }

    static let kind = Saga.Kind.fulfilOrder

    /// Locks an open order, or some of its lines, for fulfilment. A repeat while the saga runs finds the same saga.
    /// - Throws: `not_found`; `failed_precondition/order_cancelling` and the like, `risk_hold`, `cancel_requested`,
    ///   `line_not_open` for units the order does not have open; `conflict/order_busy`.
    static func begin(_ db: any SQLTransaction, _ request: FulfilOrderRequest, _ start: SagaStart) throws
        -> SagaBeginning<Context>
    {
        let orderID = request.orderID
        guard let order = try db.find(OrderRecord.self, key: [orderID.uuidString]) else {
            throw RescindError.notFound("no order \(orderID)", reason: "unknown_order")
        }
        if order.status == .fulfilling, let running = try SagaStore.unfinishedSaga(db, order.id, kind: kind) {
            return .existing(sagaID: running.id, orderID: running.orderID)
        }
        try requireFulfillable(order)
        if order.riskHeld {
            throw RescindError.failedPrecondition(
                "order \(order.id) is held for its fraud risk (\(order.riskLevel ?? "")): release it or cancel it first",
                reason: "risk_hold")
        }
        if try db.find(CancelRequestRecord.self, key: [order.id])?.state == "pending" {
            throw RescindError.failedPrecondition(
                "order \(order.id)'s customer asked to cancel it: approve or decline the request first",
                reason: "cancel_requested")
        }
        let lines = try OrderLineRecord.of(db, order.id)
        let selection = try LineSelection(request.lines, of: lines, doing: "fulfil")
        try SagaStore.refuseWhileBusy(db, order.id)
        var context = Context(orderID: orderID, captures: order.paymentStatus == "authorized", lines: request.lines)
        if !selection.takesEverythingOpen {
            context.partID = UUID(uuidString: start.sagaID)
            context.partLines = selection.asked(of: lines).map { .init(sku: $0.sku, quantity: $0.quantity) }
        }
        return .new(orderID: orderID, context: context)
    }

    static let steps: [SagaStep<Context>] = [lock, .split, capture, commitAfterCapture, commit, fulfilled]

    static func plan(_ context: Context) -> [SagaStep<Context>] {
        [lock] + (context.partID == nil ? [] : [SagaStep<Context>.split])
            + (context.captures == true ? [capture, commitAfterCapture] : [commit]) + [fulfilled]
    }

    /// An open order becomes `fulfilling`: a cancellation is refused until the saga ends.
    static let lock = SagaStep<Context>.local("lock", role: .compensatable(undo: unlock)) { db, context, info in
        try OrderRecord.change(db, context.orderID, at: info.now) { order in
            try requireFulfillable(order)
            order.status = .fulfilling
        }
        return "locked against cancellation"
    }

    /// Refuses a fulfilment the order's status does not allow, with the rule named.
    static func requireFulfillable(_ order: OrderRecord) throws {
        guard order.status == .open else {
            throw order.status == .cancelling
                ? RescindError.failedPrecondition(
                    "order \(order.id) is being cancelled and cannot be fulfilled", reason: "order_cancelling")
                : RescindError.failedPrecondition(
                    "order \(order.id) is \(order.status.rawValue) and cannot be fulfilled",
                    reason: "order_\(order.status.rawValue)")
        }
    }

    static let unlock = SagaStep<Context>.local("unlock", role: .retriable) { db, context, info in
        try OrderRecord.change(db, context.orderID, at: info.now) { $0.status = .open }
        return "order open again"
    }

    static let capture = SagaStep<Context>.remote(
        "capture", .payments, PaymentsMethods.capture, role: .pivot,
        request: { context in PaymentRequest(orderID: context.orderID) },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            return "captured \(payment.amountCaptured) \(payment.currency) minor units, fee \(payment.fee)"
        }
    )

    static let commit = commitStep(role: .pivot)
    /// After a capture the commit cannot be undone by giving up: it is retried on transient errors, and a
    /// refusal leaves the saga `failed` (the money captured, the order `fulfilling`) for a person.
    static let commitAfterCapture = commitStep(role: .retriable)

    static func commitStep(role: SagaStep<Context>.Role) -> SagaStep<Context> {
        .remote(
            "commit", .inventory, InventoryMethods.commit, role: role,
            request: { context in OrderStockRequest(orderID: context.stockID) },
            answered: { reservation, context in
                context.unitsCommitted = reservation.units
                return "committed \(reservation.describedAllocations)"
            }
        )
    }

    static let fulfilled = SagaStep<Context>.local("fulfilled", role: .retriable) { db, context, info in
        let order = try record(db, context, at: info.now)
        return order.status == .fulfilled
            ? "order fulfilled; \(context.unitsCommitted) units left stock"
            : "\(context.unitsCommitted) units left stock; the rest of the order is open"
    }

    /// The units fulfilled on their lines, and the order fulfilled once nothing is left open (open again
    /// otherwise). The mark of fulfilment in progress is cleared: the fulfilment it announced happened.
    @discardableResult
    private static func record(_ db: any SQLTransaction, _ context: Context, at now: Date) throws -> OrderRecord {
        let lines = try OrderLineRecord.of(db, context.orderID.uuidString)
        let selection = try LineSelection(context.lines, of: lines, doing: "fulfil")
        try selection.apply(db, to: lines, as: \.fulfilled)
        return try OrderRecord.change(db, context.orderID, at: now) { order in
            order.status = selection.takesEverythingOpen ? .fulfilled : .open
            order.fulfilmentInProgress = nil
            if let status = context.paymentStatus {
                order.paymentStatus = status
                order.captureDueAt = nil
            }
        }
    }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    {
        let order = try OrderRecord.change(db, context.orderID, at: info.now) { order in
            // A capture that went through stays recorded, whatever the person decides about the stock.
            if let status = context.paymentStatus {
                order.paymentStatus = status
                order.captureDueAt = nil
            }
            guard outcome == .fulfilled || outcome == .open else {
                throw RescindError.invalidArgument(
                    "a fulfilment settles as fulfilled or open, not \(outcome)", reason: "bad_outcome")
            }
            order.status = .open
        }
        // Fulfilled by hand: the units asked for are recorded as fulfilled, as the saga would have.
        if outcome == .fulfilled { return "order \(try record(db, context, at: info.now).status.rawValue)" }
        return "order \(order.status.rawValue)"
    }
}
