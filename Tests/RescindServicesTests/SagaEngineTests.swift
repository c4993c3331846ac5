import Foundation
import GRDB
import Logging
import RescindAPI
import RescindPayments
import RescindStorage
import RescindTransport
import RescindWire
import ServiceLifecycle
import Testing

@testable import RescindOrders

/// The saga engine through the Orders service: the holes it closed, the person's controls, the drain.
@Suite(.timeLimit(.minutes(2))) struct SagaEngineTests {
    /// The hole: the cancel saga restocked before it refunded, so another order could buy the units and a
    /// declined refund then could not take them back. Now they stay reserved until the money has moved.
    @Test func unitsPromisedBackCannotBeSoldBeforeTheRefund() async throws {
        let (f, payments) = try ServiceFixture.withFaultyPayments()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 1)
        // This test card's refunds are declined.
        let first = try await f.place([("MUG", 1, 1200)], paymentMethod: "pm_card_refundFail")
        payments.hold("payments.refund")
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: first.id, reason: .customer))
        try await payments.waitForCall("payments.refund")
        // The cancellation is past its restock promise and waiting on the refund: the unit is not for sale.
        let sold = await #expect(throws: RescindError.self) { try await f.place([("MUG", 1, 1200)]) }
        #expect(sold?.reason == "out_of_stock")
        payments.release("payments.refund")
        let saga = try await f.waitForSaga(accepted.sagaID)
        #expect(saga.state == .compensated)
        #expect(saga.error?.reason == "refund_declined")
        #expect(try await f.orders.order(first.id).status == .open)
        let level = try await f.stock("MUG", "main")
        #expect(level.reserved == 1)
        #expect(level.onHand == 1)
    }

    @Test func fulfilmentIsASagaThatARestartResumes() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rescind-test-\(UUID())")
        var faulty: FaultyCaller?
        let first = try ServiceFixture(
            directory: directory,
            wrapInventory: { inner in
                let caller = FaultyCaller(inner)
                faulty = caller
                return caller
            })
        let inventory = try #require(faulty)
        try await first.setStock("MUG", "main", 5)
        let order = try await first.place([("MUG", 2, 1200)])
        inventory.hold("inventory.commit")
        let call = Task { try await first.orders.fulfill(FulfilOrderRequest(orderID: order.id)) }
        try await inventory.waitForCall("inventory.commit")
        // Orders goes away with the commit's request out and no answer.
        first.stop()
        call.cancel()
        let saga = try #require(try await first.orders.sagas(ListSagasRequest(orderID: order.id)).sagas.first)
        #expect(saga.kind == .fulfilOrder)
        #expect(saga.state == .running)
        #expect(try await first.orders.order(order.id).status == .open)

        let second = try ServiceFixture(directory: directory)
        defer { second.stop() }
        let resumed = try await second.waitForSaga(saga.id)
        #expect(resumed.state == .completed)
        #expect(resumed.steps.map(\.name) == ["lock", "commit", "fulfilled"])
        #expect(try await second.orders.order(order.id).status == .fulfilled)
        let level = try await second.stock("MUG", "main")
        #expect(level.onHand == 3)
        #expect(level.reserved == 0)
    }

    @Test func aRepeatedCancellationAnswersWithTheRunningSaga() async throws {
        let (f, payments) = try ServiceFixture.withFaultyPayments()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        let caller = f.asOperator(\.ordersRouter)
        payments.hold("payments.refund")
        let request = CancelOrderRequest(orderID: order.id, reason: .customer, notify: true)
        let first = try await caller.call(OrdersMethods.cancel, request, idempotencyKey: "cancel-1", timeout: nil)
        let sameKey = try await caller.call(OrdersMethods.cancel, request, idempotencyKey: "cancel-1", timeout: nil)
        let sameOptions = try await caller.call(OrdersMethods.cancel, request, idempotencyKey: nil, timeout: nil)
        #expect(sameKey.sagaID == first.sagaID)
        #expect(sameOptions.sagaID == first.sagaID)

        var other = request
        other.restock = false
        let conflict = await #expect(throws: RescindError.self) {
            try await caller.call(OrdersMethods.cancel, other, idempotencyKey: nil, timeout: nil)
        }
        #expect(conflict?.code == .conflict)
        #expect(conflict?.reason == "order_cancelling")
        #expect(conflict?.message.contains(first.sagaID.uuidString) == true)
        let reused = await #expect(throws: RescindError.self) {
            try await caller.call(OrdersMethods.cancel, other, idempotencyKey: "cancel-1", timeout: nil)
        }
        #expect(reused?.reason == "idempotency_key_reused")

        payments.release("payments.refund")
        #expect(try await f.waitForSaga(first.sagaID).state == .completed)
        // Once it is over, the same key still answers with the same saga, and nothing is refunded twice.
        let after = try await caller.call(OrdersMethods.cancel, request, idempotencyKey: "cancel-1", timeout: nil)
        #expect(after.sagaID == first.sagaID)
        #expect(try await f.orders.sagas(ListSagasRequest(orderID: order.id)).sagas.count == 2)
        #expect(try await f.payments.payment(order.id).amountRefunded == 1200)
    }

    @Test func aFailedSagaIsRetriedWithTheSameKeysAndCompletes() async throws {
        let (f, payments) = try ServiceFixture.withFaultyPayments()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        payments.fail("payments.refund", with: RescindError(.unavailable, "payments is down"))
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        let failed = try await f.waitForSaga(accepted.sagaID)
        #expect(failed.state == .failed)
        #expect(try await f.orders.sagaHealth().failed == 1)
        #expect(try await f.orders.sagas(ListSagasRequest(stuck: true)).sagas.map(\.id) == [accepted.sagaID])

        // Refused while it is not failed; accepted once it is.
        payments.heal("payments.refund")
        let caller = f.asOperator(\.ordersRouter)
        let retried = try await caller.call(
            OrdersMethods.retrySaga, SagaRequest(sagaID: accepted.sagaID), idempotencyKey: nil, timeout: nil)
        #expect(retried.state == .running)
        let saga = try await f.waitForSaga(accepted.sagaID)
        #expect(saga.state == .completed)
        let refund = try #require(saga.steps.first { $0.name == "refund" })
        #expect(refund.idempotencyKey == "\(accepted.sagaID.uuidString)/refund")
        #expect(refund.status == .succeeded)
        #expect(try await f.payments.payment(order.id).amountRefunded == 1200)
        #expect(try await f.orders.order(order.id).status == .cancelled)
        #expect(try await f.orders.sagaHealth().failed == 0)
        let again = await #expect(throws: RescindError.self) {
            try await caller.call(
                OrdersMethods.retrySaga, SagaRequest(sagaID: accepted.sagaID), idempotencyKey: nil, timeout: nil)
        }
        #expect(again?.reason == "saga_not_failed")
    }

    @Test func aPersonSettlesAFailedSagaAndTheOrderIsUnlocked() async throws {
        let (f, payments) = try ServiceFixture.withFaultyPayments()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        payments.fail("payments.refund", with: RescindError(.unavailable, "payments is down"))
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        #expect(try await f.waitForSaga(accepted.sagaID).state == .failed)
        let caller = f.asOperator(\.ordersRouter)

        let noNote = await #expect(throws: RescindError.self) {
            try await caller.call(
                OrdersMethods.settleSaga, SettleSagaRequest(sagaID: accepted.sagaID, outcome: .open, note: "  "),
                idempotencyKey: nil, timeout: nil)
        }
        #expect(noNote?.reason == "note_required")
        let wrongOutcome = await #expect(throws: RescindError.self) {
            try await caller.call(
                OrdersMethods.settleSaga,
                SettleSagaRequest(sagaID: accepted.sagaID, outcome: .fulfilled, note: "shipped"),
                idempotencyKey: nil, timeout: nil)
        }
        #expect(wrongOutcome?.reason == "bad_outcome")
        #expect(try await f.orders.saga(accepted.sagaID).state == .failed)

        let settled = try await caller.call(
            OrdersMethods.settleSaga,
            SettleSagaRequest(
                sagaID: accepted.sagaID, outcome: .open, note: "customer kept the order; processor confirmed no refund"),
            idempotencyKey: nil, timeout: nil)
        #expect(settled.state == .settled)
        let settlement = try #require(settled.settlement)
        #expect(settlement.by == "operator")
        #expect(settlement.outcome == .open)
        #expect(settlement.note == "customer kept the order; processor confirmed no refund")
        #expect(settled.steps.last?.name == "settle")
        #expect(try await f.orders.order(order.id).status == .open)
        #expect(try await f.orders.sagaHealth().failed == 0)
        // The lock is released: the order can be cancelled again.
        payments.heal("payments.refund")
        let next = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        #expect(try await f.waitForSaga(next.sagaID).state == .completed)

        let twice = await #expect(throws: RescindError.self) {
            try await caller.call(
                OrdersMethods.settleSaga, SettleSagaRequest(sagaID: accepted.sagaID, outcome: .open, note: "again"),
                idempotencyKey: nil, timeout: nil)
        }
        #expect(twice?.reason == "saga_not_failed")
    }

    @Test func aSagaRunningPastTheThresholdCountsAsStuck() async throws {
        var faulty: FaultyCaller?
        let f = try ServiceFixture(
            wrapPayments: { inner in
                let caller = FaultyCaller(inner)
                faulty = caller
                return caller
            },
            configuration: .init(
                maxAttempts: 5, initialRetryDelaySeconds: 0.05, maxRetryDelaySeconds: 0.2, callTimeoutSeconds: 2,
                placeTimeoutSeconds: 10, pollIntervalSeconds: 0.05, stuckAfterSeconds: 0.2))
        defer { f.stop() }
        let payments = try #require(faulty)
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        payments.hold("payments.refund")
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        try await payments.waitForCall("payments.refund")
        // Once it has run longer than the threshold (the placement, finished, never counts): time passing is
        // what is tested, so the test lets exactly that much pass.
        let began = try await f.orders.saga(accepted.sagaID).createdAt
        let past = began.addingTimeInterval(0.25).timeIntervalSinceNow
        if past > 0 { try await Task.sleep(for: .seconds(past)) }
        let health = try await f.orders.sagaHealth()
        #expect(health.stuck == 1)
        #expect(health.failed == 0)
        #expect(try await f.orders.sagas(ListSagasRequest(stuck: true)).sagas.map(\.id) == [accepted.sagaID])
        payments.release("payments.refund")
        #expect(try await f.waitForSaga(accepted.sagaID).state == .completed)
        #expect(try await f.orders.sagaHealth().stuck == 0)
    }

    /// Waiting is structured: a waiter wakes when the saga ends, whatever its timeout, and a waiter whose
    /// caller is cancelled returns at once; neither leaves a task or a timer running.
    @Test func waitingForASagaEndsWithTheSagaOrWithTheCaller() async throws {
        let (f, payments, _, saga) = try await ServiceFixture.cancellationHeldAtRefund()
        defer { f.stop() }
        let id = saga.uuidString

        let abandoned = Task { await f.orders.runner.waitUntilTerminal(id, timeout: .seconds(3_600)) }
        let patient = Task { await f.orders.runner.waitUntilTerminal(id, timeout: .seconds(3_600)) }
        abandoned.cancel()
        await abandoned.value
        #expect(try await f.orders.saga(saga).state == .running)

        payments.release("payments.refund")
        await patient.value
        #expect(try await f.orders.saga(saga).state == .completed)
    }

    @Test func sagasWaitAnswersWhenTheSagaEndsOrItsTimeoutPasses() async throws {
        let (f, payments, _, saga) = try await ServiceFixture.cancellationHeldAtRefund()
        defer { f.stop() }
        let caller = f.asOperator(\.ordersRouter)
        // Its timeout passes first: the saga as it stands.
        let waited = try await caller.call(
            OrdersMethods.waitSaga, WaitSagaRequest(sagaID: saga, timeoutMillis: 50), idempotencyKey: nil,
            timeout: nil)
        #expect(waited.state == .running)
        let ending = Task {
            try await caller.call(
                OrdersMethods.waitSaga, WaitSagaRequest(sagaID: saga), idempotencyKey: nil, timeout: nil)
        }
        payments.release("payments.refund")
        #expect(try await ending.value.state == .completed)
        let unknown = await #expect(throws: RescindError.self) {
            try await caller.call(
                OrdersMethods.waitSaga, WaitSagaRequest(sagaID: UUID()), idempotencyKey: nil, timeout: nil)
        }
        #expect(unknown?.reason == "unknown_saga")
        let zero = await #expect(throws: RescindError.self) {
            try await caller.call(
                OrdersMethods.waitSaga, WaitSagaRequest(sagaID: saga, timeoutMillis: 0), idempotencyKey: nil,
                timeout: nil)
        }
        #expect(zero?.reason == "bad_timeout")
    }

    /// A local step that throws is recorded like a remote failure, leaves nothing half done, and is retried.
    @Test func aLocalStepThatThrowsIsARecordedFailure() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        _ = try await f.orders.database.write { db in
            try db.execute(
                """
                CREATE TRIGGER test_cancellation_fails BEFORE INSERT ON cancellation
                BEGIN SELECT RAISE(ABORT, 'the disk is full'); END
                """)
        }
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        let failed = try await f.waitForSaga(accepted.sagaID)
        #expect(failed.state == .failed)
        let finalize = try #require(failed.steps.last)
        #expect(finalize.name == "finalize")
        #expect(finalize.status == .failed)
        #expect(finalize.error?.message.contains("the disk is full") == true)
        // Nothing the step did before it threw was kept: the order is still locked, not cancelled.
        #expect(try await f.orders.order(order.id).status == .cancelling)
        #expect(try await f.payments.payment(order.id).amountRefunded == 1200)

        _ = try await f.orders.database.write { db in try db.execute("DROP TRIGGER test_cancellation_fails") }
        _ = try await f.orders.retry(accepted.sagaID)
        #expect(try await f.waitForSaga(accepted.sagaID).state == .completed)
        #expect(try await f.orders.order(order.id).status == .cancelled)
        #expect(try await f.payments.payment(order.id).amountRefunded == 1200)
    }

    /// SIGTERM: the step under way finishes and is recorded; no further step starts; `run()` returns.
    @Test func gracefulShutdownLetsTheCurrentStepFinishAndStartsNoOther() async throws {
        let (f, payments) = try ServiceFixture.withFaultyPayments()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        f.stop()
        // A runner of its own under a service group, as in the daemon.
        let runner = f.orders.runner
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: runner)],
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })))
        let running = Task { try await group.run() }
        payments.hold("payments.refund")
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        try await payments.waitForCall("payments.refund")
        await group.triggerGracefulShutdown()
        payments.release("payments.refund")
        try await running.value
        let saga = try await f.orders.saga(accepted.sagaID)
        #expect(saga.state == .running)
        #expect(saga.steps.map(\.name) == ["lock", "prepare_restock", "refund"])
        #expect(saga.steps.last?.status == .succeeded)
        #expect(try await f.payments.payment(order.id).amountRefunded == 1200)
    }
}
