import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Fulfilment in progress refuses a cancellation with the rule named, until the mark is cleared or the
    /// order is fulfilled.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct FulfilmentProgressTests {
        private func mark(_ h: RescindHarness, _ id: UUID, _ progress: FulfilmentProgress?) async throws -> Order {
            try await h.orders.call(OrdersMethods.mark, MarkOrderRequest(orderID: id, inProgress: progress))
        }

        @Test func aMarkedOrderIsNotCancelledUntilTheMarkIsCleared() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)])
                #expect(try await mark(h, order.id, .labelPurchased).fulfilmentInProgress == .labelPurchased)
                do {
                    _ = try await h.cancel(order.id)
                    Issue.record("an order with a label bought was cancelled")
                } catch let error as RescindError {
                    #expect(error.code == .failedPrecondition)
                    #expect(error.reason == "fulfilment_in_progress")
                    #expect(error.message.contains("shipping label"))
                }
                #expect(try await h.order(order.id).status == .open)
                #expect(try await h.sagas(of: order.id).count == 1)  // the placement only

                #expect(try await mark(h, order.id, nil).fulfilmentInProgress == nil)
                #expect(try await h.waitForSaga(try await h.cancel(order.id).sagaID).state == .completed)

                // Only an open order is marked.
                do {
                    _ = try await mark(h, order.id, .picking)
                    Issue.record("a cancelled order was marked")
                } catch let error as RescindError {
                    #expect(error.reason == "order_cancelled")
                }
            }
        }

        @Test func fulfilmentClearsTheMark() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)])
                let marked = try await runRescindctl(
                    [
                        "orders", "mark", order.id.uuidString, "--in-progress", "picking", "--dir", h.directory.path,
                        "--json",
                    ])
                #expect(marked.status == 0)
                #expect(try await h.order(order.id).fulfilmentInProgress == .picking)
                let fulfilled = try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                #expect(fulfilled.status == .fulfilled)
                #expect(fulfilled.fulfilmentInProgress == nil)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
