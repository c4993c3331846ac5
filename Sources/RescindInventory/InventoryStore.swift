import Foundation
import Logging
import RescindAPI
import RescindStorage

/// Inventory's storage: its records and the operations on them, in one transaction at a time, on SQLite or
/// PostgreSQL. Every statement of Inventory is here.
struct InventoryStore: Sendable {
    let database: any SQLDatabase

    /// Opens (and migrates) Inventory's database.
    static func open(_ location: StorageLocation, logger: Logger) async throws -> InventoryStore {
        InventoryStore(database: try await InventoryDatabase.schema.open(location, logger: logger))
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (InventoryTransaction) throws -> T) async throws -> T {
        try await database.read { tx in try body(InventoryTransaction(tx: tx)) }
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (InventoryTransaction) throws -> T) async throws -> T {
        try await database.write { tx in try body(InventoryTransaction(tx: tx)) }
    }

    /// A movement at most once per idempotency key, answered once it is durable.
    func idempotentWrite<T: Codable & Sendable>(
        key: String?, method: String, request: [UInt8], _ body: @escaping @Sendable (InventoryTransaction) throws -> T
    ) async throws -> T {
        try await database.idempotentWrite(key: key, method: method, request: request) { tx in
            try body(InventoryTransaction(tx: tx))
        }
    }
}

/// One transaction of Inventory's database.
struct InventoryTransaction {
    let tx: any SQLTransaction

    // MARK: Locations

    func location(_ id: String) throws -> LocationRecord? {
        try tx.queryOne("SELECT id, active, created_at FROM location WHERE id = ?", [id]).map(Self.location)
    }

    func locations() throws -> [LocationRecord] {
        try tx.query("SELECT id, active, created_at FROM location ORDER BY id", []).map(Self.location)
    }

    func insert(_ location: LocationRecord) throws {
        try tx.execute(
            "INSERT INTO location (id, active, created_at) VALUES (?, ?, ?)",
            [location.id, location.active, location.createdAt])
    }

    func setActive(_ id: String, _ active: Bool) throws {
        try tx.execute("UPDATE location SET active = ? WHERE id = ?", [active, id])
    }

    private static func location(_ row: SQLRow) throws -> LocationRecord {
        LocationRecord(id: try row["id"], active: try row["active"], createdAt: try row["created_at"])
    }

    // MARK: Stock

    func stock(_ sku: String, at location: String) throws -> StockRecord? {
        try tx.queryOne(
            "SELECT sku, location, on_hand, reserved FROM stock WHERE sku = ? AND location = ?", [sku, location]
        ).map(Self.stock)
    }

    /// Stock levels by SKU and location, optionally of one SKU or at one location.
    func stockLevels(sku: String?, location: String?) throws -> [StockRecord] {
        let filters = [sku.map { _ in "sku = ?" }, location.map { _ in "location = ?" }].compactMap { $0 }
        return try tx.query(
            "SELECT sku, location, on_hand, reserved FROM stock"
                + (filters.isEmpty ? "" : " WHERE " + filters.joined(separator: " AND ")) + " ORDER BY sku, location",
            [sku, location].compactMap { $0 }
        ).map(Self.stock)
    }

    /// A SKU's stock with units available at active locations, in location order.
    func available(_ sku: String) throws -> [StockRecord] {
        try tx.query(
            """
            SELECT stock.sku, stock.location, stock.on_hand, stock.reserved
            FROM stock JOIN location ON location.id = stock.location
            WHERE stock.sku = ? AND location.active = TRUE AND stock.on_hand > stock.reserved
            ORDER BY stock.location
            """, [sku]
        ).map(Self.stock)
    }

    /// Writes a stock row, new or changed.
    func save(_ stock: StockRecord) throws {
        try tx.execute(
            """
            INSERT INTO stock (sku, location, on_hand, reserved) VALUES (?, ?, ?, ?)
            ON CONFLICT (sku, location) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved
            """, [stock.sku, stock.location, stock.onHand, stock.reserved])
    }

    private static func stock(_ row: SQLRow) throws -> StockRecord {
        StockRecord(
            sku: try row["sku"], location: try row["location"], onHand: try row["on_hand"],
            reserved: try row["reserved"])
    }

    // MARK: Reservations

    func reservation(_ orderID: String) throws -> ReservationRecord? {
        try tx.queryOne(
            "SELECT order_id, status, created_at, updated_at, part_of FROM reservation WHERE order_id = ?", [orderID]
        ).map { row in
            ReservationRecord(
                orderID: try row["order_id"], status: try row["status"], createdAt: try row["created_at"],
                updatedAt: try row["updated_at"], partOf: try row["part_of"])
        }
    }

    func insert(_ reservation: ReservationRecord) throws {
        try tx.execute(
            "INSERT INTO reservation (order_id, status, created_at, updated_at, part_of) VALUES (?, ?, ?, ?, ?)",
            [
                reservation.orderID, reservation.status, reservation.createdAt, reservation.updatedAt,
                reservation.partOf,
            ])
    }

    func setStatus(_ orderID: String, _ status: Reservation.Status, at now: Date) throws {
        try tx.execute("UPDATE reservation SET status = ?, updated_at = ? WHERE order_id = ?", [status, now, orderID])
    }

    // MARK: Allocations

    /// A reservation's allocations by SKU and location.
    func allocations(_ orderID: String) throws -> [AllocationRecord] {
        try tx.query(
            "SELECT order_id, sku, location, quantity FROM allocation WHERE order_id = ? ORDER BY sku, location",
            [orderID]
        ).map(Self.allocation)
    }

    /// A reservation's allocations of one SKU, last location first.
    func allocations(_ orderID: String, sku: String) throws -> [AllocationRecord] {
        try tx.query(
            """
            SELECT order_id, sku, location, quantity FROM allocation WHERE order_id = ? AND sku = ?
            ORDER BY location DESC
            """, [orderID, sku]
        ).map(Self.allocation)
    }

    /// Adds `quantity` units of a SKU at a location to a reservation (an allocation of its own if it has none).
    func allocate(_ orderID: String, sku: String, at location: String, quantity: Int64) throws {
        try tx.execute(
            """
            INSERT INTO allocation (order_id, sku, location, quantity) VALUES (?, ?, ?, ?)
            ON CONFLICT (order_id, sku, location) DO UPDATE SET quantity = allocation.quantity + excluded.quantity
            """, [orderID, sku, location, quantity])
    }

    /// Sets an allocation's units; none removes it.
    func setQuantity(_ allocation: AllocationRecord) throws {
        if allocation.quantity == 0 {
            try tx.execute(
                "DELETE FROM allocation WHERE order_id = ? AND sku = ? AND location = ?",
                [allocation.orderID, allocation.sku, allocation.location])
        } else {
            try tx.execute(
                "UPDATE allocation SET quantity = ? WHERE order_id = ? AND sku = ? AND location = ?",
                [allocation.quantity, allocation.orderID, allocation.sku, allocation.location])
        }
    }

    private static func allocation(_ row: SQLRow) throws -> AllocationRecord {
        AllocationRecord(
            orderID: try row["order_id"], sku: try row["sku"], location: try row["location"],
            quantity: try row["quantity"])
    }

    // MARK: The ledger

    func append(_ entry: LedgerRecord) throws {
        try tx.execute(
            """
            INSERT INTO ledger (at, sku, location, kind, on_hand_delta, reserved_delta, order_id, idempotency_key)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                entry.at, entry.sku, entry.location, entry.kind, entry.onHandDelta, entry.reservedDelta,
                entry.orderID, entry.idempotencyKey,
            ])
    }
}
