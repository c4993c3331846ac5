import Foundation
import RescindAPI
import RescindPayments
import RescindSuite
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// An authorization whose answer never came back, on the real daemons: the processor authorized the card, its
    /// answer was lost, and Orders gave up on the placement (one attempt allowed) and rejected the order. Payments
    /// holds the call pending; once it is older than `abandon_authorizations_after_seconds`, the sweeper looks it up
    /// at the processor by its key and cancels what the processor authorized: the customer's money is not held for
    /// an order that does not exist, and the checker finds every charge accounted for.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct AbandonedAuthorizationTests {
        @Test func anAuthorizationNobodyCameBackForIsCancelledAtTheProcessor() async throws {
            var options = RescindHarness.Options()
            options.sagas["max_attempts"] = 1
            options.payments["processor"] =
                [
                    "fee_basis_points": 290, "fixed_fee": 30, "fault_injection": true,
                    "abandon_authorizations_after_seconds": 1,
                ] as [String: any Sendable]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                try await h.setProcessorFaults(ProcessorFaults(mode: .answerLost))
                let refused = await refusal { try await h.place([("MUG", 1, 1500)]) }
                try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
                #expect(refused?.code == "unavailable", "\(String(describing: refused))")
                let order = try #require(
                    try await h.orders.call(OrdersMethods.list, ListOrdersRequest(status: .rejected)).orders.first)
                #expect(try await h.stock("MUG", at: "main")?.reserved == 0)

                // The processor did authorize it; the sweeper cancels it once the call is a second old.
                #expect(try h.processorCharges(of: order.id).count == 1)
                try await h.waitUntil("the abandoned authorization cancelled at the processor") {
                    try h.processorCharges(of: order.id).first?.status == "canceled"
                }
                let charges = try h.processorCharges(of: order.id)
                #expect(charges.map(\.status) == ["canceled"])
                // By the sweeper, not by the placement's undoing (which found no payment to void).
                let log = try String(contentsOf: h.suite.layout.log(.payments), encoding: .utf8)
                #expect(log.contains("abandoned authorization settled"))
                #expect(charges.first?.amountCaptured == 0)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
