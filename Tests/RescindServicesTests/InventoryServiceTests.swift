import Foundation
import RescindAPI
import RescindOrders
import RescindPayments
import RescindStorage
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
        let kinds = try await f.inventory.database.read { tx in
            try tx.query("SELECT kind FROM ledger WHERE order_id = ? ORDER BY id", [order.uuidString])
                .map { try $0["kind"] as String }
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

@Suite struct InventoryPartTests {
    private func call<Request, Response>(
        _ caller: InProcessCaller, _ method: RescindAPI.Method<Request, Response>, _ request: Request,
        key: String = UUID().uuidString
    ) async throws -> Response {
        try await caller.call(method, request, idempotencyKey: key, timeout: nil)
    }

    @Test func aSplitSetsUnitsApartForTheirOwnTransitionsAndAMergeBringsThemBack() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        try await f.setStock("MUG", "east", 2)
        try await f.setStock("MUG", "west", 5)
        try await f.setStock("TEE", "east", 5)
        let caller = InProcessCaller(router: f.inventoryRouter, peer: .orders)
        let order = UUID()
        _ = try await call(
            caller, InventoryMethods.reserve,
            ReserveRequest(orderID: order, lines: [.init(sku: "MUG", quantity: 4), .init(sku: "TEE", quantity: 1)]))

        // Three mugs apart, taken from the last location first; no stock moves.
        let part = UUID()
        let split = try await call(
            caller, InventoryMethods.split,
            SplitRequest(orderID: order, partID: part, lines: [.init(sku: "MUG", quantity: 3)]), key: "s1")
        #expect(split.partOf == order)
        #expect(
            split.allocations == [
                .init(sku: "MUG", location: "east", quantity: 1), .init(sku: "MUG", location: "west", quantity: 2),
            ])
        let rest = try await call(caller, InventoryMethods.getReservation, OrderStockRequest(orderID: order))
        #expect(
            rest.allocations == [
                .init(sku: "MUG", location: "east", quantity: 1), .init(sku: "TEE", location: "east", quantity: 1),
            ])
        #expect(try await f.stock("MUG", "west").reserved == 2)
        #expect(try await f.stock("MUG", "east").reserved == 2)
        // A repeat of the split (another key) answers with the part; more than the order holds is refused.
        #expect(
            try await call(
                caller, InventoryMethods.split,
                SplitRequest(orderID: order, partID: part, lines: [.init(sku: "MUG", quantity: 3)])) == split)
        let tooMany = await #expect(throws: RescindError.self) {
            try await call(
                caller, InventoryMethods.split,
                SplitRequest(orderID: order, partID: UUID(), lines: [.init(sku: "MUG", quantity: 2)]))
        }
        #expect(tooMany?.reason == "not_reserved")

        // Merged back: the order holds its four mugs again, the part is done.
        let merged = try await call(caller, InventoryMethods.merge, MergeRequest(orderID: order, partID: part))
        #expect(merged.units == 5)
        #expect(
            try await call(caller, InventoryMethods.getReservation, OrderStockRequest(orderID: part)).status == .merged)
        #expect(try await call(caller, InventoryMethods.merge, MergeRequest(orderID: order, partID: part)) == merged)
        // The undo of a split that never arrived changes nothing.
        #expect(try await call(caller, InventoryMethods.merge, MergeRequest(orderID: order, partID: UUID())) == merged)
        let stranger = UUID()
        _ = try await call(
            caller, InventoryMethods.reserve, ReserveRequest(orderID: stranger, lines: [.init(sku: "TEE", quantity: 1)])
        )
        let notOurs = await #expect(throws: RescindError.self) {
            try await call(caller, InventoryMethods.merge, MergeRequest(orderID: stranger, partID: part))
        }
        #expect(notOurs?.reason == "not_a_part")

        // A part's own transitions: one mug committed alone; the ledger names the order.
        let second = UUID()
        _ = try await call(
            caller, InventoryMethods.split,
            SplitRequest(orderID: order, partID: second, lines: [.init(sku: "MUG", quantity: 1)]))
        let committed = try await call(caller, InventoryMethods.commit, OrderStockRequest(orderID: second))
        #expect(committed.status == .committed)
        #expect(try await call(caller, InventoryMethods.getReservation, OrderStockRequest(orderID: order)).units == 4)
        let west = try await f.stock("MUG", "west")
        #expect((west.onHand, west.reserved) == (4, 1))
        let ledger = try await f.inventory.database.read { tx in
            try tx.query("SELECT order_id FROM ledger WHERE kind = 'commit'", []).map { try $0["order_id"] as String }
        }
        #expect(ledger == [order.uuidString])
    }
}
