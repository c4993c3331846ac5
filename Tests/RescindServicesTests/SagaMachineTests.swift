import RescindAPI
import Testing

@testable import RescindOrders

@Suite struct SagaMachineTests {
    static let policy = RetryPolicy(
        maxAttempts: 3, initialDelay: .milliseconds(100), maxDelay: .milliseconds(300), jitter: 0.5)
    /// A cancellation's shape: lock, prepare (both undoable), refund (pivot), restock, finalize.
    static let plan = [
        StepShape(name: "lock", role: .compensatable(undoRetry: policy), retry: policy),
        StepShape(name: "prepare_restock", role: .compensatable(undoRetry: policy), retry: policy),
        StepShape(name: "refund", role: .pivot, retry: policy),
        StepShape(name: "restock", role: .retriable, retry: policy),
        StepShape(name: "finalize", role: .retriable, retry: policy),
    ]
    static let transient = SagaMachine.Event.failedTransiently(jitterSample: 0)

    private func machine(_ state: SagaMachine) -> SagaMachine { state }

    @Test func everyStepSucceedingCompletes() throws {
        var machine = SagaMachine.start(steps: Self.plan.count, done: 1)
        #expect(machine.action == .perform(step: 1))
        #expect(try machine.handle(.succeeded, plan: Self.plan) == .perform(step: 2))
        #expect(try machine.handle(.succeeded, plan: Self.plan) == .perform(step: 3))
        #expect(try machine.handle(.succeeded, plan: Self.plan) == .perform(step: 4))
        #expect(try machine.handle(.succeeded, plan: Self.plan) == .finish(.completed))
        #expect(machine.state == .completed)
        #expect(SagaMachine.start(steps: 1, done: 1) == .completed)
    }

    @Test func aDeclinedPivotUndoesTheStepsBeforeItInReverse() throws {
        var machine = SagaMachine.running(step: 2, attempt: 0)
        #expect(try machine.handle(.failedPermanently, plan: Self.plan) == .compensate(step: 1))
        #expect(machine.state == .compensating)
        #expect(try machine.handle(.succeeded, plan: Self.plan) == .compensate(step: 0))
        #expect(try machine.handle(.succeeded, plan: Self.plan) == .finish(.compensated))
    }

    @Test func aStepRefusedForGoodIsNotItselfUndone() throws {
        var machine = SagaMachine.running(step: 1, attempt: 0)
        #expect(try machine.handle(.failedPermanently, plan: Self.plan) == .compensate(step: 0))
    }

    @Test func stepsWithNothingToUndoAreSkipped() throws {
        let plan = [
            StepShape(name: "create", role: .compensatable(undoRetry: Self.policy), retry: Self.policy),
            StepShape(name: "note", role: .compensatable(undoRetry: nil), retry: Self.policy),
            StepShape(name: "charge", role: .pivot, retry: Self.policy),
        ]
        var machine = SagaMachine.running(step: 2, attempt: 0)
        #expect(try machine.handle(.failedPermanently, plan: plan) == .compensate(step: 0))
        var first = SagaMachine.running(step: 1, attempt: 0)
        #expect(try first.handle(.failedPermanently, plan: Array(plan.dropFirst())) == .finish(.compensated))
    }

    @Test func transientFailuresRetryWithDoublingCappedDelays() throws {
        let long = RetryPolicy(
            maxAttempts: 10, initialDelay: .milliseconds(100), maxDelay: .milliseconds(300), jitter: 0)
        let plan = Self.plan.map { StepShape(name: $0.name, role: $0.role, retry: long) }
        var machine = SagaMachine.running(step: 1, attempt: 0)
        var delays: [Duration] = []
        for _ in 0..<4 {
            guard case .retry(let delay) = try machine.handle(Self.transient, plan: plan) else {
                Issue.record("expected a retry")
                return
            }
            delays.append(delay)
        }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(300)])
        #expect(machine == .running(step: 1, attempt: 4))
        #expect(machine.action == .perform(step: 1))
        // A success starts the next step with fresh attempts.
        #expect(try machine.handle(.succeeded, plan: plan) == .perform(step: 2))
        #expect(machine.attempt == 0)
    }

    @Test(arguments: [0.0, 0.5, 0.999])
    func jitterTakesAtMostItsShareOffTheDelay(sample: Double) {
        let delay = Self.policy.delay(afterAttempt: 2, sample: sample)
        #expect(delay <= .milliseconds(200))
        #expect(delay >= .milliseconds(100))
        #expect(Self.policy.delay(afterAttempt: 2, sample: 0) == .milliseconds(200))
    }

    @Test func aCompensatableStepOutOfAttemptsIsUndoneWithTheOthers() throws {
        var machine = SagaMachine.running(step: 1, attempt: 0)
        _ = try machine.handle(Self.transient, plan: Self.plan)
        _ = try machine.handle(Self.transient, plan: Self.plan)
        // Its outcome is unknown: undo it too (an undo of what never happened is a no-op).
        #expect(try machine.handle(Self.transient, plan: Self.plan) == .compensate(step: 1))
    }

    @Test func aPivotOutOfAttemptsNeedsAPerson() throws {
        var machine = SagaMachine.running(step: 2, attempt: 2)
        #expect(try machine.handle(Self.transient, plan: Self.plan) == .needsPerson)
        #expect(machine == .failed(step: 2, undoing: false))
    }

    @Test func afterThePivotFailuresNeedAPersonInsteadOfUndoing() throws {
        var refused = SagaMachine.running(step: 3, attempt: 0)
        #expect(try refused.handle(.failedPermanently, plan: Self.plan) == .needsPerson)
        var exhausted = SagaMachine.running(step: 4, attempt: 2)
        #expect(try exhausted.handle(Self.transient, plan: Self.plan) == .needsPerson)
        #expect(exhausted == .failed(step: 4, undoing: false))
    }

    @Test func anAbandonedStepIsUndoneBeforeThePivotAndStopsAtIt() throws {
        var before = SagaMachine.running(step: 1, attempt: 1)
        #expect(try before.handle(.abandoned, plan: Self.plan) == .compensate(step: 1))
        var pivot = SagaMachine.running(step: 2, attempt: 0)
        #expect(try pivot.handle(.abandoned, plan: Self.plan) == .needsPerson)
    }

    @Test func aCompensationRetriesThenNeedsAPerson() throws {
        var machine = SagaMachine.compensating(step: 1, attempt: 0)
        #expect(try machine.handle(Self.transient, plan: Self.plan) == .retry(after: .milliseconds(100)))
        #expect(machine.action == .compensate(step: 1))
        _ = try machine.handle(Self.transient, plan: Self.plan)
        #expect(try machine.handle(Self.transient, plan: Self.plan) == .needsPerson)
        #expect(machine == .failed(step: 1, undoing: true))
        var refused = SagaMachine.compensating(step: 0, attempt: 0)
        #expect(try refused.handle(.failedPermanently, plan: Self.plan) == .needsPerson)
    }

    @Test func anOperatorRetryResumesWhereTheSagaStoppedWithFreshAttempts() throws {
        var forward = SagaMachine.failed(step: 2, undoing: false)
        #expect(try forward.handle(.operatorRetry, plan: Self.plan) == .perform(step: 2))
        #expect(forward == .running(step: 2, attempt: 0))
        var undoing = SagaMachine.failed(step: 1, undoing: true)
        #expect(try undoing.handle(.operatorRetry, plan: Self.plan) == .compensate(step: 1))
        #expect(undoing == .compensating(step: 1, attempt: 0))
    }

    @Test func anOperatorSettlesOnlyAFailedSaga() throws {
        var failed = SagaMachine.failed(step: 3, undoing: false)
        #expect(try failed.handle(.operatorSettle, plan: Self.plan) == .finish(.settled))
        #expect(failed.state == .settled)
    }

    static let states: [SagaMachine] = [
        .running(step: 1, attempt: 0), .compensating(step: 1, attempt: 0), .completed, .compensated,
        .failed(step: 2, undoing: false), .settled,
    ]
    static let events: [SagaMachine.Event] = [
        .succeeded, .failedPermanently, transient, .abandoned, .operatorRetry, .operatorSettle,
    ]

    /// Every state against every event: which are admitted, and that a refusal changes nothing.
    @Test(arguments: states, events)
    func everyStateAndEvent(state: SagaMachine, event: SagaMachine.Event) throws {
        let admitted: Bool =
            switch (state, event) {
            case (.running, .operatorRetry), (.running, .operatorSettle): false
            case (.running, _): true
            case (.compensating, .operatorRetry), (.compensating, .operatorSettle): false
            case (.compensating, _): true
            case (.failed, .operatorRetry), (.failed, .operatorSettle): true
            case (.failed, _), (.completed, _), (.compensated, _), (.settled, _): false
            }
        var machine = state
        if admitted {
            let action = try machine.handle(event, plan: Self.plan)
            // The action is what the new state says to do, except a wait before the same step again.
            if case .retry = action {
                #expect(machine.action == state.action)
            } else {
                #expect(action == machine.action)
            }
        } else {
            #expect(throws: SagaMachine.Refusal.self) { try machine.handle(event, plan: Self.plan) }
            #expect(machine == state)
        }
    }

    @Test func theMachineIsStoredAndReadBack() throws {
        for state in Self.states {
            #expect(try JSON.decode(SagaMachine.self, JSON.encode(state)) == state)
        }
        #expect(
            try JSON.encode(SagaMachine.failed(step: 0, undoing: false)) == #"{"failed":{"step":0,"undoing":false}}"#)
    }
}
