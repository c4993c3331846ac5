import Foundation
import RescindAPI
import RescindStorage
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
    static func begin(_ db: any SQLTransaction, _ request: Request, _ start: SagaStart) throws -> SagaBeginning<Context>

    /// The steps of a saga with this context, in order. Stored with the saga by name when it starts; the saga
    /// then runs the plan it was stored with, whatever a later build would plan.
    static func plan(_ context: Context) -> [SagaStep<Context>]

    /// Every forward step a saga of this kind may have been planned with, by this build or by an earlier one
    /// whose sagas may still be in flight: a stored plan's steps are found here by name. A step leaves this list
    /// only when no store can still have a saga planned with it.
    static var steps: [SagaStep<Context>] { get }

    /// The version of `Context` this build writes (from 1). Raise it when a change of `Context` would not read a
    /// context an earlier build stored, and read that one in `context(from:version:)`.
    static var contextVersion: Int { get }

    /// A context stored at `version` (by this build or an earlier one), as this build's `Context`.
    /// - Throws: for a version this build cannot read (a later build's), or a context that does not decode.
    static func context(from stored: String, version: Int) throws -> Context

    /// Puts the order where a person decided, for a failed saga settled by hand (`sagas.settle`), in the
    /// transaction that ends the saga `settled`; returns a line for the log.
    /// - Throws: `RescindError` for an outcome this kind cannot settle to.
    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
}

extension SagaDefinition {
    static var contextVersion: Int { 1 }

    static func context(from stored: String, version: Int) throws -> Context {
        guard version == contextVersion else {
            throw RescindError.internalError(
                "this build of Orders reads \(kind) contexts of version \(contextVersion), not \(version)")
        }
        return try JSON.decode(Context.self, stored)
    }

    /// The context of a stored saga of this kind, as this build reads it.
    static func context(of saga: SagaRecord) throws -> Context {
        try context(from: saga.context, version: saga.contextVersion)
    }
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

/// A saga kind with its context erased to the stored JSON, as the runner drives it. `plan` is the stored plan's
/// step names; `context` is at this build's version (`upgrade` reads an earlier one).
protocol SagaProgram: Sendable {
    /// The version of the context this build writes.
    var contextVersion: Int { get }
    /// A context stored at `version`, rewritten at this build's version.
    func upgrade(context: String, from version: Int) throws -> String
    /// The stored plan as the state machine needs it.
    func shapes(plan: [String], context: String, defaults: RetryPolicy) throws -> [StepShape]
    /// The name of forward step `step` or of its compensation.
    func stepName(_ step: Int, undoing: Bool, plan: [String], context: String) throws -> String
    /// The participant a step calls, or nil for a local step.
    func participant(_ step: Int, undoing: Bool, plan: [String], context: String) throws -> Participant?
    /// Runs a local step in `db`; returns the new context and a line for the log.
    func performLocal(
        _ db: any SQLTransaction, _ step: Int, undoing: Bool, plan: [String], context: String, info: LocalStepInfo
    ) throws -> (context: String, detail: String)
    /// Calls a remote step's participant; returns how to update the stored context with the answer.
    func performRemote(
        _ step: Int, undoing: Bool, plan: [String], context: String, caller: any RPCCaller, key: String,
        timeout: Duration
    ) async throws -> @Sendable (String) throws -> (context: String, detail: String)
    /// Settles a failed saga by hand.
    func settle(_ db: any SQLTransaction, context: String, as outcome: SettleOutcome, info: LocalStepInfo) throws
        -> String
}

private struct Program<D: SagaDefinition>: SagaProgram {
    var contextVersion: Int { D.contextVersion }

    private func decode(_ context: String) throws -> D.Context {
        try JSON.decode(D.Context.self, context)
    }

    func upgrade(context: String, from version: Int) throws -> String {
        try JSON.encode(try D.context(from: context, version: version))
    }

    /// The stored plan's steps: as this build plans the saga when the names agree (the usual case), else each
    /// found by name among every step the kind has.
    private func resolve(_ plan: [String], _ context: D.Context) throws -> [SagaStep<D.Context>] {
        let current = D.plan(context)
        if current.map(\.name) == plan { return current }
        return try plan.map { name in
            guard let step = current.first(where: { $0.name == name }) ?? D.steps.first(where: { $0.name == name })
            else {
                throw RescindError.internalError(
                    "a \(D.kind) saga was planned with step \(name), which this build of Orders does not have")
            }
            return step
        }
    }

    private func step(_ index: Int, undoing: Bool, _ plan: [String], _ context: D.Context) throws
        -> SagaStep<D.Context>
    {
        guard plan.indices.contains(index) else {
            throw RescindError.internalError("\(D.kind) has no step \(index)")
        }
        let step = try resolve([plan[index]], context)[0]
        if !undoing { return step }
        guard let undo = step.undo else {
            throw RescindError.internalError("step \(step.name) of \(D.kind) has nothing to undo")
        }
        return undo
    }

    func shapes(plan: [String], context: String, defaults: RetryPolicy) throws -> [StepShape] {
        try resolve(plan, decode(context)).map { $0.shape(defaults: defaults) }
    }

    func stepName(_ index: Int, undoing: Bool, plan: [String], context: String) throws -> String {
        try step(index, undoing: undoing, plan, decode(context)).name
    }

    func participant(_ index: Int, undoing: Bool, plan: [String], context: String) throws -> Participant? {
        switch try step(index, undoing: undoing, plan, decode(context)).effect {
        case .local: nil
        case .remote(let participant, _): participant
        }
    }

    func performLocal(
        _ db: any SQLTransaction, _ index: Int, undoing: Bool, plan: [String], context: String, info: LocalStepInfo
    ) throws -> (context: String, detail: String) {
        var value = try decode(context)
        guard case .local(let body) = try step(index, undoing: undoing, plan, value).effect else {
            throw RescindError.internalError("step \(index) of \(D.kind) is not local")
        }
        let detail = try body(db, &value, info)
        return (try JSON.encode(value), detail)
    }

    func performRemote(
        _ index: Int, undoing: Bool, plan: [String], context: String, caller: any RPCCaller, key: String,
        timeout: Duration
    ) async throws -> @Sendable (String) throws -> (context: String, detail: String) {
        let value = try decode(context)
        guard case .remote(_, let call) = try step(index, undoing: undoing, plan, value).effect else {
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

    func settle(_ db: any SQLTransaction, context: String, as outcome: SettleOutcome, info: LocalStepInfo) throws
        -> String
    {
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
