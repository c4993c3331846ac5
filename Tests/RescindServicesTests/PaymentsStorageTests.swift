import Foundation
import Logging
import RescindAPI
import RescindPayments
import RescindStorage
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

/// Payments on both backends, and two replicas of it on one PostgreSQL database.
@Suite(.timeLimit(.minutes(2))) struct PaymentsStorageTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    private func payments(_ location: StorageLocation) async throws -> (PaymentsService, InProcessCaller) {
        let processor = try await SimulatedProcessor.open(besidePayments: location, logger: logger)
        let service = try await PaymentsService(storage: location, processor: processor, logger: logger)
        var router = RPCRouter()
        service.register(into: &router)
        return (service, InProcessCaller(router: router, peer: .orders, logger: logger))
    }

    private func charged(_ caller: InProcessCaller, _ order: UUID, _ amount: Int64) async throws {
        _ = try await caller.call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: order, amountMinor: amount, currency: "USD", paymentMethod: "pm_card_visa"),
            idempotencyKey: "\(order)/authorize", timeout: nil)
        _ = try await caller.call(
            PaymentsMethods.capture, PaymentRequest(orderID: order), idempotencyKey: "\(order)/capture", timeout: nil)
    }

    @Test(arguments: Backend.available)
    func aChargeIsCapturedAndRefundedOnceWhateverTheRepeats(_ backend: Backend) async throws {
        let (service, caller) = try await payments(try await backend.freshLocation())
        let order = UUID()
        try await charged(caller, order, 5_000)
        for _ in 0..<3 {
            let result = try await caller.call(
                PaymentsMethods.refund, RefundRequest(orderID: order, amountMinor: 1_500),
                idempotencyKey: "\(order)/refund", timeout: nil)
            #expect(result.refundedMinor == 1_500)
        }
        let payment = try await service.payment(order)
        #expect(payment.status == .partiallyRefunded)
        #expect((payment.amountCaptured, payment.amountRefunded) == (5_000, 1_500))
        #expect(payment.fee > 0)
        // Payments' charge and the processor's agree.
        let report = try await service.reconcile(since: nil)
        #expect(report.checked == 1 && report.differences.isEmpty, "\(report.differences)")
    }

    /// The same refund, with the same key, sent to two replicas at once, again and again: refunded once, and
    /// every answer the same.
    @Test(.enabled(if: PostgresServer.isAvailable))
    func aRepeatThatReachesAnotherReplicaAnswersTheSame() async throws {
        let location = try await Backend.postgres.freshLocation()
        let (first, firstCaller) = try await payments(location)
        let (_, secondCaller) = try await payments(location)
        let order = UUID()
        try await charged(firstCaller, order, 5_000)
        // Four rounds, each the refund sent to both replicas at once: a replica never holds its own repeat in
        // flight (it would answer `request_in_progress`), so every answer is the refund's.
        var answers: [Int64?] = []
        for _ in 0..<4 {
            let round = await withTaskGroup(of: Int64?.self) { group in
                for caller in [firstCaller, secondCaller] {
                    group.addTask {
                        try? await caller.call(
                            PaymentsMethods.refund, RefundRequest(orderID: order, amountMinor: 2_000),
                            idempotencyKey: "\(order)/refund", timeout: nil
                        ).payment.amountRefunded
                    }
                }
                return await group.reduce(into: [Int64?]()) { $0.append($1) }
            }
            answers += round
        }
        #expect(answers == Array(repeating: 2_000, count: 8))
        #expect(try await first.payment(order).amountRefunded == 2_000)
        let report = try await first.reconcile(since: nil)
        #expect(report.differences.isEmpty, "\(report.differences)")
    }
}
