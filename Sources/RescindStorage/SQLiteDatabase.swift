import Foundation
import GRDB

/// A daemon's database in a SQLite file (the embedded default): WAL, `synchronous = FULL`, every write through a
/// `GroupCommitWriter` (many transactions in one durable commit), reads from GRDB's pool. Every statement is
/// prepared once per connection.
public final class SQLiteDatabase: SQLDatabase {
    public let pool: DatabasePool
    public let writer: GroupCommitWriter
    public var dialect: SQLDialect { .sqlite }

    /// Opens (creating if needed) the database at `path` and applies `migrator` (see `DatabaseOpener`).
    /// `synchronous`: `FULL` (every commit synced: a daemon's own data) or `NORMAL` (synced at checkpoints: the
    /// simulated processor's, which only has to survive a crash of the process).
    /// - Throws: GRDB's `DatabaseError` if the file cannot be opened or a migration fails.
    public init(path: String, migrator: DatabaseMigrator, synchronous: String = "FULL") throws {
        pool = try DatabaseOpener.open(path: path, migrator: migrator, synchronous: synchronous)
        writer = GroupCommitWriter(pool: pool)
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLTransaction) throws -> T) async throws -> T {
        try await pool.read { db in try body(SQLiteTransaction(db)) }
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any SQLTransaction) throws -> T) async throws -> T {
        try await writer.write { db in try body(SQLiteTransaction(db)) }
    }

    public func close() async { try? pool.close() }
}

/// A transaction on a SQLite connection.
public struct SQLiteTransaction: SQLTransaction {
    public let db: Database
    public var dialect: SQLDialect { .sqlite }

    public init(_ db: Database) { self.db = db }

    @discardableResult
    public func execute(_ sql: String, _ arguments: SQLArguments) throws -> Int {
        let statement = try db.cachedStatement(sql: sql)
        try statement.setArguments(Self.arguments(arguments))
        try statement.execute()
        return db.changesCount
    }

    public func query(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow] {
        let statement = try db.cachedStatement(sql: sql)
        try statement.setArguments(Self.arguments(arguments))
        let columns = SQLColumns(statement.columnNames)
        var rows: [SQLRow] = []
        let cursor = try Row.fetchCursor(statement)
        while let row = try cursor.next() {
            var values: [SQLValue] = []
            values.reserveCapacity(row.count)
            for index in 0..<row.count {
                let value: SQLValue =
                    switch (row[index] as DatabaseValue).storage {
                    case .null: .null
                    case .int64(let value): .integer(value)
                    case .double(let value): .real(value)
                    case .string(let value): .text(value)
                    case .blob(let value): .blob(value)
                    }
                values.append(value)
            }
            rows.append(SQLRow(columns: columns, values: values))
        }
        return rows
    }

    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        try db.inSavepoint {
            result = try body()
            return .commit
        }
        guard let result else { throw SQLError.database(state: "savepoint", message: "the savepoint gave no result") }
        return result
    }

    private static func arguments(_ values: SQLArguments) -> StatementArguments {
        StatementArguments(
            values.map { value -> DatabaseValue in
                switch value.sqlValue {
                case .null: .null
                case .integer(let value): value.databaseValue
                case .real(let value): value.databaseValue
                case .text(let value): value.databaseValue
                case .blob(let value): value.databaseValue
                case .bool(let value): value.databaseValue
                case .date(let value): value.databaseValue  // GRDB's text, as every SQLite time here is kept
                }
            })
    }
}
