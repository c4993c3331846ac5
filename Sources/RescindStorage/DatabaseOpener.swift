import GRDB

/// Opens a daemon's SQLite database the way every Rescind daemon needs it.
public enum DatabaseOpener {
    /// Opens (creating if needed) a WAL database at `path`, applies the migrations and forgets idempotency
    /// keys older than their retention.
    ///
    /// `synchronous = FULL`: every commit is fsynced before the write returns, so an answer a daemon has
    /// sent survives a power cut. Foreign keys are enforced (GRDB's default).
    /// - Throws: GRDB's `DatabaseError` if the file cannot be opened or a migration fails.
    public static func open(path: String, migrator: DatabaseMigrator) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try migrator.migrate(pool)
        try pool.write { db in
            if try db.tableExists("idempotency_key") { try IdempotencyStore.purge(db) }
        }
        return pool
    }
}
