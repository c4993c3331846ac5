import Foundation
import GRDB
import RescindStorage
import Testing

@Suite struct GroupCommitWriterTests {
    private func pool() throws -> (DatabasePool, URL) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("group-commit-\(UUID()).sqlite")
        var migrator = DatabaseMigrator()
        migrator.registerMigration("t") { db in
            try db.create(table: "t") { t in
                t.primaryKey("id", .integer)
                t.column("value", .integer).notNull().check(sql: "value >= 0")
            }
        }
        return (try DatabaseOpener.open(path: url.path, migrator: migrator), url)
    }

    /// Writes that arrive while a transaction commits wait and share the next one; each is answered only
    /// after it committed, and one that throws fails alone, its changes rolled back.
    @Test func writesThatArriveTogetherShareOneCommitAndFailAlone() async throws {
        let (pool, url) = try pool()
        defer { try? FileManager.default.removeItem(at: url) }
        let (queued, queuedContinuation) = AsyncStream.makeStream(of: Int.self)
        let writer = GroupCommitWriter(pool: pool, onQueued: { queuedContinuation.yield($0) })
        let (entered, enteredContinuation) = AsyncStream.makeStream(of: Void.self)
        let gate = DispatchSemaphore(value: 0)
        // The first write holds its transaction open until the others are queued behind it.
        let first = Task {
            try await writer.write { db in
                enteredContinuation.yield()
                gate.wait()
                try db.execute(sql: "INSERT INTO t (id, value) VALUES (0, 0)")
            }
        }
        for await _ in entered { break }
        let others = Task {
            try await withThrowingTaskGroup(of: Result<Int, any Error>.self) { group in
                for id in 1...20 {
                    group.addTask {
                        await Result {
                            try await writer.write { db in
                                // Id 13 breaks the CHECK: it fails, the others do not.
                                try db.execute(
                                    sql: "INSERT INTO t (id, value) VALUES (?, ?)", arguments: [id, id == 13 ? -1 : id])
                                return id
                            }
                        }
                    }
                }
                return try await group.reduce(into: [Result<Int, any Error>]()) { $0.append($1) }
            }
        }
        // The first write's own queueing was told before it entered; from here on, the other twenty.
        for await waiting in queued where waiting == 20 { break }
        gate.signal()
        try await first.value
        let results = try await others.value
        #expect(results.filter { (try? $0.get()) != nil }.count == 19)
        #expect(writer.commits == 2)
        let ids = try await pool.read { db in try Int.fetchAll(db, sql: "SELECT id FROM t ORDER BY id") }
        #expect(ids == Array(0...20).filter { $0 != 13 })
    }
}

extension Result where Failure == any Error {
    init(_ body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
