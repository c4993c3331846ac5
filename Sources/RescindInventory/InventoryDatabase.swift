import GRDB
import RescindStorage

/// The schema of the Inventory database. Append-only migrations; none refers to app types.
enum InventoryDatabase {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        IdempotencyStore.registerMigration(in: &migrator)
        migrator.registerMigration("inventory-v1") { db in
            try db.create(table: "location") { t in
                t.primaryKey("id", .text)
                t.column("active", .boolean).notNull().defaults(to: true)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "stock") { t in
                t.column("sku", .text).notNull()
                t.column("location", .text).notNull().references("location")
                t.column("on_hand", .integer).notNull().check(sql: "on_hand >= 0")
                t.column("reserved", .integer).notNull().check(sql: "reserved >= 0 AND reserved <= on_hand")
                t.primaryKey(["sku", "location"])
            }
            try db.create(table: "reservation") { t in
                t.primaryKey("order_id", .text)
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('reserved', 'released', 'restocked', 'committed')")
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
            }
            try db.create(table: "allocation") { t in
                t.column("order_id", .text).notNull().references("reservation", onDelete: .cascade)
                t.column("sku", .text).notNull()
                t.column("location", .text).notNull().references("location")
                t.column("quantity", .integer).notNull().check(sql: "quantity > 0")
                t.primaryKey(["order_id", "sku", "location"])
            }
            try db.create(table: "ledger") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .datetime).notNull()
                t.column("sku", .text).notNull()
                t.column("location", .text).notNull()
                t.column("kind", .text).notNull()
                    .check(sql: "kind IN ('adjust', 'reserve', 'release', 'restock', 'take_back', 'commit')")
                t.column("on_hand_delta", .integer).notNull()
                t.column("reserved_delta", .integer).notNull()
                t.column("order_id", .text)
                t.column("idempotency_key", .text)
            }
            // Every movement is kept: the ledger can only grow.
            try db.execute(
                sql: """
                    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
                    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
                    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
                    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
                    """
            )
        }
        // Two-phase restock and write-off (issue 7): reservations may be `restocking` (held for a restock until
        // the refund succeeds) or `written_off`; the ledger records write-offs. SQLite cannot change a CHECK, so
        // both tables are rebuilt (the ledger's append-only triggers with it).
        migrator.registerMigration("inventory-v2-restock-hold") { db in
            try db.create(table: "reservation_v2") { t in
                t.primaryKey("order_id", .text)
                t.column("status", .text).notNull()
                    .check(
                        sql: """
                            status IN ('reserved', 'released', 'restocking', 'restocked', 'committed', 'written_off')
                            """)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
            }
            try db.execute(
                sql: "INSERT INTO reservation_v2 SELECT order_id, status, created_at, updated_at FROM reservation")
            try db.drop(table: "reservation")
            try db.rename(table: "reservation_v2", to: "reservation")

            try db.execute(sql: "DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete")
            try db.create(table: "ledger_v2") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .datetime).notNull()
                t.column("sku", .text).notNull()
                t.column("location", .text).notNull()
                t.column("kind", .text).notNull()
                    .check(
                        sql: "kind IN ('adjust', 'reserve', 'release', 'restock', 'take_back', 'commit', 'write_off')")
                t.column("on_hand_delta", .integer).notNull()
                t.column("reserved_delta", .integer).notNull()
                t.column("order_id", .text)
                t.column("idempotency_key", .text)
            }
            try db.execute(sql: "INSERT INTO ledger_v2 SELECT * FROM ledger")
            try db.drop(table: "ledger")
            try db.rename(table: "ledger_v2", to: "ledger")
            try db.execute(
                sql: """
                    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
                    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
                    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
                    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
                    """
            )
        }
        // Parts (issue 9): some of an order's units split into a reservation of their own (`part_of` names the
        // order) so that a line can be cancelled or fulfilled alone; a part merged back ends `merged`. The ledger
        // keeps the order's id for a part's movements.
        migrator.registerMigration("inventory-v3-parts") { db in
            try db.create(table: "reservation_v3") { t in
                t.primaryKey("order_id", .text)
                t.column("status", .text).notNull()
                    .check(
                        sql: """
                            status IN ('reserved', 'released', 'restocking', 'restocked', 'committed', 'written_off',
                                'merged')
                            """)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
                t.column("part_of", .text).check(sql: "part_of IS NULL OR part_of <> order_id")
                t.check(sql: "status <> 'merged' OR part_of IS NOT NULL")
            }
            try db.execute(
                sql: """
                    INSERT INTO reservation_v3 (order_id, status, created_at, updated_at)
                    SELECT order_id, status, created_at, updated_at FROM reservation
                    """)
            // The allocations refer to the table by name; with foreign keys off during migrations the rename
            // keeps them pointing at the new one.
            try db.drop(table: "reservation")
            try db.rename(table: "reservation_v3", to: "reservation")
            try db.create(index: "reservation_part_of", on: "reservation", columns: ["part_of"])
        }
        return migrator
    }
}
