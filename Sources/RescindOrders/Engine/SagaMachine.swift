import RescindAPI
import RescindWire

/// How often and how patiently a step is tried again after a transient failure.
struct RetryPolicy: Hashable, Sendable {
    /// Attempts in all, the first included, before the step counts as out of attempts.
    var maxAttempts: Int
    var initialDelay: Duration
    var maxDelay: Duration
    /// Share of each delay drawn at random (0...1): 0.5 waits between half and the whole of it, so that
    /// sagas that failed together do not all retry in the same instant.
    var jitter: Double = 0.5
    /// Codes that mean "not yet" for this step although the error says it is not retryable.
    var alsoTransient: Set<RescindError.Code> = []

    /// Whether `error` is worth another attempt with the same key.
    func isTransient(_ error: RescindError) -> Bool {
        error.retryable || alsoTransient.contains(error.code)
    }

    /// The wait before attempt `attempt + 1`, after `attempt` attempts failed: doubling from `initialDelay`,
    /// capped at `maxDelay`, less up to `jitter` of it as `sample` (0..<1) says.
    func delay(afterAttempt attempt: Int, sample: Double) -> Duration {
        let doublings = min(max(attempt - 1, 0), 30)
        let full = min(initialDelay * (1 << doublings), maxDelay)
        let clamped = min(max(sample, 0), 1)
        return full * (1 - jitter * clamped)
    }
}

/// What the state machine needs to know of a step: its place in the saga and its retry policy.
struct StepShape: Hashable, Sendable {
    enum Role: Hashable, Sendable {
        /// Before the pivot: undone by its compensation when a later step fails (`undoRetry` nil: no undo).
        case compensatable(undoRetry: RetryPolicy?)
        /// The go/no-go step: a "no" undoes the steps before it; an unknown outcome needs a person.
        case pivot
        /// After the pivot: retried until it succeeds; a failure for good needs a person.
        case retriable
    }

    var name: String
    var role: Role
    var retry: RetryPolicy

    var hasUndo: Bool {
        if case .compensatable(let undo) = role { return undo != nil }
        return false
    }
}

/// The pure logic of a saga: where it stands, and for each event, where it goes and what to do next.
///
/// Nothing here reads a clock, a database or a random source: the runner passes the plan and, with a
/// transient failure, a random sample for the jitter. This is the only place that decides whether a
/// failure compensates, retries or needs a person, how long to wait and when attempts run out.
enum SagaMachine: Hashable, Sendable, Codable {
    /// The version of the machine as stored (its JSON), from 1. Raise it when a change would not read a machine an
    /// earlier build stored, and read that one in `decode(_:version:)`.
    static let version = 1

    /// A machine stored at `version`.
    /// - Throws: for a version this build cannot read (a later build's), or one that does not decode.
    static func decode(_ stored: String, version: Int) throws -> SagaMachine {
        guard version == Self.version else {
            throw RescindError.internalError(
                "this build of Orders reads saga machines of version \(Self.version), not \(version)")
        }
        return try JSON.decode(SagaMachine.self, stored)
    }

    /// Going forward; `step` is the next to perform, `attempt` the attempts of it that failed transiently.
    case running(step: Int, attempt: Int)
    /// Undoing; `step` is the forward step whose compensation runs next.
    case compensating(step: Int, attempt: Int)
    case completed
    case compensated
    /// Stopped where a person must look: `step` is where it stopped, going forward or undoing.
    case failed(step: Int, undoing: Bool)
    /// A person ended it by hand.
    case settled

    /// Something that happened to the current step, or a person's decision.
    enum Event: Hashable, Sendable {
        case succeeded
        /// The participant answered for good: the effect did not happen.
        case failedPermanently
        /// The effect may or may not have happened (unreachable, deadline): try again with the same key.
        /// `jitterSample` (0..<1) picks the wait within the policy's jitter.
        case failedTransiently(jitterSample: Double)
        /// The step can no longer be tried and its outcome is unknown (a card number lost in a restart): undo
        /// it with the others if it can be undone.
        case abandoned
        /// A person resumes a failed saga where it stopped, with fresh attempts.
        case operatorRetry
        /// A person ended a failed saga by hand.
        case operatorSettle
    }

    /// What the runner does next.
    enum Action: Hashable, Sendable {
        /// Perform forward step `step`.
        case perform(step: Int)
        /// Perform the compensation of forward step `step`.
        case compensate(step: Int)
        /// Wait, then do what the state says (the same step again).
        case retry(after: Duration)
        /// The saga is over.
        case finish(Saga.State)
        /// The saga stopped: a person retries or settles it.
        case needsPerson
    }

    /// An event that makes no sense in the current state (an operator retry of a running saga).
    struct Refusal: Error, Hashable, Sendable {
        var state: Saga.State
        var event: Event
    }

    /// A saga of `steps` steps whose first `done` ran in the transaction that created it.
    static func start(steps: Int, done: Int) -> SagaMachine {
        done >= steps ? .completed : .running(step: done, attempt: 0)
    }

    /// The state as the wire names it.
    var state: Saga.State {
        switch self {
        case .running: .running
        case .compensating: .compensating
        case .completed: .completed
        case .compensated: .compensated
        case .failed: .failed
        case .settled: .settled
        }
    }

    /// What to do now, with no new event: where a runner starts after a restart or a retry's wait.
    var action: Action {
        switch self {
        case .running(let step, _): .perform(step: step)
        case .compensating(let step, _): .compensate(step: step)
        case .completed: .finish(.completed)
        case .compensated: .finish(.compensated)
        case .settled: .finish(.settled)
        case .failed: .needsPerson
        }
    }

    /// Attempts of the current step that failed transiently.
    var attempt: Int {
        switch self {
        case .running(_, let attempt), .compensating(_, let attempt): attempt
        case .completed, .compensated, .failed, .settled: 0
        }
    }

    /// Applies `event` to the current step of a saga with `plan`; returns what to do next.
    /// - Throws: `Refusal` for an event the state does not admit.
    mutating func handle(_ event: Event, plan: [StepShape]) throws(Refusal) -> Action {
        switch (self, event) {
        case (.running(let step, _), .succeeded):
            self = step + 1 >= plan.count ? .completed : .running(step: step + 1, attempt: 0)
        case (.running(let step, _), .failedPermanently):
            switch plan[step].role {
            case .compensatable, .pivot: self = Self.undo(from: step - 1, plan: plan)
            case .retriable: self = .failed(step: step, undoing: false)
            }
        case (.running(let step, let attempt), .failedTransiently(let sample)):
            let policy = plan[step].retry
            if attempt + 1 < policy.maxAttempts {
                self = .running(step: step, attempt: attempt + 1)
                return .retry(after: policy.delay(afterAttempt: attempt + 1, sample: sample))
            }
            self = Self.abandon(step, plan: plan)
        case (.running(let step, _), .abandoned):
            self = Self.abandon(step, plan: plan)
        case (.compensating(let step, _), .succeeded):
            self = Self.undo(from: step - 1, plan: plan)
        case (.compensating(let step, _), .failedPermanently), (.compensating(let step, _), .abandoned):
            self = .failed(step: step, undoing: true)
        case (.compensating(let step, let attempt), .failedTransiently(let sample)):
            guard case .compensatable(let undoRetry?) = plan[step].role else {
                self = .failed(step: step, undoing: true)
                break
            }
            if attempt + 1 < undoRetry.maxAttempts {
                self = .compensating(step: step, attempt: attempt + 1)
                return .retry(after: undoRetry.delay(afterAttempt: attempt + 1, sample: sample))
            }
            self = .failed(step: step, undoing: true)
        case (.failed(let step, let undoing), .operatorRetry):
            self = undoing ? .compensating(step: step, attempt: 0) : .running(step: step, attempt: 0)
        case (.failed, .operatorSettle):
            self = .settled
        case (.running, .operatorRetry), (.running, .operatorSettle),
            (.compensating, .operatorRetry), (.compensating, .operatorSettle),
            (.failed, .succeeded), (.failed, .failedPermanently), (.failed, .failedTransiently), (.failed, .abandoned),
            (.completed, _), (.compensated, _), (.settled, _):
            throw Refusal(state: state, event: event)
        }
        return action
    }

    /// A step out of attempts or abandoned: its outcome is unknown. Before the pivot it is undone with the
    /// others (an undo of what never happened is a no-op); the pivot or a later step needs a person, since
    /// money may have moved.
    private static func abandon(_ step: Int, plan: [StepShape]) -> SagaMachine {
        switch plan[step].role {
        case .compensatable: undo(from: step, plan: plan)
        case .pivot, .retriable: .failed(step: step, undoing: false)
        }
    }

    /// Compensation from `step` down, skipping steps with nothing to undo.
    private static func undo(from step: Int, plan: [StepShape]) -> SagaMachine {
        var step = step
        while step >= 0, !plan[step].hasUndo { step -= 1 }
        return step < 0 ? .compensated : .compensating(step: step, attempt: 0)
    }
}
