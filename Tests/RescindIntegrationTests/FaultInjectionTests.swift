import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// The real daemons under real faults: crashes, pauses, a link that drops, holds, resets or loses answers, a
    /// processor that fails on purpose. Each test waits for the event it needs, and ends with the invariant
    /// checker over the three databases.
    @Suite(.serialized, .timeLimit(.minutes(5))) struct FaultInjectionTests {
        static let refundDeclined = "pm_card_refundFail"

        private func expectClean(_ h: RescindHarness) throws {
            let report = try h.check()
            #expect(report.violations.isEmpty, "\(report.violations)")
        }

        /// Waits until a step of the saga has failed at least `attempts` times with `code`.
        @discardableResult
        private func waitForFailures(
            _ h: RescindHarness, _ saga: UUID, step: String, _ direction: Saga.Step.Direction = .forward,
            code: String, attempts: Int = 1
        ) async throws -> Saga {
            try await h.waitForSaga(saga, until: "\(step) failing with \(code)") { saga in
                guard let row = saga.step(step, direction) else { return false }
                return row.error?.code == code && row.attempt >= attempts
            }
        }

        @Test func paymentsKilledAfterCommittingARefundBeforeAnswering() async throws {
            let crash = ["RESCIND_CRASH_POINT": "payments.refund/after_commit"]
            try await RescindHarness.withSuite(environment: [.payments: crash]) { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)])
                let accepted = try await h.cancel(order.id)
                #expect(await h.waitForExit(.payments))
                #expect(h.log(.payments).contains { $0.contains("crash point reached: payments.refund/after_commit") })
                try await waitForFailures(h, accepted.sagaID, step: "refund", code: "unavailable")
                try await h.restart()
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                // The retry got the committed refund's stored answer: refunded once.
                #expect(try #require(saga.step("refund")).attempt >= 2)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                try expectClean(h)
            }
        }

        @Test func aRefundWhoseAnswerIsLostOnTheWire() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)])
                let link = try h.proxy(.payments)
                link.set(.loseAnswers)
                let accepted = try await h.cancel(order.id)
                // The refund's answer was lost: Orders saw the connection die.
                let cut = try await waitForFailures(h, accepted.sagaID, step: "refund", code: "unavailable")
                #expect(cut.state == .running)
                // Yet Payments refunded (read past the proxy), and the proxy threw its answer away.
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                #expect(link.answersLost > 0)
                link.set(.pass)
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                #expect(try #require(saga.step("refund")).attempt >= 2)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                try expectClean(h)
            }
        }

        @Test func aProcessorThatRefundsButLosesItsAnswer() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)])
                try await h.setProcessorFaults(ProcessorFaults(mode: .refundAnswerLost))
                let accepted = try await h.cancel(order.id)
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                // The first attempt's answer was lost; the processor answered the second without refunding again.
                #expect(try #require(saga.step("refund")).attempt == 2)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                try expectClean(h)
            }
        }

        @Test func inventoryUnreachableDuringTheRestock() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)])
                // Hold the saga at its refund, cut Inventory off, then let the refund through.
                try await h.setProcessorFaults(ProcessorFaults(mode: .unavailable))
                let accepted = try await h.cancel(order.id)
                try await waitForFailures(h, accepted.sagaID, step: "refund", code: "unavailable")
                try h.proxy(.inventory).set(.drop)
                try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
                try await waitForFailures(h, accepted.sagaID, step: "restock", code: "unavailable", attempts: 2)
                try h.proxy(.inventory).set(.pass)
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                #expect(try await h.stock("MUG", at: "main")?.available == 5)
                try expectClean(h)
            }
        }

        @Test func inventoryUnreachableDuringTheTakeBack() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)], paymentMethod: Self.refundDeclined)
                try await h.setProcessorFaults(ProcessorFaults(mode: .unavailable))
                let accepted = try await h.cancel(order.id)
                try await waitForFailures(h, accepted.sagaID, step: "refund", code: "unavailable")
                try h.proxy(.inventory).set(.reset)
                try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
                try await waitForFailures(
                    h, accepted.sagaID, step: "take_back", .compensate, code: "unavailable", attempts: 2)
                try h.proxy(.inventory).set(.pass)
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .compensated)
                #expect(try await h.order(order.id).status == .open)
                #expect(try await h.stock("MUG", at: "main")?.reserved == 2)
                try expectClean(h)
            }
        }

        @Test func aPartitionThatHeals() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)])
                try h.proxy(.payments).set(.blackhole)
                let accepted = try await h.cancel(order.id)
                // Held, not refused: the call runs to its deadline.
                try await waitForFailures(h, accepted.sagaID, step: "refund", code: "deadline_exceeded")
                try h.proxy(.payments).set(.pass)
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                try expectClean(h)
            }
        }

        @Test func aDeclinedRefundWhileInventoryIsDown() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 1, 1200)], paymentMethod: Self.refundDeclined)
                try await h.setProcessorFaults(ProcessorFaults(mode: .unavailable))
                let accepted = try await h.cancel(order.id)
                try await waitForFailures(h, accepted.sagaID, step: "refund", code: "unavailable")
                await h.crash(.inventory)
                #expect(!h.isRunning(.inventory))
                try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
                try await waitForFailures(h, accepted.sagaID, step: "take_back", .compensate, code: "unavailable")
                try await h.restart()
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .compensated)
                #expect(saga.error?.reason == "refund_declined")
                #expect(try await h.order(order.id).status == .open)
                try expectClean(h)
            }
        }

        @Test func paymentsPausedDuringTheRefund() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)])
                h.pause(.payments)
                let accepted = try await h.cancel(order.id)
                try await waitForFailures(h, accepted.sagaID, step: "refund", code: "deadline_exceeded")
                h.resume(.payments)
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                try expectClean(h)
            }
        }

        @Test func twoIdenticalCancelsRacing() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                for key in [nil, "same-key"] as [String?] {
                    let order = try await h.place([("MUG", 2, 1200)])
                    async let first = h.cancel(order.id, key: key)
                    async let second = h.cancel(order.id, key: key)
                    let (a, b) = try await (first, second)
                    #expect(a.sagaID == b.sagaID)
                    #expect(try await h.waitForSaga(a.sagaID).state == .completed)
                    #expect(try await h.sagas(of: order.id).count == 2)  // its placement and one cancellation
                    #expect(try await h.payment(order.id).amountRefunded == 2400)
                }
                try expectClean(h)
            }
        }

        @Test func aFulfilmentRacingACancellation() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 20)
                for _ in 0..<5 {
                    let order = try await h.place([("MUG", 2, 1200)])
                    async let fulfilled = Result {
                        try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                    }
                    async let cancelled = Result { try await h.cancel(order.id) }
                    let (fulfil, cancel) = await (fulfilled, cancelled)
                    if case .success(let accepted) = cancel {
                        _ = try await h.waitForSaga(accepted.sagaID)
                    }
                    let status = try await h.order(order.id).status
                    // Exactly one of them won, and the loser was refused with the rule named.
                    switch (fulfil, cancel) {
                    case (.success, .failure(let error as RescindError)):
                        #expect(status == .fulfilled)
                        #expect(["fulfilment_in_progress", "order_fulfilled"].contains(error.reason))
                    case (.failure(let error as RescindError), .success):
                        #expect(status == .cancelled)
                        #expect(["order_cancelling", "order_cancelled"].contains(error.reason))
                    default:
                        Issue.record("fulfil \(fulfil), cancel \(cancel): not exactly one")
                    }
                }
                try expectClean(h)
            }
        }

        @Test func sigtermInTheMiddleOfASaga() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)])
                try await h.setProcessorFaults(ProcessorFaults(mode: .slow, delayMillis: 1_000))
                let accepted = try await h.cancel(order.id)
                _ = try await h.waitForSaga(accepted.sagaID, until: "refunding") {
                    $0.step("refund")?.status == .started
                }
                // SIGTERM with the refund's request out: the step finishes and is recorded, no other starts.
                #expect(await h.terminate(.orders))
                #expect(h.log(.orders).contains { $0.contains("saga runner stopped") })
                try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
                try await h.restart()
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                #expect(try #require(saga.step("refund")).attempt == 1)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                try expectClean(h)
            }
        }
    }
}
