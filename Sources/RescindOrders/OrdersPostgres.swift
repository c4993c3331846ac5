import RescindStorage

extension OrdersDatabase {
    static let schema = Schema(sqlite: migrator, postgres: postgres)

    /// The schema in PostgreSQL: the same tables, keys, CHECKs and indexes as SQLite's migrations end with (JSON
    /// columns are text that must cast to `jsonb`, as SQLite's `json_valid` checks).
    static let postgres = [
        IdempotencyStore.postgresMigration,
        SQLMigration(
            "orders-v15",
            [
                """
                CREATE TABLE orders (
                    id TEXT PRIMARY KEY,
                    customer_email TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('pending', 'open', 'cancelling', 'fulfilling', 'cancelled',
                        'fulfilled', 'rejected')),
                    currency TEXT NOT NULL,
                    total BIGINT NOT NULL CHECK (total > 0),
                    amount_refunded BIGINT NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= total),
                    payment_status TEXT,
                    card_last4 TEXT NOT NULL,
                    rejection TEXT,
                    idempotency_key TEXT UNIQUE,
                    request_fingerprint BYTEA,
                    created_at TIMESTAMPTZ NOT NULL,
                    updated_at TIMESTAMPTZ NOT NULL,
                    source TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('online_store', 'pos', 'staff', 'api')),
                    archived_at TIMESTAMPTZ,
                    capture_due_at TIMESTAMPTZ,
                    reorder_of TEXT,
                    fulfilment_in_progress TEXT CHECK (fulfilment_in_progress IN ('label_purchased', 'picking')),
                    tags TEXT NOT NULL DEFAULT '[]' CHECK (tags::jsonb IS NOT NULL),
                    customer_token_hash BYTEA CHECK (length(customer_token_hash) = 32),
                    customer_token_issued_at TIMESTAMPTZ,
                    risk_level TEXT CHECK (risk_level IN ('low', 'medium', 'high')),
                    risk_reasons TEXT CHECK (risk_reasons IS NULL OR risk_reasons::jsonb IS NOT NULL),
                    risk_held BOOLEAN NOT NULL DEFAULT FALSE,
                    risk_released_by TEXT,
                    risk_released_at TIMESTAMPTZ,
                    card_fingerprint TEXT,
                    language TEXT CHECK (language IS NULL OR (length(language) BETWEEN 2 AND 3 AND language ~ '^[a-z]+$'))
                )
                """,
                "CREATE INDEX orders_on_created_at ON orders (created_at)",
                "CREATE INDEX orders_customer_email ON orders (customer_email)",
                """
                CREATE INDEX orders_by_card_fingerprint ON orders (card_fingerprint, customer_email)
                WHERE card_fingerprint IS NOT NULL
                """,
                "CREATE INDEX orders_capture_due ON orders (capture_due_at) WHERE capture_due_at IS NOT NULL",
                """
                CREATE UNIQUE INDEX orders_customer_token ON orders (customer_token_hash)
                WHERE customer_token_hash IS NOT NULL
                """,
                "CREATE INDEX orders_reorder_of ON orders (reorder_of) WHERE reorder_of IS NOT NULL",
                """
                CREATE TABLE order_line (
                    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
                    line_no BIGINT NOT NULL,
                    sku TEXT NOT NULL,
                    quantity BIGINT NOT NULL CHECK (quantity > 0),
                    unit_price BIGINT NOT NULL CHECK (unit_price >= 0),
                    cancelled BIGINT NOT NULL DEFAULT 0 CHECK (cancelled >= 0),
                    fulfilled BIGINT NOT NULL DEFAULT 0 CHECK (fulfilled >= 0 AND cancelled + fulfilled <= quantity),
                    PRIMARY KEY (order_id, line_no)
                )
                """,
                """
                CREATE TABLE saga (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL CHECK (length(kind) > 0),
                    order_id TEXT NOT NULL REFERENCES orders (id),
                    state TEXT NOT NULL CHECK (state IN ('running', 'compensating', 'completed', 'compensated', 'failed',
                        'settled')),
                    plan TEXT NOT NULL,
                    machine TEXT NOT NULL,
                    context TEXT NOT NULL,
                    error_code TEXT,
                    error_reason TEXT,
                    error_message TEXT,
                    failed_step TEXT,
                    next_attempt_at TIMESTAMPTZ NOT NULL,
                    request_key TEXT UNIQUE,
                    request_fingerprint BYTEA,
                    settled_by TEXT,
                    settled_at TIMESTAMPTZ,
                    settled_as TEXT,
                    settled_note TEXT CHECK (length(settled_note) <= 255),
                    created_at TIMESTAMPTZ NOT NULL,
                    updated_at TIMESTAMPTZ NOT NULL,
                    context_version BIGINT NOT NULL DEFAULT 1 CHECK (context_version >= 1),
                    machine_version BIGINT NOT NULL DEFAULT 1 CHECK (machine_version >= 1),
                    CHECK ((state = 'settled') = (settled_by IS NOT NULL AND settled_at IS NOT NULL))
                )
                """,
                "CREATE INDEX saga_on_order_id ON saga (order_id)",
                "CREATE INDEX saga_runnable ON saga (state, next_attempt_at)",
                """
                CREATE UNIQUE INDEX saga_one_unfinished_per_order ON saga (order_id)
                WHERE state IN ('running', 'compensating', 'failed')
                """,
                """
                CREATE TABLE saga_step (
                    saga_id TEXT NOT NULL REFERENCES saga (id) ON DELETE CASCADE,
                    seq BIGINT NOT NULL,
                    name TEXT NOT NULL,
                    direction TEXT NOT NULL CHECK (direction IN ('forward', 'compensate')),
                    status TEXT NOT NULL CHECK (status IN ('started', 'succeeded', 'failed')),
                    attempt BIGINT NOT NULL,
                    idempotency_key TEXT,
                    detail TEXT,
                    error_code TEXT,
                    error_reason TEXT,
                    error_message TEXT,
                    started_at TIMESTAMPTZ NOT NULL,
                    finished_at TIMESTAMPTZ,
                    PRIMARY KEY (saga_id, seq),
                    UNIQUE (saga_id, name, direction)
                )
                """,
                """
                CREATE TABLE cancellation (
                    order_id TEXT PRIMARY KEY REFERENCES orders (id),
                    saga_id TEXT NOT NULL REFERENCES saga (id),
                    reason TEXT NOT NULL,
                    staff_note TEXT CHECK (length(staff_note) <= 255),
                    refunded BIGINT NOT NULL,
                    fee_kept BIGINT NOT NULL,
                    voided BOOLEAN NOT NULL,
                    units_restocked BIGINT NOT NULL,
                    notify BOOLEAN NOT NULL,
                    cancelled_at TIMESTAMPTZ NOT NULL,
                    fee_saved BIGINT CHECK (fee_saved >= 0),
                    restocking_fee BIGINT CHECK (restocking_fee > 0),
                    refund_to TEXT CHECK (refund_to IN ('store_credit'))
                )
                """,
                """
                CREATE TABLE line_cancellation (
                    saga_id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
                    refunded BIGINT NOT NULL CHECK (refunded >= 0),
                    voided_amount BIGINT NOT NULL CHECK (voided_amount >= 0),
                    units BIGINT NOT NULL CHECK (units > 0),
                    cancellation TEXT NOT NULL,
                    cancelled_at TIMESTAMPTZ NOT NULL
                )
                """,
                "CREATE INDEX line_cancellation_on_order_id ON line_cancellation (order_id)",
                """
                CREATE TABLE order_edit (
                    saga_id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
                    refunded BIGINT NOT NULL CHECK (refunded >= 0),
                    edit TEXT NOT NULL,
                    at TIMESTAMPTZ NOT NULL
                )
                """,
                "CREATE INDEX order_edit_on_order_id ON order_edit (order_id)",
                """
                CREATE TABLE order_refund (
                    saga_id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL REFERENCES orders (id),
                    amount BIGINT NOT NULL CHECK (amount > 0),
                    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 255),
                    "by" TEXT NOT NULL CHECK (length("by") > 0),
                    at TIMESTAMPTZ NOT NULL,
                    refund_to TEXT CHECK (refund_to IN ('store_credit'))
                )
                """,
                "CREATE INDEX order_refund_on_order_id ON order_refund (order_id)",
                """
                CREATE TABLE deleted_order (
                    order_id TEXT PRIMARY KEY,
                    source TEXT NOT NULL CHECK (source IN ('staff', 'api')),
                    idempotency_key TEXT UNIQUE,
                    deleted_by TEXT NOT NULL CHECK (length(deleted_by) > 0),
                    deleted_at TIMESTAMPTZ NOT NULL
                )
                """,
                """
                CREATE TABLE cancel_request (
                    order_id TEXT PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'declined')),
                    note TEXT CHECK (length(note) <= 255),
                    lines TEXT CHECK (lines IS NULL OR lines::jsonb IS NOT NULL),
                    requested_at TIMESTAMPTZ NOT NULL,
                    decided_by TEXT,
                    decided_at TIMESTAMPTZ,
                    decision_note TEXT CHECK (length(decision_note) <= 255),
                    saga_id TEXT,
                    CHECK ((state = 'pending') = (decided_at IS NULL))
                )
                """,
                "CREATE INDEX cancel_request_state ON cancel_request (state, requested_at)",
                """
                CREATE TABLE outbox (
                    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                    order_id TEXT NOT NULL REFERENCES orders (id),
                    kind TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL,
                    delivered_at TIMESTAMPTZ,
                    attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                    next_attempt_at TIMESTAMPTZ,
                    last_error TEXT
                )
                """,
                "CREATE INDEX outbox_pending ON outbox (delivered_at, id)",
            ]),
        Lease.postgresMigration,
        SQLMigration("orders-v16-saga-leases", sagaLeaseColumns(timestamp: "TIMESTAMPTZ")),
    ]

    /// A saga's lease: who drives it, until when, and the fencing token each of its steps commits with (it only
    /// grows: each new holder takes the next).
    static func sagaLeaseColumns(timestamp: String) -> [String] {
        [
            "ALTER TABLE saga ADD COLUMN lease_holder TEXT",
            "ALTER TABLE saga ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0 CHECK (lease_token >= 0)",
            "ALTER TABLE saga ADD COLUMN lease_expires_at \(timestamp)",
        ]
    }
}
