import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// A refund after placement (`orders.refund`): `hold` → `refund` (pivot) → `recorded`. Undo: `release`.
///
/// `hold` checks, in the transaction that starts the saga, that the order's payment is captured and that the
/// amount is not more than what is not refunded yet; while the saga runs, the order's other sagas wait (one
/// unfinished saga per order). A refund the processor declines changes nothing.
enum RefundPaymentSaga: SagaDefinition {
    struct Context: Codable, Sendable {
        var orderID: UUID
        var amount: Int64
        var reason: String
        var by: String
        var refunded: Int64?
        var paymentStatus: String?
        /// A refund to store credit: the customer whose balance it goes to.
        var storeCreditOf: String?
    }

    static let kind = Saga.Kind.refundPayment

    /// A refund asked by `by`.
    struct Request: Sendable {
        var refund: RefundOrderRequest
        var by: String
    }

    /// A refund of a captured payment, with its reason and who asked. A repeat (same key, same request) answers
    /// with the same saga.
    /// - Throws: `invalid_argument/bad_amount`, `unknown_refund_to`, `reason_required`, `reason_too_long`;
    ///   `not_found`; `conflict/order_busy`, `conflict/idempotency_key_reused`; `hold`'s refusals
    ///   (`payment_not_captured`, `refund_exceeds_capture`).
    static func begin(_ db: any SQLTransaction, _ asked: Request, _ start: SagaStart) throws -> SagaBeginning<Context> {
        let request = asked.refund
        let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard request.amountMinor > 0 else {
            throw RescindError.invalidArgument("the amount must be positive", reason: "bad_amount")
        }
        if let destination = request.refundTo, !RefundDestination.known.contains(destination) {
            throw RescindError.invalidArgument("no refund destination \(destination)", reason: "unknown_refund_to")
        }
        guard !reason.isEmpty else {
            throw RescindError.invalidArgument("say why: the reason is kept with the refund", reason: "reason_required")
        }
        guard reason.unicodeScalars.count <= RefundOrderRequest.maxReasonLength else {
            throw RescindError.invalidArgument(
                "the reason is \(reason.unicodeScalars.count) characters; at most \(RefundOrderRequest.maxReasonLength)",
                reason: "reason_too_long")
        }
        if let previous: SagaBeginning<Context> = try start.repeated(db, orderID: request.orderID, what: "request") {
            return previous
        }
        let order = try OrderRecord.existing(db, request.orderID)
        try SagaStore.refuseWhileBusy(db, order.id)
        return .new(
            orderID: request.orderID,
            context: .init(
                orderID: request.orderID, amount: request.amountMinor, reason: reason, by: asked.by,
                storeCreditOf: request.refundTo == .storeCredit ? order.customerEmail : nil))
    }

    static let steps: [SagaStep<Context>] = [hold, refund, recorded]

    static func plan(_ context: Context) -> [SagaStep<Context>] {
        [hold, refund, recorded]
    }

    static let hold = SagaStep<Context>.local("hold", role: .compensatable(undo: release)) { db, context, _ in
        let order = try OrderRecord.load(db, context.orderID)
        guard ["captured", "partially_refunded", "refunded"].contains(order.paymentStatus ?? "") else {
            throw RescindError.failedPrecondition(
                "order \(order.id)'s payment is \(order.paymentStatus ?? "absent"): only captured money is refunded",
                reason: "payment_not_captured")
        }
        let refundable = order.total - order.amountRefunded
        guard context.amount <= refundable else {
            throw RescindError.failedPrecondition(
                "order \(order.id) has \(refundable) not refunded yet; \(context.amount) is more",
                reason: "refund_exceeds_capture")
        }
        return "refund of \(context.amount) asked by \(context.by): \(context.reason)"
    }

    static let release = SagaStep<Context>.local("release", role: .retriable) { _, _, _ in
        "nothing refunded"
    }

    static let refund = SagaStep<Context>.remote(
        "refund", .payments, PaymentsMethods.refund, role: .pivot,
        request: { context in
            RefundRequest(orderID: context.orderID, amountMinor: context.amount, storeCreditOf: context.storeCreditOf)
        },
        answered: { result, context in
            context.refunded = result.refundedMinor
            context.paymentStatus = result.payment.status.rawValue
            return "refunded \(result.refundedMinor) \(result.payment.currency) minor units; the processor kept "
                + "its fee of \(result.feeKeptMinor)"
        }
    )

    static let recorded = SagaStep<Context>.local("recorded", role: .retriable) { db, context, info in
        let refunded = context.refunded ?? context.amount
        try OrderRecord.change(db, context.orderID, at: info.now) { order in
            order.amountRefunded += refunded
            if let status = context.paymentStatus { order.paymentStatus = status }
        }
        try db.insert(
            OrderRefundRecord(
                sagaID: info.sagaID, orderID: context.orderID.uuidString, amount: refunded, reason: context.reason,
                by: context.by, at: info.now,
                refundTo: context.storeCreditOf == nil ? nil : RefundDestination.storeCredit.rawValue
            ))
        return "recorded: \(refunded) refunded"
    }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    {
        guard outcome == .open else {
            throw RescindError.invalidArgument("a refund settles as open, not \(outcome)", reason: "bad_outcome")
        }
        return "settled by hand: check the payment (payments show) and record any refund made outside Rescind"
    }
}
