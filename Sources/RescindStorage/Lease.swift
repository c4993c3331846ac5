import Foundation
import GRDB
import Logging
import RescindWire
import ServiceLifecycle
import Synchronization

/// A named lease in a daemon's database: of the replicas sharing that database, one at a time holds it and does
/// the work it names (the outbox relay, the capture scheduler, a sweep). The holder renews it well before it
/// runs out; a holder that dies stops renewing, and another replica takes it once it has run out.
///
/// Each take by a new holder draws a greater token: the fencing token. Work done under a lease commits only if
/// the lease still has the token it was taken with (`Held.check` in the commit's transaction), so a replica that
/// lost its lease (paused, cut off, slow) cannot record what the new holder may be doing too. Safety rests on
/// the token alone; the clocks of the replicas only decide how soon a dead holder's lease is taken.
public struct Lease: Sendable {
    public let name: String
    /// Who asks: this process.
    public let holder: LeaseHolder
    public let duration: Duration

    public init(_ name: String, holder: LeaseHolder, duration: Duration) {
        self.name = name
        self.holder = holder
        self.duration = duration
    }

    /// The lease as taken: its token, and until when it runs.
    public struct Held: Sendable, Hashable {
        public let name: String
        public let holder: String
        public let token: Int64
        public let expiresAt: Date

        /// Fails the transaction `tx` unless the lease still has this token: the fence a holder's commit passes.
        /// - Throws: `LeaseLost`.
        public func check(_ tx: any SQLTransaction) throws {
            let held = try tx.scalar(
                Int64.self, "SELECT COUNT(*) FROM lease WHERE name = ? AND token = ? AND holder = ?",
                [name, token, holder])
            guard held == 1 else { throw LeaseLost(name: name, token: token) }
        }
    }

    /// Takes the lease if nobody holds it or its holder let it run out, or renews it if `holder` holds it.
    /// Returns it as held, or nil while another holder's lease runs.
    /// The lease of this replica's previous run (it stopped without letting go: a crash) is taken at once too.
    public func acquire(in database: any SQLDatabase, now: Date = Date()) async throws -> Held? {
        let (name, holder, predecessors) = (self.name, self.holder.description, self.holder.predecessors)
        let until = now.addingTimeInterval(duration.seconds)
        let token = try await database.write { tx in
            try tx.scalar(
                Int64.self,
                """
                INSERT INTO lease (name, holder, token, expires_at) VALUES (?, ?, 1, ?)
                ON CONFLICT (name) DO UPDATE SET
                    token = CASE WHEN lease.holder = excluded.holder THEN lease.token ELSE lease.token + 1 END,
                    holder = excluded.holder, expires_at = excluded.expires_at
                WHERE lease.holder = excluded.holder OR lease.expires_at < ?
                    OR substr(lease.holder, 1, length(?)) = ?
                RETURNING token
                """, [name, holder, until, now, predecessors, predecessors])
        }
        return token.map { Held(name: name, holder: holder, token: $0, expiresAt: until) }
    }

    /// Lets the lease go at once (a graceful stop), so that another replica need not wait for it to run out.
    public func release(in database: any SQLDatabase) async throws {
        let (name, holder) = (self.name, self.holder.description)
        _ = try await database.write { tx in
            try tx.execute(
                "UPDATE lease SET expires_at = ? WHERE name = ? AND holder = ?",
                [Date(timeIntervalSince1970: 0), name, holder])
        }
    }

    /// The name of the migration that makes the table of leases, in both backends.
    public static let migrationName = "leases"

    /// Adds the table of leases to a daemon's SQLite migrator.
    public static func registerMigration(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(migrationName) { db in
            for statement in statements(timestamp: "DATETIME") { try db.execute(sql: statement) }
        }
    }

    /// The migration that makes the table of leases in PostgreSQL.
    public static var postgresMigration: SQLMigration {
        SQLMigration(migrationName, statements(timestamp: "TIMESTAMPTZ"))
    }

    private static func statements(timestamp: String) -> [String] {
        [
            """
            CREATE TABLE lease (
                name TEXT PRIMARY KEY CHECK (length(name) > 0),
                holder TEXT NOT NULL CHECK (length(holder) > 0),
                token BIGINT NOT NULL CHECK (token >= 1),
                expires_at \(timestamp) NOT NULL
            )
            """
        ]
    }
}

/// A holder of leases: a replica (its name stays across restarts: a host and port, or a name of the operator's)
/// in one run of its process (a random part). A replica that starts again takes what its previous run held at
/// once, instead of waiting for those leases to run out: that run is over (two runs of one replica at once
/// would be a mistake of the deployment, and the tokens still keep them from both committing).
public struct LeaseHolder: Sendable, Hashable, CustomStringConvertible {
    public let replica: String
    public let run: String

    /// - Precondition: `replica` is not empty and has no `/`.
    public init(replica: String, run: String = LeaseHolder.randomRun()) {
        precondition(!replica.isEmpty && !replica.contains("/"), "a replica's name is not empty and has no /")
        self.replica = replica
        self.run = run
    }

    /// `REPLICA/RUN`, as the database keeps it.
    public var description: String { "\(replica)/\(run)" }

    /// What the holder of every earlier run of this replica starts with.
    public var predecessors: String { "\(replica)/" }

    /// This process, when nothing names its replica (in-process tests, tools): its host and process id.
    public static let process = LeaseHolder(replica: "\(ProcessInfo.processInfo.hostName):\(getpid())")

    public static func randomRun() -> String { UUID().uuidString.prefix(8).lowercased() }
}

/// Work under a lease that is no longer held with its token: another replica took it. What the work was about to
/// record is rolled back; the new holder does it.
public struct LeaseLost: Error, CustomStringConvertible, Sendable {
    public var name: String
    public var token: Int64

    public init(name: String, token: Int64) {
        self.name = name
        self.token = token
    }

    public var description: String {
        "the lease \(name) is no longer held with token \(token): another replica took it"
    }
}

/// Keeps a lease for a loop that works in passes: `current()` answers the lease as held, renewing it (one write)
/// only once a third of its time has gone, and nil while another replica holds it.
public final class LeaseKeeper: Sendable {
    public let lease: Lease
    private let database: any SQLDatabase
    private let held = Mutex<Lease.Held?>(nil)

    public init(_ lease: Lease, database: any SQLDatabase) {
        self.lease = lease
        self.database = database
    }

    public func current(now: Date = Date()) async throws -> Lease.Held? {
        if let held = held.withLock({ $0 }),
            now < held.expiresAt.addingTimeInterval(-lease.duration.seconds * 2 / 3)
        {
            return held
        }
        let taken = try await lease.acquire(in: database, now: now)
        held.withLock { $0 = taken }
        return taken
    }

    /// Lets the lease go (a graceful stop); the next `current()` takes it again.
    public func release() async {
        let wasHeld = held.withLock { held in
            defer { held = nil }
            return held != nil
        }
        if wasHeld { try? await lease.release(in: database) }
    }
}

extension LeaseKeeper {
    /// Runs `pass` every `interval` while this replica holds the lease (and waits while another does), until
    /// graceful shutdown or cancellation; then lets the lease go. A pass that throws is logged as `failure` and
    /// tried again after `interval`, doubled after each failure in a row up to `maxBackoff`.
    public func runPasses(
        every interval: Duration, maxBackoff: Duration? = nil, logger: Logger, failure: String,
        _ pass: @Sendable (Lease.Held) async throws -> Void
    ) async {
        var wait = interval
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                if let held = try await current() { try await pass(held) }
                wait = interval
            } catch {
                logger.error("\(failure); will retry", metadata: ["error": "\(error)", "lease": "\(lease.name)"])
                wait = min(wait * 2, maxBackoff ?? interval)
            }
            let pause = wait
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            } catch {
                break
            }
        }
        await release()
    }
}
