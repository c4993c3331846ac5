import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Cancelling and fulfilling some lines of an order: the units asked for are restocked or leave stock, their
    /// share is refunded or voided from the authorization, and the order stays open with the rest; every amount
    /// checked against Payments and every unit against Inventory.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct LineCancellationTests {
        private func cancel(_ h: RescindHarness, _ order: UUID, _ lines: [LineQuantity]?) async throws -> Saga {
            let accepted = try await h.orders.call(
                OrdersMethods.cancel, CancelOrderRequest(orderID: order, reason: .staff, lines: lines))
            return try await h.waitForSaga(accepted.sagaID)
        }

        private func available(_ h: RescindHarness, _ sku: String) async throws -> (available: Int64, reserved: Int64) {
            let level = try #require(try await h.stock(sku, at: "main"))
            return (level.available, level.reserved)
        }

        @Test func someLinesOfAPaidOrderAreRefundedAndRestockedAndTheRestStaysOpen() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                try await h.setStock("TEE", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200), ("TEE", 3, 500)])
                let fee = try await h.payment(order.id).fee

                // From the command line, as staff would: one mug and two tees.
                let run = try await runRescindctl(
                    [
                        "orders", "cancel", order.id.uuidString, "--reason", "staff", "--line", "MUG:1", "--line",
                        "TEE:2", "--wait", "--dir", h.directory.path, "--json",
                    ])
                #expect(run.status == 0)
                let saga = try #require(try await h.sagas(of: order.id).first { $0.kind == .cancelOrder })
                #expect(saga.state == .completed)
                #expect(
                    saga.steps.map(\.name) == ["lock", "split", "prepare_restock", "refund", "restock", "finalize"])

                var shown = try await h.order(order.id)
                #expect(shown.status == .open)
                #expect(shown.lines.map(\.cancelled) == [1, 2])
                #expect(shown.lines.map(\.open) == [1, 1])
                #expect(shown.cancellation == nil)
                let partial = try #require(shown.lineCancellations?.first)
                #expect(
                    partial.lines == [LineQuantity(sku: "MUG", quantity: 1), LineQuantity(sku: "TEE", quantity: 2)])
                #expect(partial.refundedMinor == 2200)
                #expect(partial.unitsRestocked == 3)
                #expect(!partial.voided)
                var payment = try await h.payment(order.id)
                #expect(payment.status == .partiallyRefunded)
                #expect(payment.amountRefunded == 2200)
                #expect(payment.fee == fee)
                #expect(shown.amountRefundedMinor == 2200)
                #expect(try await available(h, "MUG") == (9, 1))
                #expect(try await available(h, "TEE") == (9, 1))

                // More than is open, or a SKU the order does not have, is refused and changes nothing.
                let tooMany = await refusal { try await cancel(h, order.id, [.init(sku: "TEE", quantity: 2)]) }
                #expect(tooMany?.code == "failed_precondition")
                #expect(tooMany?.reason == "line_not_open")
                let unknown = await refusal { try await cancel(h, order.id, [.init(sku: "CAP", quantity: 1)]) }
                #expect(unknown?.reason == "line_not_open")
                let zero = await refusal { try await cancel(h, order.id, [.init(sku: "MUG", quantity: 0)]) }
                #expect(zero?.reason == "bad_lines")
                #expect(try await h.payment(order.id) == payment)

                // The whole order: what is left (a mug and a tee) is refunded, and the order is cancelled.
                let rest = try await cancel(h, order.id, nil)
                #expect(rest.state == .completed)
                #expect(rest.steps.map(\.name) == ["lock", "prepare_restock", "refund", "restock", "finalize"])
                shown = try await h.order(order.id)
                #expect(shown.status == .cancelled)
                #expect(shown.lines.map(\.cancelled) == [2, 3])
                #expect(shown.cancellation?.refundedMinor == 1700)
                payment = try await h.payment(order.id)
                #expect(payment.status == .refunded)
                #expect(payment.amountRefunded == 3900)
                #expect(try await available(h, "MUG") == (10, 0))
                #expect(try await available(h, "TEE") == (10, 0))
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func beforeCaptureALineIsVoidedAndAPartlyFulfilledOrderCancelsOnlyWhatDidNotShip() async throws {
            var options = RescindHarness.Options()
            options.capture = "at_fulfilment"
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                try await h.setStock("TEE", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200), ("TEE", 2, 500)])
                #expect(try await h.payment(order.id).status == .authorized)

                // One mug before the capture: its share comes off the authorization; no money moved, no fee.
                let voided = try await cancel(h, order.id, [.init(sku: "MUG", quantity: 1)])
                #expect(voided.state == .completed)
                #expect(
                    voided.steps.map(\.name) == ["lock", "split", "prepare_restock", "void", "restock", "finalize"])
                var payment = try await h.payment(order.id)
                #expect(payment.status == .authorized)
                #expect(payment.amountAuthorized == 2200)
                #expect(payment.fee == 0)
                let saved = try #require(payment.feeSaved)
                #expect(saved > 0)
                var shown = try await h.order(order.id)
                #expect(shown.totalMinor == 2200)
                let partial = try #require(shown.lineCancellations?.first)
                #expect(partial.voided)
                #expect(partial.voidedAmountMinor == 1200)
                #expect(partial.refundedMinor == 0)
                #expect(partial.feeSavedMinor == saved)

                // The tees ship: the fulfilment captures what is authorized, then commits only them.
                shown = try await h.orders.call(
                    OrdersMethods.fulfill,
                    FulfilOrderRequest(orderID: order.id, lines: [.init(sku: "TEE", quantity: 2)]))
                #expect(shown.status == .open)
                #expect(shown.lines.map(\.fulfilled) == [nil, 2])
                let fulfilment = try #require(try await h.sagas(of: order.id).first { $0.kind == .fulfilOrder })
                #expect(fulfilment.steps.map(\.name) == ["lock", "split", "capture", "commit", "fulfilled"])
                payment = try await h.payment(order.id)
                #expect(payment.status == .captured)
                #expect(payment.amountCaptured == 2200)
                let tee = try #require(try await h.stock("TEE", at: "main"))
                #expect((tee.onHand, tee.reserved) == (8, 0))

                // Shipped units cannot be cancelled; the mug that did not ship can, and its share is refunded.
                let shipped = await refusal { try await cancel(h, order.id, [.init(sku: "TEE", quantity: 1)]) }
                #expect(shipped?.reason == "line_not_open")
                let rest = try await cancel(h, order.id, nil)
                #expect(rest.state == .completed)
                shown = try await h.order(order.id)
                #expect(shown.status == .fulfilled)
                #expect(shown.lines.map(\.cancelled) == [2, nil])
                #expect(shown.cancellation == nil)
                #expect(shown.lineCancellations?.last?.refundedMinor == 1200)
                payment = try await h.payment(order.id)
                #expect(payment.status == .partiallyRefunded)
                #expect(payment.amountRefunded == 1200)
                let mug = try #require(try await h.stock("MUG", at: "main"))
                #expect((mug.onHand, mug.reserved) == (10, 0))
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aDeclinedRefundOfSomeLinesPutsEveryUnitBack() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                try await h.setStock("TEE", at: "main", onHand: 10)
                // The test card whose refunds the processor declines.
                let order = try await h.place([("MUG", 2, 1200), ("TEE", 1, 500)], paymentMethod: "pm_card_refundFail")
                let saga = try await cancel(h, order.id, [.init(sku: "MUG", quantity: 1)])
                #expect(saga.state == .compensated)
                #expect(
                    saga.steps.map(\.name) == [
                        "lock", "split", "prepare_restock", "refund", "take_back", "merge", "unlock",
                    ])
                let shown = try await h.order(order.id)
                #expect(shown.status == .open)
                #expect(shown.lines.map(\.cancelled) == [nil, nil])
                #expect(shown.lineCancellations == nil)
                #expect(shown.failedCancellations.count == 1)
                #expect(try await h.payment(order.id).amountRefunded == 0)
                let reservation = try await h.inventory.call(
                    InventoryMethods.getReservation, OrderStockRequest(orderID: order.id))
                #expect(reservation.status == .reserved)
                #expect(reservation.units == 3)
                #expect(try await available(h, "MUG") == (8, 2))
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
