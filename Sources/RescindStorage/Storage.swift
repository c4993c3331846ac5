import Foundation
import GRDB
import Logging

/// Where a daemon keeps its data: a SQLite file (the embedded default) or a PostgreSQL database shared by its
/// replicas.
public enum StorageLocation: Sendable, Hashable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(PostgresDatabase.Location)

    public var description: String {
        switch self {
        case .sqlite(let path): path
        case .postgres(let location): location.description
        }
    }
}

/// The schema of a daemon's database, for each backend. Both lists only grow, and say the same: each table's
/// columns, CHECKs, keys and unique indexes. SQLite's keeps its history (GRDB's migrator, as stores have run it);
/// PostgreSQL's starts from the schema of the release that brought PostgreSQL.
public struct Schema: Sendable {
    public var sqlite: DatabaseMigrator
    public var postgres: [SQLMigration]

    public init(sqlite: DatabaseMigrator, postgres: [SQLMigration]) {
        self.sqlite = sqlite
        self.postgres = postgres
    }

    /// Opens the database at `location` and brings its schema up to date.
    /// - Throws: `SQLError` or GRDB's `DatabaseError` if it cannot be reached or a migration fails.
    public func open(_ location: StorageLocation, connections: Int = 8, logger: Logger) async throws
        -> any SQLDatabase
    {
        switch location {
        case .sqlite(let path):
            return try SQLiteDatabase(path: path, migrator: sqlite)
        case .postgres(let place):
            let database = PostgresDatabase(place, connections: connections, logger: logger)
            do {
                try await database.migrate(postgres)
                if postgres.contains(where: { $0.name == IdempotencyStore.migrationName }) {
                    _ = try await database.write { tx in try IdempotencyStore.purge(tx) }
                }
            } catch {
                await database.close()
                throw error
            }
            return database
        }
    }
}

/// One step of a PostgreSQL schema: its statements, run in one transaction with the record that it ran.
public struct SQLMigration: Sendable {
    public var name: String
    public var statements: [String]

    public init(_ name: String, _ statements: [String]) {
        self.name = name
        self.statements = statements
    }
}

extension PostgresDatabase {
    /// Runs the migrations not run yet, in order, each in a transaction with its row in `rescind_migration`. Two
    /// replicas starting at once: one runs each migration; the other waits on that row, then finds it run.
    /// - Throws: `SQLError` if a migration fails (it leaves nothing behind).
    public func migrate(_ migrations: [SQLMigration]) async throws {
        try await createMigrationTable()
        for migration in migrations {
            do {
                try await write { tx in
                    let done = try tx.scalar(
                        Int64.self, "SELECT COUNT(*) FROM rescind_migration WHERE name = ?", [migration.name])
                    guard done == 0 else { return }
                    try tx.execute(
                        "INSERT INTO rescind_migration (name, applied_at) VALUES (?, ?)", [migration.name, Date()])
                    for statement in migration.statements { try tx.execute(statement) }
                }
            } catch SQLError.database(let state, _) where state == "23505" {
                continue  // another replica ran it meanwhile
            }
        }
    }

    private func createMigrationTable() async throws {
        do {
            _ = try await write { tx in
                try tx.execute(
                    "CREATE TABLE IF NOT EXISTS rescind_migration (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
            }
        } catch SQLError.database(let state, _) where state == "23505" || state == "42P07" {
            // Created by another replica at the same moment.
        }
    }
}
