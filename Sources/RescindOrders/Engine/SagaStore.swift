import Foundation
import RescindAPI
import RescindStorage
import RescindTransport
import RescindWire

/// Reading and writing sagas and their step log. Every function takes the caller's `Database`, so that a
/// saga starts in the transaction of the request that asked for it, and so that the outcomes of many sagas'
/// steps can share one transaction.
enum SagaStore {
    /// How a step ended, as the runner records it.
    enum Outcome {
        case succeeded(context: String, detail: String)
        case failed(RescindError)
        case abandoned(RescindError)
    }

    /// A saga loaded with what driving it needs.
    struct Loaded {
        var record: SagaRecord
        var machine: SagaMachine
        var program: any SagaProgram
        /// The stored plan: its step names, and what the state machine needs of them.
        var planNames: [String]
        var plan: [StepShape]
    }

    /// Starts a saga of kind `D`: runs the plan's first step (local) in `db`, writes the saga, its plan and the
    /// step's log entry. The runner drives the rest once the transaction commits.
    /// - Throws: the first step's error (nothing is written), or a database error.
    @discardableResult
    static func start<D: SagaDefinition>(
        _ db: any SQLTransaction, _ definition: D.Type, id: String, orderID: UUID, context: D.Context,
        lease: SagaLease, requestKey: String? = nil, requestFingerprint: Data? = nil
    ) throws -> SagaRecord {
        let now = Date()
        let plan = D.plan(context)
        guard let first = plan.first, case .local(let body) = first.effect else {
            throw RescindError.internalError("the first step of \(D.kind) must be local")
        }
        var context = context
        let detail = try body(
            db, &context, LocalStepInfo(sagaID: id, orderID: orderID.uuidString, error: nil, now: now))
        let machine = SagaMachine.start(steps: plan.count, done: 1)
        let record = SagaRecord(
            id: id, kind: D.kind, orderID: orderID.uuidString, state: machine.state,
            plan: try JSON.encode(plan.map(\.name)), machine: try JSON.encode(machine),
            context: try JSON.encode(context), errorCode: nil, errorReason: nil, errorMessage: nil, failedStep: nil,
            nextAttemptAt: now, requestKey: requestKey, requestFingerprint: requestFingerprint, settledBy: nil,
            settledAt: nil, settledAs: nil, settledNote: nil, createdAt: now, updatedAt: now,
            contextVersion: D.contextVersion, machineVersion: SagaMachine.version,
            leaseHolder: lease.holder.description, leaseToken: 1, leaseExpiresAt: lease.expiry(from: now)
        )
        try db.insert(record)
        try db.insert(
            SagaStepRecord(
                sagaID: id, seq: 1, name: first.name, direction: .forward, status: .succeeded, attempt: 1,
                idempotencyKey: nil, detail: detail, startedAt: now, finishedAt: now
            ))
        return record
    }

    /// Loads a saga to run the plan it was stored with, its context and machine read as this build writes them
    /// (an earlier build's are rewritten when the saga is next saved).
    /// - Throws: `not_found`; `internal` for a kind this build does not run, a step of its plan it does not have,
    ///   or a version of its context or machine it cannot read.
    static func load(_ db: any SQLTransaction, _ id: String, registry: SagaRegistry, defaults: RetryPolicy) throws
        -> Loaded
    {
        guard var record = try SagaRecord.find(db, id) else {
            throw RescindError.notFound("no saga \(id)", reason: "unknown_saga")
        }
        guard let program = registry[record.kind] else {
            throw RescindError.internalError("this build of Orders does not run sagas of kind \(record.kind)")
        }
        if record.contextVersion != program.contextVersion {
            record.context = try program.upgrade(context: record.context, from: record.contextVersion)
            record.contextVersion = program.contextVersion
        }
        let machine = try SagaMachine.decode(record.machine, version: record.machineVersion)
        record.machineVersion = SagaMachine.version
        let names = try JSON.decode([String].self, record.plan)
        let plan = try program.shapes(plan: names, context: record.context, defaults: defaults)
        return Loaded(record: record, machine: machine, program: program, planNames: names, plan: plan)
    }

    /// The attempt of a remote step that was under way when Orders stopped (its row `started` beyond the
    /// attempts the machine has counted): its request may or may not have gone out.
    static func interruptedAttempt(
        _ db: any SQLTransaction, _ saga: SagaRecord, step: String, undoing: Bool, counted: Int
    )
        throws -> Int?
    {
        let row = try existingStepRow(db, sagaID: saga.id, step: step, direction: undoing ? .compensate : .forward)
        guard let row, row.status == .started, row.attempt > counted else { return nil }
        return row.attempt
    }

    /// Writes the log row of a step as `started`, before its request goes out, if the saga's lease still has
    /// the token `saga` was loaded with (and renews it, so the call has the whole lease).
    /// - Throws: `LeaseLost`.
    static func markStarted(
        _ db: any SQLTransaction, _ saga: SagaRecord, step: String, undoing: Bool, attempt: Int, key: String?,
        lease: SagaLease
    )
        throws
    {
        let renewed = try db.execute(
            "UPDATE saga SET lease_expires_at = ? WHERE id = ? AND lease_token = ?",
            [lease.expiry(from: Date()), saga.id, saga.leaseToken])
        guard renewed == 1 else { throw LeaseLost(name: "saga \(saga.id)", token: saga.leaseToken) }
        var row = try stepRow(db, saga, step: step, undoing: undoing, attempt: attempt, key: key)
        row.status = .started
        row.attempt = attempt
        try db.upsert(row)
    }

    /// Records how a step ended and moves the machine, if the saga's lease still has the token it was loaded
    /// with; returns the machine's next action.
    /// - Throws: `LeaseLost` (another replica drives the saga now: nothing is recorded).
    static func record(
        _ db: any SQLTransaction, _ loaded: inout Loaded, step index: Int, undoing: Bool, attempt: Int, key: String?,
        outcome: Outcome, jitterSample: Double, lease: SagaLease
    ) throws -> SagaMachine.Action {
        let now = Date()
        let shape = loaded.plan[index]
        let name = try loaded.program.stepName(
            index, undoing: undoing, plan: loaded.planNames, context: loaded.record.context)
        let event: SagaMachine.Event
        switch outcome {
        case .succeeded(let context, _):
            loaded.record.context = context
            event = .succeeded
        case .failed(let error):
            let policy = undoing ? (shape.undoRetry ?? shape.retry) : shape.retry
            event = policy.isTransient(error) ? .failedTransiently(jitterSample: jitterSample) : .failedPermanently
        case .abandoned:
            event = .abandoned
        }
        let action: SagaMachine.Action
        do {
            action = try loaded.machine.handle(event, plan: loaded.plan)
        } catch {
            throw RescindError.internalError("saga \(loaded.record.id) in state \(error.state) cannot take \(event)")
        }

        var row = try stepRow(db, loaded.record, step: name, undoing: undoing, attempt: attempt, key: key)
        row.attempt = attempt
        switch outcome {
        case .succeeded(_, let detail):
            row.status = .succeeded
            row.detail = detail
            row.set(error: nil)
            row.finishedAt = now
        case .failed(let error), .abandoned(let error):
            if case .retry = action {
                // Still the same step: it stays `started`, and the next attempt goes out with the same key.
                row.status = .started
                row.set(error: error)
            } else {
                let recorded =
                    event == .failedPermanently || event == .abandoned
                    ? error
                    : RescindError(
                        error.code, "gave up after \(attempt) attempts: \(error.message)", reason: error.reason,
                        retryable: false)
                row.status = .failed
                row.set(error: recorded)
                row.finishedAt = now
                note(recorded, step: name, on: &loaded.record, stuck: loaded.machine.state == .failed)
                if loaded.machine.state == .failed {
                    // A person must decide: the store's staff hear of it (the outbox's sinks: mail, webhook).
                    try db.insert(
                        OutboxRecord(
                            id: nil, orderID: loaded.record.orderID, kind: "saga_failed",
                            payload: try JSON.encode(
                                SagaFailedNotice(
                                    orderID: loaded.record.orderID, sagaID: loaded.record.id,
                                    sagaKind: loaded.record.kind.rawValue, step: name, error: recorded.message)),
                            createdAt: now, deliveredAt: nil
                        ))
                }
            }
        }
        try db.upsert(row)

        if case .retry(let delay) = action {
            loaded.record.nextAttemptAt = now.addingTimeInterval(delay.seconds)
        } else {
            loaded.record.nextAttemptAt = now
        }
        try save(db, &loaded, now: now, lease: lease)
        return action
    }

    /// Writes the machine and the state it implies. With `lease`, only if the saga's lease still has the token it
    /// was loaded with (the fence of a driver's commit), and renewed.
    /// - Throws: `LeaseLost`.
    static func save(_ db: any SQLTransaction, _ loaded: inout Loaded, now: Date = Date(), lease: SagaLease?) throws {
        loaded.record.machine = try JSON.encode(loaded.machine)
        loaded.record.state = loaded.machine.state
        loaded.record.updatedAt = now
        guard let lease else {
            try db.update(loaded.record)
            return
        }
        let token = loaded.record.leaseToken
        loaded.record.leaseHolder = lease.holder.description
        loaded.record.leaseExpiresAt = lease.expiry(from: now)
        guard try db.update(loaded.record, where: "lease_token = ?", [token]) else {
            throw LeaseLost(name: "saga \(loaded.record.id)", token: token)
        }
    }

    /// Keeps the first error that turned the saga; a later one (a compensation failing) is added to it.
    private static func note(_ error: RescindError, step: String, on record: inout SagaRecord, stuck: Bool) {
        if record.errorCode == nil {
            record.errorCode = error.code.rawValue
            record.errorReason = error.reason
            record.errorMessage = error.message
            record.failedStep = step
        } else if stuck {
            record.errorMessage = (record.errorMessage ?? "") + "; then \(step) failed: \(error.message)"
        }
    }

    private static func stepRow(
        _ db: any SQLTransaction, _ saga: SagaRecord, step: String, undoing: Bool, attempt: Int, key: String?
    ) throws -> SagaStepRecord {
        let direction: Saga.Step.Direction = undoing ? .compensate : .forward
        if let row = try existingStepRow(db, sagaID: saga.id, step: step, direction: direction) {
            return row
        }
        return SagaStepRecord(
            sagaID: saga.id, seq: try nextSeq(db, sagaID: saga.id), name: step, direction: direction, status: .started,
            attempt: attempt,
            idempotencyKey: key, startedAt: Date()
        )
    }
}

extension SagaStore {
    // The hot queries, each a statement prepared once per connection (BENCHMARKS.md).

    /// The log of a saga, by `seq`.
    static func steps(_ db: any SQLTransaction, sagaID: String) throws -> [SagaStepRecord] {
        try db.fetchAll(SagaStepRecord.self, "SELECT * FROM saga_step WHERE saga_id = ? ORDER BY seq", [sagaID])
    }

    /// The log row of a step going forward or undoing, if it has one.
    static func existingStepRow(_ db: any SQLTransaction, sagaID: String, step: String, direction: Saga.Step.Direction)
        throws -> SagaStepRecord?
    {
        try db.fetchOne(
            SagaStepRecord.self, "SELECT * FROM saga_step WHERE saga_id = ? AND name = ? AND direction = ?",
            [sagaID, step, direction.rawValue])
    }

    /// The `seq` of the next row of a saga's log.
    static func nextSeq(_ db: any SQLTransaction, sagaID: String) throws -> Int {
        Int(try db.scalar(Int64.self, "SELECT MAX(seq) FROM saga_step WHERE saga_id = ?", [sagaID]) ?? 0) + 1
    }
}

extension StepShape {
    /// The retry policy of the step's compensation, if it has one.
    var undoRetry: RetryPolicy? {
        if case .compensatable(let undo) = role { return undo }
        return nil
    }
}

extension SagaStepRecord {
    mutating func set(error: RescindError?) {
        errorCode = error?.code.rawValue
        errorReason = error?.reason
        errorMessage = error?.message
    }
}

extension SagaRecord {
    /// A saga for the API, with its step log.
    func api(_ db: any SQLTransaction) throws -> Saga {
        let steps = try SagaStore.steps(db, sagaID: id)
        return Saga(
            id: UUID(uuidString: id) ?? UUID(), kind: kind, orderID: UUID(uuidString: orderID) ?? UUID(),
            state: state, steps: steps.map(\.api), error: error, createdAt: createdAt, updatedAt: updatedAt,
            settlement: settlement
        )
    }
}

/// The outbox message of a saga that stopped for a person (`saga_failed`).
struct SagaFailedNotice: Encodable {
    var orderID: String
    var sagaID: String
    var sagaKind: String
    var step: String
    var error: String

    enum CodingKeys: String, CodingKey {
        case step, error
        case orderID = "order_id"
        case sagaID = "saga_id"
        case sagaKind = "saga_kind"
    }
}
