import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Refund choices: a stated amount, the rest later (once, however often it is asked), the restocking fee
    /// of a customer's cancellation; every amount checked against what Payments recorded.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct RefundChoicesTests {
        private func refund(_ h: RescindHarness, _ order: UUID, _ amount: Int64, key: String) async throws -> Order {
            try await h.orders.call(
                OrdersMethods.refund, RefundOrderRequest(orderID: order, amountMinor: amount, reason: "returned"),
                idempotencyKey: key)
        }

        @Test func aStatedAmountNowAndTheRestLaterAreRefundedOnce() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200)])
                let accepted = try await h.orders.call(
                    OrdersMethods.cancel,
                    CancelOrderRequest(orderID: order.id, reason: .staff, refundAmountMinor: 1000))
                #expect(try await h.waitForSaga(accepted.sagaID).state == .completed)
                #expect(try await h.order(order.id).cancellation?.refundedMinor == 1000)
                let partly = try await h.payment(order.id)
                #expect(partly.status == .partiallyRefunded)
                #expect(partly.amountRefunded == 1000)

                // More than is left is refused; the rest, later, with a reason; a repeat refunds nothing more.
                let tooMuch = await refusal { try await refund(h, order.id, 1401, key: "late-0") }
                #expect(tooMuch?.code == "failed_precondition")
                #expect(tooMuch?.reason == "refund_exceeds_capture")
                let refunded = try await refund(h, order.id, 1400, key: "late-1")
                #expect(refunded.amountRefundedMinor == 2400)
                #expect(refunded.refunds?.map(\.amountMinor) == [1400])
                #expect(refunded.refunds?.first?.by == "operator")
                #expect(refunded.refunds?.first?.reason == "returned")
                #expect(try await refund(h, order.id, 1400, key: "late-1").refunds?.count == 1)
                let payment = try await h.payment(order.id)
                #expect(payment.status == .refunded)
                #expect(payment.amountRefunded == 2400)
                let nothingLeft = await refusal { try await refund(h, order.id, 1, key: "late-2") }
                #expect(nothingLeft?.reason == "refund_exceeds_capture")

                // Bad requests change nothing.
                let noReason = await refusal {
                    try await h.orders.call(
                        OrdersMethods.refund, RefundOrderRequest(orderID: order.id, amountMinor: 1, reason: " "))
                }
                #expect(noReason?.reason == "reason_required")
                let statedTooMuch = await refusal {
                    try await h.orders.call(
                        OrdersMethods.cancel,
                        CancelOrderRequest(orderID: order.id, reason: .staff, refundAmountMinor: 1))
                }
                #expect(statedTooMuch?.code == "invalid_argument")
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aCancellationWaitsForARefundUnderWay() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200)])
                // The processor is down: the refund saga retries, holding the order.
                try await h.setProcessorFaults(ProcessorFaults(mode: .unavailable))
                async let refunded = refund(h, order.id, 400, key: "held-1")
                try await h.waitUntil("a refund saga started") {
                    try await h.sagas(of: order.id).contains { $0.kind == .refundPayment }
                }
                let busy = await refusal { try await h.cancel(order.id) }
                #expect(busy?.code == "conflict")
                #expect(busy?.reason == "order_busy")
                try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
                #expect(try await refunded.amountRefundedMinor == 400)
                #expect(try await h.waitForSaga(try await h.cancel(order.id).sagaID).state == .completed)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func refundsToStoreCreditGoToTheCustomersBalanceNotTheCard() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                // The card that declines refunds: a refund to the card would fail; to store credit it is not asked.
                let order = try await h.place(
                    [("MUG", 2, 1200)], paymentMethod: "pm_card_refundFail", customer: "cy@example.com")
                let accepted = try await h.orders.call(
                    OrdersMethods.cancel,
                    CancelOrderRequest(
                        orderID: order.id, reason: .customer, refundAmountMinor: 1500, refundTo: .storeCredit))
                #expect(try await h.waitForSaga(accepted.sagaID).state == .completed)
                let cancellation = try #require(try await h.order(order.id).cancellation)
                #expect(cancellation.refundedMinor == 1500)
                #expect(cancellation.refundTo == .storeCredit)
                var payment = try await h.payment(order.id)
                #expect(payment.status == .partiallyRefunded)
                #expect(payment.amountRefunded == 1500)
                #expect(payment.refundedToCreditMinor == 1500)

                // The rest later, to credit too, with the command line; never above what was captured.
                let later = try await runRescindctl(
                    [
                        "payments", "refund", order.id.uuidString, "--amount", "900", "--reason", "the rest",
                        "--to-store-credit", "--dir", h.directory.path, "--json",
                    ])
                #expect(later.status == 0)
                payment = try await h.payment(order.id)
                #expect(payment.amountRefunded == 2400)
                #expect(payment.refundedToCreditMinor == 2400)
                let more = await refusal {
                    try await h.orders.call(
                        OrdersMethods.refund,
                        RefundOrderRequest(orderID: order.id, amountMinor: 1, reason: "x", refundTo: .storeCredit))
                }
                #expect(more?.reason == "refund_exceeds_capture")

                let shown = try await runRescindctl(
                    ["payments", "credit", "cy@example.com", "--dir", h.directory.path, "--json"])
                let credit = try JSONSerialization.jsonObject(with: shown.output) as? [String: Any]
                #expect(credit?["balance"] as? Int == 2400)
                #expect((credit?["entries"] as? [[String: Any]])?.compactMap { $0["amount"] as? Int } == [1500, 900])
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func storeCreditIsSpentFirstAndComesBackWhenTheOrderIsRefunded() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 20)
                let customer = "di@example.com"
                func balance() async throws -> Int64 {
                    try await h.payments.call(PaymentsMethods.storeCredit, StoreCreditRequest(customer: customer))
                        .balanceMinor
                }
                // 1000 of credit, from a refund to store credit.
                let first = try await h.place([("MUG", 2, 1200)], customer: customer)
                _ = try await h.waitForSaga(
                    try await h.orders.call(
                        OrdersMethods.cancel,
                        CancelOrderRequest(
                            orderID: first.id, reason: .staff, refundAmountMinor: 1000, refundTo: .storeCredit)
                    ).sagaID)
                #expect(try await balance() == 1000)

                // A declined card spends nothing.
                do {
                    _ = try await h.place(
                        [("MUG", 1, 1500)], paymentMethod: "pm_card_visa_chargeDeclined", customer: customer,
                        useStoreCredit: true)
                    Issue.record("a declined card placed an order")
                } catch let error as RescindError {
                    #expect(error.reason == "card_declined")
                }
                #expect(try await balance() == 1000)

                // 1500: 1000 from credit, 500 on the card (its fee on 500 only).
                let second = try await h.place([("MUG", 1, 1500)], customer: customer, useStoreCredit: true)
                var payment = try await h.payment(second.id)
                #expect(payment.creditAppliedMinor == 1000)
                #expect(payment.amountAuthorized == 500)
                #expect(payment.amountCaptured == 500)
                #expect(try await balance() == 0)
                // Cancelled with a full refund: 500 back to the card, 1000 back to credit.
                #expect(
                    try await h.waitForSaga(try await h.cancel(second.id, reason: .staff).sagaID).state == .completed)
                payment = try await h.payment(second.id)
                #expect(payment.status == .refunded)
                #expect(payment.amountRefunded == 1500)
                #expect(payment.refundedToCreditMinor == 1000)
                #expect(try await balance() == 1000)

                // 800, all from credit: the card pays nothing and no fee is charged.
                let third = try await h.place([("MUG", 1, 800)], customer: customer, useStoreCredit: true)
                payment = try await h.payment(third.id)
                #expect(payment.amountCaptured == 0)
                #expect(payment.fee == 0)
                #expect(payment.creditAppliedMinor == 800)
                #expect(try await balance() == 200)
                #expect(
                    try await h.waitForSaga(try await h.cancel(third.id, reason: .staff).sagaID).state == .completed)
                #expect(try await balance() == 1000)

                let ledger = try await h.payments.call(
                    PaymentsMethods.storeCredit, StoreCreditRequest(customer: customer))
                #expect(ledger.entries.map(\.amountMinor) == [1000, -1000, 1000, -800, 800])
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aCustomersCancellationKeepsTheRestockingFee() async throws {
            var options = RescindHarness.Options()
            options.storeSeconds = ["restocking_fee_fixed": 100, "restocking_fee_percent": 10]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let customers = try await h.place([("MUG", 2, 1200)])
                let staffs = try await h.place([("MUG", 2, 1200)])
                #expect(
                    try await h.waitForSaga(try await h.cancel(customers.id, reason: .customer).sagaID).state
                        == .completed)
                #expect(
                    try await h.waitForSaga(try await h.cancel(staffs.id, reason: .inventory).sagaID).state
                        == .completed)

                // 2400 less 100 and 10 %: 2060 back to the card, 340 kept.
                let kept = try #require(try await h.order(customers.id).cancellation)
                #expect(kept.restockingFeeMinor == 340)
                #expect(kept.refundedMinor == 2060)
                #expect(try await h.payment(customers.id).amountRefunded == 2060)
                // The store cancelled the other one: everything back, no fee.
                let full = try #require(try await h.order(staffs.id).cancellation)
                #expect(full.restockingFeeMinor == nil)
                #expect(try await h.payment(staffs.id).amountRefunded == 2400)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        /// Removing units is cancelling them: what a customer's edit gives back keeps the restocking fee, as each
        /// refund of a customer's cancellation does; a fee kept is never refunded by a later cancellation.
        @Test func aCustomerWhoRemovesUnitsPaysTheFeeACancellationOfThemWould() async throws {
            var options = RescindHarness.Options()
            options.storeSeconds = ["restocking_fee_fixed": 100, "restocking_fee_percent": 10]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                let order = try await h.place([("MUG", 2, 1200)])
                let token = try #require(order.customerToken)

                let explained = try await storefront.call(CustomerMethods.canEdit, CustomerRequest(token: token))
                #expect(explained.rules.contains { $0.rule == "restocking_fee" })
                // One mug fewer: its 1200 less 100 and 10 %, 980 back to the card and 220 kept.
                let edited = try await storefront.call(
                    CustomerMethods.edit, CustomerEditRequest(token: token, lines: [.init(sku: "MUG", quantity: 1)]),
                    idempotencyKey: UUID().uuidString)
                let edit = try #require(edited.edits?.last)
                #expect(edit.restockingFeeMinor == 220)
                #expect(edit.amountMinor == -980)
                #expect(edit.payment == "refund")
                #expect(edited.amountRefundedMinor == 980)
                #expect(try await h.payment(order.id).amountRefunded == 980)
                // Staff see it in the order's history.
                let shown = try await runRescindctl(["orders", "show", order.id.uuidString, "--dir", h.directory.path])
                #expect(shown.status == 0)
                #expect(
                    String(decoding: shown.output, as: UTF8.self).contains(
                        "by customer: MUG to 1; refund 9.80 USD, restocking fee 2.20 USD kept"))

                // The other mug cancelled: its own 1200 less the fee, not the 220 kept before.
                let accepted = try await storefront.call(
                    CustomerMethods.cancel, CustomerCancelRequest(token: token), idempotencyKey: UUID().uuidString)
                #expect(try await h.waitForSaga(try #require(accepted.sagaID)).state == .completed)
                let cancellation = try #require(try await h.order(order.id).cancellation)
                #expect(cancellation.refundedMinor == 980)
                #expect(cancellation.restockingFeeMinor == 220)
                #expect(try await h.payment(order.id).amountRefunded == 1960)

                // Staff remove units without a fee.
                let other = try await h.place([("MUG", 2, 1200)])
                let staff = try await h.orders.call(
                    OrdersMethods.edit, EditOrderRequest(orderID: other.id, changes: [.init(sku: "MUG", quantity: 1)]))
                #expect(staff.edits?.last?.restockingFeeMinor == nil)
                #expect(try await h.payment(other.id).amountRefunded == 1200)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func theCommandLineRefundsAnOpenOrderAndOnlyCapturedMoney() async throws {
            var options = RescindHarness.Options()
            options.capture = "at_fulfilment"
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)])
                // Authorized only: nothing to refund yet.
                let refused = try await runRescindctl(
                    [
                        "payments", "refund", order.id.uuidString, "--amount", "500", "--reason", "goodwill", "--dir",
                        h.directory.path, "--json",
                    ])
                #expect(refused.status != 0)
                let failure = try JSONSerialization.jsonObject(with: refused.output) as? [String: Any]
                #expect((failure?["error"] as? [String: Any])?["reason"] as? String == "payment_not_captured")

                _ = try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                let done = try await runRescindctl(
                    [
                        "payments", "refund", order.id.uuidString, "--amount", "500", "--reason", "goodwill", "--dir",
                        h.directory.path, "--json",
                    ])
                #expect(done.status == 0)
                let payment = try JSONSerialization.jsonObject(with: done.output) as? [String: Any]
                #expect(payment?["status"] as? String == "partially_refunded")
                #expect(payment?["amount_refunded"] as? Int == 500)
                #expect(try await h.order(order.id).status == .fulfilled)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
