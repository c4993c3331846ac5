import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Each placement gets a fraud-risk assessment from rules on the order; a store that holds risky orders
    /// fulfils none of them, nor lets their customer cancel, until staff release or cancel them.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct RiskTests {
        @Test func riskyOrdersAreHeldUntilStaffReleaseOrCancelThem() async throws {
            var options = RescindHarness.Options()
            options.store = ["risk_hold_level": "medium", "risk_amount_above": 5_000]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 20)
                // Small, with a normal card: low, not held.
                let plain = try await h.place([("MUG", 1, 1200)])
                #expect(plain.risk == RiskAssessment(level: .low, reasons: [], held: false))
                // The processor rates the card elevated: medium, held.
                let elevated = try await h.place([("MUG", 1, 1200)], paymentMethod: "pm_card_riskLevelElevated")
                #expect(elevated.risk?.level == .medium)
                #expect(elevated.risk?.held == true)
                #expect(elevated.risk?.reasons == ["the card processor rates the card elevated risk"])
                // Highest: high. Above the store's amount: medium.
                #expect(
                    try await h.place([("MUG", 1, 1200)], paymentMethod: "pm_card_riskLevelHighest").risk?.level
                        == .high)
                let large = try await h.place([("MUG", 5, 1200)])
                #expect(large.risk?.level == .medium)
                #expect(large.risk?.reasons.first?.contains("above 5000") == true)

                // Held: not fulfilled, and its customer cannot cancel; the same rule explains it.
                let fulfil = await refusal {
                    try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: elevated.id))
                }
                #expect(fulfil?.reason == "risk_hold")
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                let token = try #require(elevated.customerToken)
                let decision = try await storefront.call(CustomerMethods.canCancel, CustomerRequest(token: token))
                #expect(decision.rules.first { !$0.passed }?.reason == "risk_hold")
                let customer = await refusal {
                    try await storefront.call(CustomerMethods.cancel, CustomerCancelRequest(token: token))
                }
                #expect(customer?.reason == "risk_hold")

                // Released (who and when kept): fulfilled.
                let released = try await runRescindctl(
                    ["orders", "release", elevated.id.uuidString, "--dir", h.directory.path, "--json"])
                #expect(released.status == 0)
                let risk = try await h.order(elevated.id).risk
                #expect(risk?.held == false)
                #expect(risk?.releasedBy == "operator")
                #expect(risk?.level == .medium)
                let fulfilled = try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: elevated.id))
                #expect(fulfilled.status == .fulfilled)
                // Or cancelled by staff, reason fraud, while held.
                let cancelled = try await h.waitForSaga(try await h.cancel(large.id, reason: .fraud).sagaID)
                #expect(cancelled.state == .completed)
                #expect(try await h.order(large.id).cancellation?.reason == .fraud)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aFailedAddressCheckOrACardSharedByCustomersRaisesTheRisk() async throws {
            var options = RescindHarness.Options()
            options.store = ["risk_hold_level": "medium"]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 20)
                // The issuer says the billing address does not match: medium, held.
                let mismatch = try await h.place([("MUG", 1, 1200)], paymentMethod: "pm_card_avsFail")
                #expect(mismatch.risk?.level == .medium)
                #expect(mismatch.risk?.held == true)
                #expect(mismatch.risk?.reasons == ["the billing address does not match the one the card's issuer has"])
                #expect(try await h.payment(mismatch.id).addressCheck == "fail")

                // One card, one customer, again and again: low. The same card with another email: medium.
                let card = "pm_card_mastercard"
                let first = try await h.place([("MUG", 1, 1200)], paymentMethod: card, customer: "ann@example.com")
                let again = try await h.place([("MUG", 1, 1200)], paymentMethod: card, customer: "ann@example.com")
                #expect(first.risk?.level == .low)
                #expect(again.risk?.level == .low)
                let fingerprint = try await h.payment(first.id).cardFingerprint
                #expect(fingerprint != nil)
                #expect(try await h.payment(again.id).cardFingerprint == fingerprint)
                let other = try await h.place([("MUG", 1, 1200)], paymentMethod: card, customer: "bob@example.com")
                #expect(other.risk?.level == .medium)
                #expect(other.risk?.reasons == ["the card was used before with another email address"])
                // Whoever comes first: an email sorting before the first one's is found too.
                let earlier = try await h.place([("MUG", 1, 1200)], paymentMethod: card, customer: "aaron@example.com")
                #expect(earlier.risk?.level == .medium)
                // Another card: its own history. A reorder with the saved card is the same card, shared by now.
                #expect(try await h.place([("MUG", 1, 1200)], customer: "cy@example.com").risk?.level == .low)
                let reordered = try await h.orders.call(
                    OrdersMethods.reorder, ReorderRequest(orderID: first.id), idempotencyKey: UUID().uuidString)
                #expect(try await h.payment(reordered.id).cardFingerprint == fingerprint)
                #expect(reordered.risk?.reasons == ["the card was used before with another email address"])
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
