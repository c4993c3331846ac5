import Foundation
import Logging
import RescindAPI
import RescindInventory
import RescindPayments
import RescindStorage
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

@testable import RescindOrders

/// The three services in one process over one backend: each its own database (SQLite files, or PostgreSQL
/// databases on one server), Orders calling the others in process.
private struct Store {
    let inventory: InventoryService
    let payments: PaymentsService
    let orders: OrdersService
    let runner: Task<Void, Never>

    static func open(_ backend: Backend) async throws -> Store {
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let inventory = try await InventoryService(storage: try await backend.freshLocation(), logger: logger)
        let paymentsLocation = try await backend.freshLocation()
        let payments = try await PaymentsService(
            storage: paymentsLocation,
            processor: try await SimulatedProcessor.open(besidePayments: paymentsLocation, logger: logger),
            logger: logger)
        var inventoryRouter = RPCRouter()
        inventory.register(into: &inventoryRouter)
        var paymentsRouter = RPCRouter()
        payments.register(into: &paymentsRouter)
        let orders = try await OrdersService(
            storage: try await backend.freshLocation(),
            inventory: InProcessCaller(router: inventoryRouter, peer: .orders, logger: logger),
            payments: InProcessCaller(router: paymentsRouter, peer: .orders, logger: logger),
            configuration: .init(
                maxAttempts: 5, initialRetryDelaySeconds: 0.05, maxRetryDelaySeconds: 0.2, placeTimeoutSeconds: 10,
                pollIntervalSeconds: 0.05),
            logger: logger)
        return Store(inventory: inventory, payments: payments, orders: orders, runner: Task { await orders.run() })
    }

    func stop() {
        runner.cancel()
    }

    /// The saga once it has ended (sagas.wait, as a client would).
    func ended(_ id: UUID) async throws -> Saga {
        try await orders.waitForSaga(WaitSagaRequest(sagaID: id, timeoutMillis: 20_000))
    }
}

/// Orders on both backends: the sagas run to the same ends, and what a repeat answers is the same.
@Suite(.timeLimit(.minutes(2))) struct OrdersStorageTests {
    @Test(arguments: Backend.available)
    func anOrderIsPlacedEditedCancelledAndItsStockAndMoneyFollow(_ backend: Backend) async throws {
        let store = try await Store.open(backend)
        defer { store.stop() }
        _ = try await store.inventory.setStock(SetStockRequest(sku: "MUG", location: "main", onHand: 10))
        let order = try await store.orders.place(
            PlaceOrderRequest(
                customerEmail: "ada@example.com", currency: "USD",
                lines: [.init(sku: "MUG", quantity: 2, unitPriceMinor: 1_200)], paymentMethod: "pm_card_visa"),
            idempotencyKey: "place-1")
        #expect(order.status == .open)
        // The same placement again: the same order.
        let again = try await store.orders.place(
            PlaceOrderRequest(
                customerEmail: "ada@example.com", currency: "USD",
                lines: [.init(sku: "MUG", quantity: 2, unitPriceMinor: 1_200)], paymentMethod: "pm_card_visa"),
            idempotencyKey: "place-1")
        #expect(again.id == order.id)
        let edited = try await store.orders.edit(
            EditOrderRequest(orderID: order.id, changes: [LineChange(sku: "MUG", quantity: 3)]), by: .operator)
        #expect(edited.totalMinor == 3_600)
        let accepted = try await store.orders.cancel(
            CancelOrderRequest(orderID: order.id, reason: .customer, notify: true), idempotencyKey: "cancel-1")
        let saga = try await store.ended(accepted.sagaID)
        #expect(saga.state == .completed)
        #expect(saga.steps.map(\.name) == ["lock", "prepare_restock", "refund", "restock", "finalize"])
        let repeated = try await store.orders.cancel(
            CancelOrderRequest(orderID: order.id, reason: .customer, notify: true), idempotencyKey: "cancel-1")
        #expect(repeated.sagaID == accepted.sagaID)
        let cancelled = try await store.orders.order(order.id)
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.amountRefundedMinor == 3_600)
        #expect(try await store.payments.payment(order.id).amountRefunded == 3_600)
        let level = try #require(try await store.inventory.listStock(ListStockRequest(sku: "MUG")).levels.first)
        #expect((level.onHand, level.reserved) == (10, 0))
        let sagas = try await store.orders.sagas(ListSagasRequest(orderID: order.id)).sagas
        #expect(Set(sagas.map(\.kind)) == [.placeOrder, .editOrder, .cancelOrder])
        #expect(try await store.orders.sagaHealth().failed == 0)
    }

    @Test(arguments: Backend.available)
    func aDeclinedRefundIsUndoneAndTheOrderOpenAgain(_ backend: Backend) async throws {
        let store = try await Store.open(backend)
        defer { store.stop() }
        _ = try await store.inventory.setStock(SetStockRequest(sku: "MUG", location: "main", onHand: 1))
        let order = try await store.orders.place(
            PlaceOrderRequest(
                customerEmail: "ada@example.com", currency: "USD",
                lines: [.init(sku: "MUG", quantity: 1, unitPriceMinor: 1_200)], paymentMethod: "pm_card_refundFail"))
        let accepted = try await store.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        let saga = try await store.ended(accepted.sagaID)
        #expect(saga.state == .compensated)
        #expect(saga.error?.reason == "refund_declined")
        let reopened = try await store.orders.order(order.id)
        #expect(reopened.status == .open)
        #expect(reopened.failedCancellations.count == 1)
        let level = try #require(try await store.inventory.listStock(ListStockRequest(sku: "MUG")).levels.first)
        #expect((level.onHand, level.reserved) == (1, 1))
    }
}
