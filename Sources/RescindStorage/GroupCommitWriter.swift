import GRDB
import Synchronization

/// Group commit: writes from many concurrent callers share one transaction and one durable commit.
///
/// A caller's write runs in a savepoint of the shared transaction, so one that throws leaves nothing behind
/// and fails only itself. Nothing is answered before the transaction that holds it has committed (with the
/// database's `synchronous = FULL`, before it is on disk). Batches form by themselves: while one commits,
/// the writes that arrive wait and go together in the next; a lone write waits for nobody.
public final class GroupCommitWriter: Sendable {
    /// One caller's write: performs it and returns how to answer the caller once committed.
    private struct Job: Sendable {
        var perform: @Sendable (Database) throws -> @Sendable () -> Void
        var fail: @Sendable (any Error) -> Void
    }

    private struct State {
        var queue: [Job] = []
        var draining = false
        var commits = 0
    }

    private let pool: DatabasePool
    private let state = Mutex(State())
    private let onQueued: @Sendable (Int) -> Void

    /// - Parameter onQueued: told, after each write joins the queue, how many wait for the next transaction.
    public init(pool: DatabasePool, onQueued: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.pool = pool
        self.onQueued = onQueued
    }

    /// Transactions committed so far (each holding one write or more).
    public var commits: Int { state.withLock { $0.commits } }

    /// Runs `body` in the next shared transaction and returns its result once that transaction committed.
    /// - Throws: what `body` throws (its changes are rolled back), or the commit's error.
    public func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let job = Job(
                perform: { db in
                    let value = try body(db)
                    return { continuation.resume(returning: value) }
                },
                fail: { continuation.resume(throwing: $0) }
            )
            let (start, waiting) = state.withLock { state -> (Bool, Int) in
                state.queue.append(job)
                defer { state.draining = true }
                return (!state.draining, state.queue.count)
            }
            onQueued(waiting)
            if start { Task { await self.drain() } }
        }
    }

    /// Commits batches until the queue is empty.
    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Job] in
                defer { state.queue = [] }
                if state.queue.isEmpty { state.draining = false }
                return state.queue
            }
            if batch.isEmpty { return }
            do {
                let answers = try await pool.write { db in
                    batch.map { job -> @Sendable () -> Void in
                        var answer: (@Sendable () -> Void)?
                        do {
                            try db.inSavepoint {
                                answer = try job.perform(db)
                                return .commit
                            }
                        } catch {
                            return { job.fail(error) }
                        }
                        return answer ?? { job.fail(DatabaseError(message: "a write gave no answer")) }
                    }
                }
                state.withLock { $0.commits += 1 }
                for answer in answers { answer() }
            } catch {
                for job in batch { job.fail(error) }
            }
        }
    }
}
