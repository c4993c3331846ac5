import Foundation
import GRDB
import RescindStorage

/// The schema of the Orders database: orders, sagas and their step log, cancellations, the outbox.
enum OrdersDatabase {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        IdempotencyStore.registerMigration(in: &migrator)
        migrator.registerMigration("orders-v1") { db in
            try db.create(table: "orders") { t in
                t.primaryKey("id", .text)
                t.column("customer_email", .text).notNull()
                t.column("status", .text).notNull()
                    .check(
                        sql:
                            "status IN ('pending', 'open', 'cancelling', 'fulfilling', 'cancelled', 'fulfilled', 'rejected')"
                    )
                t.column("currency", .text).notNull()
                t.column("total", .integer).notNull().check(sql: "total > 0")
                t.column("amount_refunded", .integer).notNull().defaults(to: 0)
                    .check(sql: "amount_refunded >= 0 AND amount_refunded <= total")
                t.column("payment_status", .text)
                t.column("card_last4", .text).notNull()
                t.column("rejection", .text)
                // A caller's idempotency key for `orders.place` and the SHA-256 of the request it came with.
                t.column("idempotency_key", .text).unique()
                t.column("request_fingerprint", .blob)
                t.column("created_at", .datetime).notNull().indexed()
                t.column("updated_at", .datetime).notNull()
            }
            try db.create(table: "order_line") { t in
                t.column("order_id", .text).notNull().references("orders", onDelete: .cascade)
                t.column("line_no", .integer).notNull()
                t.column("sku", .text).notNull()
                t.column("quantity", .integer).notNull().check(sql: "quantity > 0")
                t.column("unit_price", .integer).notNull().check(sql: "unit_price >= 0")
                t.primaryKey(["order_id", "line_no"])
            }
            try db.create(table: "saga") { t in
                t.primaryKey("id", .text)
                t.column("kind", .text).notNull().check(sql: "kind IN ('place_order', 'cancel_order')")
                t.column("order_id", .text).notNull().references("orders").indexed()
                t.column("state", .text).notNull()
                    .check(sql: "state IN ('running', 'compensating', 'completed', 'compensated', 'failed')")
                t.column("machine", .text).notNull()
                t.column("options", .text).notNull()
                t.column("results", .text).notNull()
                t.column("error_code", .text)
                t.column("error_reason", .text)
                t.column("error_message", .text)
                t.column("failed_step", .text)
                t.column("next_attempt_at", .datetime).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
            }
            try db.create(index: "saga_runnable", on: "saga", columns: ["state", "next_attempt_at"])
            try db.create(table: "saga_step") { t in
                t.column("saga_id", .text).notNull().references("saga", onDelete: .cascade)
                t.column("seq", .integer).notNull()
                t.column("name", .text).notNull()
                t.column("direction", .text).notNull().check(sql: "direction IN ('forward', 'compensate')")
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('started', 'succeeded', 'failed')")
                t.column("attempt", .integer).notNull()
                t.column("idempotency_key", .text)
                t.column("detail", .text)
                t.column("error_code", .text)
                t.column("error_reason", .text)
                t.column("error_message", .text)
                t.column("started_at", .datetime).notNull()
                t.column("finished_at", .datetime)
                t.primaryKey(["saga_id", "seq"])
                t.uniqueKey(["saga_id", "name", "direction"])
            }
            try db.create(table: "cancellation") { t in
                t.primaryKey("order_id", .text).references("orders")
                t.column("saga_id", .text).notNull().references("saga")
                t.column("reason", .text).notNull()
                t.column("staff_note", .text).check(sql: "length(staff_note) <= 255")
                t.column("refunded", .integer).notNull()
                t.column("fee_kept", .integer).notNull()
                t.column("voided", .boolean).notNull()
                t.column("units_restocked", .integer).notNull()
                t.column("notify", .boolean).notNull()
                t.column("cancelled_at", .datetime).notNull()
            }
            try db.create(table: "outbox") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("order_id", .text).notNull().references("orders")
                t.column("kind", .text).notNull()
                t.column("payload", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("delivered_at", .datetime)
            }
            try db.create(index: "outbox_pending", on: "outbox", columns: ["delivered_at", "id"])
        }
        // The saga engine (issue 7): a typed context and a plan of step names instead of options and results;
        // kinds no longer listed in a CHECK (a new kind is code, not a schema change); `settled` and who
        // settled; the request key of `orders.cancel`; at most one unfinished saga per order. SQLite cannot
        // change a CHECK, so the table is rebuilt. Sagas unfinished at the upgrade cannot be resumed by the
        // new engine: they are kept as `failed`, for a person to settle.
        migrator.registerMigration("orders-v2-saga-engine") { db in
            try db.create(table: "saga_v2") { t in
                t.primaryKey("id", .text)
                t.column("kind", .text).notNull().check(sql: "length(kind) > 0")
                t.column("order_id", .text).notNull().references("orders").indexed()
                t.column("state", .text).notNull()
                    .check(
                        sql: "state IN ('running', 'compensating', 'completed', 'compensated', 'failed', 'settled')")
                t.column("plan", .text).notNull()
                t.column("machine", .text).notNull()
                t.column("context", .text).notNull()
                t.column("error_code", .text)
                t.column("error_reason", .text)
                t.column("error_message", .text)
                t.column("failed_step", .text)
                t.column("next_attempt_at", .datetime).notNull()
                t.column("request_key", .text).unique()
                t.column("request_fingerprint", .blob)
                t.column("settled_by", .text)
                t.column("settled_at", .datetime)
                t.column("settled_as", .text)
                t.column("settled_note", .text).check(sql: "length(settled_note) <= 255")
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
                t.check(sql: "(state = 'settled') = (settled_by IS NOT NULL AND settled_at IS NOT NULL)")
            }
            try db.execute(
                sql: """
                    INSERT INTO saga_v2 (id, kind, order_id, state, plan, machine, context, error_code, error_reason,
                        error_message, failed_step, next_attempt_at, created_at, updated_at)
                    SELECT id, kind, order_id,
                        CASE WHEN state IN ('running', 'compensating') THEN 'failed' ELSE state END,
                        (SELECT json_group_array(json_extract(value, '$.name'))
                            FROM json_each(json_extract(machine, '$.plan'))),
                        CASE WHEN state IN ('running', 'compensating')
                            THEN '{"failed":{"step":0,"undoing":false}}'
                            ELSE json_object(state, json_object()) END,
                        '{}',
                        COALESCE(error_code, CASE WHEN state IN ('running', 'compensating') THEN 'internal' END),
                        error_reason,
                        COALESCE(error_message, CASE WHEN state IN ('running', 'compensating')
                            THEN 'unfinished when Orders was upgraded to the new saga engine; settle it by hand' END),
                        failed_step, next_attempt_at, created_at, updated_at
                    FROM saga
                    """
            )
            try db.drop(table: "saga")
            try db.rename(table: "saga_v2", to: "saga")
            try db.create(index: "saga_runnable", on: "saga", columns: ["state", "next_attempt_at"])
            try db.execute(
                sql: """
                    CREATE UNIQUE INDEX saga_one_unfinished_per_order ON saga (order_id)
                    WHERE state IN ('running', 'compensating', 'failed')
                    """
            )
        }
        // Where each order came from (orders from before this are `api`), archiving, and what is left of a
        // deleted order.
        migrator.registerMigration("orders-v3-source-archive-delete") { db in
            try db.alter(table: "orders") { t in
                t.add(column: "source", .text).notNull().defaults(to: "api")
                    .check(sql: "source IN ('online_store', 'pos', 'staff', 'api')")
                t.add(column: "archived_at", .datetime)
            }
            try db.create(table: "deleted_order") { t in
                t.primaryKey("order_id", .text)
                t.column("source", .text).notNull().check(sql: "source IN ('staff', 'api')")
                t.column("idempotency_key", .text).unique()
                t.column("deleted_by", .text).notNull().check(sql: "length(deleted_by) > 0")
                t.column("deleted_at", .datetime).notNull()
            }
        }
        // Capture later than placement: when an order's authorization falls due for capture, and what a void saved.
        migrator.registerMigration("orders-v4-capture-timing") { db in
            try db.alter(table: "orders") { t in
                t.add(column: "capture_due_at", .datetime)
            }
            try db.execute(
                sql: "CREATE INDEX orders_capture_due ON orders (capture_due_at) WHERE capture_due_at IS NOT NULL")
            try db.alter(table: "cancellation") { t in
                t.add(column: "fee_saved", .integer).check(sql: "fee_saved >= 0")  // NULL unless a void said
            }
        }
        // Refunds after placement (orders.refund), and the restocking fee of a customer's cancellation.
        migrator.registerMigration("orders-v5-refunds") { db in
            try db.create(table: "order_refund") { t in
                t.primaryKey("saga_id", .text)
                t.column("order_id", .text).notNull().references("orders").indexed()
                t.column("amount", .integer).notNull().check(sql: "amount > 0")
                t.column("reason", .text).notNull().check(sql: "length(reason) BETWEEN 1 AND 255")
                t.column("by", .text).notNull().check(sql: "length(by) > 0")
                t.column("at", .datetime).notNull()
                t.column("refund_to", .text).check(sql: "refund_to IN ('store_credit')")  // NULL: the card
            }
            try db.alter(table: "cancellation") { t in
                t.add(column: "restocking_fee", .integer).check(sql: "restocking_fee > 0")  // NULL: none
                t.add(column: "refund_to", .text).check(sql: "refund_to IN ('store_credit')")  // NULL: the card
            }
        }
        // Reorders: the order a new one places again.
        migrator.registerMigration("orders-v6-reorder") { db in
            try db.alter(table: "orders") { t in
                t.add(column: "reorder_of", .text)
            }
            try db.execute(sql: "CREATE INDEX orders_reorder_of ON orders (reorder_of) WHERE reorder_of IS NOT NULL")
        }
        // Fulfilment in progress (a label bought, picking started): cancellation is refused while it is set.
        migrator.registerMigration("orders-v7-fulfilment-in-progress") { db in
            try db.alter(table: "orders") { t in
                t.add(column: "fulfilment_in_progress", .text)
                    .check(sql: "fulfilment_in_progress IN ('label_purchased', 'picking')")
            }
        }
        // Lines cancelled and fulfilled on their own: units per line, and a record of each cancellation of some
        // lines (the whole order's stays in `cancellation`); edits of open orders.
        migrator.registerMigration("orders-v8-lines") { db in
            try db.alter(table: "order_line") { t in
                t.add(column: "cancelled", .integer).notNull().defaults(to: 0).check(sql: "cancelled >= 0")
                t.add(column: "fulfilled", .integer).notNull().defaults(to: 0)
                    .check(sql: "fulfilled >= 0 AND cancelled + fulfilled <= quantity")
            }
            try db.create(table: "line_cancellation") { t in
                t.primaryKey("saga_id", .text)
                t.column("order_id", .text).notNull().references("orders", onDelete: .cascade).indexed()
                t.column("refunded", .integer).notNull().check(sql: "refunded >= 0")
                t.column("voided_amount", .integer).notNull().check(sql: "voided_amount >= 0")
                t.column("units", .integer).notNull().check(sql: "units > 0")
                /// The `Cancellation` as answered, in JSON.
                t.column("cancellation", .text).notNull()
                t.column("cancelled_at", .datetime).notNull()
            }
            // Edits of open orders (orders.edit), oldest first by `at`.
            try db.create(table: "order_edit") { t in
                t.primaryKey("saga_id", .text)
                t.column("order_id", .text).notNull().references("orders", onDelete: .cascade).indexed()
                t.column("refunded", .integer).notNull().check(sql: "refunded >= 0")
                /// The `OrderEdit` as answered, in JSON.
                t.column("edit", .text).notNull()
                t.column("at", .datetime).notNull()
            }
        }
        // The cancellation policy: an order's tags, and a customer's recent cancellations found by email;
        // customers' order-status links.
        migrator.registerMigration("orders-v9-policy") { db in
            try db.alter(table: "orders") { t in
                t.add(column: "tags", .text).notNull().defaults(to: "[]").check(sql: "json_valid(tags)")
            }
            try db.create(index: "orders_customer_email", on: "orders", columns: ["customer_email"])
            // The customer token of the order-status link: only its SHA-256, and when it was issued.
            try db.alter(table: "orders") { t in
                t.add(column: "customer_token_hash", .blob).check(sql: "length(customer_token_hash) = 32")
                t.add(column: "customer_token_issued_at", .datetime)
            }
            try db.execute(
                sql: """
                    CREATE UNIQUE INDEX orders_customer_token ON orders (customer_token_hash)
                    WHERE customer_token_hash IS NOT NULL
                    """)
        }
        // Customers' requests to cancel, in a store that approves them first: one per order (a new request
        // replaces a declined one).
        migrator.registerMigration("orders-v10-cancel-requests") { db in
            try db.create(table: "cancel_request") { t in
                t.primaryKey("order_id", .text).references("orders", onDelete: .cascade)
                t.column("state", .text).notNull().check(sql: "state IN ('pending', 'approved', 'declined')")
                t.column("note", .text).check(sql: "length(note) <= 255")
                t.column("lines", .text).check(sql: "lines IS NULL OR json_valid(lines)")
                t.column("requested_at", .datetime).notNull()
                t.column("decided_by", .text)
                t.column("decided_at", .datetime)
                t.column("decision_note", .text).check(sql: "length(decision_note) <= 255")
                t.column("saga_id", .text)
                t.check(sql: "(state = 'pending') = (decided_at IS NULL)")
            }
            try db.create(index: "cancel_request_state", on: "cancel_request", columns: ["state", "requested_at"])
        }
        // Fraud risk assessed at placement, and the hold it may put on an order until staff release it.
        migrator.registerMigration("orders-v11-risk") { db in
            try db.alter(table: "orders") { t in
                t.add(column: "risk_level", .text).check(sql: "risk_level IN ('low', 'medium', 'high')")
                t.add(column: "risk_reasons", .text).check(sql: "risk_reasons IS NULL OR json_valid(risk_reasons)")
                t.add(column: "risk_held", .boolean).notNull().defaults(to: false)
                t.add(column: "risk_released_by", .text)
                t.add(column: "risk_released_at", .datetime)
            }
        }
        // Notifications delivered for real: attempts, backoff and the last error of each message.
        migrator.registerMigration("orders-v12-outbox-retries") { db in
            try db.alter(table: "outbox") { t in
                t.add(column: "attempts", .integer).notNull().defaults(to: 0).check(sql: "attempts >= 0")
                t.add(column: "next_attempt_at", .datetime)
                t.add(column: "last_error", .text)
            }
        }
        // The risk of a card used by several customers: the processor's fingerprint of the order's card, found
        // by card and customer in two index seeks.
        migrator.registerMigration("orders-v13-card-fingerprint") { db in
            try db.alter(table: "orders") { t in
                t.add(column: "card_fingerprint", .text)
            }
            try db.create(
                index: "orders_by_card_fingerprint", on: "orders", columns: ["card_fingerprint", "customer_email"],
                condition: Column("card_fingerprint") != nil)
        }
        // The customer's language, for their emails and page.
        migrator.registerMigration("orders-v14-language") { db in
            try db.alter(table: "orders") { t in
                t.add(column: "language", .text).check(
                    sql: "language IS NULL OR (length(language) BETWEEN 2 AND 3 AND language NOT GLOB '*[^a-z]*')")
            }
        }
        // Sagas stored typed and versioned: a saga an earlier build started finishes under a later one, which
        // reads its context at the version it was written (each kind's `contextVersion`) and runs the plan it
        // was stored with. Rows from before are version 1.
        migrator.registerMigration("orders-v15-saga-versions") { db in
            try db.alter(table: "saga") { t in
                t.add(column: "context_version", .integer).notNull().defaults(to: 1).check(sql: "context_version >= 1")
                t.add(column: "machine_version", .integer).notNull().defaults(to: 1).check(sql: "machine_version >= 1")
            }
        }
        // Leases, so that several replicas share one database: a saga is driven by the replica that holds its
        // lease (`lease_holder` until `lease_expires_at`), and each step commits only with the lease's token;
        // the relay and the capture scheduler hold named leases (`lease`).
        Lease.registerMigration(in: &migrator)
        migrator.registerMigration("orders-v16-saga-leases") { db in
            for statement in OrdersDatabase.sagaLeaseColumns(timestamp: "DATETIME") { try db.execute(sql: statement) }
        }
        return migrator
    }
}
