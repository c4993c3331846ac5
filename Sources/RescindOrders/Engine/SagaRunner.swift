import Foundation
import Logging
import RescindAPI
import RescindStorage
import RescindTransport
import RescindWire
import ServiceLifecycle
import Synchronization

/// The daemons a saga's remote steps call.
struct SagaParticipants: Sendable {
    var inventory: any RPCCaller
    var payments: any RPCCaller

    subscript(participant: Participant) -> any RPCCaller {
        switch participant {
        case .inventory: inventory
        case .payments: payments
        }
    }
}

/// Drives sagas to a terminal state, one step at a time: a remote step's log row is written `started` before
/// its request goes out, and its outcome with the machine's new state after. On start it resumes every saga a
/// crash or a shutdown left unfinished.
///
/// Of several replicas on one database, each drives the sagas it holds the lease of (`SagaLease`): those it
/// started, and those it claimed once their holder stopped renewing. Every step commits only with the saga's
/// current token.
///
/// A lifecycle `Service`: sagas run as child tasks of `run()`. On graceful shutdown (SIGTERM) it starts no new
/// step; each step under way finishes and is recorded, then `run()` returns. What is left resumes at the next
/// start, from the database.
final class SagaRunner: Service, Sendable {
    struct Configuration: Sendable {
        /// The retry policy of steps that name none.
        var retry: RetryPolicy
        var callTimeout: Duration
        /// How often to look for sagas whose retry is due.
        var pollInterval: Duration
        /// Where a test makes the daemon die; nil in production.
        var crashPoint: CrashPoint?
        /// This replica's hold on the sagas it drives.
        var lease: SagaLease
    }

    private struct State {
        /// Sagas a task is driving now: never two tasks for one saga.
        var active: Set<String> = []
        var waiters: [String: [ObjectIdentifier: Waiter]] = [:]
        /// Where `submit` sends sagas while `run()` runs; before it, they wait in `pending`.
        var launches: AsyncStream<String>.Continuation?
        var pending: [String] = []
        var stopping = false
    }

    private let database: any SQLDatabase
    /// Where steps are recorded: many sagas' steps share one transaction and one durable commit.
    let registry: SagaRegistry
    private let participants: SagaParticipants
    private let configuration: Configuration
    private let logger: Logger
    private let state = Mutex(State())

    init(
        database: any SQLDatabase, registry: SagaRegistry, participants: SagaParticipants,
        configuration: Configuration, logger: Logger
    ) {
        self.database = database
        self.registry = registry
        self.participants = participants
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: Submitting and waiting

    /// Starts driving a saga now (a new one, or a failed one a person retried).
    func submit(_ sagaID: String) {
        state.withLock { state in
            if let launches = state.launches {
                launches.yield(sagaID)
            } else {
                state.pending.append(sagaID)
            }
        }
    }

    /// Waits until the saga is terminal (`failed` included) or `timeout` passes, whichever comes first; leaves
    /// no task or timer behind. A saga this replica drives wakes it as it ends; one another replica drives (it
    /// claimed the saga from one that died, say) is looked at again each second.
    func waitUntilTerminal(_ sagaID: String, timeout: Duration) async {
        let waiter = Waiter()
        let token = ObjectIdentifier(waiter)
        // Registered before the state is read: a saga that ends in between still wakes it.
        state.withLock { $0.waiters[sagaID, default: [:]][token] = waiter }
        defer {
            state.withLock { state in
                state.waiters[sagaID]?[token] = nil
                if state.waiters[sagaID]?.isEmpty == true { state.waiters[sagaID] = nil }
            }
        }
        let database = self.database
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await waiter.wait() }
            group.addTask {
                let deadline = ContinuousClock.now + timeout
                while true {
                    let stored = try? await database.read { db in try SagaRecord.find(db, sagaID)?.state }
                    if stored?.isTerminal ?? true { return }
                    let now = ContinuousClock.now
                    if now >= deadline { return }
                    do {
                        try await Task.sleep(for: min(.seconds(1), deadline - now))
                    } catch {
                        return
                    }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: Running

    /// Resumes unfinished sagas and drives submitted ones until graceful shutdown or cancellation.
    func run() async {
        let (launches, continuation) = AsyncStream.makeStream(of: String.self)
        let pending = state.withLock { state in
            state.launches = continuation
            defer { state.pending = [] }
            return state.pending
        }
        for id in pending { continuation.yield(id) }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.poll() }
                group.addTask { await self.renewLeases() }
                for await id in launches {
                    guard self.claim(id) else { continue }
                    group.addTask { await self.drive(id) }
                }
            }
        } onGracefulShutdown: {
            self.stop()
        }
        // Every step under way is recorded: another replica may take the rest at once.
        let lease = configuration.lease
        do {
            try await database.write { db in try lease.releaseAll(db) }
        } catch {
            logger.warning("could not let the sagas' leases go; they run out", metadata: ["error": "\(error)"])
        }
        logger.info("saga runner stopped")
    }

    /// Renews the leases of the sagas this replica holds, three times a lease.
    private func renewLeases() async {
        let lease = configuration.lease
        while !isStopping, !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(lease.duration / 3)) }
            } catch {
                return
            }
            if isStopping { return }
            do {
                _ = try await database.write { db in try lease.renew(db, now: Date()) }
            } catch {
                logger.error("cannot renew the sagas' leases", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Starts no new step from now on; steps under way finish and are recorded.
    func stop() {
        state.withLock { state in
            state.stopping = true
            state.launches?.finish()
        }
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    /// Whether a driver of this replica is at the saga now.
    func isDriving(_ sagaID: String) -> Bool { state.withLock { $0.active.contains(sagaID) } }

    /// The policy of steps that name none: the configuration's attempts and delays.
    var defaultRetry: RetryPolicy { configuration.retry }

    /// This replica's hold on sagas: what a saga started here is written with.
    var lease: SagaLease { configuration.lease }

    /// Sends sagas whose next attempt is due to `run()`: those this replica holds, and those it claims because
    /// their lease ran out (a replica that died; a restart of this one). It writes only when there is something
    /// to claim.
    private func poll() async {
        let lease = configuration.lease
        do {
            let taken = try await database.write { db in try lease.takeOverEarlierRuns(db, now: Date()) }
            if taken > 0 {
                logger.notice("took over the sagas of this replica's previous run", metadata: ["count": "\(taken)"])
            }
        } catch {
            logger.error("cannot take over the sagas of this replica's previous run", metadata: ["error": "\(error)"])
        }
        while !isStopping, !Task.isCancelled {
            do {
                let now = Date()
                let due = try await database.read { db in try lease.due(db, now: now, limit: 500) }
                var launch = due.held
                if due.free {
                    let claimed = try await database.write { db in try lease.claim(db, now: now, limit: 100) }
                    if !claimed.isEmpty {
                        logger.notice("claimed sagas whose lease ran out", metadata: ["count": "\(claimed.count)"])
                    }
                    launch += claimed
                }
                state.withLock { state in
                    for id in launch where !state.active.contains(id) { state.launches?.yield(id) }
                }
            } catch {
                logger.error("cannot read due sagas", metadata: ["error": "\(error)"])
            }
            let interval = configuration.pollInterval
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }

    private func claim(_ sagaID: String) -> Bool {
        state.withLock { state in !state.stopping && state.active.insert(sagaID).inserted }
    }

    /// The saga will be picked up again when due.
    private func release(_ sagaID: String) {
        _ = state.withLock { $0.active.remove(sagaID) }
    }

    private func finished(_ sagaID: String) {
        let waiters = state.withLock { state in
            state.active.remove(sagaID)
            return state.waiters[sagaID].map { Array($0.values) } ?? []
        }
        for waiter in waiters { waiter.fire() }
    }

    private func drive(_ sagaID: String) async {
        var logger = self.logger
        logger[metadataKey: "saga_id"] = "\(sagaID)"
        // The saga as this driver last recorded it: nobody else writes a running saga, so the next step
        // starts from it instead of reading it again.
        var recorded: SagaStore.Loaded?
        while !isStopping {
            do {
                let (advance, saga) = try await advance(sagaID, from: recorded, logger: logger)
                recorded = saga
                switch advance {
                case .progressed: continue
                case .later: break
                case .terminal:
                    finished(sagaID)
                    return
                }
            } catch let error where StorageFailure.isStorage(error) {
                logger.error("saga step could not be recorded; will retry", metadata: ["error": "\(error)"])
            } catch let error as LeaseLost {
                // Another replica drives it now; what this one did last is not recorded, and it does it again.
                logger.notice("saga taken over by another replica", metadata: ["error": "\(error)"])
            } catch is CancellationError {
                // Stopped mid-step without recording: the next start finds the attempt cut short.
            } catch {
                // The saga cannot be driven by this build (a kind it does not run, a plan it no longer makes).
                await quarantine(sagaID, error: error, logger: logger)
                finished(sagaID)
                return
            }
            break
        }
        release(sagaID)
    }

    private enum Advance {
        case progressed, later, terminal
    }

    /// The step a driver is about to perform, and what it needs to record it.
    private struct Step {
        var loaded: SagaStore.Loaded
        var index: Int
        var undoing: Bool
        var name: String
        /// This attempt's number, from 1.
        var attempt: Int
        var jitterSample: Double
        var logger: Logger

        var sagaID: String { loaded.record.id }
        var context: String { loaded.record.context }

        /// Records how the step ended, in `db`, if this replica still holds the saga; returns the machine's next
        /// action and the saga as written.
        func record(
            _ db: any SQLTransaction, _ outcome: SagaStore.Outcome, attempt: Int? = nil, key: String?,
            lease: SagaLease
        ) throws -> Recorded {
            var loaded = loaded
            let action = try SagaStore.record(
                db, &loaded, step: index, undoing: undoing, attempt: attempt ?? self.attempt, key: key,
                outcome: outcome, jitterSample: jitterSample, lease: lease)
            return Recorded(action: action, saga: loaded)
        }
    }

    /// A recorded step: what to do next, and the saga as it now is in the database.
    private struct Recorded {
        var action: SagaMachine.Action
        var saga: SagaStore.Loaded
    }

    /// Performs the saga's next step and records its outcome; returns what the driver does next and the saga
    /// as recorded. `previous` is the saga as this driver last recorded it, if it did.
    private func advance(_ sagaID: String, from previous: SagaStore.Loaded?, logger: Logger) async throws
        -> (Advance, SagaStore.Loaded?)
    {
        let registry = self.registry
        let defaults = configuration.retry
        let loaded: SagaStore.Loaded
        if let previous {
            loaded = previous
        } else {
            loaded = try await database.read { db in
                try SagaStore.load(db, sagaID, registry: registry, defaults: defaults)
            }
            if loaded.record.leaseHolder != configuration.lease.holder.description, !loaded.record.state.isTerminal {
                throw LeaseLost(name: "saga \(sagaID)", token: loaded.record.leaseToken)
            }
        }
        if loaded.record.state.isTerminal { return (.terminal, nil) }
        if loaded.record.nextAttemptAt > Date() { return (.later, nil) }
        let (index, undoing): (Int, Bool)
        switch loaded.machine.action {
        case .perform(let step): (index, undoing) = (step, false)
        case .compensate(let step): (index, undoing) = (step, true)
        case .finish, .needsPerson: return (.terminal, nil)
        case .retry: return (.later, nil)
        }
        let name = try loaded.program.stepName(
            index, undoing: undoing, plan: loaded.planNames, context: loaded.record.context)
        var logger = logger
        logger[metadataKey: "order_id"] = "\(loaded.record.orderID)"
        logger[metadataKey: "step"] = "\(name)"
        logger[metadataKey: "direction"] = "\(undoing ? "compensate" : "forward")"
        let step = Step(
            loaded: loaded, index: index, undoing: undoing, name: name, attempt: loaded.machine.attempt + 1,
            jitterSample: Double.random(in: 0..<1), logger: logger)
        let participant = try loaded.program.participant(
            index, undoing: undoing, plan: loaded.planNames, context: loaded.record.context)
        let recorded =
            if let participant {
                // Only a saga this driver has not driven yet can have an attempt a restart cut short.
                try await performRemote(step, on: participant, mayBeInterrupted: previous == nil)
            } else {
                try await performLocal(step)
            }
        crash(at: .after, step)
        return (Self.next(after: recorded.action, attempt: step.attempt, logger: logger), recorded.saga)
    }

    /// Dies here if a test's crash point says so.
    private func crash(at phase: CrashPoint.Phase, _ step: Step) {
        configuration.crashPoint?.check(
            kind: step.loaded.record.kind, step: step.name, undoing: step.undoing, phase: phase
        ) { step.logger.critical("\($0)") }
    }

    /// A remote step: its row `started`, the call with the key `SAGA_ID/STEP`, then its outcome recorded.
    private func performRemote(_ step: Step, on participant: Participant, mayBeInterrupted: Bool) async throws
        -> Recorded
    {
        let key = "\(step.sagaID)/\(step.name)"
        let record = step.loaded.record
        let lease = configuration.lease
        let counted = step.loaded.machine.attempt
        let interrupted =
            mayBeInterrupted
            ? try await database.read { db in
                try SagaStore.interruptedAttempt(db, record, step: step.name, undoing: step.undoing, counted: counted)
            } : nil
        if let interrupted {
            // A restart cut this attempt short: it counts as a transient failure, and the next one goes out
            // with the same key.
            let outcome = SagaStore.Outcome.failed(
                RescindError(
                    .unavailable, "Orders stopped before the answer to attempt \(interrupted) was recorded",
                    reason: "interrupted"))
            step.logger.notice(
                "an attempt cut short by a restart counts as failed", metadata: ["attempt": "\(interrupted)"])
            return try await database.write { db in
                try step.record(db, outcome, attempt: interrupted, key: key, lease: lease)
            }
        }
        try await database.write { db in
            try SagaStore.markStarted(
                db, record, step: step.name, undoing: step.undoing, attempt: step.attempt, key: key, lease: lease)
        }
        crash(at: .before, step)
        let answer: Result<@Sendable (String) throws -> (context: String, detail: String), any Error>
        do {
            answer = .success(
                try await step.loaded.program.performRemote(
                    step.index, undoing: step.undoing, plan: step.loaded.planNames, context: step.context,
                    caller: participants[participant],
                    key: key, timeout: configuration.callTimeout))
        } catch {
            answer = .failure(error)
        }
        // Cancelled (a forced stop), the call's outcome says nothing about the step: record nothing.
        try Task.checkCancellation()
        return try await database.write { db in
            let outcome: SagaStore.Outcome
            switch answer {
            case .success(let update):
                let (context, detail) = try update(step.context)
                outcome = .succeeded(context: context, detail: detail)
            case .failure(let abandoned as StepAbandoned):
                outcome = .abandoned(abandoned.error)
            case .failure(let error as RescindError) where step.undoing && error.code == .notFound:
                // Undoing something that never happened is done.
                outcome = .succeeded(context: step.context, detail: "nothing to undo: \(error.message)")
            case .failure(let error):
                outcome = .failed(Self.stepError(error, step: step.name))
            }
            return try step.record(db, outcome, key: key, lease: lease)
        }
    }

    /// A local step: performed and recorded in one Orders transaction.
    private func performLocal(_ step: Step) async throws -> Recorded {
        crash(at: .before, step)
        let lease = configuration.lease
        return try await database.write { db in
            let info = LocalStepInfo(
                sagaID: step.sagaID, orderID: step.loaded.record.orderID, error: step.loaded.record.error, now: Date())
            var result: (context: String, detail: String)?
            let outcome: SagaStore.Outcome
            do {
                // A step that throws leaves nothing behind but its recorded failure.
                result = try db.savepoint {
                    try step.loaded.program.performLocal(
                        db, step.index, undoing: step.undoing, plan: step.loaded.planNames, context: step.context,
                        info: info)
                }
                outcome =
                    result.map { .succeeded(context: $0.context, detail: $0.detail) }
                    ?? .failed(.internalError("local step \(step.name) gave no result"))
            } catch {
                outcome = .failed(Self.stepError(error, step: step.name))
            }
            return try step.record(db, outcome, key: nil, lease: lease)
        }
    }

    /// What the driver does after a recorded step, and the log line that says so.
    private static func next(after action: SagaMachine.Action, attempt: Int, logger: Logger) -> Advance {
        switch action {
        case .perform, .compensate:
            logger.debug("step done")
            return .progressed
        case .retry(let delay):
            logger.notice("step failed; will retry", metadata: ["attempt": "\(attempt)", "delay": "\(delay)"])
            return .later
        case .finish(let state):
            logger.info("saga ended", metadata: ["state": "\(state)"])
            return .terminal
        case .needsPerson:
            logger.error("saga failed; it needs a person (rescindctl sagas retry or settle)")
            return .terminal
        }
    }

    /// The error a failed step records. A busy database is worth another attempt; any other surprise is not.
    private static func stepError(_ error: any Error, step: String) -> RescindError {
        if let error = error as? RescindError { return error }
        if StorageFailure.isTransient(error) {
            return RescindError(.unavailable, "step \(step): the database is busy")
        }
        return RescindError(.internal, "step \(step) failed: \(error)")
    }

    /// Marks a saga this build cannot drive as `failed`, for a person (if this replica still holds it).
    private func quarantine(_ sagaID: String, error: any Error, logger: Logger) async {
        logger.error("saga cannot be driven; marked failed for a person", metadata: ["error": "\(error)"])
        let message = "\(error)"
        let holder = configuration.lease.holder.description
        _ = try? await database.write { db in
            try db.execute(
                """
                UPDATE saga SET state = 'failed', machine = ?, machine_version = ?,
                    error_code = COALESCE(error_code, 'internal'), error_message = COALESCE(error_message, ?),
                    updated_at = ?
                WHERE id = ? AND state IN ('running', 'compensating') AND lease_holder = ?
                """,
                [
                    try JSON.encode(SagaMachine.failed(step: 0, undoing: false)), SagaMachine.version, message, Date(),
                    sagaID, holder,
                ]
            )
        }
    }
}

/// One caller of `waitUntilTerminal`: woken once, by the saga ending or by its own cancellation.
private final class Waiter: Sendable {
    private let state = Mutex<(fired: Bool, continuation: CheckedContinuation<Void, Never>?)>((false, nil))

    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let fired = state.withLock { state in
                    if !state.fired { state.continuation = continuation }
                    return state.fired
                }
                if fired { continuation.resume() }
            }
        } onCancel: {
            fire()
        }
    }

    func fire() {
        let continuation = state.withLock { state in
            state.fired = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }
}
