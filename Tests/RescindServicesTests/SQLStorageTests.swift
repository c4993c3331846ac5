import Foundation
import GRDB
import Logging
import RescindStorage
import RescindTestSupport
import Testing

/// A record of every kind of column the daemons keep.
private struct Sample: SQLRecord, Equatable {
    enum Kind: String, Codable { case first, second }

    static let table = "sample"
    static let primaryKey = ["id"]

    var id: String
    var count: Int64
    var active: Bool
    var at: Date
    var note: String?
    var kind: Kind
    var digest: Data

    enum CodingKeys: String, CodingKey {
        case id, count, active, at, note, kind, digest
    }
}

/// The storage layer on both backends: records written and read back as they were, statements with quoted
/// question marks, conflicts of two transactions on PostgreSQL run again.
@Suite(.timeLimit(.minutes(2))) struct SQLStorageTests {
    private func database(_ backend: Backend) async throws -> any SQLDatabase {
        var sqlite = DatabaseMigrator()
        sqlite.registerMigration("sample") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sample (id TEXT PRIMARY KEY, count INTEGER NOT NULL, active BOOLEAN NOT NULL,
                        at DATETIME NOT NULL, note TEXT, kind TEXT NOT NULL, digest BLOB NOT NULL)
                    """)
        }
        Lease.registerMigration(in: &sqlite)
        let postgres = [
            SQLMigration(
                "sample",
                [
                    """
                    CREATE TABLE sample (id TEXT PRIMARY KEY, count BIGINT NOT NULL, active BOOLEAN NOT NULL,
                        at TIMESTAMPTZ NOT NULL, note TEXT, kind TEXT NOT NULL, digest BYTEA NOT NULL)
                    """
                ]),
            Lease.postgresMigration,
        ]
        return try await Schema(sqlite: sqlite, postgres: postgres).open(
            try await backend.freshLocation(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    @Test(arguments: Backend.available)
    func aLeaseIsHeldByOneReplicaAtATimeAndItsOldHolderCannotCommit(_ backend: Backend) async throws {
        let database = try await database(backend)
        defer { Task { await database.close() } }
        let a = Lease("relay", holder: LeaseHolder(replica: "a"), duration: .seconds(10))
        let b = Lease("relay", holder: LeaseHolder(replica: "b"), duration: .seconds(10))
        let now = Date()
        let first = try #require(try await a.acquire(in: database, now: now))
        #expect(first.token == 1)
        // Held: the other replica waits; the holder renews with the same token.
        #expect(try await b.acquire(in: database, now: now.addingTimeInterval(5)) == nil)
        let renewed = try #require(try await a.acquire(in: database, now: now.addingTimeInterval(5)))
        #expect(renewed.token == 1)
        #expect(renewed.expiresAt > first.expiresAt)
        try await database.write { tx in try renewed.check(tx) }
        // A renews no more (it died, or is cut off): once the lease has run out, B takes it with the next token,
        // and A's commit is refused, its write rolled back with it.
        let taken = try #require(try await b.acquire(in: database, now: now.addingTimeInterval(16)))
        #expect(taken.token == 2)
        #expect(try await a.acquire(in: database, now: now.addingTimeInterval(17)) == nil)
        await #expect(throws: LeaseLost.self) {
            try await database.write { tx in
                try tx.insert(
                    Sample(id: "late", count: 1, active: true, at: now, note: nil, kind: .first, digest: Data()))
                try renewed.check(tx)
            }
        }
        let late = try await database.read { tx in try tx.find(Sample.self, key: ["late"]) }
        #expect(late == nil)
        try await database.write { tx in try taken.check(tx) }
        // Let go on a graceful stop: taken again at once, with a greater token still.
        try await b.release(in: database)
        let again = try #require(try await a.acquire(in: database, now: now.addingTimeInterval(18)))
        #expect(again.token == 3)
        // A starts again after a crash: its new run takes what the old one held at once, with the next token.
        let restarted = Lease("relay", holder: LeaseHolder(replica: "a"), duration: .seconds(10))
        let resumed = try #require(try await restarted.acquire(in: database, now: now.addingTimeInterval(19)))
        #expect(resumed.token == 4)
        await #expect(throws: LeaseLost.self) { try await database.write { tx in try again.check(tx) } }
    }

    @Test(arguments: Backend.available)
    func aRecordIsReadBackAsItWasWritten(_ backend: Backend) async throws {
        let database = try await database(backend)
        defer { Task { await database.close() } }
        // Milliseconds, as both backends keep them at least.
        let at = Date(timeIntervalSince1970: 1_796_000_000.123)
        var sample = Sample(
            id: "a", count: 3, active: true, at: at, note: "it's a note?", kind: .second, digest: Data([0, 1, 255]))
        try await database.write { [sample] tx in try tx.insert(sample) }
        #expect(try await database.read { tx in try tx.find(Sample.self, key: ["a"]) } == sample)
        sample.note = nil
        sample.active = false
        sample.count = -7
        _ = try await database.write { [sample] tx in try tx.update(sample) }
        #expect(try await database.read { tx in try tx.find(Sample.self, key: ["a"]) } == sample)
        let found = try await database.read { tx in
            try tx.fetchAll(
                Sample.self, "SELECT * FROM sample WHERE kind = 'second' AND id = ? AND at <= ?", ["a", at])
        }
        #expect(found == [sample])
        var other = sample
        other.id = "b"
        try await database.write { [other] tx in try tx.upsert(other) }
        other.count = 9
        try await database.write { [other] tx in try tx.upsert(other) }
        let total = try await database.read { tx in
            try tx.scalar(Int64.self, "SELECT CAST(SUM(count) AS BIGINT) FROM sample")
        }
        #expect(total == 2)
        #expect(try await database.write { tx in try tx.delete(Sample.self, key: ["b"]) })
        #expect(try await database.read { tx in try tx.scalar(Int64.self, "SELECT COUNT(*) FROM sample") } == 1)
    }

    @Test(arguments: Backend.available)
    func aFailedSavepointLeavesTheRestOfItsTransaction(_ backend: Backend) async throws {
        let database = try await database(backend)
        defer { Task { await database.close() } }
        let sample = Sample(id: "a", count: 1, active: true, at: Date(), note: nil, kind: .first, digest: Data())
        try await database.write { tx in
            try tx.insert(sample)
            _ = try? tx.savepoint { try tx.insert(sample) }  // the same key again: refused alone
            try tx.execute("UPDATE sample SET count = 2")
        }
        #expect(try await database.read { tx in try tx.find(Sample.self, key: ["a"]) }?.count == 2)
    }

    /// Many transactions that read and write the same row at once: PostgreSQL refuses some as serialization
    /// failures, and each runs again until it commits; none is lost.
    @Test(.enabled(if: PostgresServer.isAvailable))
    func conflictingTransactionsRunAgainUntilTheyCommit() async throws {
        let database = try await database(.postgres)
        defer { Task { await database.close() } }
        try await database.write { tx in
            try tx.insert(Sample(id: "a", count: 0, active: true, at: Date(), note: nil, kind: .first, digest: Data()))
        }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    try? await database.write { tx in
                        let count = try tx.scalar(Int64.self, "SELECT count FROM sample WHERE id = 'a'") ?? 0
                        try tx.execute("UPDATE sample SET count = ? WHERE id = 'a'", [count + 1])
                    }
                }
            }
        }
        #expect(try await database.read { tx in try tx.find(Sample.self, key: ["a"]) }?.count == 40)
    }
}
