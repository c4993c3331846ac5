import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Editing an open order: quantities changed, a line added, a line removed; the payment raised, charged,
    /// voided or refunded to match, and a card or a stock that says no leaves the order as it was. Every amount
    /// checked against Payments, every unit against Inventory.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct EditOrderTests {
        private func edit(_ h: RescindHarness, _ order: UUID, _ changes: [LineChange]) async throws -> Order {
            try await h.orders.call(
                OrdersMethods.edit, EditOrderRequest(orderID: order, changes: changes),
                idempotencyKey: UUID().uuidString)
        }

        private func reserved(_ h: RescindHarness, _ sku: String) async throws -> Int64? {
            try await h.stock(sku, at: "main")?.reserved
        }

        @Test func aPaidOrderGrowsWithAChargeAndShrinksWithARefund() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                try await h.setStock("CAP", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200)])
                let fee = try await h.payment(order.id).fee

                // One more mug and a cap: the extra 2700 is charged to the saved card and captured, with its fee.
                var edited = try await edit(
                    h, order.id, [.init(sku: "MUG", quantity: 3), .init(sku: "CAP", quantity: 1, unitPriceMinor: 1500)])
                #expect(edited.status == .open)
                #expect(edited.lines.map(\.sku) == ["MUG", "CAP"])
                #expect(edited.lines.map(\.quantity) == [3, 1])
                #expect(edited.totalMinor == 5100)
                let growth = try #require(edited.edits?.first)
                #expect(growth.amountMinor == 2700)
                #expect(growth.payment == "increase")
                #expect(growth.by == "operator")
                let saga = try #require(try await h.sagas(of: order.id).first { $0.kind == .editOrder })
                #expect(saga.steps.map(\.name) == ["hold", "reserve_added", "increase", "merge_added", "recorded"])
                var payment = try await h.payment(order.id)
                #expect(payment.status == .captured)
                #expect(payment.amountCaptured == 5100)
                #expect(payment.fee > fee)
                #expect(try await reserved(h, "MUG") == 3)
                #expect(try await reserved(h, "CAP") == 1)
                let reservation = try await h.inventory.call(
                    InventoryMethods.getReservation, OrderStockRequest(orderID: order.id))
                #expect(reservation.units == 4)

                // From the command line: the cap goes and two mugs with it; their 3900 is refunded.
                let run = try await runRescindctl(
                    [
                        "orders", "edit", order.id.uuidString, "--set", "CAP:0", "--set", "MUG:1", "--note",
                        "customer changed their mind", "--dir", h.directory.path, "--json",
                    ])
                #expect(run.status == 0)
                edited = try await h.order(order.id)
                #expect(edited.lines.map(\.sku) == ["MUG"])
                #expect(edited.lines.map(\.quantity) == [1])
                #expect(edited.amountRefundedMinor == 3900)
                #expect(edited.edits?.last?.amountMinor == -3900)
                #expect(edited.edits?.last?.payment == "refund")
                #expect(edited.edits?.last?.note == "customer changed their mind")
                payment = try await h.payment(order.id)
                #expect(payment.status == .partiallyRefunded)
                #expect(payment.amountRefunded == 3900)
                #expect(try await reserved(h, "MUG") == 1)
                #expect(try await reserved(h, "CAP") == 0)

                // A whole cancellation afterwards refunds what is left: the one mug.
                let cancelled = try await h.waitForSaga(try await h.cancel(order.id, reason: .staff).sagaID)
                #expect(cancelled.state == .completed)
                #expect(try await h.payment(order.id).amountRefunded == 5100)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func beforeCaptureAnEditRaisesOrVoidsAndADeclineChangesNothing() async throws {
            var options = RescindHarness.Options()
            options.capture = "at_fulfilment"
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                // The limited test card: authorizations above 100.00 in all are declined.
                let order = try await h.place([("MUG", 2, 4000)], paymentMethod: "pm_card_limitedFunds")
                #expect(try await h.payment(order.id).status == .authorized)

                let declined = await refusal { try await edit(h, order.id, [.init(sku: "MUG", quantity: 3)]) }
                #expect(declined?.code == "failed_precondition")
                #expect(declined?.reason == "card_declined")
                let saga = try #require(try await h.sagas(of: order.id).first { $0.kind == .editOrder })
                #expect(saga.state == .compensated)
                #expect(saga.steps.map(\.name) == ["hold", "reserve_added", "increase", "release_added"])
                var shown = try await h.order(order.id)
                #expect(shown.lines.map(\.quantity) == [2])
                #expect(shown.edits == nil)
                #expect(try await reserved(h, "MUG") == 2)
                #expect(try await h.payment(order.id).amountAuthorized == 8000)

                // Down to one: the other's share comes off the authorization; nothing was charged.
                shown = try await edit(h, order.id, [.init(sku: "MUG", quantity: 1)])
                #expect(shown.totalMinor == 4000)
                #expect(shown.edits?.first?.payment == "void")
                let payment = try await h.payment(order.id)
                #expect(payment.status == .authorized)
                #expect(payment.amountAuthorized == 4000)
                #expect(payment.fee == 0)
                #expect(try await reserved(h, "MUG") == 1)
                // Back up to two, within the limit: the authorization is raised.
                shown = try await edit(h, order.id, [.init(sku: "MUG", quantity: 2)])
                #expect(shown.totalMinor == 8000)
                #expect(try await h.payment(order.id).amountAuthorized == 8000)
                #expect(try await h.payment(order.id).amountCaptured == 0)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func editsThatCannotBeDoneAreRefusedAndChangeNothing() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 3)
                let order = try await h.place([("MUG", 2, 1200)])

                // More than is in stock: the reservation fails, nothing is charged.
                let short = await refusal { try await edit(h, order.id, [.init(sku: "MUG", quantity: 5)]) }
                #expect(short?.reason == "out_of_stock")
                let refusals: [([LineChange], String)] = [
                    ([.init(sku: "MUG", quantity: 0)], "edit_empties_order"),
                    ([.init(sku: "MUG", quantity: 3, unitPriceMinor: 999)], "price_fixed"),
                    ([.init(sku: "CAP", quantity: 0, unitPriceMinor: 100)], "line_not_open"),
                    ([.init(sku: "CAP", quantity: 1)], "bad_changes"),
                    ([.init(sku: "MUG", quantity: 2)], "no_change"),
                    ([.init(sku: "MUG", quantity: 1), .init(sku: "MUG", quantity: 3)], "bad_changes"),
                ]
                for (changes, reason) in refusals {
                    let refused = await refusal { try await edit(h, order.id, changes) }
                    #expect(refused?.reason == reason, "\(changes)")
                }
                let shown = try await h.order(order.id)
                #expect(shown.lines.map(\.quantity) == [2])
                #expect(shown.totalMinor == 2400)
                #expect(try await h.payment(order.id).amountCaptured == 2400)
                #expect(try await reserved(h, "MUG") == 2)

                // A fulfilled order is not edited.
                _ = try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                let closed = await refusal { try await edit(h, order.id, [.init(sku: "MUG", quantity: 1)]) }
                #expect(closed?.reason == "order_fulfilled")
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
