import Foundation
import GRDB
import Synchronization

/// Opens a daemon's SQLite database the way every Rescind daemon needs it.
public enum DatabaseOpener {
    /// Opens (creating if needed) a WAL database at `path`, applies the migrations and forgets idempotency
    /// keys older than their retention.
    ///
    /// `synchronous = FULL`: every commit is fsynced before the write returns, so an answer a daemon has
    /// sent survives a power cut. Foreign keys are enforced (GRDB's default).
    /// - Throws: GRDB's `DatabaseError` if the file cannot be opened or a migration fails.
    public static func open(path: String, migrator: DatabaseMigrator, synchronous: String = "FULL") throws
        -> DatabasePool
    {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let statements = StatementLog.fromEnvironment(database: path)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            if let statements { db.trace(options: .statement) { statements.record($0) } }
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try migrator.migrate(pool)
        try pool.write { db in
            if try db.tableExists("idempotency_key") { try IdempotencyStore.purge(SQLiteTransaction(db)) }
        }
        return pool
    }
}

/// With `RESCIND_SQL_STATEMENTS=DIR`, every distinct SQL statement a daemon runs is written once to
/// DIR/NAME.sql (NAME: the database file's name), one per line: what `Benchmarks/query_plans.py` runs
/// `EXPLAIN QUERY PLAN` on after a benchmark, to show that no hot query scans a table. Off by default.
final class StatementLog: Sendable {
    private let seen = Mutex<Set<String>>([])
    private let file: FileHandle

    private init(file: FileHandle) { self.file = file }

    static func fromEnvironment(database path: String) -> StatementLog? {
        guard let directory = ProcessInfo.processInfo.environment["RESCIND_SQL_STATEMENTS"], !directory.isEmpty
        else { return nil }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let url = URL(fileURLWithPath: directory).appendingPathComponent("\(name).sql")
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        guard let file = try? FileHandle(forWritingTo: url) else { return nil }
        _ = try? file.seekToEnd()
        return StatementLog(file: file)
    }

    func record(_ event: Database.TraceEvent) {
        guard case .statement(let statement) = event else { return }
        let sql = statement.sql.split(whereSeparator: \.isNewline).joined(separator: " ")
        let isNew = seen.withLock { $0.insert(sql).inserted }
        if isNew { file.write(Data((sql + "\n").utf8)) }
    }
}
