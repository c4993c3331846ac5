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
    let ordersLocation: StorageLocation
    let inventoryCaller: InProcessCaller
    let paymentsCaller: InProcessCaller

    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let configuration = OrdersService.Configuration(
        maxAttempts: 5, initialRetryDelaySeconds: 0.05, maxRetryDelaySeconds: 0.2, placeTimeoutSeconds: 10,
        pollIntervalSeconds: 0.05)

    /// - Parameters:
    ///   - holder: the Orders replica's name as a holder of leases.
    ///   - wrapPayments: lets a test put a gate in front of Payments.
    static func open(
        _ backend: Backend, holder: LeaseHolder = .process,
        wrapPayments: (any RPCCaller) -> any RPCCaller = { $0 }
    ) async throws -> Store {
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
        let inventoryCaller = InProcessCaller(router: inventoryRouter, peer: .orders, logger: logger)
        let paymentsCaller = InProcessCaller(router: paymentsRouter, peer: .orders, logger: logger)
        let ordersLocation = try await backend.freshLocation()
        let orders = try await replica(
            ordersLocation, holder: holder, inventory: inventoryCaller, payments: wrapPayments(paymentsCaller))
        return Store(
            inventory: inventory, payments: payments, orders: orders, runner: Task { await orders.run() },
            ordersLocation: ordersLocation, inventoryCaller: inventoryCaller, paymentsCaller: paymentsCaller)
    }

    private static func replica(
        _ location: StorageLocation, holder: LeaseHolder, inventory: any RPCCaller, payments: any RPCCaller
    ) async throws -> OrdersService {
        try OrdersService(
            database: try await OrdersDatabase.schema.open(location, logger: logger), inventory: inventory,
            payments: payments, configuration: configuration, store: .init(), notifications: .init(),
            crashPoint: nil, logger: logger, registry: .standard, leaseHolder: holder)
    }

    /// Another Orders replica on the same database, running, under its own name.
    func replica(_ holder: LeaseHolder) async throws -> (OrdersService, Task<Void, Never>) {
        let orders = try await Self.replica(
            ordersLocation, holder: holder, inventory: inventoryCaller, payments: paymentsCaller)
        return (orders, Task { await orders.run() })
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
    func aSagaWhoseReplicaLostItsLeaseIsFinishedByAnotherAndTheFirstRecordsNothingMore(_ backend: Backend)
        async throws
    {
        var gate: FaultyCaller?
        let store = try await Store.open(backend, holder: LeaseHolder(replica: "a")) { payments in
            let caller = FaultyCaller(payments)
            gate = caller
            return caller
        }
        defer { store.stop() }
        let payments = try #require(gate)
        _ = try await store.inventory.setStock(SetStockRequest(sku: "MUG", location: "main", onHand: 5))
        let order = try await store.orders.place(
            PlaceOrderRequest(
                customerEmail: "ada@example.com", currency: "USD",
                lines: [.init(sku: "MUG", quantity: 2, unitPriceMinor: 1_200)], paymentMethod: "pm_card_visa"))
        payments.hold("payments.refund")
        let accepted = try await store.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        let id = accepted.sagaID.uuidString
        try await payments.waitForCall("payments.refund")
        func saga() async throws -> (SagaRecord, [SagaStepRecord]) {
            try await store.orders.database.read { db in
                (try #require(try SagaRecord.find(db, id)), try SagaStore.steps(db, sagaID: id))
            }
        }
        #expect(try await saga().0.leaseHolder == store.orders.runner.lease.holder.description)

        // Replica A stalls in the refund past its lease (a long pause, a link cut): replica B claims the saga.
        let b = SagaLease(holder: LeaseHolder(replica: "b"), duration: 10)
        let claimed = try await store.orders.database.write { db in
            try db.execute(
                "UPDATE saga SET lease_expires_at = ? WHERE id = ?", [Date(timeIntervalSince1970: 0), id])
            return try b.claim(db, now: Date(), limit: 10)
        }
        #expect(claimed == [id])
        // A's answer comes back: its commit is refused, and A lets the saga go.
        payments.release("payments.refund")
        try await waitUntil("replica A stops driving the saga") { !store.orders.runner.isDriving(id) }
        let (stalled, log) = try await saga()
        #expect(stalled.leaseHolder == b.holder.description)
        #expect(stalled.leaseToken == 2)
        #expect(stalled.state == .running)
        #expect(log.first { $0.name == "refund" }?.status == .started)

        // B finishes it: the refund goes out again with its key, and the money moves once.
        let (replica, running) = try await store.replica(b.holder)
        defer { running.cancel() }
        let done = try await replica.waitForSaga(WaitSagaRequest(sagaID: accepted.sagaID, timeoutMillis: 20_000))
        #expect(done.state == .completed)
        let refund = try #require(done.steps.first { $0.name == "refund" })
        #expect(refund.status == .succeeded)
        #expect(refund.attempt == 2)
        #expect(try await store.payments.payment(order.id).amountRefunded == 2_400)
        #expect(try await store.orders.order(order.id).status == .cancelled)
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
