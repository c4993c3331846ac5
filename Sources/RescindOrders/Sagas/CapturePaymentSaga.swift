import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// Capturing an open order's authorization when it falls due (`CaptureScheduler` starts it): `hold` →
/// `capture` (pivot) → `captured`. Undo: `keep_authorized`.
///
/// `hold` checks, in the transaction that starts the saga, that the order is still open with its payment
/// authorized; while the saga runs, a cancellation or fulfilment of the order is refused for a moment
/// (`capture_in_progress`). If the processor refuses the capture for good, the order stays open with its
/// authorization and no capture time: its fulfilment captures it (or refuses to fulfil).
enum CapturePaymentSaga: SagaDefinition {
    struct Context: Codable, Sendable {
        var orderID: UUID
        var paymentStatus: String?
        var fee: Int64?
    }

    static let kind = Saga.Kind.capturePayment

    /// A capture of order `orderID`'s authorization that has fallen due (`CaptureScheduler`).
    /// - Throws: `SagaStore.refuseWhileBusy`'s refusals while another saga of the order (a cancellation, a
    ///   fulfilment, an earlier capture) goes first; `hold`'s `nothing_to_capture`.
    static func begin(_ db: any SQLTransaction, _ orderID: UUID, _ start: SagaStart) throws -> SagaBeginning<Context> {
        try SagaStore.refuseWhileBusy(db, orderID.uuidString)
        return .new(orderID: orderID, context: .init(orderID: orderID))
    }

    static let steps: [SagaStep<Context>] = [hold, capture, captured]

    static func plan(_ context: Context) -> [SagaStep<Context>] {
        [hold, capture, captured]
    }

    static let hold = SagaStep<Context>.local("hold", role: .compensatable(undo: keepAuthorized)) {
        db, context, _ in
        let order = try OrderRecord.load(db, context.orderID)
        guard order.status == .open, order.paymentStatus == Payment.Status.authorized.rawValue else {
            throw RescindError.failedPrecondition(
                "order \(order.id) is \(order.status.rawValue) with its payment \(order.paymentStatus ?? "absent"): "
                    + "nothing to capture", reason: "nothing_to_capture")
        }
        return "capture due at \(order.captureDueAt?.formatted(.iso8601) ?? "once")"
    }

    static let keepAuthorized = SagaStep<Context>.local("keep_authorized", role: .retriable) { db, context, info in
        try OrderRecord.change(db, context.orderID, at: info.now) { $0.captureDueAt = nil }
        return "capture refused: the order stays open with its authorization; fulfilment will capture it"
    }

    static let capture = SagaStep<Context>.remote(
        "capture", .payments, PaymentsMethods.capture, role: .pivot,
        request: { context in PaymentRequest(orderID: context.orderID) },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            context.fee = payment.fee
            return "captured \(payment.amountCaptured) \(payment.currency) minor units, fee \(payment.fee)"
        }
    )

    static let captured = SagaStep<Context>.local("captured", role: .retriable) { db, context, info in
        try OrderRecord.change(db, context.orderID, at: info.now) { order in
            order.paymentStatus = context.paymentStatus ?? Payment.Status.captured.rawValue
            order.captureDueAt = nil
        }
        return "payment captured"
    }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    {
        guard outcome == .open else {
            throw RescindError.invalidArgument("a capture settles as open, not \(outcome)", reason: "bad_outcome")
        }
        try OrderRecord.change(db, context.orderID, at: info.now) { order in
            order.captureDueAt = nil
            if let status = context.paymentStatus { order.paymentStatus = status }
        }
        return "order open; payment "
            + (context.paymentStatus ?? "as Orders last knew it (the capture's answer was lost: check payments show)")
    }
}
