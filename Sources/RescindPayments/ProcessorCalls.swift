import Foundation
import RescindAPI
import RescindCBOR
import RescindStorage
import RescindWire

/// The processor calls of one effect, as its domain code asks for them, inside a transaction.
///
/// An effect's code runs synchronously in a database transaction and may not call the processor there. It asks
/// this book instead: a call whose outcome is recorded answers with it (or throws the processor's refusal); a call
/// not made yet stops the effect (`ProcessorCallNeeded`), its changes roll back, and `PaymentsService` records
/// the call, makes it with no transaction open, and runs the effect again with the outcome recorded. Calls are
/// keyed by the effect's idempotency key and their place in it, so the same effect asks for the same calls.
final class ProcessorCalls {
    let effectKey: String
    let orderID: UUID
    private let db: any SQLTransaction
    private var next = 0
    /// What was recorded for the effect, read when a pass first asks for a call or a decision (most passes never
    /// do: a repeat answered from the idempotency store, an effect without a processor call).
    private var loaded: Recorded?
    /// Decisions made in this pass, recorded with the call that stops it.
    private var decisions: [String: Int64] = [:]

    private struct Recorded {
        /// The calls, by key: a pass that asks for another call under a recorded key (another kind, amount or
        /// charge) has read other state than the pass that made it, and must not take its outcome.
        var calls: [String: ProcessorCallRecord]
        /// What the effect decided before its first call, as recorded with that call (`decide`).
        var decided: [String: Int64]
    }

    /// The book of an effect in `db`'s current transaction.
    init(_ db: any SQLTransaction, effectKey: String, orderID: UUID) {
        self.db = db
        self.effectKey = effectKey
        self.orderID = orderID
    }

    private func recorded() throws -> Recorded {
        if let loaded { return loaded }
        let calls = try ProcessorCallRecord.ofEffect(db, effectKey)
        let decided = try db.query("SELECT name, value FROM processor_decision WHERE effect_key = ?", [effectKey])
            .map { (try $0["name"] as String, try $0["value"] as Int64) }
        let recorded = Recorded(
            calls: Dictionary(calls.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first }),
            decided: Dictionary(decided, uniquingKeysWith: { first, _ in first }))
        loaded = recorded
        return recorded
    }

    /// A value the effect computes from what may change while its calls are made (a customer's store credit, which
    /// another order may spend): the first pass's value, recorded with its first call, so that every later pass
    /// makes the same calls for the same amounts.
    func decide(_ name: String, _ value: @autoclosure () throws -> Int64) throws -> Int64 {
        if let earlier = try recorded().decided[name] { return earlier }
        let value = try value()
        decisions[name] = value
        return value
    }

    /// Records this pass's decisions (with the call that stopped it).
    func recordDecisions() throws {
        for (name, value) in decisions {
            try db.execute(
                """
                INSERT INTO processor_decision (effect_key, name, value) VALUES (?, ?, ?)
                ON CONFLICT (effect_key, name) DO NOTHING
                """, [effectKey, name, value])
        }
    }

    /// The next call, an authorization: the charge it made.
    /// - Throws: as `make`.
    func authorize(_ amountMinor: Int64, paymentMethod: String, currency: String) throws -> ProcessorCharge {
        let outcome = try make(.authorize, amountMinor: amountMinor, paymentMethod: paymentMethod, currency: currency)
        guard let charge = outcome.charge else { throw RescindError.internalError("an authorization without charge") }
        return charge
    }

    /// The next call's outcome.
    /// - Throws: `ProcessorCallNeeded` when it is not made yet (or its outcome is not recorded); the processor's
    ///   refusal when it refused; `internal` when a call of another kind, amount or charge was made under its key.
    func make(
        _ kind: ProcessorCall.Kind, charge: String? = nil, amountMinor: Int64, paymentMethod: String? = nil,
        currency: String? = nil
    ) throws -> ProcessorOutcome {
        let call = ProcessorCall(
            kind: kind, key: "\(effectKey)/\(next)", orderID: orderID, charge: charge, amountMinor: amountMinor,
            paymentMethod: paymentMethod, currency: currency)
        next += 1
        guard let earlier = try recorded().calls[call.key] else { throw ProcessorCallNeeded(call: call) }
        guard earlier.kind == kind.rawValue, earlier.amount == amountMinor, charge == nil || earlier.chargeID == charge
        else {
            throw RescindError.internalError(
                "processor call \(call.key) was made as \(earlier.kind) of \(earlier.amount); this pass asks for "
                    + "\(kind) of \(amountMinor)")
        }
        // Recorded but still pending: made, or not, before a crash or a lost answer.
        guard let outcome = try earlier.outcome() else { throw ProcessorCallNeeded(call: call) }
        return try outcome.get()
    }
}

/// An effect needs a processor call that was not made yet.
struct ProcessorCallNeeded: Error {
    var call: ProcessorCall
}

/// `processor_call`: every call Payments makes to the processor, written `pending` before it is made and with
/// its outcome after.
struct ProcessorCallRecord: SQLRecord {
    static let table = "processor_call"
    static let primaryKey = ["key"]
    enum State: String, Codable {
        case pending, succeeded, failed
    }

    var key: String
    var effectKey: String
    var orderID: String
    var kind: String
    var chargeID: String?
    var amount: Int64
    var state: State
    /// CBOR: the `ProcessorOutcome` when it succeeded, the `RescindError` when the processor refused.
    var outcomeData: Data?
    var startedAt: Date
    var finishedAt: Date?

    enum CodingKeys: String, CodingKey {
        case key, kind, amount, state
        case effectKey = "effect_key"
        case orderID = "order_id"
        case chargeID = "charge_id"
        case outcomeData = "outcome"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    static func ofEffect(_ db: any SQLTransaction, _ effectKey: String) throws -> [ProcessorCallRecord] {
        try db.fetchAll(ProcessorCallRecord.self, "SELECT * FROM processor_call WHERE effect_key = ?", [effectKey])
    }

    static func byKey(_ db: any SQLTransaction, _ key: String) throws -> ProcessorCallRecord? {
        try db.find(ProcessorCallRecord.self, key: [key])
    }

    func outcome() throws -> Result<ProcessorOutcome, RescindError>? {
        guard let outcomeData else { return nil }
        let decoder = WireCodec().decoder
        switch state {
        case .pending: return nil
        case .succeeded: return .success(try decoder.decode(ProcessorOutcome.self, from: outcomeData))
        case .failed: return .failure(try decoder.decode(RescindError.self, from: outcomeData))
        }
    }

    /// Records a call before it is made; answers whether it is new (`false`: it was recorded before and may have
    /// been made, so the processor is asked what it did first).
    static func begin(_ db: any SQLTransaction, _ call: ProcessorCall, effectKey: String) throws -> Bool {
        if let existing = try byKey(db, call.key) {
            guard existing.kind == call.kind.rawValue, existing.amount == call.amountMinor,
                existing.chargeID == call.charge
            else {
                throw RescindError.internalError(
                    "processor call \(call.key) was recorded as another call (\(existing.kind) of \(existing.amount))")
            }
            return false
        }
        try db.execute(
            """
            INSERT INTO processor_call (key, effect_key, order_id, kind, charge_id, amount, state, started_at)
            VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)
            """,
            [call.key, effectKey, call.orderID.uuidString, call.kind.rawValue, call.charge, call.amountMinor, Date()])
        return true
    }

    /// Records what a call did.
    static func finish(_ db: any SQLTransaction, _ key: String, _ outcome: Result<ProcessorOutcome, RescindError>)
        throws
    {
        guard var record = try byKey(db, key) else {
            throw RescindError.internalError("no processor call \(key) to finish")
        }
        guard record.state == .pending else { return }
        let encoder = WireCodec().encoder
        switch outcome {
        case .success(let value):
            record.state = .succeeded
            record.outcomeData = Data(try encoder.encode(value))
            if record.chargeID == nil { record.chargeID = value.charge?.id }
        case .failure(let error):
            record.state = .failed
            record.outcomeData = Data(try encoder.encode(error))
        }
        try db.execute(
            "UPDATE processor_call SET state = ?, outcome = ?, charge_id = ?, finished_at = ? WHERE key = ?",
            [record.state.rawValue, record.outcomeData, record.chargeID, Date(), key])
    }
}
