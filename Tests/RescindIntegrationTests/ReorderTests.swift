import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// A reorder turns an accidental cancellation back into a sale: same lines, same customer, the card saved
    /// with the first order (never its number), the two orders linked.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct ReorderTests {
        @Test func aCancelledOrderIsPlacedAgainWithItsSavedCard() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                try await h.setStock("TSHIRT", at: "main", onHand: 10)
                // The card whose refunds are declined: its token says so, which shows the reorder used it.
                let first = try await h.place(
                    [("MUG", 2, 1200), ("TSHIRT", 1, 2500)], paymentMethod: "pm_card_refundFail",
                    customer: "bo@example.com",
                    source: .onlineStore)
                let cancel = try await h.waitForSaga(try await h.cancel(first.id, refund: false).sagaID)
                #expect(cancel.state == .completed)

                let again = try await h.orders.call(
                    OrdersMethods.reorder, ReorderRequest(orderID: first.id), idempotencyKey: "again-1")
                #expect(again.id != first.id)
                #expect(again.status == .open)
                #expect(again.lines == first.lines)
                #expect(again.totalMinor == first.totalMinor)
                #expect(again.customerEmail == "bo@example.com")
                #expect(again.cardLast4 == "5126")
                #expect(again.source == .onlineStore)
                #expect(again.reorderOf == first.id)
                #expect(try await h.order(first.id).reorders == [again.id])
                let payment = try await h.payment(again.id)
                #expect(payment.status == .captured)
                #expect(payment.amountCaptured == first.totalMinor)
                #expect(payment.cardLast4 == "5126")
                // A repeat with the same key places nothing more.
                let repeated = try await h.orders.call(
                    OrdersMethods.reorder, ReorderRequest(orderID: first.id), idempotencyKey: "again-1")
                #expect(repeated.id == again.id)
                #expect(try await h.order(first.id).reorders == [again.id])

                // The saved card is that card: its refunds are declined too.
                let refused = try await h.waitForSaga(try await h.cancel(again.id).sagaID)
                #expect(refused.state == .compensated)
                #expect(refused.error?.reason == "refund_declined")
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func anOrderThatNeverHadAPaymentHasNoSavedCard() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                do {
                    _ = try await h.place([("MUG", 1, 1200)], paymentMethod: "pm_card_visa_chargeDeclined")
                    Issue.record("a declined card placed an order")
                } catch let error as RescindError {
                    #expect(error.reason == "card_declined")
                }
                let rejected = try #require(
                    try await h.orders.call(OrdersMethods.list, ListOrdersRequest(status: .rejected)).orders.first)
                do {
                    _ = try await h.orders.call(OrdersMethods.reorder, ReorderRequest(orderID: rejected.id))
                    Issue.record("a rejected order was placed again")
                } catch let error as RescindError {
                    #expect(error.code == .failedPrecondition)
                    #expect(error.reason == "no_saved_card")
                }
                #expect(try await h.orders.call(OrdersMethods.list, ListOrdersRequest()).orders.count == 1)
            }
        }
    }
}
