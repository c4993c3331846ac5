import Foundation
import GRDB
import RescindAPI
import RescindTransport
import RescindWire

/// A saga kind: how it starts, its typed context and its ordered steps, in one file (`Sagas/`), registered with one
/// line in `SagaRegistry.standard`.
///
/// `begin` runs in the transaction of the request that asks for the saga: it validates the request, applies the
/// store's policy, answers a repeat with the saga already under way, and builds the context. The context holds
/// what the saga was asked to do and what its steps answered; it is stored with the saga (JSON) and handed to
/// every step. The plan's first step runs in that same transaction (an order's `create`, a cancellation's
/// `lock`); the runner drives the rest.
protocol SagaDefinition: Sendable {
    associatedtype Context: Codable & Sendable
    /// What a caller asks for (the API's request, and who asks).
    associatedtype Request: Sendable

    static var kind: Saga.Kind { get }

    /// Starts a saga for `request` in the request's transaction, or finds the one a repeat of it started.
    /// - Throws: `RescindError` for a request the order, the store's policy or another saga refuses; nothing is
    ///   written then.
    static func begin(_ db: Database, _ request: Request, _ start: SagaStart) throws -> SagaBeginning<Context>

    /// The steps of a saga with this context, in order. Stored with the saga by name when it starts.
    static func plan(_ context: Context) -> [SagaStep<Context>]

    /// Puts the order where a person decided, for a failed saga settled by hand (`sagas.settle`), in the
    /// transaction that ends the saga `settled`; returns a line for the log.
    /// - Throws: `RescindError` for an outcome this kind cannot settle to.
    static func settle(_ db: Database, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo) throws
        -> String
}

/// What `SagaDefinition.begin` knows besides the request.
struct SagaStart: Sendable {
    /// The id of the saga, if this request starts one.
    var sagaID: String
    var now: Date
    var store: StoreSettings
    /// The request's idempotency key, and the SHA-256 of its payload.
    var requestKey: String?
    var requestFingerprint: Data?
}

/// What `SagaDefinition.begin` decided.
enum SagaBeginning<Context> {
    /// A new saga of this order, with its context.
    case new(orderID: UUID, context: Context)
    /// The request repeats one that started saga `sagaID` of order `orderID`: nothing is written.
    case existing(sagaID: String, orderID: String)
}

/// Every saga kind this daemon runs, by its wire name.
struct SagaRegistry: Sendable {
    private var programs: [Saga.Kind: any SagaProgram] = [:]

    /// The kinds Orders runs. A new kind is one file in `Sagas/` and one line here.
    static let standard = SagaRegistry()
        .registering(PlaceOrderSaga.self)
        .registering(CancelOrderSaga.self)
        .registering(FulfilOrderSaga.self)
        .registering(CapturePaymentSaga.self)
        .registering(RefundPaymentSaga.self)
        .registering(EditOrderSaga.self)

    func registering<D: SagaDefinition>(_ definition: D.Type) -> SagaRegistry {
        var copy = self
        copy.programs[D.kind] = Program<D>()
        return copy
    }

    subscript(kind: Saga.Kind) -> (any SagaProgram)? { programs[kind] }
}

/// A saga kind with its context erased to the stored JSON, as the runner drives it.
protocol SagaProgram: Sendable {
    /// The plan of a saga with this stored context: step names and what the state machine needs.
    func plan(context: String, defaults: RetryPolicy) throws -> [StepShape]
    /// The name of forward step `step` or of its compensation.
    func stepName(_ step: Int, undoing: Bool, context: String) throws -> String
    /// The participant a step calls, or nil for a local step.
    func participant(_ step: Int, undoing: Bool, context: String) throws -> Participant?
    /// Runs a local step in `db`; returns the new context and a line for the log.
    func performLocal(_ db: Database, _ step: Int, undoing: Bool, context: String, info: LocalStepInfo) throws
        -> (context: String, detail: String)
    /// Calls a remote step's participant; returns how to update the stored context with the answer.
    func performRemote(
        _ step: Int, undoing: Bool, context: String, caller: any RPCCaller, key: String, timeout: Duration
    ) async throws -> @Sendable (String) throws -> (context: String, detail: String)
    /// Settles a failed saga by hand.
    func settle(_ db: Database, context: String, as outcome: SettleOutcome, info: LocalStepInfo) throws -> String
}

private struct Program<D: SagaDefinition>: SagaProgram {
    private func decode(_ context: String) throws -> D.Context {
        try JSON.decode(D.Context.self, context)
    }

    private func step(_ index: Int, undoing: Bool, _ context: D.Context) throws -> SagaStep<D.Context> {
        let plan = D.plan(context)
        guard plan.indices.contains(index) else {
            throw RescindError.internalError("\(D.kind) has no step \(index)")
        }
        if !undoing { return plan[index] }
        guard let undo = plan[index].undo else {
            throw RescindError.internalError("step \(plan[index].name) of \(D.kind) has nothing to undo")
        }
        return undo
    }

    func plan(context: String, defaults: RetryPolicy) throws -> [StepShape] {
        D.plan(try decode(context)).map { $0.shape(defaults: defaults) }
    }

    func stepName(_ index: Int, undoing: Bool, context: String) throws -> String {
        try step(index, undoing: undoing, decode(context)).name
    }

    func participant(_ index: Int, undoing: Bool, context: String) throws -> Participant? {
        switch try step(index, undoing: undoing, decode(context)).effect {
        case .local: nil
        case .remote(let participant, _): participant
        }
    }

    func performLocal(_ db: Database, _ index: Int, undoing: Bool, context: String, info: LocalStepInfo) throws
        -> (context: String, detail: String)
    {
        var value = try decode(context)
        guard case .local(let body) = try step(index, undoing: undoing, value).effect else {
            throw RescindError.internalError("step \(index) of \(D.kind) is not local")
        }
        let detail = try body(db, &value, info)
        return (try JSON.encode(value), detail)
    }

    func performRemote(
        _ index: Int, undoing: Bool, context: String, caller: any RPCCaller, key: String, timeout: Duration
    ) async throws -> @Sendable (String) throws -> (context: String, detail: String) {
        let value = try decode(context)
        guard case .remote(_, let call) = try step(index, undoing: undoing, value).effect else {
            throw RescindError.internalError("step \(index) of \(D.kind) is not remote")
        }
        let update = try await call(
            caller, SagaStep<D.Context>.RemoteCall(key: key, timeout: timeout), value)
        // Applied to the context as stored when the answer is recorded, not as it was when the call went out.
        return { stored in
            var current = try JSON.decode(D.Context.self, stored)
            let detail = update(&current)
            return (try JSON.encode(current), detail)
        }
    }

    func settle(_ db: Database, context: String, as outcome: SettleOutcome, info: LocalStepInfo) throws -> String {
        try D.settle(db, try decode(context), as: outcome, info: info)
    }
}

/// JSON for what the Orders database keeps as text: contexts and machine states.
enum JSON {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}
