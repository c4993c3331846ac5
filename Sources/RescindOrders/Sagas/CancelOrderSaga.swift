import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// Cancelling an order: `lock` → `prepare_restock` → `refund` or `void` (pivot) → `restock` or `write_off` →
/// `finalize`. Undo, in reverse: `take_back`, `unlock`.
///
/// The units are promised back before the money moves but stay reserved until it has (`prepare_restock`
/// holds them, `restock` releases them after the pivot), so nothing another order buys meanwhile can stop a
/// declined refund from being undone. Without restock they are written off after the pivot.
///
/// Cancelling some lines adds `split` after `lock` (undone by `merge`): their units become a part of the order's
/// reservation and the stock steps act on the part; the pivot refunds their share, or voids it from the
/// authorization; `finalize` leaves the order open with the rest (or fulfilled, when the rest had shipped).
enum CancelOrderSaga: SagaDefinition {
    struct Context: LineContext, Hashable {
        enum PaymentAction: String, Codable, Sendable {
            /// Refund captured money (the fee is kept by the processor).
            case refund
            /// Void an authorization that was never captured.
            case void
            /// Leave the money where it is (`refund: false` on a captured payment).
            case keep
        }

        /// What the cancellation was asked to do.
        struct Options: Codable, Sendable, Hashable {
            var reason: CancelReason
            var restock: Bool
            var notify: Bool
            var staffNote: String?
            var payment: PaymentAction
            /// With `refund`: how much; `nil`, everything not refunded yet.
            var refundAmount: Int64?
            /// The store's restocking fee, kept from the refund of a customer's cancellation.
            var restockingFee: Int64?
            /// Where the refund goes (`nil`: the card).
            var refundTo: RefundDestination?
            /// The units asked for (`nil`: every unit not fulfilled).
            var lines: [LineQuantity]?
            /// With `void`: how much of the authorization (`nil`: all of it).
            var voidAmount: Int64?

            /// Whether a request that made `other` asks for what this cancellation was asked: the caller's
            /// choices, not the amounts derived from the store's settings (which may have changed meanwhile, or
            /// be absent from a saga stored by an earlier build).
            func asks(as other: Options) -> Bool {
                reason == other.reason && restock == other.restock && notify == other.notify
                    && staffNote == other.staffNote && (payment == .keep) == (other.payment == .keep)
                    && (refundTo ?? .original) == (other.refundTo ?? .original) && lines == other.lines
                    && (restockingFee == nil ? refundAmount : nil)
                        == (other.restockingFee == nil ? other.refundAmount : nil)
            }
        }

        var orderID: UUID
        var options: Options
        var refunded: Int64 = 0
        var feeKept: Int64 = 0
        var voided = false
        var unitsRestocked: Int64 = 0
        var unitsWrittenOff: Int64 = 0
        var paymentStatus: String?
        /// What the void saved: the fee a capture would have cost (`nil` in sagas from before).
        var feeSaved: Int64?
        /// A refund to store credit: the customer whose balance it goes to.
        var storeCreditOf: String?
        var partID: UUID?
        var partLines: [ReserveRequest.Line]?
    }

    static let kind = Saga.Kind.cancelOrder

    /// A cancellation asked by staff (`orders.cancel`, an approved request) or by the customer
    /// (`customer.cancel`), whose rules of the store's policy it obeys.
    struct Request: Sendable {
        var cancel: CancelOrderRequest
        var actor: CancellationPolicy.Actor
    }

    /// Locks the order for a new cancellation. A repeat answers with the saga the first request started: the same
    /// idempotency key, or, without one, the same options while that saga runs.
    /// - Throws: `not_found`; `invalid_argument` (`unknown_refund_to`, `note_too_long`, `bad_refund_amount`);
    ///   `failed_precondition` for an order that is fulfilled, cancelled, rejected, still pending or being
    ///   fulfilled, or a customer's rule; `conflict/order_cancelling` (naming the saga) while a cancellation with
    ///   other options holds it; `conflict/order_busy`; `conflict/idempotency_key_reused`.
    static func begin(_ db: any SQLTransaction, _ asked: Request, _ start: SagaStart) throws -> SagaBeginning<Context> {
        let request = asked.cancel
        if let destination = request.refundTo, !RefundDestination.known.contains(destination) {
            throw RescindError.invalidArgument("no refund destination \(destination)", reason: "unknown_refund_to")
        }
        // Counted in Unicode scalars, as SQLite's length() in the schema's CHECK counts them.
        if let note = request.staffNote, note.unicodeScalars.count > CancelOrderRequest.maxStaffNoteLength {
            throw RescindError.invalidArgument(
                "the staff note is \(note.unicodeScalars.count) characters; at most \(CancelOrderRequest.maxStaffNoteLength)",
                reason: "note_too_long"
            )
        }
        if let previous: SagaBeginning<Context> = try start.repeated(db, orderID: request.orderID, what: "cancellation")
        {
            return previous
        }
        guard let order = try db.find(OrderRecord.self, key: [request.orderID.uuidString]) else {
            throw RescindError.notFound("no order \(request.orderID)", reason: "unknown_order")
        }
        let lines = try OrderLineRecord.of(db, order.id)
        let selection: LineSelection
        do {
            selection = try LineSelection(request.lines, of: lines, doing: "cancel")
        } catch {
            // Nothing open to cancel: a bad stated amount, then the order's status (cancelled, fulfilled, ...)
            // name the rule if they do, as for a whole order.
            _ = try moneyAction(for: request, order: order, store: start.store)
            if order.status != .cancelling { try order.requireCancellable() }
            throw error
        }
        // All that is not refunded yet, unless part of it paid for units not cancelled now: some lines, units
        // shipped, or a restocking fee kept when units were cancelled or removed before. Then the money of
        // these units only.
        let share = selection.amount < order.total - order.amountRefunded ? selection.amount : nil
        let money = try moneyAction(for: request, order: order, share: share, store: start.store)
        let options = Context.Options(
            reason: request.reason, restock: request.restock, notify: request.notify,
            staffNote: request.staffNote, payment: money.action, refundAmount: money.refundAmount,
            restockingFee: money.restockingFee, refundTo: request.refundTo, lines: request.lines,
            voidAmount: money.voidAmount
        )
        if order.status == .cancelling, let running = try SagaStore.unfinishedSaga(db, order.id, kind: kind) {
            guard try context(of: running).options.asks(as: options) else {
                throw RescindError.conflict(
                    "order \(order.id) is already being cancelled, with other options, by saga \(running.id)",
                    reason: "order_cancelling")
            }
            return .existing(sagaID: running.id, orderID: running.orderID)
        }
        // The store's policy names the rule first (the order's status, then a customer's rules); then any saga
        // that holds the order.
        if asked.actor == .customer {
            let facts = try CancellationPolicy.Facts.read(db, order, store: start.store, now: start.now)
            try CancellationPolicy.evaluate(facts, as: .customer, store: start.store).enforce(order.id)
        } else {
            try order.requireCancellable()
        }
        try SagaStore.refuseWhileBusy(db, order.id)
        var context = Context(orderID: request.orderID, options: options)
        if !selection.takesEverythingOpen {
            context.partID = UUID(uuidString: start.sagaID)
            context.partLines = selection.asked(of: lines).map { .init(sku: $0.sku, quantity: $0.quantity) }
        }
        if request.refundTo == .storeCredit, money.action == .refund { context.storeCreditOf = order.customerEmail }
        return .new(orderID: request.orderID, context: context)
    }

    /// What a cancellation does with the money: void an authorization (or, for some lines, their `share` of it);
    /// refund (all that is not refunded yet or the lines' share, a stated amount, or either less the store's
    /// restocking fee when the customer asked); or keep it.
    /// - Throws: `invalid_argument/bad_refund_amount` for a stated amount that is not 1 to what is refundable,
    ///   or one given where nothing is refunded.
    static func moneyAction(
        for request: CancelOrderRequest, order: OrderRecord, share: Int64? = nil, store: StoreSettings
    ) throws -> (
        action: Context.PaymentAction, refundAmount: Int64?, restockingFee: Int64?, voidAmount: Int64?
    ) {
        let refundable = order.total - order.amountRefunded
        let captured = order.paymentStatus == "captured" || order.paymentStatus == "partially_refunded"
        if let stated = request.refundAmountMinor {
            guard request.refund, captured else {
                throw RescindError.invalidArgument(
                    "refund_amount needs refund and a captured payment; order \(order.id)'s payment is "
                        + "\(order.paymentStatus ?? "absent")", reason: "bad_refund_amount")
            }
            guard stated > 0, stated <= refundable else {
                throw RescindError.invalidArgument(
                    "refund_amount \(stated) is not between 1 and the \(refundable) not refunded yet",
                    reason: "bad_refund_amount")
            }
            return (.refund, stated, nil, nil)
        }
        if order.paymentStatus == "authorized" {
            if share == 0 { return (.keep, nil, nil, nil) }  // lines that cost nothing
            // A share of all that is authorized is all of it.
            return (.void, nil, nil, share.flatMap { $0 < order.total ? $0 : nil })
        }
        let base = min(share ?? refundable, refundable)
        guard captured, request.refund, base > 0 else { return (.keep, nil, nil, nil) }
        let stated = share == nil ? nil : base
        guard request.reason == .customer else { return (.refund, stated, nil, nil) }
        let fee = store.restockingFee(on: base)
        if fee == 0 { return (.refund, stated, nil, nil) }
        return fee >= base ? (.keep, nil, fee, nil) : (.refund, base - fee, fee, nil)
    }

    static let steps: [SagaStep<Context>] = [lock, .split, prepareRestock, refund, void, restock, writeOff, finalize]

    static func plan(_ context: Context) -> [SagaStep<Context>] {
        let options = context.options
        var plan = [lock]
        if context.partID != nil { plan.append(.split) }
        if options.restock { plan.append(prepareRestock) }
        switch options.payment {
        case .refund: plan.append(refund)
        case .void: plan.append(void)
        case .keep: break
        }
        plan.append(options.restock ? restock : writeOff)
        plan.append(finalize)
        return plan
    }

    /// The semantic lock: an open order becomes `cancelling`, and fulfilment is refused until the saga ends.
    static let lock = SagaStep<Context>.local("lock", role: .compensatable(undo: unlock)) { db, context, info in
        try OrderRecord.change(db, context.orderID, at: info.now) { order in
            try order.requireCancellable()
            order.status = .cancelling
        }
        return "locked against fulfilment; reason \(context.options.reason.rawValue)"
    }

    static let unlock = SagaStep<Context>.local("unlock", role: .retriable) { db, context, info in
        try reopen(db, context, at: info.now)
        return "order open again; the failed attempt is recorded"
    }

    private static func reopen(_ db: any SQLTransaction, _ context: Context, at now: Date) throws {
        try OrderRecord.change(db, context.orderID, at: now) { order in
            order.status = .open
            if let status = context.paymentStatus { order.paymentStatus = status }
        }
    }

    static let prepareRestock = SagaStep<Context>.remote(
        "prepare_restock", .inventory, InventoryMethods.prepareRestock, role: .compensatable(undo: takeBack),
        request: { context in OrderStockRequest(orderID: context.stockID) },
        answered: { reservation, _ in "holding \(reservation.describedAllocations) to restock once the money moves" }
    )

    static let takeBack = SagaStep<Context>.remote(
        "take_back", .inventory, InventoryMethods.takeBack, role: .retriable,
        request: { context in OrderStockRequest(orderID: context.stockID) },
        answered: { reservation, _ in "the \(reservation.units) units stay reserved for the order" }
    )

    static let refund = SagaStep<Context>.remote(
        "refund", .payments, PaymentsMethods.refund, role: .pivot,
        request: { context in
            RefundRequest(
                orderID: context.orderID, amountMinor: context.options.refundAmount,
                storeCreditOf: context.storeCreditOf)
        },
        answered: { result, context in
            context.refunded = result.refundedMinor
            context.feeKept = result.feeKeptMinor
            context.paymentStatus = result.payment.status.rawValue
            return
                "refunded \(result.refundedMinor) \(result.payment.currency) minor units; the processor kept its fee of \(result.feeKeptMinor)"
        }
    )

    static let void = SagaStep<Context>.remote(
        "void", .payments, PaymentsMethods.void, role: .pivot,
        request: { context in VoidRequest(orderID: context.orderID, amountMinor: context.options.voidAmount) },
        answered: { payment, context in
            context.voided = true
            context.paymentStatus = payment.status.rawValue
            context.feeSaved = payment.feeSaved
            if let part = context.options.voidAmount {
                return "voided \(part) of the authorization, \(payment.amountAuthorized) \(payment.currency) minor "
                    + "units stay authorized; no money moved, fee saved so far \(payment.feeSaved ?? 0)"
            }
            return "voided the authorization of \(payment.amountAuthorized) \(payment.currency) minor units"
                + "; no money moved, fee saved \(payment.feeSaved ?? 0)"
        }
    )

    static let restock = SagaStep<Context>.remote(
        "restock", .inventory, InventoryMethods.restock, role: .retriable,
        request: { context in OrderStockRequest(orderID: context.stockID) },
        answered: { reservation, context in
            context.unitsRestocked = reservation.units
            return "restocked \(reservation.describedAllocations)"
        }
    )

    static let writeOff = SagaStep<Context>.remote(
        "write_off", .inventory, InventoryMethods.writeOff, role: .retriable,
        request: { context in OrderStockRequest(orderID: context.stockID) },
        answered: { reservation, context in
            context.unitsWrittenOff = reservation.units
            return "wrote off \(reservation.describedAllocations)"
        }
    )

    static let finalize = SagaStep<Context>.local("finalize", role: .retriable) { db, context, info in
        let order = try record(db, context, info: info)
        var parts = [
            order.status == .cancelled ? "cancelled" : "lines cancelled; the order is \(order.status.rawValue)"
        ]
        if context.voided { parts.append("authorization voided, fee saved \(context.feeSaved ?? 0)") }
        if context.refunded > 0 { parts.append("refunded \(context.refunded), fee kept \(context.feeKept)") }
        if let fee = context.options.restockingFee, fee > 0 { parts.append("restocking fee \(fee) kept") }
        if context.options.restock {
            parts.append("\(context.unitsRestocked) units restocked")
        } else {
            parts.append("\(context.unitsWrittenOff) units written off")
        }
        if context.options.notify { parts.append("customer notification queued") }
        return parts.joined(separator: "; ")
    }

    /// The order cancelled (or, for some lines, open or fulfilled with them cancelled), its cancellation record
    /// and, if asked, the customer's notice.
    @discardableResult
    private static func record(_ db: any SQLTransaction, _ context: Context, info: LocalStepInfo) throws -> OrderRecord
    {
        let options = context.options
        let lines = try OrderLineRecord.of(db, context.orderID.uuidString)
        let selection = try LineSelection(options.lines, of: lines, doing: "cancel")
        let fulfilled = try selection.apply(db, to: lines, as: \.cancelled).contains { $0.fulfilled > 0 }
        // What previous voids of some lines saved; Payments counts what every void of the order saved.
        let savedBefore =
            try LineCancellationRecord.of(db, context.orderID.uuidString)?
            .reduce(Int64(0)) { $0 + ($1.feeSavedMinor ?? 0) } ?? 0
        let feeSaved = context.voided ? (context.feeSaved ?? 0) - savedBefore : nil
        let order = try OrderRecord.change(db, context.orderID, at: info.now) { order in
            order.status = selection.takesEverythingOpen ? (fulfilled ? .fulfilled : .cancelled) : .open
            order.amountRefunded += context.refunded
            order.total -= options.voidAmount ?? 0
            if let status = context.paymentStatus { order.paymentStatus = status }
            if order.status != .open { order.captureDueAt = nil }
        }
        let cancellation = Cancellation(
            sagaID: UUID(uuidString: info.sagaID) ?? UUID(), reason: options.reason, staffNote: options.staffNote,
            refundedMinor: context.refunded, feeKeptMinor: context.feeKept, voided: context.voided,
            unitsRestocked: context.unitsRestocked, notify: options.notify, cancelledAt: info.now,
            feeSavedMinor: feeSaved, restockingFeeMinor: (options.restockingFee ?? 0) > 0 ? options.restockingFee : nil,
            refundTo: context.refunded > 0 && context.storeCreditOf != nil ? RefundDestination.storeCredit : nil,
            lines: order.status == .cancelled ? nil : selection.asked(of: lines),
            voidedAmountMinor: options.voidAmount)
        if order.status == .cancelled {
            try db.insert(
                CancellationRecord(order.id, cancellation))
        } else {
            try db.insert(
                LineCancellationRecord(
                    sagaID: info.sagaID, orderID: order.id, refunded: context.refunded,
                    voidedAmount: options.voidAmount ?? 0, units: selection.units,
                    cancellation: try JSON.encode(cancellation),
                    cancelledAt: info.now
                ))
        }
        if options.notify {
            let notice = CancellationNotice(
                orderID: order.id, customerEmail: order.customerEmail, reason: options.reason.rawValue,
                refunded: context.refunded, currency: order.currency, lines: cancellation.lines,
                refundTo: cancellation.refundTo?.rawValue, voided: context.voided ? true : nil
            )
            let outbox = OutboxRecord(
                id: nil, orderID: order.id, kind: order.status == .cancelled ? "order_cancelled" : "lines_cancelled",
                payload: try JSON.encode(notice), createdAt: info.now, deliveredAt: nil
            )
            try db.insert(outbox)
        }
        return order
    }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    {
        switch outcome {
        case .cancelled:
            try record(db, context, info: info)
            return "order cancelled by hand"
        case .open:
            try reopen(db, context, at: info.now)
            return "order open again"
        default:
            throw RescindError.invalidArgument(
                "a cancellation settles as cancelled or open, not \(outcome)", reason: "bad_outcome")
        }
    }
}

/// The message queued for the customer when a cancellation completes with `notify`.
struct CancellationNotice: Codable, Sendable {
    var orderID: String
    var customerEmail: String
    var reason: String
    var refunded: Int64
    var currency: String
    /// For a cancellation of some lines: which units.
    var lines: [LineQuantity]?
    /// `store_credit` when the refund went to the customer's store credit.
    var refundTo: String?
    /// The authorization was voided: nothing was charged for what was cancelled.
    var voided: Bool?

    enum CodingKeys: String, CodingKey {
        case reason, refunded, currency, lines, voided
        case orderID = "order_id"
        case customerEmail = "customer_email"
        case refundTo = "refund_to"
    }
}
