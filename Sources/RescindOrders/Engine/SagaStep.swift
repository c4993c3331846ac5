import Foundation
import RescindAPI
import RescindStorage
import RescindTransport
import RescindWire

/// The daemons a remote step can call.
enum Participant: String, Sendable {
    case inventory, payments
}

/// What a local step or a settlement sees besides the database and the saga's context.
struct LocalStepInfo: Sendable {
    var sagaID: String
    var orderID: String
    /// The error that sent the saga into compensation, if any.
    var error: RescindErrorSummary?
    var now: Date
}

/// A step that can no longer be tried and whose outcome is unknown (its request cannot be built again). The
/// machine undoes it with the others when it can be undone.
struct StepAbandoned: Error {
    var error: RescindError
}

/// One step of a saga kind: what it does, what undoes it, where it sits relative to the pivot, how it retries.
///
/// Steps are `static let` values of their saga kind, and a plan is a list of them, so a misspelt step does not
/// compile. A step is local (one Orders transaction, with its log entry) or remote (one call to a participant,
/// with the idempotency key `SAGA_ID/STEP`), built from the saga's typed context.
struct SagaStep<Context: Codable & Sendable>: Sendable {
    /// What the step does.
    enum Effect: Sendable {
        /// Changes only the Orders database, in the transaction that records it; returns a line for the log.
        case local(@Sendable (any SQLTransaction, inout Context, LocalStepInfo) throws -> String)
        /// Calls a participant; the answer updates the context in the transaction that records it.
        case remote(Participant, @Sendable (any RPCCaller, RemoteCall, Context) async throws -> Update)
    }

    /// How a remote step's answer changes the context; returns a line for the log.
    typealias Update = @Sendable (inout Context) -> String

    /// What a remote step needs to make its call.
    struct RemoteCall: Sendable {
        var key: String
        var timeout: Duration
    }

    /// Where the step sits in the saga.
    indirect enum Role: Sendable {
        /// Before the pivot; `undo` reverses it when a later step fails (nil: nothing to undo).
        case compensatable(undo: SagaStep?)
        /// The go/no-go step.
        case pivot
        /// After the pivot: retried until it succeeds.
        case retriable
    }

    let name: String
    let role: Role
    let effect: Effect
    /// Nil: the daemon's default (`sagas.max_attempts` and the retry delays of the configuration).
    let retry: RetryPolicy?

    /// A local step.
    static func local(
        _ name: String, role: Role, retry: RetryPolicy? = nil,
        _ body: @escaping @Sendable (any SQLTransaction, inout Context, LocalStepInfo) throws -> String
    ) -> SagaStep {
        SagaStep(name: name, role: role, effect: .local(body), retry: retry)
    }

    /// A remote step calling `method` on `participant` with a request built from the context.
    static func remote<Request, Response>(
        _ name: String, _ participant: Participant, _ method: RescindAPI.Method<Request, Response>, role: Role,
        retry: RetryPolicy? = nil,
        request: @escaping @Sendable (Context) throws -> Request,
        answered: @escaping @Sendable (Response, inout Context) -> String
    ) -> SagaStep {
        SagaStep(
            name: name, role: role,
            effect: .remote(participant) { caller, call, context in
                let response = try await caller.call(
                    method, try request(context), idempotencyKey: call.key, timeout: call.timeout)
                return { context in answered(response, &context) }
            },
            retry: retry
        )
    }

    var undo: SagaStep? {
        if case .compensatable(let undo) = role { return undo }
        return nil
    }

    /// The step as the state machine sees it, with `defaults` where it names no policy of its own.
    func shape(defaults: RetryPolicy) -> StepShape {
        let role: StepShape.Role =
            switch self.role {
            case .compensatable(let undo): .compensatable(undoRetry: undo.map { $0.retry ?? defaults })
            case .pivot: .pivot
            case .retriable: .retriable
            }
        return StepShape(name: name, role: role, retry: retry ?? defaults)
    }
}
