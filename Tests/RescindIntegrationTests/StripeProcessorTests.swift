import Foundation
import GRDB
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Payments against a Stripe-compatible server nobody on this project wrote (localstripe, which also ignores
    /// idempotency keys): placements authorize PaymentIntents, a cancellation before the capture cancels its intent,
    /// one after it refunds once, lines and edits move the right amounts, a declined payment method rejects the
    /// order; and after each store, Payments' records and localstripe's objects agree amount for amount.
    @Suite(
        .serialized, .timeLimit(.minutes(5)),
        .enabled(if: LocalstripeServer.available, "localstripe is not installed: pip install localstripe"))
    struct StripeProcessorTests {
        private func suite(_ stripe: LocalstripeServer, capture: String) -> RescindHarness.Options {
            var options = RescindHarness.Options()
            options.stripeAPIBase = stripe.apiBase
            options.capture = capture
            return options
        }

        private func intent(_ stripe: LocalstripeServer, of h: RescindHarness, _ order: UUID) async throws
            -> [String: Any]
        {
            let charges = try self.charges(h).filter { $0["order_id"] as String == order.uuidString }
            let id: String = try #require(charges.first)["id"]
            return try await stripe.get("/v1/payment_intents/\(id)")
        }

        /// Payments' `processor_charge` rows.
        private func charges(_ h: RescindHarness) throws -> [Row] {
            var configuration = Configuration()
            configuration.readonly = true
            let queue = try DatabaseQueue(path: h.database(.payments).path, configuration: configuration)
            defer { try? queue.close() }
            return try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM processor_charge ORDER BY created_at")
            }
        }

        /// Every charge Payments keeps against the PaymentIntent localstripe holds under its id: status, amount
        /// authorized, captured (localstripe refunds what a capture leaves: those refunds carry no key of ours),
        /// and refunded by Rescind's refunds, each made once.
        private func reconcile(_ h: RescindHarness, _ stripe: LocalstripeServer) async throws {
            let status = ["authorized": "requires_capture", "captured": "succeeded", "voided": "canceled"]
            for charge in try charges(h) {
                let id: String = charge["id"]
                let intent = try await stripe.intent(id)
                #expect(intent.status == status[charge["status"] as String], "\(id)")
                #expect(intent.amount == charge["amount"] as Int64, "\(id)")
                #expect(intent.captured == charge["amount_captured"] as Int64, "\(id) captured")
                #expect(intent.refunded == charge["amount_refunded"] as Int64, "\(id) refunded")
                #expect(
                    Set(intent.refundKeys).count == intent.refundKeys.count, "\(id): a refund made twice under one key")
            }
            // Payments' own reconciliation, through StripeProcessor, finds what this one found: nothing.
            let report = try await h.payments.call(PaymentsMethods.reconcile, ReconcileRequest())
            #expect(report.differences.isEmpty, "\(report.differences)")
            #expect(report.checked == (try charges(h)).count)
            // Since an hour ago (localstripe cannot filter by creation: Payments filters what it lists): the same.
            let recent = try await h.payments.call(PaymentsMethods.reconcile, ReconcileRequest(since: Date() - 3_600))
            #expect(recent == report)
        }

        @Test func aStoreThatCapturesAtFulfilment() async throws {
            let stripe = try LocalstripeServer()
            defer { stripe.stop() }
            try await RescindHarness.withSuite(options: suite(stripe, capture: "at_fulfilment")) { h in
                try await h.setStock("MUG", at: "main", onHand: 20)
                // Placing authorizes a PaymentIntent, captured later.
                let order = try await h.place([("MUG", 2, 1200)])
                #expect(order.status == .open)
                #expect(order.cardLast4 == "4242")
                var intent = try await intent(stripe, of: h, order.id)
                #expect(intent["status"] as? String == "requires_capture")
                #expect(intent["amount"] as? Int == 2400)
                #expect(intent["capture_method"] as? String == "manual")

                // Cancelled before the capture: the intent is cancelled, nothing was taken.
                let cancelled = try await h.waitForSaga(try await h.cancel(order.id).sagaID)
                #expect(cancelled.state == .completed)
                #expect(try await h.payment(order.id).status == .voided)
                intent = try await self.intent(stripe, of: h, order.id)
                #expect(intent["status"] as? String == "canceled")

                // An edit adds a unit: localstripe cannot raise an authorization, so a second intent takes it;
                // fulfilment captures both.
                let grown = try await h.place([("MUG", 3, 1200)])
                let edited = try await h.orders.call(
                    OrdersMethods.edit, EditOrderRequest(orderID: grown.id, changes: [.init(sku: "MUG", quantity: 4)]),
                    idempotencyKey: UUID().uuidString)
                #expect(edited.totalMinor == 4800)
                #expect(try charges(h).filter { $0["order_id"] as String == grown.id.uuidString }.count == 2)
                _ = try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: grown.id))
                let fulfilled = try await h.waitForSaga(try #require(try await h.sagas(of: grown.id).last).id)
                #expect(fulfilled.state == .completed)
                #expect(try await h.payment(grown.id).amountCaptured == 4800)

                // A declined payment method: the order is rejected. (localstripe declines 4000000000000341 when
                // it is charged, but 4000000000000002 only when it is attached to a customer.)
                let declined = await refusal {
                    try await h.place([("MUG", 1, 1200)], paymentMethod: "pm_card_chargeCustomerFail")
                }
                #expect(declined?.reason == "card_declined")

                try await reconcile(h, stripe)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aStoreThatCapturesAtPlacement() async throws {
            let stripe = try LocalstripeServer()
            defer { stripe.stop() }
            try await RescindHarness.withSuite(options: suite(stripe, capture: "at_placement")) { h in
                try await h.setStock("MUG", at: "main", onHand: 20)
                try await h.setStock("CAP", at: "main", onHand: 20)
                // Captured at placement; a cancellation refunds once.
                let order = try await h.place([("MUG", 2, 1200)])
                #expect(try await h.payment(order.id).status == .captured)
                #expect(try await intent(stripe, of: h, order.id)["status"] as? String == "succeeded")
                let cancelled = try await h.waitForSaga(try await h.cancel(order.id).sagaID)
                #expect(cancelled.state == .completed)
                let refunds = try await stripe.get("/v1/refunds?payment_intent=\(try charges(h)[0]["id"] as String)")
                let data = try #require(refunds["data"] as? [[String: Any]])
                #expect(data.count == 1)
                #expect(data.first?["amount"] as? Int == 2400)

                // One line of two cancelled: its price is refunded. An edit adds a cap: a second intent,
                // captured at once.
                let lines = try await h.place([("MUG", 1, 1200), ("CAP", 1, 800)])
                let partial = try await h.orders.call(
                    OrdersMethods.cancel,
                    CancelOrderRequest(orderID: lines.id, reason: .customer, lines: [.init(sku: "CAP", quantity: 1)]),
                    idempotencyKey: UUID().uuidString)
                #expect(try await h.waitForSaga(partial.sagaID).state == .completed)
                #expect(try await h.payment(lines.id).amountRefunded == 800)
                _ = try await h.orders.call(
                    OrdersMethods.edit, EditOrderRequest(orderID: lines.id, changes: [.init(sku: "MUG", quantity: 2)]),
                    idempotencyKey: UUID().uuidString)
                let payment = try await h.payment(lines.id)
                #expect(payment.amountCaptured == 3200)
                #expect(payment.amountRefunded == 800)

                try await reconcile(h, stripe)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
