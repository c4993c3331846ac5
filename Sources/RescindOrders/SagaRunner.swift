import Foundation
import GRDB
import Logging
import RescindAPI
import RescindTransport
import RescindWire

/// Drives sagas to a terminal state, one step at a time, writing each step to the database before its
/// request goes out and its outcome after. On start it resumes every saga a crash left unfinished.
actor SagaRunner {
    struct Configuration: Sendable {
        var maxAttempts: Int
        var initialRetryDelay: Duration
        var maxRetryDelay: Duration
        var callTimeout: Duration
        var pollInterval: Duration
    }

    private let database: DatabasePool
    let steps: SagaSteps
    private let configuration: Configuration
    private let logger: Logger
    /// Sagas a task is driving now: one task per saga, never two.
    private var active: Set<String> = []
    private var waiters: [String: [UUID: CheckedContinuation<Void, Never>]] = [:]
    /// Card numbers of orders being placed: kept in memory only, never written anywhere.
    private var cards: [String: String] = [:]

    init(database: DatabasePool, steps: SagaSteps, configuration: Configuration, logger: Logger) {
        self.database = database
        self.steps = steps
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts driving a new saga now.
    func submit(_ sagaID: String, card: String? = nil) {
        if let card { cards[sagaID] = card }
        launch(sagaID)
    }

    /// Waits until the saga is terminal or the timeout passes.
    func waitUntilTerminal(_ sagaID: String, timeout: Duration) async {
        let token = UUID()
        await withCheckedContinuation { continuation in
            waiters[sagaID, default: [:]][token] = continuation
            Task {
                // Registered first, checked second: a saga that ended before the wait began cannot be missed.
                if let state = try? await self.database.read({ db in try SagaRecord.fetchOne(db, key: sagaID)?.state }),
                    state.isTerminal
                {
                    self.resumeWaiter(sagaID, token)
                    return
                }
                try? await Task.sleep(for: timeout)
                self.resumeWaiter(sagaID, token)
            }
        }
    }

    private func resumeWaiter(_ sagaID: String, _ token: UUID) {
        waiters[sagaID]?.removeValue(forKey: token)?.resume()
        if waiters[sagaID]?.isEmpty == true { waiters[sagaID] = nil }
    }

    /// Resumes unfinished sagas, then keeps picking up sagas whose retry is due, until cancelled.
    func run() async {
        while !Task.isCancelled {
            do {
                let due = try await database.read { db in
                    try String.fetchAll(
                        db,
                        sql: """
                            SELECT id FROM saga WHERE state IN ('running', 'compensating') AND next_attempt_at <= ?
                            ORDER BY next_attempt_at LIMIT 100
                            """,
                        arguments: [Date()]
                    )
                }
                for id in due where !active.contains(id) { launch(id) }
            } catch {
                logger.error("cannot read due sagas", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.pollInterval)
        }
    }

    private func launch(_ sagaID: String) {
        guard active.insert(sagaID).inserted else { return }
        Task { await self.drive(sagaID) }
    }

    private func finished(_ sagaID: String) {
        active.remove(sagaID)
        cards[sagaID] = nil
        for waiter in (waiters.removeValue(forKey: sagaID) ?? [:]).values { waiter.resume() }
    }

    private func card(for sagaID: String) -> String? { cards[sagaID] }

    private func drive(_ sagaID: String) async {
        var logger = self.logger
        logger[metadataKey: "saga_id"] = "\(sagaID)"
        while true {
            do {
                switch try await advance(sagaID, logger: logger) {
                case .progressed:
                    continue
                case .retryLater:
                    // The poller picks it up when its retry is due.
                    active.remove(sagaID)
                    return
                case .terminal:
                    finished(sagaID)
                    return
                }
            } catch {
                logger.error("saga step could not be recorded; will retry", metadata: ["error": "\(error)"])
                active.remove(sagaID)
                return
            }
        }
    }

    enum Advance {
        case progressed, retryLater, terminal
    }

    /// Performs the saga's next action and records its outcome.
    private func advance(_ sagaID: String, logger: Logger) async throws -> Advance {
        guard let saga = try await database.read({ db in try SagaRecord.fetchOne(db, key: sagaID) }) else {
            return .terminal
        }
        if saga.state.isTerminal { return .terminal }
        if saga.nextAttemptAt > Date() { return .retryLater }
        let machine = try JSON.decode(SagaStateMachine.self, saga.machine)
        let (name, direction): (String, Saga.Step.Direction)
        switch machine.action {
        case .done:
            return .terminal
        case .forward(let step):
            (name, direction) = (step.name, .forward)
        case .compensate(_, let compensation):
            (name, direction) = (compensation, .compensate)
        }
        var logger = logger
        logger[metadataKey: "order_id"] = "\(saga.orderID)"
        logger[metadataKey: "step"] = "\(name)"

        if SagaDefinitions.localSteps.contains(name) {
            try await database.write { db in
                var saga = saga
                var machine = machine
                let detail = try self.steps.performLocal(db, saga: saga, step: name)
                try self.log(
                    db, saga: saga, step: name, direction: direction, attempt: 1, key: nil, outcome: .success(detail))
                machine.record(.succeeded)
                try self.save(db, &saga, machine: machine, error: nil, failedStep: nil)
            }
            logger.debug("local step done")
            return .progressed
        }

        let key = "\(sagaID)/\(name)"
        let attempt = machine.attempt + 1
        if name == "authorize", card(for: sagaID) == nil {
            // The card number lived only in memory and a restart lost it; the request may have gone out.
            let error = RescindError.failedPrecondition(
                "the card number was lost in a restart before authorization finished; place the order again",
                reason: "card_unavailable"
            )
            try await database.write { db in
                var saga = saga
                var machine = machine
                try self.log(
                    db, saga: saga, step: name, direction: direction, attempt: attempt, key: key,
                    outcome: .failure(error))
                machine.abandonCurrentStep()
                try self.save(db, &saga, machine: machine, error: error, failedStep: name)
            }
            logger.warning("saga abandoned a step", metadata: ["error": "\(error)"])
            return .progressed
        }
        try await database.write { db in
            try self.log(db, saga: saga, step: name, direction: direction, attempt: attempt, key: key, outcome: nil)
        }
        let card = card(for: sagaID)
        let outcome = await steps.performRemote(
            saga: saga, step: name, direction: direction, key: key, card: card, timeout: configuration.callTimeout
        )
        try await database.write { db in
            var saga = try SagaRecord.fetchOne(db, key: sagaID) ?? saga
            var machine = machine
            switch outcome {
            case .success(let result):
                var results = try JSON.decode(SagaResults.self, saga.results)
                result.apply(&results)
                saga.results = try JSON.encode(results)
                try self.log(
                    db, saga: saga, step: name, direction: direction, attempt: attempt, key: key,
                    outcome: .success(result.detail))
                machine.record(.succeeded)
                try self.save(db, &saga, machine: machine, error: nil, failedStep: nil)
            case .failure(let error) where error.retryable:
                try self.log(
                    db, saga: saga, step: name, direction: direction, attempt: attempt, key: key,
                    outcome: .retrying(error))
                let before = machine.state
                machine.record(.failedTransiently)
                if machine.state == before, machine.attempt > 0 {
                    // Still retrying the same step: wait before the next attempt.
                    saga.nextAttemptAt = Date().addingTimeInterval(self.retryDelay(attempt: attempt).seconds)
                    try self.save(db, &saga, machine: machine, error: nil, failedStep: nil)
                } else {
                    // Out of attempts: the saga now undoes its steps, or needs a person.
                    let gaveUp = RescindError(
                        error.code, "gave up after \(attempt) attempts: \(error.message)", reason: error.reason,
                        retryable: false
                    )
                    try self.log(
                        db, saga: saga, step: name, direction: direction, attempt: attempt, key: key,
                        outcome: .failure(gaveUp))
                    try self.save(db, &saga, machine: machine, error: gaveUp, failedStep: name)
                }
            case .failure(let error):
                try self.log(
                    db, saga: saga, step: name, direction: direction, attempt: attempt, key: key,
                    outcome: .failure(error))
                machine.record(.failedPermanently)
                try self.save(db, &saga, machine: machine, error: error, failedStep: name)
            }
        }
        switch outcome {
        case .success: logger.info("step succeeded")
        case .failure(let error): logger.notice("step failed", metadata: ["error": "\(error)"])
        }
        return .progressed
    }

    private nonisolated func retryDelay(attempt: Int) -> Duration {
        let exponent = min(max(attempt - 1, 0), 16)
        return min(configuration.initialRetryDelay * (1 << exponent), configuration.maxRetryDelay)
    }

    enum LoggedOutcome {
        case success(String?)
        case failure(RescindError)
        /// A transient failure: the step stays `started` and will be tried again.
        case retrying(RescindError)
    }

    /// Writes or updates the log row of a step. A nil outcome marks it `started`.
    private nonisolated func log(
        _ db: Database, saga: SagaRecord, step: String, direction: Saga.Step.Direction, attempt: Int, key: String?,
        outcome: LoggedOutcome?
    ) throws {
        let now = Date()
        var record =
            try SagaStepRecord
            .filter(SagaStepRecord.Columns.sagaID == saga.id)
            .filter(SagaStepRecord.Columns.name == step)
            .filter(SagaStepRecord.Columns.direction == direction.rawValue)
            .fetchOne(db)
            ?? SagaStepRecord(
                sagaID: saga.id,
                seq: (try Int.fetchOne(
                    db, sql: "SELECT MAX(seq) FROM saga_step WHERE saga_id = ?", arguments: [saga.id]) ?? 0) + 1,
                name: step, direction: direction, status: .started, attempt: attempt, idempotencyKey: key,
                startedAt: now
            )
        record.attempt = attempt
        switch outcome {
        case nil:
            record.status = .started
        case .success(let detail):
            record.status = .succeeded
            record.detail = detail
            record.errorCode = nil
            record.errorReason = nil
            record.errorMessage = nil
            record.finishedAt = now
        case .failure(let error), .retrying(let error):
            if case .failure = outcome {
                record.status = .failed
                record.finishedAt = now
            }
            record.errorCode = error.code.rawValue
            record.errorReason = error.reason
            record.errorMessage = error.message
        }
        try record.save(db)
    }

    private nonisolated func save(
        _ db: Database, _ saga: inout SagaRecord, machine: SagaStateMachine, error: RescindError?, failedStep: String?
    ) throws {
        saga.machine = try JSON.encode(machine)
        saga.state = machine.state
        saga.updatedAt = Date()
        if let error, saga.errorCode == nil {
            saga.errorCode = error.code.rawValue
            saga.errorReason = error.reason
            saga.errorMessage = error.message
            saga.failedStep = failedStep
        } else if let error, machine.state == .failed {
            // A compensation failed after the first error: keep the first and say what is stuck.
            saga.errorMessage = (saga.errorMessage ?? "") + "; then \(failedStep ?? "a step") failed: \(error.message)"
        }
        try saga.update(db)
    }
}

extension SagaRecord {
    /// A saga for the API, with its step log.
    func api(_ db: Database) throws -> Saga {
        let steps = try SagaStepRecord.filter(SagaStepRecord.Columns.sagaID == id)
            .order(SagaStepRecord.Columns.seq)
            .fetchAll(db)
        return Saga(
            id: UUID(uuidString: id) ?? UUID(), kind: kind, orderID: UUID(uuidString: orderID) ?? UUID(),
            state: state, steps: steps.map(\.api), error: error, createdAt: createdAt, updatedAt: updatedAt
        )
    }
}
