import RescindAPI

/// One step of a saga's plan: what it does going forward and what undoes it.
struct PlannedStep: Codable, Sendable, Hashable {
    var name: String
    /// The step that undoes this one; nil if it needs no undo or has none.
    var compensation: String?
    /// The go/no-go step: once it succeeds the saga can only go forward.
    var pivot: Bool = false
}

/// The pure logic of a saga: given its plan and progress, what to do next and how each outcome moves it.
///
/// Steps before the pivot are compensatable; a permanent failure there undoes the completed steps in
/// reverse. Transient failures retry the same step (with the same idempotency key) up to `maxAttempts`;
/// a step that runs out of attempts before the pivot is undone with the others. A permanent failure after
/// the pivot, the pivot or a later step or a compensation out of attempts leave the saga `failed`: it
/// needs a person.
struct SagaStateMachine: Codable, Sendable, Hashable {
    enum Action: Equatable {
        case forward(PlannedStep)
        case compensate(PlannedStep, compensation: String)
        case done(Saga.State)
    }

    enum Outcome {
        case succeeded
        /// The participant answered for good: the effect did not happen.
        case failedPermanently
        /// The effect may or may not have happened (unreachable, deadline): try again with the same key.
        case failedTransiently
    }

    private(set) var plan: [PlannedStep]
    private(set) var state: Saga.State
    /// Index of the next forward step.
    private(set) var next: Int
    /// Index of the next step to compensate, counting down.
    private(set) var compensating: Int
    /// Attempts of the current action so far.
    private(set) var attempt: Int
    var maxAttempts: Int

    /// A saga whose first `completed` steps are already done (they ran in the transaction that created it).
    init(plan: [PlannedStep], completed: Int, maxAttempts: Int) {
        self.plan = plan
        self.state = .running
        self.next = completed
        self.compensating = -1
        self.attempt = 0
        self.maxAttempts = maxAttempts
        if completed >= plan.count { state = .completed }
    }

    var action: Action {
        switch state {
        case .running:
            return .forward(plan[next])
        case .compensating:
            let step = plan[compensating]
            // Steps without an undo are skipped by `advanceCompensation`, so this step has one.
            return .compensate(step, compensation: step.compensation ?? step.name)
        case .completed, .compensated, .failed:
            return .done(state)
        }
    }

    /// Whether a step that ended the pre-pivot part of the saga has succeeded.
    private var pivotPassed: Bool { plan[..<next].contains { $0.pivot } }

    mutating func record(_ outcome: Outcome) {
        switch (state, outcome) {
        case (.running, .succeeded):
            attempt = 0
            next += 1
            if next == plan.count { state = .completed }
        case (.running, .failedPermanently):
            attempt = 0
            if pivotPassed {
                state = .failed
            } else {
                state = .compensating
                compensating = next - 1
                advanceCompensation()
            }
        case (.compensating, .succeeded):
            attempt = 0
            compensating -= 1
            advanceCompensation()
        case (.compensating, .failedPermanently):
            state = .failed
        case (.running, .failedTransiently):
            attempt += 1
            // Out of attempts before the pivot: undo, this step included (its outcome is unknown).
            if attempt >= maxAttempts { abandonCurrentStep() }
        case (.compensating, .failedTransiently):
            attempt += 1
            if attempt >= maxAttempts { state = .failed }
        case (.completed, _), (.compensated, _), (.failed, _):
            break
        }
    }

    /// Includes the current forward step in the compensation: its outcome is unknown (a request may have
    /// gone out before a restart) and it can no longer be retried.
    mutating func abandonCurrentStep() {
        guard state == .running else { return }
        attempt = 0
        // A pivot whose outcome is unknown (money may have moved) cannot be undone around: a person decides.
        if pivotPassed || plan[next].pivot {
            state = .failed
        } else {
            state = .compensating
            compensating = next
            advanceCompensation()
        }
    }

    private mutating func advanceCompensation() {
        while compensating >= 0, plan[compensating].compensation == nil {
            compensating -= 1
        }
        if compensating < 0 { state = .compensated }
    }
}
