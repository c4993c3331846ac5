import Foundation
import GRDB
import RescindAPI
import RescindInventory
import RescindOrders
import RescindPayments
import RescindTransport
import RescindWire
import Testing

@Suite struct OrdersServiceTests {
    @Test func placingReservesStockAndCapturesPayment() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("TSHIRT", "main", 10)
        let order = try await f.place([("TSHIRT", 2, 2500)])
        #expect(order.status == .open)
        #expect(order.totalMinor == 5000)
        #expect(order.cardLast4 == "4242")
        #expect(try await f.stock("TSHIRT", "main").available == 8)
        let payment = try await f.payments.payment(order.id)
        #expect(payment.status == .captured)
        #expect(payment.amountCaptured == 5000)
    }

    @Test func outOfStockRejectsTheOrderAndHoldsNothing() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 1)
        let error = await #expect(throws: RescindError.self) { try await f.place([("MUG", 2, 1200)]) }
        #expect(error?.reason == "out_of_stock")
        let rejected = try await f.orders.list(ListOrdersRequest(status: .rejected))
        #expect(rejected.orders.count == 1)
        #expect(try await f.stock("MUG", "main").reserved == 0)
    }

    @Test func aDeclinedCardReleasesTheStockAndRejects() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 3)
        let error = await #expect(throws: RescindError.self) {
            try await f.place([("MUG", 2, 1200)], paymentMethod: "pm_card_visa_chargeDeclined")
        }
        #expect(error?.reason == "card_declined")
        #expect(try await f.stock("MUG", "main").available == 3)
        let order = try #require(try await f.orders.list(ListOrdersRequest()).orders.first)
        #expect(order.status == .rejected)
        let saga = try #require(try await f.orders.sagas(ListSagasRequest(orderID: order.id)).sagas.first)
        #expect(saga.state == .compensated)
        #expect(saga.steps.map(\.name) == ["create", "reserve", "authorize", "release", "reject"])
    }

    @Test func cancellingRefundsWithoutTheFeeRestocksAndNotifies() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("TSHIRT", "main", 10)
        let order = try await f.place([("TSHIRT", 2, 2500)])
        let accepted = try await f.orders.cancel(
            CancelOrderRequest(orderID: order.id, reason: .customer, notify: true, staffNote: "by phone")
        )
        #expect(accepted.order.status == .cancelling)
        let saga = try await f.waitForSaga(accepted.sagaID)
        #expect(saga.state == .completed)
        #expect(saga.steps.map(\.name) == ["lock", "prepare_restock", "refund", "restock", "finalize"])
        let cancelled = try await f.orders.order(order.id)
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.amountRefundedMinor == 5000)
        let record = try #require(cancelled.cancellation)
        #expect(record.refundedMinor == 5000)
        #expect(record.feeKeptMinor == 175)  // 2.9% of 50.00 + 0.30
        #expect(record.unitsRestocked == 2)
        #expect(record.staffNote == "by phone")
        #expect(try await f.stock("TSHIRT", "main").available == 10)
        #expect(try await f.payments.payment(order.id).status == .refunded)
        let pool = try DatabasePool(path: f.directory.appendingPathComponent("orders.sqlite").path)
        // The confirmation of the placement, then the notice of the cancellation asked with `notify`.
        let queued = try await pool.read { db in try String.fetchAll(db, sql: "SELECT kind FROM outbox ORDER BY id") }
        #expect(queued == ["order_confirmed", "order_cancelled"])
    }

    @Test func aDeclinedRefundTakesTheStockBackAndReopens() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)], paymentMethod: "pm_card_refundFail")
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        let saga = try await f.waitForSaga(accepted.sagaID)
        #expect(saga.state == .compensated)
        #expect(saga.steps.map(\.name) == ["lock", "prepare_restock", "refund", "take_back", "unlock"])
        #expect(saga.error?.reason == "refund_declined")
        let after = try await f.orders.order(order.id)
        #expect(after.status == .open)
        #expect(after.amountRefundedMinor == 0)
        #expect(after.failedCancellations.map(\.failedStep) == ["refund"])
        let level = try await f.stock("MUG", "main")
        #expect(level.reserved == 1)
        #expect(level.available == 4)
        #expect(try await f.payments.payment(order.id).status == .captured)
    }

    @Test func aFailedRestockReopensWithoutRefunding() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("POSTER", "backroom", 3)
        let order = try await f.place([("POSTER", 1, 1800)])
        _ = try await f.inventory.deactivateLocation("backroom")
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .inventory))
        let saga = try await f.waitForSaga(accepted.sagaID)
        #expect(saga.state == .compensated)
        #expect(saga.steps.map(\.name) == ["lock", "prepare_restock", "unlock"])
        #expect(saga.error?.reason == "location_deactivated")
        #expect(try await f.orders.order(order.id).status == .open)
        #expect(try await f.payments.payment(order.id).amountRefunded == 0)
    }

    @Test func cancellingWithoutRestockWritesTheUnitsOff() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        let accepted = try await f.orders.cancel(
            CancelOrderRequest(orderID: order.id, reason: .fraud, refund: false, restock: false)
        )
        let saga = try await f.waitForSaga(accepted.sagaID)
        #expect(saga.steps.map(\.name) == ["lock", "write_off", "finalize"])
        let after = try await f.orders.order(order.id)
        #expect(after.status == .cancelled)
        #expect(after.amountRefundedMinor == 0)
        #expect(try await f.payments.payment(order.id).status == .captured)
        // The unit left stock for good, as a store admin's "don't restock" does; nothing stays reserved.
        let level = try await f.stock("MUG", "main")
        #expect(level.reserved == 0)
        #expect(level.onHand == 4)
        #expect(try await f.inventory.reservation(order.id).status == .writtenOff)
    }

    @Test func impossibleCancellationsAreRefusedAndChangeNothing() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let fulfilled = try await f.place([("MUG", 1, 1200)])
        _ = try await f.orders.fulfill(FulfilOrderRequest(orderID: fulfilled.id))
        let error = await #expect(throws: RescindError.self) {
            try await f.orders.cancel(CancelOrderRequest(orderID: fulfilled.id, reason: .customer))
        }
        #expect(error?.reason == "order_fulfilled")
        #expect(try await f.orders.order(fulfilled.id).status == .fulfilled)
        #expect(try await f.stock("MUG", "main").onHand == 4)

        let open = try await f.place([("MUG", 1, 1200)])
        let note = await #expect(throws: RescindError.self) {
            try await f.orders.cancel(
                CancelOrderRequest(orderID: open.id, reason: .other, staffNote: String(repeating: "x", count: 256))
            )
        }
        #expect(note?.code == .invalidArgument)
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: open.id, reason: .other))
        _ = try await f.waitForSaga(accepted.sagaID)
        let again = await #expect(throws: RescindError.self) {
            try await f.orders.cancel(CancelOrderRequest(orderID: open.id, reason: .other))
        }
        #expect(again?.reason == "order_cancelled")
        #expect(try await f.orders.sagas(ListSagasRequest(orderID: open.id)).sagas.count == 2)  // place + one cancel
        let missing = await #expect(throws: RescindError.self) {
            try await f.orders.cancel(CancelOrderRequest(orderID: UUID(), reason: .other))
        }
        #expect(missing?.code == .notFound)
    }

    @Test func fulfilmentIsRefusedWhileACancellationHoldsTheOrder() async throws {
        let (f, payments, order, saga) = try await ServiceFixture.cancellationHeldAtRefund()
        defer { f.stop() }
        let error = await #expect(throws: RescindError.self) {
            try await f.orders.fulfill(FulfilOrderRequest(orderID: order.id))
        }
        #expect(error?.reason == "order_cancelling")
        payments.release("payments.refund")
        #expect(try await f.waitForSaga(saga).state == .completed)
        #expect(try await f.orders.order(order.id).status == .cancelled)
    }

    @Test func transientFailuresRetryTheSameStepInsteadOfCompensating() async throws {
        let (f, payments) = try ServiceFixture.withFaultyPayments()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        payments.fail("payments.refund", with: RescindError(.unavailable, "payments is restarting"))
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        let during = try await f.waitForSaga(accepted.sagaID) { saga in
            saga.steps.contains { $0.name == "refund" && $0.attempt >= 2 }
        }
        #expect(during.steps.contains { $0.name == "refund" && $0.attempt >= 2 && $0.status == .started })
        #expect(during.state == .running)
        payments.heal("payments.refund")
        let saga = try await f.waitForSaga(accepted.sagaID)
        #expect(saga.state == .completed)
        let refund = try #require(saga.steps.first { $0.name == "refund" })
        #expect(refund.attempt > 1)
        #expect(try await f.payments.payment(order.id).amountRefunded == 1200)
    }

    @Test func aSagaInterruptedByARestartFinishesExactlyOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rescind-test-\(UUID().uuidString)")
        var faulty: FaultyCaller?
        // First life: Payments is unreachable, the refund cannot finish.
        let first = try ServiceFixture(
            directory: directory,
            wrapPayments: { inner in
                let caller = FaultyCaller(inner)
                faulty = caller
                return caller
            })
        try await first.setStock("MUG", "main", 5)
        let order = try await first.place([("MUG", 2, 1200)])
        try #require(faulty).fail("payments.refund", with: RescindError(.unavailable, "network cut"))
        let accepted = try await first.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        // Interrupted where the test says: the restock is promised and the refund has failed at least once.
        let interrupted = try await first.waitForSaga(accepted.sagaID) { saga in
            saga.steps.contains { $0.name == "refund" && $0.error?.code == "unavailable" }
        }
        first.stop()
        #expect(interrupted.state == .running)
        #expect(interrupted.steps.map(\.name) == ["lock", "prepare_restock", "refund"])

        // Second life over the same files: the runner resumes the saga from its log.
        let second = try ServiceFixture(directory: directory)
        defer { second.stop() }
        let saga = try await second.waitForSaga(accepted.sagaID)
        #expect(saga.state == .completed)
        #expect(saga.steps.map(\.name) == ["lock", "prepare_restock", "refund", "restock", "finalize"])
        let level = try await second.stock("MUG", "main")
        #expect(level.available == 5)
        #expect(level.reserved == 0)
        #expect(try await second.payments.payment(order.id).amountRefunded == 2400)
    }

    @Test func placingTwiceWithOneKeyMakesOneOrder() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let caller = f.asOperator(\.ordersRouter)
        let request = PlaceOrderRequest(
            customerEmail: "ada@example.com", currency: "USD",
            lines: [.init(sku: "MUG", quantity: 1, unitPriceMinor: 1200)],
            paymentMethod: "pm_card_visa"
        )
        let first = try await caller.call(OrdersMethods.place, request, idempotencyKey: "place-1", timeout: nil)
        let second = try await caller.call(OrdersMethods.place, request, idempotencyKey: "place-1", timeout: nil)
        #expect(first.id == second.id)
        #expect(try await f.stock("MUG", "main").reserved == 1)
        #expect(try await f.orders.list(ListOrdersRequest()).orders.count == 1)
    }

    @Test func invalidOrdersAreRefusedBeforeAnythingHappens() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let cases: [PlaceOrderRequest] = [
            .init(
                customerEmail: "not-an-email", currency: "USD",
                lines: [.init(sku: "A", quantity: 1, unitPriceMinor: 1)], paymentMethod: "pm_card_visa"),
            .init(
                customerEmail: "a@b.c", currency: "usd", lines: [.init(sku: "A", quantity: 1, unitPriceMinor: 1)],
                paymentMethod: "pm_card_visa"),
            .init(customerEmail: "a@b.c", currency: "USD", lines: [], paymentMethod: "pm_card_visa"),
            .init(
                customerEmail: "a@b.c", currency: "USD", lines: [.init(sku: "A", quantity: 0, unitPriceMinor: 1)],
                paymentMethod: "pm_card_visa"),
            .init(
                customerEmail: "a@b.c", currency: "USD", lines: [.init(sku: "A", quantity: 1, unitPriceMinor: 1)],
                paymentMethod: "4242424242424242"),
        ]
        for request in cases {
            let error = await #expect(throws: RescindError.self) { try await f.orders.place(request) }
            #expect(error?.code == .invalidArgument)
        }
        #expect(try await f.orders.list(ListOrdersRequest()).orders.isEmpty)
    }
}

@Suite struct SagaGivingUpTests {
    @Test func aRestockThatNeverGetsThroughIsUndoneAndTheOrderReopened() async throws {
        let (f, faulty) = try ServiceFixture.withFaultyInventory()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        faulty.fail("inventory.prepare_restock", with: RescindError(.unavailable, "inventory is down"))
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        let saga = try await f.waitForSaga(accepted.sagaID)
        // The fixture allows 5 attempts; then whatever the promise did is taken back and the order reopened.
        #expect(saga.state == .compensated)
        #expect(saga.steps.map(\.name) == ["lock", "prepare_restock", "take_back", "unlock"])
        let restock = try #require(saga.steps.first { $0.name == "prepare_restock" })
        #expect(restock.status == .failed)
        #expect(restock.attempt == 5)
        #expect(saga.error?.message.contains("gave up after 5 attempts") == true)
        #expect(try await f.orders.order(order.id).status == .open)
        #expect(try await f.stock("MUG", "main").reserved == 1)
        #expect(try await f.payments.payment(order.id).status == .captured)
    }

    @Test func aRefundThatNeverGetsThroughLeavesTheSagaFailedForAPerson() async throws {
        let (f, faulty) = try ServiceFixture.withFaultyPayments()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        faulty.fail("payments.refund", with: RescindError(.unavailable, "payments is down"))
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        let saga = try await f.waitForSaga(accepted.sagaID)
        #expect(saga.state == .failed)
        #expect(saga.error?.message.contains("gave up after 5 attempts") == true)
        // The order stays locked: nobody may fulfil it or cancel it again until a person settles the refund.
        #expect(try await f.orders.order(order.id).status == .cancelling)
        let failed = try await f.orders.sagas(ListSagasRequest(state: .failed))
        #expect(failed.sagas.map(\.id) == [accepted.sagaID])
    }
}
