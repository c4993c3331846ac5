import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// The store's capture timing: a cancellation before capture is a void that costs no fee, and a delayed
    /// capture happens on time, across a restart.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct CaptureTimingTests {
        private func options(_ capture: String, _ seconds: [String: Double] = [:]) -> RescindHarness.Options {
            var options = RescindHarness.Options()
            options.capture = capture
            options.storeSeconds = seconds
            return options
        }

        @Test func capturingAtFulfilmentMakesACancellationAFreeVoid() async throws {
            try await RescindHarness.withSuite(options: options("at_fulfilment")) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let cancelled = try await h.place([("MUG", 2, 1200)])
                let fulfilled = try await h.place([("MUG", 2, 1200)])
                #expect(cancelled.status == .open)
                let authorized = try await h.payment(cancelled.id)
                #expect(authorized.status == .authorized)
                #expect(authorized.amountCaptured == 0)
                #expect(authorized.fee == 0)

                // Cancelled before capture: the authorization is voided; no money moved, no fee.
                let saga = try await h.waitForSaga(try await h.cancel(cancelled.id).sagaID)
                #expect(saga.state == .completed)
                #expect(saga.step("void") != nil)
                #expect(saga.step("refund") == nil)
                let voided = try await h.payment(cancelled.id)
                #expect(voided.status == .voided)
                #expect(voided.amountCaptured == 0)
                #expect(voided.fee == 0)
                let cancellation = try #require(try await h.order(cancelled.id).cancellation)
                #expect(cancellation.voided)
                #expect(cancellation.refundedMinor == 0)
                #expect(cancellation.feeKeptMinor == 0)

                // Fulfilled: the fulfilment captures before the units leave stock; the fee it pays is the fee
                // the void saved on the same amount.
                let order = try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: fulfilled.id))
                #expect(order.status == .fulfilled)
                let fulfilment = try #require(try await h.sagas(of: fulfilled.id).first { $0.kind == .fulfilOrder })
                #expect(fulfilment.steps.map(\.name) == ["lock", "capture", "commit", "fulfilled"])
                let captured = try await h.payment(fulfilled.id)
                #expect(captured.status == .captured)
                #expect(captured.amountCaptured == 2400)
                #expect(captured.fee > 0)
                #expect(voided.feeSaved == captured.fee)
                #expect(cancellation.feeSavedMinor == captured.fee)

                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aCaptureDueWhenTheWindowClosesHappensAfterARestart() async throws {
            let store = options("when_window_closes", ["cancellation_window_seconds": 3])
            try await RescindHarness.withSuite(options: store) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)])
                // Orders goes down before the window closes: nothing is captured yet.
                await h.crash(.orders)
                #expect(await h.waitForExit(.orders))
                #expect(try await h.payment(order.id).status == .authorized)
                try await h.restart()

                let capture = try await h.waitForCapture(of: order.id)
                #expect(capture.state == .completed)
                #expect(capture.steps.map(\.name) == ["hold", "capture", "captured"])
                let payment = try await h.payment(order.id)
                #expect(payment.status == .captured)
                #expect(payment.fee > 0)
                #expect(try await h.order(order.id).status == .open)

                // After capture, a cancellation refunds, and the processor keeps its fee.
                let saga = try await h.waitForSaga(try await h.cancel(order.id).sagaID)
                #expect(saga.step("refund")?.status == .succeeded)
                let cancellation = try #require(try await h.order(order.id).cancellation)
                #expect(!cancellation.voided)
                #expect(cancellation.refundedMinor == 1200)
                #expect(cancellation.feeKeptMinor == payment.fee)
                #expect(cancellation.feeSavedMinor == nil)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        /// The issuer declines the capture (test card 4000000000000341): each saga undoes what it cannot finish.
        @Test func aCaptureTheIssuerDeclinesLeavesNothingHalfDone() async throws {
            let lapsed = "pm_card_captureDeclined"
            // Capturing at placement: the order is rejected, its authorization voided and its stock released.
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let refused = await #expect(throws: RescindError.self) {
                    try await h.place([("MUG", 2, 1200)], paymentMethod: lapsed)
                }
                #expect(refused?.reason == "capture_declined")
                let order = try #require(try await h.orders.call(OrdersMethods.list, ListOrdersRequest()).orders.first)
                #expect(order.status == .rejected)
                #expect(order.rejection?.contains("declined the capture") == true, "\(order.rejection ?? "none")")
                #expect(try await h.payment(order.id).status == .voided)
                let placement = try #require(try await h.sagas(of: order.id).first)
                #expect(
                    placement.steps.filter { $0.direction == .compensate }.map(\.name) == ["void", "release", "reject"])
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
            // Capturing at fulfilment: the fulfilment is refused and the order stays open with its authorization;
            // a cancellation then voids it.
            try await RescindHarness.withSuite(options: options("at_fulfilment")) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200)], paymentMethod: lapsed)
                let refused = await #expect(throws: RescindError.self) {
                    try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                }
                #expect(refused?.reason == "capture_declined")
                #expect(try await h.order(order.id).status == .open)
                #expect(try await h.payment(order.id).status == .authorized)
                let saga = try await h.waitForSaga(try await h.cancel(order.id).sagaID)
                #expect(saga.state == .completed)
                #expect(try await h.payment(order.id).status == .voided)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
            // Capturing when the window closes: the clock's capture is undone and not tried again (the order's
            // capture time is cleared); the order stays open with its authorization.
            try await RescindHarness.withSuite(
                options: options("when_window_closes", ["cancellation_window_seconds": 1])
            ) {
                h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)], paymentMethod: lapsed)
                let capture = try await h.waitForCapture(of: order.id)
                #expect(capture.state == .compensated)
                #expect(capture.step("keep_authorized", .compensate)?.status == .succeeded)
                let after = try await h.order(order.id)
                #expect(after.status == .open)
                #expect(after.captureDueAt == nil)
                #expect(try await h.payment(order.id).status == .authorized)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func anAuthorizationAboutToExpireIsCapturedBeforeItDoes() async throws {
            let store = options(
                "at_fulfilment", ["authorization_expiry_seconds": 3, "capture_margin_seconds": 1])
            try await RescindHarness.withSuite(options: store) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)])
                let placedAt = try await h.payment(order.id)
                #expect(placedAt.status == .authorized)
                let capture = try await h.waitForCapture(of: order.id)
                #expect(capture.state == .completed)
                #expect(try await h.payment(order.id).status == .captured)
                // Due two seconds after authorization (expiry 3 s less the margin of 1 s), not at once.
                let authorizeStep = try #require(
                    try await h.sagas(of: order.id).first { $0.kind == .placeOrder }?.step("authorize"))
                let captureStep = try #require(capture.step("capture"))
                #expect(captureStep.startedAt.timeIntervalSince(authorizeStep.startedAt) >= 1.5)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
