import Foundation
import Logging
import RescindAPI
import RescindStorage
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

@testable import RescindInventory

/// Where a test keeps Inventory's data.
enum Backend: String, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    /// SQLite always; PostgreSQL where Debian's server is installed (always in CI).
    static var available: [Backend] { PostgresServer.isAvailable ? [.sqlite, .postgres] : [.sqlite] }

    var testDescription: String { rawValue }

    /// A new, empty database of this backend.
    func freshLocation() async throws -> StorageLocation {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rescind-test-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            return .sqlite(path: directory.appendingPathComponent("daemon.sqlite").path)
        case .postgres:
            let server = try await PostgresServer.shared()
            let location = try await server.freshDatabase()
            // The simulated processor's database, when Payments runs here (`DATABASE_processor`).
            try await server.createDatabase(location.database + "_processor")
            return .postgres(location)
        }
    }
}

/// Inventory on both backends: the same answers, and the same invariants kept by the schema.
@Suite(.timeLimit(.minutes(2))) struct InventoryStorageTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    private func inventory(_ location: StorageLocation) async throws -> (InventoryService, InProcessCaller) {
        let service = try await InventoryService(storage: location, logger: logger)
        var router = RPCRouter()
        service.register(into: &router)
        return (service, InProcessCaller(router: router, peer: .orders, logger: logger))
    }

    @Test(arguments: Backend.available)
    func aCancellationsStockMovesAreRecordedOnceAndARepeatAnswersTheSame(_ backend: Backend) async throws {
        let (service, caller) = try await inventory(try await backend.freshLocation())
        defer { Task { await service.database.close() } }
        _ = try await service.setStock(SetStockRequest(sku: "MUG", location: "east", onHand: 2))
        _ = try await service.setStock(SetStockRequest(sku: "MUG", location: "west", onHand: 5))
        let order = UUID()
        let reserved = try await caller.call(
            InventoryMethods.reserve, ReserveRequest(orderID: order, lines: [.init(sku: "MUG", quantity: 4)]),
            idempotencyKey: "\(order)/reserve", timeout: nil)
        // East first, in location order, then the rest from west.
        #expect(reserved.allocations.map(\.quantity) == [2, 2])
        let part = UUID()
        let split = try await caller.call(
            InventoryMethods.split, SplitRequest(orderID: order, partID: part, lines: [.init(sku: "MUG", quantity: 3)]),
            idempotencyKey: "\(order)/split", timeout: nil)
        #expect(split.units == 3)
        for method in [InventoryMethods.prepareRestock, InventoryMethods.restock] {
            _ = try await caller.call(
                method, OrderStockRequest(orderID: part), idempotencyKey: "\(part)/\(method.name)", timeout: nil)
        }
        // The restock again, with its key: the same answer, nothing moved twice.
        let again = try await caller.call(
            InventoryMethods.restock, OrderStockRequest(orderID: part),
            idempotencyKey: "\(part)/\(InventoryMethods.restock.name)", timeout: nil)
        #expect(again.status == .restocked)
        let committed = try await caller.call(
            InventoryMethods.commit, OrderStockRequest(orderID: order), idempotencyKey: "\(order)/commit",
            timeout: nil)
        #expect(committed.status == .committed && committed.units == 1)
        let levels = try await service.listStock(ListStockRequest(sku: "MUG")).levels
        #expect(levels.map { [$0.location: [$0.onHand, $0.reserved]] } == [["east": [1, 0]], ["west": [5, 0]]])
        let kinds = try await service.database.read { tx in
            try tx.query("SELECT kind FROM ledger WHERE order_id = ? ORDER BY id", [order.uuidString])
                .map { try $0["kind"] as String }
        }
        #expect(kinds == ["reserve", "reserve", "restock", "restock", "commit"])
    }

    @Test(arguments: Backend.available)
    func theSchemaRefusesWhatTheInvariantsForbid(_ backend: Backend) async throws {
        let (service, caller) = try await inventory(try await backend.freshLocation())
        defer { Task { await service.database.close() } }
        _ = try await service.setStock(SetStockRequest(sku: "MUG", location: "main", onHand: 3))
        _ = try await caller.call(
            InventoryMethods.reserve, ReserveRequest(orderID: UUID(), lines: [.init(sku: "MUG", quantity: 1)]),
            idempotencyKey: "k", timeout: nil)
        for statement in [
            "UPDATE stock SET reserved = on_hand + 1",  // more reserved than on hand
            "UPDATE stock SET on_hand = -1, reserved = 0",
            "UPDATE reservation SET status = 'lost'",
            "UPDATE reservation SET status = 'merged'",  // only a part merges
            "UPDATE allocation SET quantity = 0",
            "UPDATE ledger SET on_hand_delta = 0",  // the ledger is append-only
            "DELETE FROM ledger",
            "INSERT INTO stock (sku, location, on_hand, reserved) VALUES ('MUG', 'nowhere', 1, 0)",
        ] {
            await #expect(throws: (any Error).self, "\(statement)") {
                try await service.database.write { tx in try tx.execute(statement) }
            }
        }
        let level = try #require(try await service.listStock(ListStockRequest(sku: "MUG")).levels.first)
        #expect((level.onHand, level.reserved) == (3, 1))
    }

    /// Two replicas of Inventory on one PostgreSQL database, selling the last units at once: every unit is
    /// reserved once, none twice, and the losers are told `out_of_stock`.
    @Test(.enabled(if: PostgresServer.isAvailable))
    func twoReplicasSellTheLastUnitsOnce() async throws {
        let location = try await Backend.postgres.freshLocation()
        let (first, firstCaller) = try await inventory(location)
        let (second, secondCaller) = try await inventory(location)
        defer {
            Task {
                await first.database.close()
                await second.database.close()
            }
        }
        _ = try await first.setStock(SetStockRequest(sku: "MUG", location: "main", onHand: 10))
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<40 {
                let caller = index.isMultiple(of: 2) ? firstCaller : secondCaller
                group.addTask {
                    let order = UUID()
                    do {
                        _ = try await caller.call(
                            InventoryMethods.reserve,
                            ReserveRequest(orderID: order, lines: [.init(sku: "MUG", quantity: 1)]),
                            idempotencyKey: "\(order)/reserve", timeout: nil)
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 10)
        let level = try #require(try await second.listStock(ListStockRequest(sku: "MUG")).levels.first)
        #expect((level.onHand, level.reserved) == (10, 10))
        let reserved = try await first.database.read { tx in
            try tx.scalar(Int64.self, "SELECT COUNT(*) FROM ledger WHERE kind = 'reserve'")
        }
        #expect(reserved == 10)
    }
}
