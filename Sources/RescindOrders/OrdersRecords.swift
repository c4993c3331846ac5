import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// The status of an order in the database; `fulfilling` is the lock fulfilment holds while it commits stock.
enum OrderStatus: String, Codable, Sendable {
    case pending, open, cancelling, fulfilling, cancelled, fulfilled, rejected

    var api: Order.Status {
        switch self {
        case .pending: .pending
        case .open, .fulfilling: .open
        case .cancelling: .cancelling
        case .cancelled: .cancelled
        case .fulfilled: .fulfilled
        case .rejected: .rejected
        }
    }

    /// Nothing more will happen to the order: it may be archived.
    var isClosed: Bool { self == .cancelled || self == .fulfilled || self == .rejected }
}

struct OrderRecord: SQLRecord {
    static let table = "orders"
    static let primaryKey = ["id"]

    /// The order with id `id`, for a saga step: its absence is a bug, not a caller's mistake.
    static func load(_ db: any SQLTransaction, _ id: UUID) throws -> OrderRecord {
        guard let order = try db.find(OrderRecord.self, key: [id.uuidString]) else {
            throw RescindError.internalError("no order \(id)")
        }
        return order
    }

    /// The order with id `id`, for a caller who names it: `not_found` (naming a deletion if there was one).
    static func existing(_ db: any SQLTransaction, _ id: UUID) throws -> OrderRecord {
        try existing(db, id.uuidString)
    }

    static func existing(_ db: any SQLTransaction, _ id: String) throws -> OrderRecord {
        if let record = try db.find(OrderRecord.self, key: [id]) { return record }
        if let deleted = try db.find(DeletedOrderRecord.self, key: [id]) {
            throw RescindError.notFound(
                "order \(id) was deleted on \(deleted.deletedAt.formatted(.iso8601)) by \(deleted.deletedBy)",
                reason: "order_deleted")
        }
        throw RescindError.notFound("no order \(id)", reason: "unknown_order")
    }

    /// Changes an order in a saga step: `edit` changes it, then it is stamped `now` and written.
    @discardableResult
    static func change(_ db: any SQLTransaction, _ id: UUID, at now: Date, _ edit: (inout OrderRecord) throws -> Void)
        throws -> OrderRecord
    {
        var order = try load(db, id)
        try edit(&order)
        order.updatedAt = now
        try db.update(order)
        return order
    }

    /// Refuses a cancellation the order's status does not allow, with the rule named: the status rules of the
    /// cancellation policy, which staff's cancellations obey.
    func requireCancellable() throws {
        try CancellationPolicy.evaluate(.init(order: self, now: Date()), as: .staff, store: StoreSettings())
            .enforce(id)
    }

    /// The order's tags.
    var tagList: [String] { (try? JSON.decode([String].self, tags)) ?? [] }

    var id: String
    var customerEmail: String
    var status: OrderStatus
    var currency: String
    var total: Int64
    var amountRefunded: Int64
    var paymentStatus: String?
    var cardLast4: String
    var rejection: String?
    var idempotencyKey: String?
    var request: Data?
    var createdAt: Date
    var updatedAt: Date
    /// An `Order.Source` raw value.
    var source: String
    var archivedAt: Date?
    /// When the payment's authorization is to be captured by the clock; `nil` once captured (or never).
    var captureDueAt: Date?
    /// The order this one places again.
    var reorderOf: String?
    /// A `FulfilmentProgress` raw value while fulfilment is in progress.
    var fulfilmentInProgress: String?
    /// Its tags: a JSON array of text, sorted.
    var tags: String = "[]"
    /// The SHA-256 of its customer token, and when the token was issued.
    var customerTokenHash: Data?
    var customerTokenIssuedAt: Date?
    /// The fraud risk assessed at placement (`nil` before the order opens), its reasons in JSON, and the hold.
    var riskLevel: String?
    var riskReasons: String?
    var riskHeld = false
    var riskReleasedBy: String?
    var riskReleasedAt: Date?
    /// The card processor's fingerprint of the order's card (`nil` before the order opens).
    var cardFingerprint: String? = nil
    /// The customer's language as placed (`nil`: the store's).
    var language: String? = nil

    var risk: RiskAssessment? {
        riskLevel.map {
            RiskAssessment(
                level: RiskAssessment.Level($0),
                reasons: riskReasons.flatMap { try? JSON.decode([String].self, $0) } ?? [],
                held: riskHeld, releasedBy: riskReleasedBy, releasedAt: riskReleasedAt)
        }
    }

    enum CodingKeys: String, CodingKey {
        case tags
        case customerTokenHash = "customer_token_hash"
        case customerTokenIssuedAt = "customer_token_issued_at"
        case riskLevel = "risk_level"
        case riskReasons = "risk_reasons"
        case riskHeld = "risk_held"
        case riskReleasedBy = "risk_released_by"
        case riskReleasedAt = "risk_released_at"
        case cardFingerprint = "card_fingerprint"
        case language
        case fulfilmentInProgress = "fulfilment_in_progress"
        case reorderOf = "reorder_of"
        case id, status, currency, total, rejection, source
        case archivedAt = "archived_at"
        case captureDueAt = "capture_due_at"
        case request = "request_fingerprint"
        case idempotencyKey = "idempotency_key"
        case customerEmail = "customer_email"
        case amountRefunded = "amount_refunded"
        case paymentStatus = "payment_status"
        case cardLast4 = "card_last4"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

}

struct OrderLineRecord: SQLRecord {
    static let table = "order_line"
    static let primaryKey = ["order_id", "line_no"]
    var orderID: String
    var lineNo: Int
    var sku: String
    var quantity: Int64
    var unitPrice: Int64
    var cancelled: Int64 = 0
    var fulfilled: Int64 = 0

    /// Units neither cancelled nor fulfilled.
    var open: Int64 { quantity - cancelled - fulfilled }

    var api: Order.Line {
        Order.Line(
            sku: sku, quantity: quantity, unitPriceMinor: unitPrice, cancelled: cancelled > 0 ? cancelled : nil,
            fulfilled: fulfilled > 0 ? fulfilled : nil)
    }

    /// An order's lines in order.
    static func of(_ db: any SQLTransaction, _ orderID: String) throws -> [OrderLineRecord] {
        try db.fetchAll(OrderLineRecord.self, "SELECT * FROM order_line WHERE order_id = ? ORDER BY line_no", [orderID])
    }

    enum CodingKeys: String, CodingKey {
        case sku, quantity, cancelled, fulfilled
        case orderID = "order_id"
        case lineNo = "line_no"
        case unitPrice = "unit_price"
    }

}

struct SagaRecord: SQLRecord {
    static let table = "saga"
    static let primaryKey = ["id"]
    var id: String
    var kind: Saga.Kind
    var orderID: String
    var state: Saga.State
    /// The names of the forward steps, fixed when the saga started.
    var plan: String
    /// `SagaMachine` as JSON.
    var machine: String
    /// The kind's typed context as JSON.
    var context: String
    var errorCode: String?
    var errorReason: String?
    var errorMessage: String?
    var failedStep: String?
    var nextAttemptAt: Date
    /// The caller's idempotency key for the request that started it (`orders.cancel`), and the SHA-256 of
    /// that request.
    var requestKey: String?
    var requestFingerprint: Data?
    var settledBy: String?
    var settledAt: Date?
    var settledAs: SettleOutcome?
    var settledNote: String?
    var createdAt: Date
    var updatedAt: Date
    /// The versions of `context` (its kind's `contextVersion`) and of `machine` (`SagaMachine.version`).
    var contextVersion: Int
    var machineVersion: Int
    /// The replica that drives the saga, until when, and the fencing token its steps commit with (`SagaLease`).
    var leaseHolder: String?
    var leaseToken: Int64
    var leaseExpiresAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, kind, state, plan, machine, context
        case contextVersion = "context_version"
        case machineVersion = "machine_version"
        case leaseHolder = "lease_holder"
        case leaseToken = "lease_token"
        case leaseExpiresAt = "lease_expires_at"
        case orderID = "order_id"
        case errorCode = "error_code"
        case errorReason = "error_reason"
        case errorMessage = "error_message"
        case failedStep = "failed_step"
        case nextAttemptAt = "next_attempt_at"
        case requestKey = "request_key"
        case requestFingerprint = "request_fingerprint"
        case settledBy = "settled_by"
        case settledAt = "settled_at"
        case settledAs = "settled_as"
        case settledNote = "settled_note"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    /// The saga with id `id`, if there is one.
    static func find(_ db: any SQLTransaction, _ id: String) throws -> SagaRecord? {
        try db.find(SagaRecord.self, key: [id])
    }

    var error: RescindErrorSummary? {
        errorCode.map { RescindErrorSummary(code: $0, reason: errorReason, message: errorMessage ?? "") }
    }

    var settlement: Saga.Settlement? {
        guard let settledBy, let settledAt, let settledAs else { return nil }
        return Saga.Settlement(by: settledBy, at: settledAt, outcome: settledAs, note: settledNote ?? "")
    }
}

struct SagaStepRecord: SQLRecord {
    static let table = "saga_step"
    static let primaryKey = ["saga_id", "seq"]
    var sagaID: String
    var seq: Int
    var name: String
    var direction: Saga.Step.Direction
    var status: Saga.Step.Status
    var attempt: Int
    var idempotencyKey: String?
    var detail: String?
    var errorCode: String?
    var errorReason: String?
    var errorMessage: String?
    var startedAt: Date
    var finishedAt: Date?

    enum CodingKeys: String, CodingKey {
        case seq, name, direction, status, attempt, detail
        case sagaID = "saga_id"
        case idempotencyKey = "idempotency_key"
        case errorCode = "error_code"
        case errorReason = "error_reason"
        case errorMessage = "error_message"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    var api: Saga.Step {
        Saga.Step(
            seq: seq, name: name, direction: direction, status: status, attempt: attempt,
            idempotencyKey: idempotencyKey, detail: detail,
            error: errorCode.map { RescindErrorSummary(code: $0, reason: errorReason, message: errorMessage ?? "") },
            startedAt: startedAt, finishedAt: finishedAt
        )
    }
}

struct CancellationRecord: SQLRecord {
    static let table = "cancellation"
    static let primaryKey = ["order_id"]
    var orderID: String
    var sagaID: String
    var reason: CancelReason
    var staffNote: String?
    var refunded: Int64
    var feeKept: Int64
    var voided: Bool
    var unitsRestocked: Int64
    var notify: Bool
    var cancelledAt: Date
    var feeSaved: Int64?
    var restockingFee: Int64?
    /// `store_credit`, or `nil`: the card.
    var refundTo: String?

    enum CodingKeys: String, CodingKey {
        case reason, refunded, voided, notify
        case refundTo = "refund_to"
        case feeSaved = "fee_saved"
        case restockingFee = "restocking_fee"
        case orderID = "order_id"
        case sagaID = "saga_id"
        case staffNote = "staff_note"
        case feeKept = "fee_kept"
        case unitsRestocked = "units_restocked"
        case cancelledAt = "cancelled_at"
    }

    var api: Cancellation {
        Cancellation(
            sagaID: UUID(uuidString: sagaID) ?? UUID(), reason: reason, staffNote: staffNote, refundedMinor: refunded,
            feeKeptMinor: feeKept, voided: voided, unitsRestocked: unitsRestocked, notify: notify,
            cancelledAt: cancelledAt, feeSavedMinor: feeSaved, restockingFeeMinor: restockingFee,
            refundTo: refundTo.map(RefundDestination.init(rawValue:))
        )
    }
}

extension CancellationRecord {
    /// The record of `cancellation`, which cancelled order `orderID`.
    init(_ orderID: String, _ cancellation: Cancellation) {
        self.init(
            orderID: orderID, sagaID: cancellation.sagaID.uuidString, reason: cancellation.reason,
            staffNote: cancellation.staffNote, refunded: cancellation.refundedMinor,
            feeKept: cancellation.feeKeptMinor, voided: cancellation.voided,
            unitsRestocked: cancellation.unitsRestocked, notify: cancellation.notify,
            cancelledAt: cancellation.cancelledAt, feeSaved: cancellation.feeSavedMinor,
            restockingFee: cancellation.restockingFeeMinor, refundTo: cancellation.refundTo?.rawValue)
    }
}

/// A cancellation of some of an order's lines.
struct LineCancellationRecord: SQLRecord {
    static let table = "line_cancellation"
    static let primaryKey = ["saga_id"]
    var sagaID: String
    var orderID: String
    var refunded: Int64
    var voidedAmount: Int64
    var units: Int64
    /// `Cancellation` in JSON.
    var cancellation: String
    var cancelledAt: Date

    enum CodingKeys: String, CodingKey {
        case refunded, units, cancellation
        case sagaID = "saga_id"
        case orderID = "order_id"
        case voidedAmount = "voided_amount"
        case cancelledAt = "cancelled_at"
    }

    /// An order's cancellations of some lines, oldest first; `nil` for none.
    static func of(_ db: any SQLTransaction, _ orderID: String) throws -> [Cancellation]? {
        try JSON.decodeAll(
            db, "SELECT cancellation FROM line_cancellation WHERE order_id = ? ORDER BY cancelled_at, saga_id",
            orderID)
    }
}

/// An edit of an order (`orders.edit`).
struct OrderEditRecord: SQLRecord {
    static let table = "order_edit"
    static let primaryKey = ["saga_id"]
    var sagaID: String
    var orderID: String
    var refunded: Int64
    /// `OrderEdit` in JSON.
    var edit: String
    var at: Date

    enum CodingKeys: String, CodingKey {
        case refunded, edit, at
        case sagaID = "saga_id"
        case orderID = "order_id"
    }

    /// An order's edits, oldest first; `nil` for none.
    static func of(_ db: any SQLTransaction, _ orderID: String) throws -> [OrderEdit]? {
        try JSON.decodeAll(db, "SELECT edit FROM order_edit WHERE order_id = ? ORDER BY at, saga_id", orderID)
    }
}

extension JSON {
    /// The JSON texts in the first column of what `sql` (with one argument, `orderID`) reads, decoded; `nil` for
    /// none.
    static func decodeAll<T: Decodable>(_ db: any SQLTransaction, _ sql: String, _ orderID: String) throws -> [T]? {
        let texts = try db.query(sql, [orderID]).compactMap { $0.values.first.flatMap(String.init(sqlValue:)) }
        return texts.isEmpty ? nil : try texts.map { try decode(T.self, $0) }
    }
}

/// A customer's request to cancel, in a store that approves cancellations first.
struct CancelRequestRecord: SQLRecord {
    static let table = "cancel_request"
    static let primaryKey = ["order_id"]
    var orderID: String
    var state: String
    var note: String?
    /// `[LineQuantity]` in JSON, or `nil`: the whole order.
    var lines: String?
    var requestedAt: Date
    var decidedBy: String?
    var decidedAt: Date?
    var decisionNote: String?
    var sagaID: String?

    enum CodingKeys: String, CodingKey {
        case state, note, lines
        case orderID = "order_id"
        case requestedAt = "requested_at"
        case decidedBy = "decided_by"
        case decidedAt = "decided_at"
        case decisionNote = "decision_note"
        case sagaID = "saga_id"
    }

    var api: CancelRequest {
        CancelRequest(
            orderID: UUID(uuidString: orderID) ?? UUID(), state: CancelRequest.State(state), note: note,
            lines: lines.flatMap { try? JSON.decode([LineQuantity].self, $0) }, requestedAt: requestedAt,
            decidedBy: decidedBy, decidedAt: decidedAt, decisionNote: decisionNote,
            sagaID: sagaID.flatMap(UUID.init(uuidString:)))
    }
}

struct OutboxRecord: SQLRecord {
    static let table = "outbox"
    static let primaryKey = ["id"]
    static let generated = ["id"]
    var id: Int64?
    var orderID: String
    var kind: String
    var payload: String
    var createdAt: Date
    var deliveredAt: Date?
    /// Failed deliveries so far, when the next is due, and why the last failed.
    var attempts = 0
    var nextAttemptAt: Date?
    var lastError: String?

    enum CodingKeys: String, CodingKey {
        case id, kind, payload, attempts
        case orderID = "order_id"
        case createdAt = "created_at"
        case deliveredAt = "delivered_at"
        case nextAttemptAt = "next_attempt_at"
        case lastError = "last_error"
    }

    /// A message's payload without the customer's order-status link (kept only until it is delivered).
    static func withoutStatusLink(_ payload: String) -> String {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any],
            object.removeValue(forKey: "status_link") != nil,
            let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return payload }
        return String(decoding: data, as: UTF8.self)
    }
}

/// What is left of a deleted order in Orders: who deleted it and when, and the idempotency key it was placed
/// with, so that a late repeat of that placement is refused instead of placing the order again.
struct DeletedOrderRecord: SQLRecord {
    static let table = "deleted_order"
    static let primaryKey = ["order_id"]
    var orderID: String
    var source: String
    var idempotencyKey: String?
    var deletedBy: String
    var deletedAt: Date

    enum CodingKeys: String, CodingKey {
        case source
        case orderID = "order_id"
        case idempotencyKey = "idempotency_key"
        case deletedBy = "deleted_by"
        case deletedAt = "deleted_at"
    }

    var api: DeletedOrder {
        DeletedOrder(
            orderID: UUID(uuidString: orderID) ?? UUID(), source: Order.Source(source), deletedBy: deletedBy,
            deletedAt: deletedAt)
    }
}

/// A refund made by `orders.refund`, with why and who.
struct OrderRefundRecord: SQLRecord {
    static let table = "order_refund"
    static let primaryKey = ["saga_id"]
    var sagaID: String
    var orderID: String
    var amount: Int64
    var reason: String
    var by: String
    var at: Date
    /// `store_credit`, or `nil`: the card.
    var refundTo: String?

    enum CodingKeys: String, CodingKey {
        case amount, reason, by, at
        case sagaID = "saga_id"
        case orderID = "order_id"
        case refundTo = "refund_to"
    }

    var api: OrderRefund {
        OrderRefund(
            sagaID: UUID(uuidString: sagaID) ?? UUID(), amountMinor: amount, reason: reason, by: by, at: at,
            refundTo: refundTo.map(RefundDestination.init(rawValue:)))
    }
}

extension OrderRecord {
    /// Tags as an order keeps them: identifiers, at most 20, sorted, each once.
    /// - Throws: `invalid_argument/bad_tag`.
    static func tags(_ tags: [String]) throws -> [String] {
        let unique = Set(tags).sorted()
        guard unique.count <= 20 else {
            throw RescindError.invalidArgument("an order has at most 20 tags", reason: "bad_tag")
        }
        for tag in unique {
            do { try Validation.identifier(tag, field: "tag") } catch {
                throw RescindError.invalidArgument(
                    "tag \(tag) is not 1 to 64 letters, digits, '.', '_' or '-'", reason: "bad_tag")
            }
        }
        return unique
    }
}
