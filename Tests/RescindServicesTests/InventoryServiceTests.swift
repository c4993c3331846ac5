import Foundation
import GRDB
import RescindAPI
import RescindOrders
import RescindPayments
import RescindTransport
import RescindWire
import Testing

@testable import RescindInventory

@Suite struct InventoryServiceTests {
    @Test func aPromisedRestockStaysReservedUntilTheMoneyHasMoved() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("TSHIRT", "main", 10)
        let caller = InProcessCaller(router: f.inventoryRouter, peer: .orders)
        let order = UUID()
        let reservation = try await caller.call(
            InventoryMethods.reserve, ReserveRequest(orderID: order, lines: [.init(sku: "TSHIRT", quantity: 3)]),
            idempotencyKey: "k1", timeout: nil
        )
        #expect(reservation.status == .reserved)
        #expect(reservation.allocations == [.init(sku: "TSHIRT", location: "main", quantity: 3)])
        #expect(try await f.stock("TSHIRT", "main").available == 7)

        let held = try await caller.call(
            InventoryMethods.prepareRestock, OrderStockRequest(orderID: order), idempotencyKey: "k2", timeout: nil)
        #expect(held.status == .restocking)
        // Promised back, but nobody else can take the units before the refund succeeds.
        #expect(try await f.stock("TSHIRT", "main").available == 7)
        let sold = await #expect(throws: RescindError.self) {
            try await caller.call(
                InventoryMethods.reserve, ReserveRequest(orderID: UUID(), lines: [.init(sku: "TSHIRT", quantity: 8)]),
                idempotencyKey: "other", timeout: nil)
        }
        #expect(sold?.reason == "out_of_stock")

        // The refund was declined: the units stay the order's.
        let kept = try await caller.call(
            InventoryMethods.takeBack, OrderStockRequest(orderID: order), idempotencyKey: "k3", timeout: nil)
        #expect(kept.status == .reserved)
        #expect(try await f.stock("TSHIRT", "main").available == 7)

        // A second cancellation whose refund succeeds.
        _ = try await caller.call(
            InventoryMethods.prepareRestock, OrderStockRequest(orderID: order), idempotencyKey: "k4", timeout: nil)
        let restocked = try await caller.call(
            InventoryMethods.restock, OrderStockRequest(orderID: order), idempotencyKey: "k5", timeout: nil)
        #expect(restocked.status == .restocked)
        let level = try await f.stock("TSHIRT", "main")
        #expect(level.available == 10)
        #expect(level.onHand == 10)
    }

    @Test func aRestockWithoutAPromiseIsRefused() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("TSHIRT", "main", 10)
        let caller = InProcessCaller(router: f.inventoryRouter, peer: .orders)
        let order = UUID()
        _ = try await caller.call(
            InventoryMethods.reserve, ReserveRequest(orderID: order, lines: [.init(sku: "TSHIRT", quantity: 3)]),
            idempotencyKey: "r", timeout: nil)
        let error = await #expect(throws: RescindError.self) {
            try await caller.call(
                InventoryMethods.restock, OrderStockRequest(orderID: order), idempotencyKey: "s", timeout: nil)
        }
        #expect(error?.reason == "reservation_reserved")
        #expect(try await f.stock("TSHIRT", "main").reserved == 3)
    }

    @Test func aWriteOffTakesTheUnitsOutOfStockForGood() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 10)
        let caller = InProcessCaller(router: f.inventoryRouter, peer: .orders)
        let order = UUID()
        _ = try await caller.call(
            InventoryMethods.reserve, ReserveRequest(orderID: order, lines: [.init(sku: "MUG", quantity: 3)]),
            idempotencyKey: "r", timeout: nil)
        let written = try await caller.call(
            InventoryMethods.writeOff, OrderStockRequest(orderID: order), idempotencyKey: "w", timeout: nil)
        #expect(written.status == .writtenOff)
        let level = try await f.stock("MUG", "main")
        #expect(level.onHand == 7)
        #expect(level.reserved == 0)
        let kinds = try await f.inventory.database.read { db in
            try String.fetchAll(
                db, sql: "SELECT kind FROM ledger WHERE order_id = ? ORDER BY id", arguments: [order.uuidString])
        }
        #expect(kinds == ["reserve", "write_off"])
        // Nothing reserved is left behind to block a count.
        _ = try await f.inventory.setStock(SetStockRequest(sku: "MUG", location: "main", onHand: 0))
    }

    @Test func reservingMoreThanAvailableIsOutOfStockAndChangesNothing() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 2)
        let caller = InProcessCaller(router: f.inventoryRouter, peer: .orders)
        let error = await #expect(throws: RescindError.self) {
            try await caller.call(
                InventoryMethods.reserve,
                ReserveRequest(orderID: UUID(), lines: [.init(sku: "MUG", quantity: 3)]),
                idempotencyKey: "k", timeout: nil
            )
        }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.reason == "out_of_stock")
        #expect(try await f.stock("MUG", "main").reserved == 0)
    }

    @Test func aRestockToADeactivatedLocationIsRefusedWhenPromised() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("POSTER", "backroom", 3)
        let caller = InProcessCaller(router: f.inventoryRouter, peer: .orders)
        let order = UUID()
        _ = try await caller.call(
            InventoryMethods.reserve, ReserveRequest(orderID: order, lines: [.init(sku: "POSTER", quantity: 1)]),
            idempotencyKey: "r", timeout: nil
        )
        _ = try await f.inventory.deactivateLocation("backroom")
        let error = await #expect(throws: RescindError.self) {
            try await caller.call(
                InventoryMethods.prepareRestock, OrderStockRequest(orderID: order), idempotencyKey: "s", timeout: nil)
        }
        #expect(error?.reason == "location_deactivated")
        #expect(try await f.stock("POSTER", "backroom").reserved == 1)
        #expect(try await f.inventory.reservation(order).status == .reserved)
    }

    @Test func aRepeatedKeyReturnsTheFirstAnswerAndActsOnce() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("TSHIRT", "main", 10)
        let caller = InProcessCaller(router: f.inventoryRouter, peer: .orders)
        let request = ReserveRequest(orderID: UUID(), lines: [.init(sku: "TSHIRT", quantity: 4)])
        let first = try await caller.call(InventoryMethods.reserve, request, idempotencyKey: "same", timeout: nil)
        let second = try await caller.call(InventoryMethods.reserve, request, idempotencyKey: "same", timeout: nil)
        #expect(first == second)
        #expect(try await f.stock("TSHIRT", "main").reserved == 4)

        // The same key with other parameters is a conflict, and does nothing.
        let other = ReserveRequest(orderID: UUID(), lines: [.init(sku: "TSHIRT", quantity: 1)])
        let error = await #expect(throws: RescindError.self) {
            try await caller.call(InventoryMethods.reserve, other, idempotencyKey: "same", timeout: nil)
        }
        #expect(error?.code == .conflict)
        #expect(try await f.stock("TSHIRT", "main").reserved == 4)
    }

    @Test func aFailureIsReplayedForItsKeyEvenAfterStockArrives() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "main", 1)
        let caller = InProcessCaller(router: f.inventoryRouter, peer: .orders)
        let request = ReserveRequest(orderID: UUID(), lines: [.init(sku: "MUG", quantity: 2)])
        await #expect(throws: RescindError.self) {
            try await caller.call(InventoryMethods.reserve, request, idempotencyKey: "once", timeout: nil)
        }
        try await f.setStock("MUG", "main", 5)
        let error = await #expect(throws: RescindError.self) {
            try await caller.call(InventoryMethods.reserve, request, idempotencyKey: "once", timeout: nil)
        }
        #expect(error?.reason == "out_of_stock")
        #expect(try await f.stock("MUG", "main").reserved == 0)
    }

    @Test func effectsRequireAKeyAndTheOrdersIdentity() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let request = ReserveRequest(orderID: UUID(), lines: [.init(sku: "MUG", quantity: 1)])
        let noKey = await #expect(throws: RescindError.self) {
            try await InProcessCaller(router: f.inventoryRouter, peer: .orders)
                .call(InventoryMethods.reserve, request, idempotencyKey: nil, timeout: nil)
        }
        #expect(noKey?.reason == "missing_idempotency_key")
        let denied = await #expect(throws: RescindError.self) {
            try await InProcessCaller(router: f.inventoryRouter, peer: .operator)
                .call(InventoryMethods.reserve, request, idempotencyKey: "k", timeout: nil)
        }
        #expect(denied?.code == .permissionDenied)
    }

    @Test func theLedgerKeepsEveryMovementAndCannotBeRewritten() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("TSHIRT", "main", 10)
        try await f.setStock("TSHIRT", "main", 12)
        let pool = try DatabasePool(path: f.directory.appendingPathComponent("inventory.sqlite").path)
        let kinds = try await pool.read { db in try String.fetchAll(db, sql: "SELECT kind FROM ledger ORDER BY id") }
        #expect(kinds == ["adjust", "adjust"])
        await #expect(throws: DatabaseError.self) {
            try await pool.write { db in try db.execute(sql: "DELETE FROM ledger") }
        }
        await #expect(throws: DatabaseError.self) {
            try await pool.write { db in try db.execute(sql: "UPDATE ledger SET on_hand_delta = 0") }
        }
    }

    @Test func badNamesAndNegativeStockAreInvalidArguments() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        for request in [
            SetStockRequest(sku: "", location: "main", onHand: 1),
            SetStockRequest(sku: "T SHIRT", location: "main", onHand: 1),
            SetStockRequest(sku: "TSHIRT", location: "main", onHand: -1),
        ] {
            let error = await #expect(throws: RescindError.self) { try await f.inventory.setStock(request) }
            #expect(error?.code == .invalidArgument)
        }
        #expect(try await f.inventory.listStock(ListStockRequest()).levels.isEmpty)
    }
}
