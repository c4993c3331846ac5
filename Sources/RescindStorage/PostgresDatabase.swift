import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import RescindWire
import Synchronization

/// A daemon's database in PostgreSQL (or a database that speaks its protocol and SQL), through postgres-nio.
///
/// A transaction is a synchronous closure, as on SQLite: it runs on a thread of this database's own pool, holding
/// one connection, and each statement waits for its answer there (never on an event loop or the caller's task).
/// Writes run `SERIALIZABLE`; one the server refuses for a conflict with another transaction (SQLSTATE 40001,
/// or a deadlock, 40P01) runs again from the start, after a short random pause, so that a store can move to a
/// distributed database where such refusals are routine. A connection that breaks (the server restarted) is
/// opened again for the next transaction.
public final class PostgresDatabase: SQLDatabase {
    /// Where the database is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    public struct Location: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String?
        public var database: String

        public init(host: String, port: Int = 5432, user: String, password: String? = nil, database: String) {
            self.host = host
            self.port = port
            self.user = user
            self.password = password
            self.database = database
        }

        /// Reads `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (`postgresql://` too).
        /// - Throws: `SQLError` naming what is missing.
        public init(url text: String) throws {
            guard let url = URL(string: text), ["postgres", "postgresql"].contains(url.scheme ?? ""),
                let host = url.host, !host.isEmpty, let user = url.user, !user.isEmpty
            else {
                throw SQLError.database(
                    state: "url",
                    message: "\(Self.redacted(text)) is not postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
            }
            let database = url.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            guard !database.isEmpty else {
                throw SQLError.database(state: "url", message: "\(Self.redacted(text)) names no database")
            }
            self.init(
                host: host, port: url.port ?? 5432, user: user, password: url.password?.removingPercentEncoding,
                database: database)
        }

        /// The same server, another database.
        public func database(_ name: String) -> Location {
            var copy = self
            copy.database = name
            return copy
        }

        /// The URL, without the password.
        public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }

        /// The URL with its password, for a configuration file.
        public var url: String {
            let secret = password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0) }
            return "postgres://\(user)\(secret ?? "")@\(host):\(port)/\(database)"
        }

        private static func redacted(_ text: String) -> String {
            guard var components = URLComponents(string: text), components.password != nil else { return text }
            components.password = "***"
            return components.string ?? "the URL"
        }
    }

    public let location: Location
    public var dialect: SQLDialect { .postgres }
    private let threads: NIOThreadPool
    /// The open connections no transaction holds (at most one per pool thread).
    private let idle = Mutex<[PostgresConnection]>([])
    private let logger: Logger
    /// How many times a transaction runs before its conflict is reported.
    private let maxAttempts = 30

    /// Opens a pool of `connections` connections to `location` (each opened when first needed).
    public init(_ location: Location, connections: Int = 8, logger: Logger) {
        self.location = location
        self.logger = logger
        let count = max(connections, 1)
        threads = NIOThreadPool(numberOfThreads: count)
        threads.start()
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLTransaction) throws -> T) async throws -> T {
        try await run(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any SQLTransaction) throws -> T) async throws -> T {
        try await run(begin: "BEGIN ISOLATION LEVEL SERIALIZABLE", body)
    }

    deinit {
        // Closed without `close()` (a test's database going away): each connection is kept until it is closed.
        for connection in idle.withLock({ $0 }) {
            let closing: EventLoopFuture<Void> = connection.close()
            closing.whenComplete { _ in withExtendedLifetime(connection) {} }
        }
        threads.shutdownGracefully { _ in }
    }

    /// Runs one statement outside a transaction (`CREATE DATABASE`, say), on a connection of its own.
    /// - Throws: `SQLError`.
    public func runAlone(_ statement: String) async throws {
        try await threads.runIfActive(eventLoop: MultiThreadedEventLoopGroup.singleton.any()) { [self] in
            let connection = try connect()
            defer { Self.close(connection) }
            do {
                try PostgresTransaction(connection: connection, logger: logger).run(statement)
            } catch {
                throw Self.translate(error)
            }
        }.get()
    }

    public func close() async {
        let open = idle.withLock { list in
            defer { list = [] }
            return list
        }
        for connection in open { try? await connection.close() }
        try? await threads.shutdownGracefully()
    }

    /// Runs `body` in a transaction on a pool thread, again after a conflict.
    private func run<T: Sendable>(begin: String, _ body: @escaping @Sendable (any SQLTransaction) throws -> T)
        async throws -> T
    {
        try await threads.runIfActive(eventLoop: MultiThreadedEventLoopGroup.singleton.any()) { [self] in
            let connection = try openIdleConnection() ?? connect()
            var attempt = 1
            while true {
                let transaction = PostgresTransaction(connection: connection, logger: logger)
                do {
                    try transaction.run(begin)
                    let result = try body(transaction)
                    try transaction.run("COMMIT")
                    idle.withLock { $0.append(connection) }
                    return result
                } catch let error where Self.isConflict(error) && attempt < maxAttempts {
                    try? transaction.run("ROLLBACK")
                    attempt += 1
                    // A random pause, growing with the attempts, so that the transactions that met part ways.
                    Thread.sleep(forTimeInterval: Double.random(in: 0...0.002) * Double(min(attempt, 10)))
                } catch {
                    // A connection the server closed (it restarted) is dropped; the next transaction opens another.
                    if !connection.isClosed, (try? transaction.run("ROLLBACK")) != nil {
                        idle.withLock { $0.append(connection) }
                    } else {
                        Self.close(connection)
                    }
                    throw Self.translate(error)
                }
            }
        }.get()
    }

    /// An idle connection still open; those the server closed meanwhile (it restarted) are let go.
    private func openIdleConnection() -> PostgresConnection? {
        while let connection = idle.withLock({ $0.popLast() }) {
            if !connection.isClosed { return connection }
            Self.close(connection)
        }
        return nil
    }

    /// Closes a connection and waits until it is (postgres-nio wants every connection closed before it goes).
    private static func close(_ connection: PostgresConnection) {
        let closing: EventLoopFuture<Void> = connection.close()
        try? closing.wait()
    }

    private func connect() throws -> PostgresConnection {
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: .disable)
        configuration.options.connectTimeout = .seconds(5)
        do {
            return try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
                id: Int.random(in: 0..<Int.max), logger: logger
            ).wait()
        } catch {
            throw Self.translate(error)
        }
    }

    private static func isConflict(_ error: any Error) -> Bool {
        guard let state = (error as? PSQLError)?.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }

    /// The server's refusal as an `SQLError` with its SQLSTATE; what a caller should retry (the server out of
    /// reach or restarting, a conflict that outlasted the retries) as `unavailable/database_unavailable`.
    static func translate(_ error: any Error) -> any Error {
        guard let error = error as? PSQLError else { return error }
        guard let state = error.serverInfo?[.sqlState] else {
            return RescindError(
                .unavailable, "the database cannot be reached (\(error.code)); try again",
                reason: "database_unavailable",
                retryable: true)
        }
        let message = error.serverInfo?[.message] ?? "\(error)"
        if state.hasPrefix("08") || ["40001", "40P01", "57P01", "57P02", "57P03"].contains(state) {
            return RescindError(
                .unavailable, "the database did not take the transaction (\(state): \(message)); try again",
                reason: "database_unavailable", retryable: true)
        }
        return SQLError.database(state: state, message: message)
    }
}

/// A transaction on one PostgreSQL connection, each statement awaited on the pool thread that runs it.
struct PostgresTransaction: SQLTransaction {
    let connection: PostgresConnection
    let logger: Logger
    private let savepoints = Counter()

    init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    var dialect: SQLDialect { .postgres }

    func run(_ sql: String) throws {
        _ = try answer(connection.query(PostgresQuery(unsafeSQL: sql), logger: logger), sql)
    }

    @discardableResult
    func execute(_ sql: String, _ arguments: SQLArguments) throws -> Int {
        try answer(connection.query(Self.query(sql, arguments), logger: logger), sql).metadata.rows ?? 0
    }

    /// How long a statement's answer is waited for at most: the daemons' statements take milliseconds.
    static let statementLimit = TimeAmount.seconds(5)

    /// Waits for a statement's answer, at most `statementLimit`: a server that stops answering (a link gone silent,
    /// a lock that is not let go) costs the transaction, which the caller tries again, not the pool's thread for
    /// good; the connection is closed, and with it the transaction on the server.
    private func answer<T: Sendable>(_ future: EventLoopFuture<T>, _ sql: String) throws -> T {
        let promise = future.eventLoop.makePromise(of: T.self)
        future.cascade(to: promise)
        let (connection, logger) = (self.connection, self.logger)
        let timer = future.eventLoop.scheduleTask(in: Self.statementLimit) {
            logger.warning(
                "the database did not answer a statement in time; its connection is closed",
                metadata: ["statement": "\(sql.prefix(80))"])
            promise.fail(
                RescindError(
                    .unavailable, "the database did not answer within 5 s; try again", reason: "database_unavailable",
                    retryable: true))
            let closing: EventLoopFuture<Void> = connection.close()
            closing.whenComplete { _ in }
        }
        defer { timer.cancel() }
        return try promise.futureResult.wait()
    }

    func query(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow] {
        let result = try answer(connection.query(Self.query(sql, arguments), logger: logger), sql)
        guard let first = result.rows.first else { return [] }
        let columns = SQLColumns(first.map(\.columnName))
        return try result.rows.map { row in
            SQLRow(columns: columns, values: try row.map(Self.value))
        }
    }

    func savepoint<T>(_ body: () throws -> T) throws -> T {
        let name = "s\(savepoints.next())"
        try run("SAVEPOINT \(name)")
        do {
            let result = try body()
            try run("RELEASE SAVEPOINT \(name)")
            return result
        } catch {
            try run("ROLLBACK TO SAVEPOINT \(name)")
            throw error
        }
    }

    /// `sql` with its `?` placeholders numbered as PostgreSQL wants them (`$1`, `$2`, ...), outside quotes.
    static func numbered(_ sql: String) -> String {
        var result = ""
        result.reserveCapacity(sql.utf8.count + 8)
        var number = 0
        var quote: Character?
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                result.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                result.append(character)
            } else if character == "?" {
                number += 1
                result += "$\(number)"
            } else {
                result.append(character)
            }
        }
        return result
    }

    private static func query(_ sql: String, _ arguments: SQLArguments) throws -> PostgresQuery {
        var binds = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument.sqlValue {
            case .null: binds.appendNull()
            case .integer(let value): binds.append(value)
            case .real(let value): binds.append(value)
            case .text(let value): binds.append(value)
            case .blob(let value): try binds.append(value)
            case .bool(let value): binds.append(value)
            case .date(let value): binds.append(Self.milliseconds(value))
            }
        }
        return PostgresQuery(unsafeSQL: numbered(sql), binds: binds)
    }

    /// A time to the millisecond, as SQLite keeps times: the same value is read back on either backend.
    private static func milliseconds(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
    }

    private static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .numeric:
            let text = try cell.decode(String.self)
            if let integer = Int64(text) { return .integer(integer) }
            return .real(Double(text) ?? 0)
        case .bool: return .bool(try cell.decode(Bool.self))
        case .bytea: return .blob(try cell.decode(Data.self))
        case .timestamptz, .timestamp: return .date(milliseconds(try cell.decode(Date.self)))
        default: return .text(try cell.decode(String.self))
        }
    }
}

/// Names a transaction's savepoints.
private final class Counter: @unchecked Sendable {
    // Used by one transaction on one thread at a time.
    private var value = 0

    func next() -> Int {
        value += 1
        return value
    }
}
