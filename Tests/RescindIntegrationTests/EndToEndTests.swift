import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// The real executables, over real mutual TLS, with real SQLite files.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct EndToEndTests {
        private func place(_ h: RescindHarness, _ lines: [(String, Int64, Int64)], paymentMethod: String) async throws
            -> Order
        {
            try await h.orders.call(
                OrdersMethods.place,
                PlaceOrderRequest(
                    customerEmail: "ada@example.com", currency: "USD",
                    lines: lines.map { .init(sku: $0.0, quantity: $0.1, unitPriceMinor: $0.2) },
                    paymentMethod: paymentMethod
                ),
                idempotencyKey: UUID().uuidString, timeout: .seconds(30)
            )
        }

        private func setStock(_ h: RescindHarness, _ sku: String, _ location: String, _ units: Int64) async throws {
            _ = try await h.inventory.call(
                InventoryMethods.setStock, SetStockRequest(sku: sku, location: location, onHand: units)
            )
        }

        @Test func placeCancelRefundDeclinedAndRestockFailedAcrossTheThreeDaemons() async throws {
            try await RescindHarness.withSuite { h in
                try await setStock(h, "TSHIRT", "main", 10)
                try await setStock(h, "MUG", "main", 5)
                try await setStock(h, "POSTER", "backroom", 3)

                // A cancellation that completes: refunded without the fee, restocked.
                let first = try await place(h, [("TSHIRT", 2, 2500), ("MUG", 1, 1200)], paymentMethod: "pm_card_visa")
                #expect(first.status == .open)
                #expect(try await h.stock("TSHIRT", at: "main")?.available == 8)
                let accepted = try await h.orders.call(
                    OrdersMethods.cancel, CancelOrderRequest(orderID: first.id, reason: .customer, notify: true)
                )
                #expect(try await h.waitForSaga(accepted.sagaID).state == .completed)
                let cancelled = try await h.orders.call(OrdersMethods.get, OrderRequest(orderID: first.id))
                #expect(cancelled.status == .cancelled)
                #expect(cancelled.amountRefundedMinor == 6200)
                #expect(cancelled.cancellation?.feeKeptMinor == 210)
                let refunded = try await h.payments.call(PaymentsMethods.get, PaymentRequest(orderID: first.id))
                #expect(refunded.status == .refunded)
                #expect(refunded.amountRefunded == 6200)
                #expect(refunded.fee == 210)
                #expect(try await h.stock("TSHIRT", at: "main")?.available == 10)
                #expect(try await h.stock("MUG", at: "main")?.available == 5)

                // The refund is declined: compensated, the order open, the units reserved again, the money untouched.
                let second = try await place(h, [("MUG", 1, 1200)], paymentMethod: "pm_card_refundFail")
                let declined = try await h.orders.call(
                    OrdersMethods.cancel, CancelOrderRequest(orderID: second.id, reason: .customer)
                )
                let compensated = try await h.waitForSaga(declined.sagaID)
                #expect(compensated.state == .compensated)
                #expect(compensated.steps.map(\.name) == ["lock", "prepare_restock", "refund", "take_back", "unlock"])
                #expect(try await h.orders.call(OrdersMethods.get, OrderRequest(orderID: second.id)).status == .open)
                #expect(
                    try await h.payments.call(PaymentsMethods.get, PaymentRequest(orderID: second.id)).status
                        == .captured)
                #expect(try await h.stock("MUG", at: "main")?.reserved == 1)

                // The restock fails at a deactivated location: compensated, nothing refunded.
                let third = try await place(h, [("POSTER", 1, 1800)], paymentMethod: "pm_card_visa")
                _ = try await h.inventory.call(
                    InventoryMethods.deactivateLocation, LocationRequest(location: "backroom"))
                let blocked = try await h.orders.call(
                    OrdersMethods.cancel, CancelOrderRequest(orderID: third.id, reason: .inventory)
                )
                let unlocked = try await h.waitForSaga(blocked.sagaID)
                #expect(unlocked.state == .compensated)
                #expect(unlocked.error?.reason == "location_deactivated")
                let reopened = try await h.orders.call(OrdersMethods.get, OrderRequest(orderID: third.id))
                #expect(reopened.status == .open)
                #expect(reopened.failedCancellations.count == 1)
                #expect(
                    try await h.payments.call(PaymentsMethods.get, PaymentRequest(orderID: third.id)).amountRefunded
                        == 0)
                #expect(try await h.stock("POSTER", at: "backroom")?.reserved == 1)
            }
        }

        @Test func theOperatorCannotCallPaymentsRefundDirectly() async throws {
            try await RescindHarness.withSuite { h in
                let error = await #expect(throws: RescindError.self) {
                    try await h.payments.call(
                        PaymentsMethods.refund, RefundRequest(orderID: UUID()), idempotencyKey: "x", timeout: nil
                    )
                }
                #expect(error?.code == .permissionDenied)
                // The daemon is still serving.
                let health = try await h.payments.call(CommonMethods.health, Empty())
                #expect(health.status == "serving")
            }
        }

        @Test func aCancellationSurvivesPaymentsCrashingAndFinishesOnceItIsBack() async throws {
            try await RescindHarness.withSuite { h in
                try await setStock(h, "MUG", "main", 5)
                let order = try await place(h, [("MUG", 2, 1200)], paymentMethod: "pm_card_visa")
                await h.crash(.payments)
                let accepted = try await h.orders.call(
                    OrdersMethods.cancel, CancelOrderRequest(orderID: order.id, reason: .staff))
                // Without Payments the refund cannot happen; the saga retries rather than compensating.
                let waiting = try await h.waitForSaga(accepted.sagaID, until: "retrying its refund") { saga in
                    saga.steps.contains { $0.name == "refund" && $0.attempt >= 2 && $0.error?.code == "unavailable" }
                }
                #expect(waiting.state == .running)
                #expect(waiting.steps.last?.name == "refund")
                #expect(waiting.steps.last?.status == .started)
                try await h.restart()
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                let payment = try await h.payments.call(PaymentsMethods.get, PaymentRequest(orderID: order.id))
                #expect(payment.amountRefunded == 2400)
                #expect(try await h.stock("MUG", at: "main")?.available == 5)
            }
        }

        @Test func ordersResumesItsSagasAfterACrash() async throws {
            try await RescindHarness.withSuite { h in
                try await setStock(h, "MUG", "main", 5)
                let order = try await place(h, [("MUG", 1, 1200)], paymentMethod: "pm_card_visa")
                await h.crash(.payments)
                let accepted = try await h.orders.call(
                    OrdersMethods.cancel, CancelOrderRequest(orderID: order.id, reason: .staff))
                // Orders dies in the middle of its saga (its refund tried and failed at least once), Payments comes
                // back, then Orders restarts.
                let interrupted = try await h.waitForSaga(accepted.sagaID, until: "trying its refund") { saga in
                    saga.steps.contains { $0.name == "refund" && $0.error?.code == "unavailable" }
                }
                await h.crash(.orders)
                #expect(interrupted.state == .running)
                try await h.restart()
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                #expect(
                    try await h.payments.call(PaymentsMethods.get, PaymentRequest(orderID: order.id)).amountRefunded
                        == 1200
                )
                #expect(try await h.stock("MUG", at: "main")?.reserved == 0)
            }
        }
    }
}
