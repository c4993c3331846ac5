import Foundation
import GRDB
import Logging
import RescindAPI
import RescindInventory
import RescindPayments
import RescindStorage
import RescindTransport
import RescindWire

@testable import RescindOrders

/// The three services over real SQLite files in a temporary directory, wired in process through their
/// routers (the same decoding, authorisation and idempotency path as the network, without sockets).
final class ServiceFixture: Sendable {
    let directory: URL
    let inventory: InventoryService
    let payments: PaymentsService
    /// The processor behind Payments, its faults switchable.
    let processor: SimulatedProcessor
    let inventoryRouter: RPCRouter
    let paymentsRouter: RPCRouter
    let ordersRouter: RPCRouter
    let orders: OrdersService
    private let runnerTask: Task<Void, Never>

    /// - Parameter wrapPayments: lets a test put a fault or a gate in front of Payments (`wrapInventory`: Inventory).
    init(
        directory: URL? = nil,
        wrapPayments: (any RPCCaller) -> any RPCCaller = { $0 },
        wrapInventory: (any RPCCaller) -> any RPCCaller = { $0 },
        configuration: OrdersService.Configuration = .init(
            maxAttempts: 5, initialRetryDelaySeconds: 0.05, maxRetryDelaySeconds: 0.2, callTimeoutSeconds: 2,
            placeTimeoutSeconds: 10, pollIntervalSeconds: 0.05
        ),
        registry: SagaRegistry = .standard
    ) throws {
        let directory =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("rescind-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.directory = directory
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        inventory = try InventoryService(
            databasePath: directory.appendingPathComponent("inventory.sqlite").path, logger: logger)
        processor = try SimulatedProcessor(
            configuration: .init(faultInjection: true),
            databasePath: directory.appendingPathComponent("payments-processor.sqlite").path)
        payments = try PaymentsService(
            databasePath: directory.appendingPathComponent("payments.sqlite").path, processor: processor,
            logger: logger)
        var inventoryRouter = RPCRouter()
        inventory.register(into: &inventoryRouter)
        var paymentsRouter = RPCRouter()
        payments.register(into: &paymentsRouter)
        self.inventoryRouter = inventoryRouter
        self.paymentsRouter = paymentsRouter
        orders = try OrdersService(
            database: try SQLiteDatabase(
                path: directory.appendingPathComponent("orders.sqlite").path, migrator: OrdersDatabase.migrator),
            inventory: wrapInventory(InProcessCaller(router: inventoryRouter, peer: .orders, logger: logger)),
            payments: wrapPayments(InProcessCaller(router: paymentsRouter, peer: .orders, logger: logger)),
            configuration: configuration, store: .init(), notifications: .init(), crashPoint: nil, logger: logger,
            registry: registry
        )
        var ordersRouter = RPCRouter()
        orders.register(into: &ordersRouter)
        self.ordersRouter = ordersRouter
        let orders = self.orders
        runnerTask = Task { await orders.run() }
    }

    /// A fixture whose calls to Payments go through a `FaultyCaller` the test controls.
    static func withFaultyPayments() throws -> (ServiceFixture, FaultyCaller) {
        var faulty: FaultyCaller?
        let fixture = try ServiceFixture(wrapPayments: { inner in
            let caller = FaultyCaller(inner)
            faulty = caller
            return caller
        })
        guard let faulty else { throw RescindError.internalError("the fixture did not wrap Payments") }
        return (fixture, faulty)
    }

    /// A fixture whose calls to Inventory go through a `FaultyCaller` the test controls.
    static func withFaultyInventory() throws -> (ServiceFixture, FaultyCaller) {
        var faulty: FaultyCaller?
        let fixture = try ServiceFixture(wrapInventory: { inner in
            let caller = FaultyCaller(inner)
            faulty = caller
            return caller
        })
        guard let faulty else { throw RescindError.internalError("the fixture did not wrap Inventory") }
        return (fixture, faulty)
    }

    /// A fixture with one order whose cancellation is under way and held at its refund (the request is at
    /// Payments' door until `payments.release("payments.refund")`).
    static func cancellationHeldAtRefund() async throws -> (
        fixture: ServiceFixture, payments: FaultyCaller, order: Order, saga: UUID
    ) {
        let (f, payments) = try withFaultyPayments()
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        payments.hold("payments.refund")
        let accepted = try await f.orders.cancel(CancelOrderRequest(orderID: order.id, reason: .customer))
        try await payments.waitForCall("payments.refund")
        return (f, payments, order, accepted.sagaID)
    }

    /// Stops the saga runner.
    func stop() {
        runnerTask.cancel()
    }

    deinit {
        runnerTask.cancel()
    }

    /// A caller as the operator, for the operator's methods.
    func asOperator(_ router: KeyPath<ServiceFixture, RPCRouter>) -> InProcessCaller {
        InProcessCaller(router: self[keyPath: router], peer: .operator)
    }

    func setStock(_ sku: String, _ location: String, _ units: Int64) async throws {
        _ = try await inventory.setStock(SetStockRequest(sku: sku, location: location, onHand: units))
    }

    func stock(_ sku: String, _ location: String) async throws -> StockLevel {
        let report = try await inventory.listStock(ListStockRequest(sku: sku, location: location))
        guard let level = report.levels.first else { throw RescindError.notFound("no stock row") }
        return level
    }

    func place(_ lines: [(String, Int64, Int64)], paymentMethod: String = "pm_card_visa") async throws -> Order {
        try await orders.place(
            PlaceOrderRequest(
                customerEmail: "ada@example.com", currency: "USD",
                lines: lines.map { .init(sku: $0.0, quantity: $0.1, unitPriceMinor: $0.2) },
                paymentMethod: paymentMethod
            )
        )
    }

    /// The saga once it is terminal, or as it stands after 20 s.
    func waitForSaga(_ id: UUID) async throws -> Saga {
        try await waitForSaga(id) { $0.state.isTerminal }
    }

    /// The saga once `condition` holds, or as it stands after 20 s. Looked at each time the Orders database
    /// commits a change to it (GRDB's `ValueObservation`), not on a timer.
    func waitForSaga(_ id: UUID, until condition: @escaping @Sendable (Saga) -> Bool) async throws -> Saga {
        let observation = ValueObservation.tracking { db in
            try SagaRecord.find(SQLiteTransaction(db), id.uuidString)?.api(SQLiteTransaction(db))
        }
        let orders = self.orders
        guard let sqlite = orders.database as? SQLiteDatabase else {
            throw RescindError.internalError("the fixture keeps Orders in SQLite")
        }
        let met = try await withThrowingTaskGroup(of: Saga?.self) { group in
            group.addTask {
                for try await saga in observation.values(in: sqlite.pool) {
                    if let saga, condition(saga) { return saga }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let met { return met }
        return try await orders.saga(id)
    }
}

/// A Payments caller that fails chosen methods, or holds them until released.
final class FaultyCaller: RPCCaller, @unchecked Sendable {
    private let inner: any RPCCaller
    private let lock = NSLock()
    private var failures: [String: RescindError] = [:]
    private var gates: [String: CheckedContinuation<Void, Never>] = [:]
    private var gated: Set<String> = []
    private(set) var calls: [String] = []
    private var callWaiters: [UUID: (method: String, continuation: CheckedContinuation<Void, Never>)] = [:]
    private var cancelledWaits: Set<UUID> = []

    init(_ inner: any RPCCaller) {
        self.inner = inner
    }

    /// Every call of `method` fails with `error` until `heal`.
    func fail(_ method: String, with error: RescindError) {
        lock.withLock { failures[method] = error }
    }

    func heal(_ method: String) {
        lock.withLock { _ = failures.removeValue(forKey: method) }
    }

    /// Waits until `method` has been called (and, if held, is waiting), or 20 s have passed.
    /// - Throws: if it was not called in time.
    func waitForCall(_ method: String) async throws {
        let arrived = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.called(method)
                return !Task.isCancelled
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(20))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard arrived else { throw RescindError.internalError("\(method) was not called within 20 s") }
    }

    /// Returns once `method` has been called, or when the task is cancelled.
    private func called(_ method: String) async {
        let token = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = lock.withLock { () -> Bool in
                    if calls.contains(method) || cancelledWaits.remove(token) != nil { return true }
                    callWaiters[token] = (method, continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
                guard let waiter = callWaiters.removeValue(forKey: token) else {
                    cancelledWaits.insert(token)
                    return nil
                }
                return waiter.continuation
            }
            waiter?.resume()
        }
    }

    /// Calls of `method` wait until `release`.
    func hold(_ method: String) {
        lock.withLock { _ = gated.insert(method) }
    }

    func release(_ method: String) {
        let gate = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            gated.remove(method)
            return gates.removeValue(forKey: method)
        }
        gate?.resume()
    }

    func call<Request, Response>(
        _ method: RescindAPI.Method<Request, Response>, _ request: Request, idempotencyKey: String?, timeout: Duration?
    ) async throws -> Response {
        let (failure, isGated, waiters) = lock.withLock {
            () -> (RescindError?, Bool, [CheckedContinuation<Void, Never>]) in
            calls.append(method.name)
            let arrived = callWaiters.filter { $0.value.method == method.name }
            for token in arrived.keys { callWaiters[token] = nil }
            return (failures[method.name], gated.contains(method.name), arrived.values.map(\.continuation))
        }
        for waiter in waiters { waiter.resume() }
        if isGated {
            await withCheckedContinuation { continuation in
                let stillGated = lock.withLock { () -> Bool in
                    guard gated.contains(method.name) else { return false }
                    gates[method.name] = continuation
                    return true
                }
                if !stillGated { continuation.resume() }
            }
        }
        if let failure { throw failure }
        return try await inner.call(method, request, idempotencyKey: idempotencyKey, timeout: timeout)
    }
}
