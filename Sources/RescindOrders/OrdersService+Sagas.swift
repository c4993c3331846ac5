import Foundation
import Logging
import RescindAPI
import RescindStorage
import RescindWire

/// The operator's controls over sagas: retry and settle a failed saga, and what `health` says about them.
extension OrdersService {
    /// Resumes a failed saga where it stopped: fresh attempts, the same idempotency keys.
    /// - Throws: `not_found/unknown_saga`; `failed_precondition/saga_not_failed` for a saga in any other state.
    public func retry(_ sagaID: UUID, logger: Logger? = nil) async throws -> Saga {
        let id = sagaID.uuidString
        let defaults = runner.defaultRetry
        let lease = runner.lease
        let resumed = try await database.write { db in
            var loaded = try SagaStore.load(db, id, registry: self.runner.registry, defaults: defaults)
            try Self.requireFailed(loaded.record)
            let action = try loaded.machine.handle(.operatorRetry, plan: loaded.plan)
            if case .perform = action {
                // Going forward again: the error that stopped it is history, in the step log.
                loaded.record.errorCode = nil
                loaded.record.errorReason = nil
                loaded.record.errorMessage = nil
                loaded.record.failedStep = nil
            }
            let now = Date()
            loaded.record.nextAttemptAt = now
            // This replica drives it from here.
            lease.take(&loaded.record, now: now)
            try SagaStore.save(db, &loaded, now: now, lease: nil)
            return try loaded.record.api(db)
        }
        (logger ?? self.logger).notice(
            "saga retried by hand", metadata: ["saga_id": "\(id)", "order_id": "\(resumed.orderID)"])
        runner.submit(id)
        return resumed
    }

    /// Ends a failed saga by hand: the order goes where the person says, its lock is released, and the saga
    /// records who, when and why.
    /// - Throws: `invalid_argument/note_required` or `note_too_long`; `invalid_argument/bad_outcome` for an
    ///   outcome the saga's kind cannot settle to; `not_found/unknown_saga`; `failed_precondition/saga_not_failed`.
    public func settle(_ request: SettleSagaRequest, by person: Identity, logger: Logger? = nil) async throws -> Saga {
        let note = request.note.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !note.isEmpty else {
            throw RescindError.invalidArgument("say why in a note: it is kept with the saga", reason: "note_required")
        }
        guard note.unicodeScalars.count <= SettleSagaRequest.maxNoteLength else {
            throw RescindError.invalidArgument(
                "the note is \(note.unicodeScalars.count) characters; at most \(SettleSagaRequest.maxNoteLength)",
                reason: "note_too_long")
        }
        let id = request.sagaID.uuidString
        let defaults = runner.defaultRetry
        let settled = try await database.write { db in
            var loaded = try SagaStore.load(db, id, registry: self.runner.registry, defaults: defaults)
            try Self.requireFailed(loaded.record)
            let now = Date()
            let info = LocalStepInfo(sagaID: id, orderID: loaded.record.orderID, error: loaded.record.error, now: now)
            let detail = try loaded.program.settle(db, context: loaded.record.context, as: request.outcome, info: info)
            _ = try loaded.machine.handle(.operatorSettle, plan: loaded.plan)
            loaded.record.settledBy = person.rawValue
            loaded.record.settledAt = now
            loaded.record.settledAs = request.outcome
            loaded.record.settledNote = note
            try SagaStore.save(db, &loaded, now: now, lease: nil)
            try db.insert(
                SagaStepRecord(
                    sagaID: id, seq: try SagaStore.nextSeq(db, sagaID: id), name: "settle", direction: .forward,
                    status: .succeeded, attempt: 1,
                    idempotencyKey: nil, detail: "settled by \(person) as \(request.outcome): \(detail); \(note)",
                    startedAt: now, finishedAt: now
                ))
            return try loaded.record.api(db)
        }
        (logger ?? self.logger).notice(
            "saga settled by hand",
            metadata: [
                "saga_id": "\(id)", "order_id": "\(settled.orderID)", "as": "\(request.outcome)", "by": "\(person)",
            ])
        return settled
    }

    private static func requireFailed(_ saga: SagaRecord) throws {
        guard saga.state == .failed else {
            throw RescindError.failedPrecondition(
                "saga \(saga.id) is \(saga.state), not failed: only a failed saga can be retried or settled",
                reason: "saga_not_failed")
        }
    }

    /// Sagas that need a person (`failed`) or have run longer than `stuck_after_seconds`.
    public func sagaHealth() async throws -> SagaHealth {
        let threshold = configuration.stuckAfterSeconds
        let stuckRunning = stuckRunning
        return try await database.read { db in
            SagaHealth(
                failed: Int(try db.scalar(Int64.self, "SELECT COUNT(*) FROM saga WHERE state = 'failed'") ?? 0),
                stuck: Int(
                    try db.scalar(
                        Int64.self, "SELECT COUNT(*) FROM saga WHERE \(stuckRunning.sql)", stuckRunning.arguments)
                        ?? 0),
                stuckAfterSeconds: Int64(threshold)
            )
        }
    }

    /// Unfinished sagas older than the threshold.
    private var stuckRunning: (sql: String, arguments: SQLArguments) {
        (
            "(state IN ('running', 'compensating') AND created_at < ?)",
            [Date().addingTimeInterval(-configuration.stuckAfterSeconds)]
        )
    }

    /// What `sagas list --stuck` shows: failed sagas and those running too long.
    var stuck: (sql: String, arguments: SQLArguments) {
        ("(state = 'failed' OR \(stuckRunning.sql))", stuckRunning.arguments)
    }
}
