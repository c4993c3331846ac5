import RescindAPI
import Testing

@testable import RescindOrders

@Suite struct SagaStateMachineTests {
    private let plan = [
        PlannedStep(name: "lock", compensation: "unlock"),
        PlannedStep(name: "restock", compensation: "take_back"),
        PlannedStep(name: "refund", pivot: true),
        PlannedStep(name: "finalize"),
    ]

    @Test func allStepsSucceedingCompletes() {
        var machine = SagaStateMachine(plan: plan, completed: 1, maxAttempts: 3)
        #expect(machine.action == .forward(plan[1]))
        machine.record(.succeeded)
        #expect(machine.action == .forward(plan[2]))
        machine.record(.succeeded)
        machine.record(.succeeded)
        #expect(machine.state == .completed)
        #expect(machine.action == .done(.completed))
    }

    @Test func aPermanentFailureBeforeThePivotCompensatesInReverse() {
        var machine = SagaStateMachine(plan: plan, completed: 1, maxAttempts: 3)
        machine.record(.succeeded)  // restock
        machine.record(.failedPermanently)  // refund declined
        #expect(machine.state == .compensating)
        #expect(machine.action == .compensate(plan[1], compensation: "take_back"))
        machine.record(.succeeded)
        #expect(machine.action == .compensate(plan[0], compensation: "unlock"))
        machine.record(.succeeded)
        #expect(machine.state == .compensated)
    }

    @Test func aFailedFirstRemoteStepOnlyUnlocks() {
        var machine = SagaStateMachine(plan: plan, completed: 1, maxAttempts: 3)
        machine.record(.failedPermanently)  // restock failed: nothing to take back
        #expect(machine.action == .compensate(plan[0], compensation: "unlock"))
    }

    @Test func transientFailuresRetryThenUndoBeforeThePivot() {
        var machine = SagaStateMachine(plan: plan, completed: 1, maxAttempts: 3)
        machine.record(.failedTransiently)
        machine.record(.failedTransiently)
        #expect(machine.state == .running)
        #expect(machine.attempt == 2)
        #expect(machine.action == .forward(plan[1]))
        machine.record(.failedTransiently)
        // The restock's outcome is unknown: take back whatever it did, then unlock.
        #expect(machine.action == .compensate(plan[1], compensation: "take_back"))
    }

    @Test func aPivotOutOfAttemptsNeedsAPerson() {
        var machine = SagaStateMachine(plan: plan, completed: 2, maxAttempts: 2)
        machine.record(.failedTransiently)
        machine.record(.failedTransiently)
        // The refund may have happened: undoing the restock around it could leave a refunded open order.
        #expect(machine.state == .failed)
    }

    @Test func transientFailuresAfterThePivotEndInFailed() {
        var machine = SagaStateMachine(plan: plan, completed: 3, maxAttempts: 2)
        machine.record(.failedTransiently)
        machine.record(.failedTransiently)
        #expect(machine.state == .failed)
    }

    @Test func afterThePivotAPermanentFailureNeedsAPerson() {
        var machine = SagaStateMachine(plan: plan, completed: 3, maxAttempts: 3)
        machine.record(.failedPermanently)  // finalize, after the refund
        #expect(machine.state == .failed)
    }

    @Test func aFailedCompensationNeedsAPerson() {
        var machine = SagaStateMachine(plan: plan, completed: 2, maxAttempts: 3)
        machine.record(.failedPermanently)
        machine.record(.failedPermanently)  // take_back failed
        #expect(machine.state == .failed)
    }

    @Test func abandoningAStepWithAnUnknownOutcomeUndoesItToo() {
        let place = [
            PlannedStep(name: "create", compensation: "reject"),
            PlannedStep(name: "reserve", compensation: "release"),
            PlannedStep(name: "authorize", compensation: "void"),
            PlannedStep(name: "capture", pivot: true),
        ]
        var machine = SagaStateMachine(plan: place, completed: 2, maxAttempts: 3)
        machine.abandonCurrentStep()
        #expect(machine.action == .compensate(place[2], compensation: "void"))
        machine.record(.succeeded)
        #expect(machine.action == .compensate(place[1], compensation: "release"))
    }
}
