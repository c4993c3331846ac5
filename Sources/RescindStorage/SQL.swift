import Foundation
import GRDB
import RescindWire

/// The SQL a daemon's storage layer speaks, whatever holds the data: SQLite through GRDB (the embedded default) or
/// PostgreSQL through postgres-nio. A daemon's store writes its statements once, with `?` placeholders, in the
/// SQL both run (and PostgreSQL-compatible distributed databases too): no SQLite or PostgreSQL functions, no
/// `INSERT OR ...`, sums cast to `BIGINT`, `TRUE` and `FALSE` for booleans.
public enum SQLDialect: String, Sendable {
    case sqlite, postgres
}

/// A value bound to a statement or read from a row.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)
    case bool(Bool)
    case date(Date)
}

/// A Swift value that is stored as one column.
public protocol SQLValueConvertible: Sendable {
    var sqlValue: SQLValue { get }
    /// The value of a column, or nil when it does not hold one of these.
    init?(sqlValue: SQLValue)
}

/// A statement's arguments, in placeholder order.
public typealias SQLArguments = [any SQLValueConvertible]

/// One transaction of a daemon's database: what its store's operations run in. Synchronous: a transaction is a
/// closure that runs on a thread of the database's own, never on the caller's.
public protocol SQLTransaction {
    var dialect: SQLDialect { get }

    /// Runs one statement; returns how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: SQLArguments) throws -> Int

    /// Runs a query; returns every row.
    func query(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow]

    /// Runs `body` in a savepoint: if it throws, only what it did is rolled back.
    func savepoint<T>(_ body: () throws -> T) throws -> T
}

extension SQLTransaction {
    @discardableResult
    public func execute(_ sql: String) throws -> Int { try execute(sql, []) }

    public func query(_ sql: String) throws -> [SQLRow] { try query(sql, []) }

    /// The first row of a query, if any.
    public func queryOne(_ sql: String, _ arguments: SQLArguments = []) throws -> SQLRow? {
        try query(sql, arguments).first
    }

    /// The first column of the first row of a query, if there is a row and the value is not null.
    public func scalar<T: SQLValueConvertible>(_ type: T.Type, _ sql: String, _ arguments: SQLArguments = []) throws
        -> T?
    {
        guard let row = try queryOne(sql, arguments), let value = row.values.first else { return nil }
        if value == .null { return nil }
        guard let converted = T(sqlValue: value) else {
            throw SQLError.badValue(column: row.columns.names.first ?? "?", value: value, expected: "\(T.self)")
        }
        return converted
    }

    /// ` FOR UPDATE SKIP LOCKED` where the database has several writers (PostgreSQL), nothing in SQLite (one
    /// writer at a time): a claim query takes rows no other replica holds.
    public var forUpdateSkipLocked: String { dialect == .postgres ? " FOR UPDATE SKIP LOCKED" : "" }
}

/// A daemon's database: transactions as closures.
public protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }

    /// Runs `body` in a read-only transaction.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLTransaction) throws -> T) async throws -> T

    /// Runs `body` in a transaction that commits durably before this returns. A transaction the database
    /// refuses for a conflict with another (PostgreSQL's serialization failure, SQLSTATE 40001) runs again.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLTransaction) throws -> T) async throws -> T

    /// Closes the connections.
    func close() async
}

/// Errors of the storage layer itself.
public enum SQLError: Error, CustomStringConvertible, Sendable {
    case noSuchColumn(String)
    case badValue(column: String, value: SQLValue, expected: String)
    /// The database refused the statement; `state` is its SQLSTATE (PostgreSQL) or its result code (SQLite).
    case database(state: String, message: String)

    public var description: String {
        switch self {
        case .noSuchColumn(let name): "no column \(name) in the row"
        case .badValue(let column, let value, let expected): "column \(column) holds \(value), not \(expected)"
        case .database(let state, let message): "database error \(state): \(message)"
        }
    }
}

/// What a storage error means to a caller.
public enum StorageFailure {
    /// Whether `error` came from the database (GRDB's, an `SQLError`, or a PostgreSQL server out of reach) rather
    /// than from what the transaction decided.
    public static func isStorage(_ error: any Error) -> Bool {
        if error is DatabaseError || error is SQLError { return true }
        return (error as? RescindError)?.reason == "database_unavailable"
    }

    /// Whether trying the same transaction again may succeed: SQLite busy or locked, PostgreSQL out of reach.
    public static func isTransient(_ error: any Error) -> Bool {
        if let error = error as? DatabaseError {
            return error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
        }
        return (error as? RescindError)?.reason == "database_unavailable"
    }
}

/// The names of a result's columns, shared by its rows.
public final class SQLColumns: Sendable {
    public let names: [String]
    private let index: [String: Int]

    public init(_ names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        for (position, name) in names.enumerated() where index[name] == nil { index[name] = position }
        self.index = index
    }

    public func position(_ name: String) -> Int? { index[name] }
}

/// One row of a result.
public struct SQLRow: Sendable {
    public let columns: SQLColumns
    public let values: [SQLValue]

    public init(columns: SQLColumns, values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    /// The raw value of a column.
    public func value(_ name: String) throws -> SQLValue {
        guard let position = columns.position(name) else { throw SQLError.noSuchColumn(name) }
        return values[position]
    }

    /// A column's value as `T` (an optional `T` reads null as nil).
    /// - Throws: `SQLError` for a column the row does not have or a value that is not a `T`.
    public subscript<T: SQLValueConvertible>(_ name: String) -> T {
        get throws {
            let value = try value(name)
            guard let converted = T(sqlValue: value) else {
                throw SQLError.badValue(column: name, value: value, expected: "\(T.self)")
            }
            return converted
        }
    }
}

extension String: SQLValueConvertible {
    public var sqlValue: SQLValue { .text(self) }
    public init?(sqlValue: SQLValue) {
        guard case .text(let text) = sqlValue else { return nil }
        self = text
    }
}

extension Int64: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .integer(let value): self = value
        case .bool(let value): self = value ? 1 : 0
        default: return nil
        }
    }
}

extension Int: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(Int64(self)) }
    public init?(sqlValue: SQLValue) {
        guard let value = Int64(sqlValue: sqlValue) else { return nil }
        self = Int(value)
    }
}

extension Double: SQLValueConvertible {
    public var sqlValue: SQLValue { .real(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .real(let value): self = value
        case .integer(let value): self = Double(value)
        default: return nil
        }
    }
}

extension Bool: SQLValueConvertible {
    public var sqlValue: SQLValue { .bool(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .bool(let value): self = value
        case .integer(let value): self = value != 0  // SQLite keeps booleans as integers
        default: return nil
        }
    }
}

extension Data: SQLValueConvertible {
    public var sqlValue: SQLValue { .blob(self) }
    public init?(sqlValue: SQLValue) {
        guard case .blob(let data) = sqlValue else { return nil }
        self = data
    }
}

extension UUID: SQLValueConvertible {
    /// Stored as its text, upper case, as `uuidString` writes it.
    public var sqlValue: SQLValue { .text(uuidString) }
    public init?(sqlValue: SQLValue) {
        guard case .text(let text) = sqlValue, let uuid = UUID(uuidString: text) else { return nil }
        self = uuid
    }
}

extension Date: SQLValueConvertible {
    public var sqlValue: SQLValue { .date(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .date(let date): self = date
        case .text(let text):
            guard let date = SQLiteTime.parse(text) else { return nil }
            self = date
        default: return nil
        }
    }
}

extension Optional: SQLValueConvertible where Wrapped: SQLValueConvertible {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
    public init?(sqlValue: SQLValue) {
        if sqlValue == .null {
            self = .none
        } else if let value = Wrapped(sqlValue: sqlValue) {
            self = .some(value)
        } else {
            return nil
        }
    }
}

extension SQLValue: SQLValueConvertible {
    public var sqlValue: SQLValue { self }
    public init?(sqlValue: SQLValue) { self = sqlValue }
}

extension RawRepresentable where RawValue == String, Self: SQLValueConvertible {
    public var sqlValue: SQLValue { .text(rawValue) }
    public init?(sqlValue: SQLValue) {
        guard case .text(let text) = sqlValue else { return nil }
        self.init(rawValue: text)
    }
}

/// Times as SQLite keeps them: UTC text, `YYYY-MM-DD HH:MM:SS.SSS` (as GRDB writes a `Date`), which sorts as the
/// times do.
/// Read here rather than with GRDB's `Date.fromDatabaseValue`, whose result can differ from the written time in
/// the last bit: this one gives exactly the millisecond, as `PostgresDatabase` does, so a record reads back equal
/// on both backends (`SQLStorageTests`).
public enum SQLiteTime {
    /// A time SQLite keeps (`YYYY-MM-DD HH:MM:SS`, fractions of a second optional, `T` for the space allowed).
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: " ") || bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"),
            bytes[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        // Milliseconds, as they are written; finer digits are dropped.
        var millis: Int64 = 0
        if bytes.count > 20, bytes[19] == UInt8(ascii: ".") {
            var scale: Int64 = 100
            for index in 20..<min(bytes.count, 23) {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { break }
                millis += Int64(digit) * scale
                scale /= 10
            }
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        let total = (days * 86_400 + hour * 3_600 + minute * 60 + second) * 1000 + millis
        return Date(timeIntervalSince1970: Double(total) / 1000)
    }

    // Howard Hinnant's days-from-civil: exact for the proleptic Gregorian calendar, no Calendar needed.
    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
