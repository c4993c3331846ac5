import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// Editing an open order (`orders.edit`): `hold` → `reserve_added` → `split_removed` → `increase`, `void` or
/// `refund` (pivot) → `merge_added` → `release_removed` → `recorded`. Undo, in reverse: `merge_removed`,
/// `release_added`.
///
/// Added units are reserved in a part of their own (`part_of` the order) before the card is asked for more, and
/// join the order only once it said yes; removed units are set apart, still reserved, and released only once
/// their share is voided or refunded. A card or a stock that says no leaves the order as it was. Steps that
/// have nothing to do are left out of the plan; an edit that costs the same moves no money.
enum EditOrderSaga: SagaDefinition {
    struct Context: Codable, Sendable {
        enum PaymentAction: String, Codable, Sendable {
            /// Raise the authorization, or charge the extra (captured).
            case increase
            /// Void the removed units' share of an authorization.
            case void
            /// Refund the removed units' share of a captured payment.
            case refund
        }

        var orderID: UUID
        var changes: [LineChange]
        var note: String?
        var by: String
        /// Added units less removed units' cost, signed.
        var amount: Int64
        /// What the pivot does with `amount` (`nil`: nothing to move).
        var payment: PaymentAction?
        /// The restocking fee kept from what the edit gives back (a customer's edit of a captured order).
        var restockingFee: Int64?
        var added: [ReserveRequest.Line]?
        var addedPartID: UUID?
        var removed: [ReserveRequest.Line]?
        var removedPartID: UUID?
        var paymentStatus: String?
        var refunded: Int64 = 0

        var addedPart: StockPart? {
            guard let addedPartID, let added else { return nil }
            return StockPart(orderID: orderID, partID: addedPartID, lines: added)
        }

        var removedPart: StockPart? {
            guard let removedPartID, let removed else { return nil }
            return StockPart(orderID: orderID, partID: removedPartID, lines: removed)
        }

        /// The money the pivot moves: always positive.
        var moved: Int64 { abs(amount) }
    }

    static let kind = Saga.Kind.editOrder

    /// An edit by staff (`orders.edit`) or by the customer (`customer.edit`): the store's policy for `actor`
    /// decides.
    struct Request: Sendable {
        var edit: EditOrderRequest
        /// Who, as recorded with the edit.
        var by: String
        var actor: CancellationPolicy.Actor
    }

    /// Sets the edit apart: what it adds, what it removes and what the payment does. A repeat (same key, same
    /// request) answers with the same saga.
    /// - Throws: `invalid_argument` (`bad_changes`, `price_fixed`, `no_change`, `note_too_long`); `not_found`;
    ///   `failed_precondition/order_<status>`, `fulfilment_in_progress`, `line_not_open`, `edit_empties_order`,
    ///   `would_void_payment`, `not_on_order`, a customer's rule; `conflict/order_busy`,
    ///   `conflict/idempotency_key_reused`.
    static func begin(_ db: any SQLTransaction, _ asked: Request, _ start: SagaStart) throws -> SagaBeginning<Context> {
        let request = asked.edit
        if let note = request.note, note.unicodeScalars.count > EditOrderRequest.maxNoteLength {
            throw RescindError.invalidArgument(
                "the note is \(note.unicodeScalars.count) characters; at most \(EditOrderRequest.maxNoteLength)",
                reason: "note_too_long")
        }
        if let previous: SagaBeginning<Context> = try start.repeated(db, orderID: request.orderID, what: "request") {
            return previous
        }
        let order = try OrderRecord.existing(db, request.orderID)
        var facts =
            asked.actor == .customer
            ? try CancellationPolicy.Facts.read(db, order, store: start.store, now: start.now)
            : CancellationPolicy.Facts(order: order, lines: try OrderLineRecord.of(db, order.id), now: start.now)
        if asked.actor == .customer,
            let other = request.changes.first(where: { change in !facts.lines.contains { $0.sku == change.sku } })
        {
            throw RescindError.failedPrecondition(
                "\(other.sku) is not in this order: a customer changes the quantities of what was ordered",
                reason: "not_on_order")
        }
        facts.changes = request.changes
        try CancellationPolicy.evaluate(facts, as: asked.actor, action: .edit, store: start.store).enforce(order.id)
        let edit = try LineEdit(request.changes, of: facts.lines)
        try SagaStore.refuseWhileBusy(db, order.id)
        var context = Context(
            orderID: request.orderID, changes: request.changes, note: request.note, by: asked.by, amount: edit.amount)
        if edit.amount > 0 {
            context.payment = .increase
        } else if edit.amount < 0 {
            if order.paymentStatus == Payment.Status.authorized.rawValue {
                guard -edit.amount < order.total else {
                    throw RescindError.failedPrecondition(
                        "the edit would void all of order \(order.id)'s authorization; cancel it instead",
                        reason: "would_void_payment")
                }
                context.payment = .void
            } else {
                // Never more than is not refunded yet: a refund made earlier may have covered some of it.
                let share = max(min(-edit.amount, order.total - order.amountRefunded), 0)
                // A customer who removes units cancels them: what the edit gives back keeps the store's
                // restocking fee, as the refund of a customer's cancellation does.
                let fee = asked.actor == .customer ? start.store.restockingFee(on: share) : 0
                if fee > 0 { context.restockingFee = fee }
                context.amount = -(share - fee)
                if share - fee > 0 { context.payment = .refund }
            }
        }
        if !edit.added.isEmpty {
            context.added = edit.added
            context.addedPartID = UUID.timeOrdered()
        }
        if !edit.removed.isEmpty {
            context.removed = edit.removed
            context.removedPartID = UUID.timeOrdered()
        }
        return .new(orderID: request.orderID, context: context)
    }

    static let steps: [SagaStep<Context>] = [
        hold, reserveAdded, splitRemoved, increase, void, refund, mergeAdded, releaseRemoved, recorded,
    ]

    static func plan(_ context: Context) -> [SagaStep<Context>] {
        var plan = [hold]
        if context.addedPart != nil { plan.append(reserveAdded) }
        if context.removedPart != nil { plan.append(splitRemoved) }
        switch context.payment {
        case .increase: plan.append(increase)
        case .void: plan.append(void)
        case .refund: plan.append(refund)
        case nil: break
        }
        if context.addedPart != nil { plan.append(mergeAdded) }
        if context.removedPart != nil { plan.append(releaseRemoved) }
        plan.append(recorded)
        return plan
    }

    /// Written with the saga in `OrdersService.edit`: the order is open and no other saga holds it.
    static let hold = SagaStep<Context>.local("hold", role: .compensatable(undo: nil)) { _, context, _ in
        "edit asked by \(context.by): \(context.changes.map { "\($0.sku) to \($0.quantity)" }.joined(separator: ", "))"
    }

    static let reserveAdded = SagaStep<Context>.remote(
        "reserve_added", .inventory, InventoryMethods.reserve, role: .compensatable(undo: releaseAdded),
        request: { context in
            guard let part = context.addedPart else { throw RescindError.internalError("no units to add") }
            return ReserveRequest(orderID: part.partID, lines: part.lines, partOf: context.orderID)
        },
        answered: { reservation, _ in "reserved \(reservation.describedAllocations) for the order" }
    )

    static let releaseAdded = SagaStep<Context>.remote(
        "release_added", .inventory, InventoryMethods.release, role: .retriable,
        request: { context in OrderStockRequest(orderID: context.addedPartID ?? context.orderID) },
        answered: { reservation, _ in "released the \(reservation.units) units reserved for the edit" }
    )

    static let splitRemoved = SagaStep<Context>.split("split_removed", undo: .merge("merge_removed") { $0.removedPart })
    {
        $0.removedPart
    }

    static let increase = SagaStep<Context>.remote(
        "increase", .payments, PaymentsMethods.increase, role: .pivot,
        request: { context in IncreaseRequest(orderID: context.orderID, amountMinor: context.moved) },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            return "charged \(context.moved) \(payment.currency) minor units more; payment \(payment.status.rawValue)"
        }
    )

    static let void = SagaStep<Context>.remote(
        "void", .payments, PaymentsMethods.void, role: .pivot,
        request: { context in VoidRequest(orderID: context.orderID, amountMinor: context.moved) },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            return "voided \(context.moved) of the authorization; \(payment.amountAuthorized) stays authorized"
        }
    )

    static let refund = SagaStep<Context>.remote(
        "refund", .payments, PaymentsMethods.refund, role: .pivot,
        request: { context in RefundRequest(orderID: context.orderID, amountMinor: context.moved) },
        answered: { result, context in
            context.refunded = result.refundedMinor
            context.paymentStatus = result.payment.status.rawValue
            return "refunded \(result.refundedMinor) \(result.payment.currency) minor units"
        }
    )

    static let mergeAdded = SagaStep<Context>.merge("merge_added") { $0.addedPart }

    static let releaseRemoved = SagaStep<Context>.remote(
        "release_removed", .inventory, InventoryMethods.release, role: .retriable,
        request: { context in OrderStockRequest(orderID: context.removedPartID ?? context.orderID) },
        answered: { reservation, _ in "released \(reservation.describedAllocations)" }
    )

    static let recorded = SagaStep<Context>.local("recorded", role: .retriable) { db, context, info in
        try record(db, context, info: info)
        return "lines changed; the order charges \(context.amount >= 0 ? "+" : "")\(context.amount)"
    }

    /// The new quantities on the order's lines, its total and payment, and the edit in its history.
    private static func record(_ db: any SQLTransaction, _ context: Context, info: LocalStepInfo) throws {
        let lines = try OrderLineRecord.of(db, context.orderID.uuidString)
        try LineEdit(context.changes, of: lines).apply(db, to: lines, orderID: context.orderID.uuidString)
        try OrderRecord.change(db, context.orderID, at: info.now) { order in
            // What the order charges follows what Payments holds: raised, or lowered by a void (a refund is
            // counted in amount_refunded instead).
            if context.payment == .increase { order.total += context.moved }
            if context.payment == .void { order.total -= context.moved }
            order.amountRefunded += context.refunded
            if let status = context.paymentStatus { order.paymentStatus = status }
        }
        let edit = OrderEdit(
            sagaID: UUID(uuidString: info.sagaID) ?? UUID(), changes: context.changes, amountMinor: context.amount,
            payment: context.payment?.rawValue, restockingFeeMinor: context.restockingFee, note: context.note,
            by: context.by, at: info.now)
        try db.insert(
            OrderEditRecord(
                sagaID: info.sagaID, orderID: context.orderID.uuidString, refunded: context.refunded,
                edit: try JSON.encode(edit), at: info.now
            ))
    }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    {
        guard outcome == .open else {
            throw RescindError.invalidArgument("an edit settles as open, not \(outcome)", reason: "bad_outcome")
        }
        return "settled by hand: the order's lines are as they were; check its payment and stock"
    }
}
