import Crypto
import Foundation
import GRDB
import RescindCBOR
import RescindWire

/// Stores the first answer to each idempotency key and returns it again for a repeat, failures included,
/// in the same transaction as the effect, so a crash can never separate the two.
///
/// Retryable failures (`unavailable`, `deadline_exceeded`) are not stored: the same key may try again.
/// The same key with another method or other parameters is a `conflict`.
public enum IdempotencyStore {
    /// How long keys are kept.
    public static let defaultRetention: TimeInterval = 7 * 24 * 3600

    /// The name of the migration that makes the table, in both backends.
    public static let migrationName = "idempotency-keys"

    /// Adds the table of keys to a migrator. Call once, in the daemon's migrator.
    public static func registerMigration(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(migrationName) { db in
            try db.create(table: "idempotency_key") { t in
                t.primaryKey("key", .text)
                t.column("method", .text).notNull()
                // SHA-256 of the request body: enough to tell a repeat from a reuse, and never a card number.
                t.column("fingerprint", .blob).notNull()
                t.column("outcome", .text).notNull().check(sql: "outcome IN ('success', 'failure')")
                t.column("response", .blob).notNull()
                t.column("created_at", .datetime).notNull().indexed()
            }
        }
    }

    /// The migration that makes the table of keys in PostgreSQL, first in every daemon's PostgreSQL schema.
    public static var postgresMigration: SQLMigration { SQLMigration(migrationName, postgresStatements) }

    /// The table of keys in PostgreSQL: the same columns and CHECK as in SQLite.
    static let postgresStatements = [
        """
        CREATE TABLE idempotency_key (
            key TEXT PRIMARY KEY,
            method TEXT NOT NULL,
            fingerprint BYTEA NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
            response BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )
        """,
        "CREATE INDEX idempotency_key_on_created_at ON idempotency_key (created_at)",
    ]

    /// Runs `body` at most once per key, inside `tx`'s transaction.
    ///
    /// Returns a `Result` instead of throwing a stored failure, so the caller's transaction still commits
    /// the record of that failure; call `get()` on it after the transaction.
    /// - Throws: errors of the database itself, which roll everything back.
    public static func perform<Response: Codable>(
        _ tx: any SQLTransaction,
        key: String,
        method: String,
        request: [UInt8],
        body: () throws -> Response
    ) throws -> Result<Response, RescindError> {
        let codec = WireCodec()
        if let row = try tx.queryOne(
            "SELECT method, fingerprint, outcome, response FROM idempotency_key WHERE key = ?", [key])
        {
            let storedMethod: String = try row["method"]
            let storedFingerprint: Data = try row["fingerprint"]
            guard storedMethod == method, storedFingerprint == fingerprint(request) else {
                return .failure(
                    .conflict(
                        "idempotency key \(key) was first used for another request",
                        reason: "idempotency_key_reused"
                    )
                )
            }
            let response: Data = try row["response"]
            let outcome: String = try row["outcome"]
            if outcome == "success" {
                return .success(try codec.decoder.decode(Response.self, from: response))
            }
            return .failure(try codec.decoder.decode(RescindError.self, from: response))
        }
        let result: Result<Response, RescindError>
        do {
            result = .success(try tx.savepoint(body))
        } catch let error as RescindError where !error.retryable {
            result = .failure(error)
        }
        let (outcome, response): (String, [UInt8]) =
            switch result {
            case .success(let value): ("success", try codec.encoder.encode(value))
            case .failure(let error): ("failure", try codec.encoder.encode(error))
            }
        try tx.execute(
            """
            INSERT INTO idempotency_key (key, method, fingerprint, outcome, response, created_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            [key, method, fingerprint(request), outcome, Data(response), Date()]
        )
        return result
    }

    /// As `perform(_:key:method:request:body:)`, in a GRDB transaction.
    public static func perform<Response: Codable>(
        _ db: Database,
        key: String,
        method: String,
        request: [UInt8],
        body: (Database) throws -> Response
    ) throws -> Result<Response, RescindError> {
        try perform(SQLiteTransaction(db), key: key, method: method, request: request) { try body(db) }
    }

    /// The SHA-256 digest of a request body.
    public static func fingerprint(_ request: [UInt8]) -> Data {
        Data(SHA256.hash(data: request))
    }

    /// Deletes keys older than the retention period; returns how many.
    /// - Throws: database errors.
    @discardableResult
    public static func purge(_ tx: any SQLTransaction, olderThan retention: TimeInterval = defaultRetention) throws
        -> Int
    {
        try tx.execute("DELETE FROM idempotency_key WHERE created_at < ?", [Date().addingTimeInterval(-retention)])
    }
}

extension SQLDatabase {
    /// Performs an effect at most once per idempotency key (see `IdempotencyStore.perform`), in a transaction
    /// that is durable before this answers. Without a key the effect simply runs.
    /// - Throws: `RescindError` (the first answer's failure, replayed) or database errors.
    public func idempotentWrite<Response: Codable & Sendable>(
        key: String?,
        method: String,
        request: [UInt8],
        body: @escaping @Sendable (any SQLTransaction) throws -> Response
    ) async throws -> Response {
        guard let key else {
            return try await write { tx in try body(tx) }
        }
        let result = try await write { tx in
            try IdempotencyStore.perform(tx, key: key, method: method, request: request) { try body(tx) }
        }
        return try result.get()
    }
}

extension GroupCommitWriter {
    /// Performs an effect at most once per idempotency key (see `IdempotencyStore.perform`), in the next
    /// shared transaction; answered once that transaction is durable. Without a key the effect simply runs.
    /// - Throws: `RescindError` (the first answer's failure, replayed) or database errors.
    public func idempotentWrite<Response: Codable & Sendable>(
        key: String?,
        method: String,
        request: [UInt8],
        body: @escaping @Sendable (Database) throws -> Response
    ) async throws -> Response {
        guard let key else {
            return try await write { db in try body(db) }
        }
        let result = try await write { db in
            try IdempotencyStore.perform(db, key: key, method: method, request: request, body: body)
        }
        return try result.get()
    }
}
