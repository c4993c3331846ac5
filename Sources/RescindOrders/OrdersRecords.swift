import Foundation
import GRDB
import RescindAPI

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
}

struct OrderRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "orders"
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

    enum CodingKeys: String, CodingKey {
        case id, status, currency, total, rejection
        case request = "request_fingerprint"
        case idempotencyKey = "idempotency_key"
        case customerEmail = "customer_email"
        case amountRefunded = "amount_refunded"
        case paymentStatus = "payment_status"
        case cardLast4 = "card_last4"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    enum Columns {
        static let status = Column(CodingKeys.status)
        static let createdAt = Column(CodingKeys.createdAt)
        static let idempotencyKey = Column(CodingKeys.idempotencyKey)
    }
}

struct OrderLineRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "order_line"
    var orderID: String
    var lineNo: Int
    var sku: String
    var quantity: Int64
    var unitPrice: Int64

    enum CodingKeys: String, CodingKey {
        case sku, quantity
        case orderID = "order_id"
        case lineNo = "line_no"
        case unitPrice = "unit_price"
    }

    enum Columns {
        static let orderID = Column(CodingKeys.orderID)
        static let lineNo = Column(CodingKeys.lineNo)
    }
}

struct SagaRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "saga"
    var id: String
    var kind: Saga.Kind
    var orderID: String
    var state: Saga.State
    var machine: String
    var options: String
    var results: String
    var errorCode: String?
    var errorReason: String?
    var errorMessage: String?
    var failedStep: String?
    var nextAttemptAt: Date
    var createdAt: Date
    var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case id, kind, state, machine, options, results
        case orderID = "order_id"
        case errorCode = "error_code"
        case errorReason = "error_reason"
        case errorMessage = "error_message"
        case failedStep = "failed_step"
        case nextAttemptAt = "next_attempt_at"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    enum Columns {
        static let state = Column(CodingKeys.state)
        static let orderID = Column(CodingKeys.orderID)
        static let nextAttemptAt = Column(CodingKeys.nextAttemptAt)
        static let createdAt = Column(CodingKeys.createdAt)
    }

    var error: RescindErrorSummary? {
        errorCode.map { RescindErrorSummary(code: $0, reason: errorReason, message: errorMessage ?? "") }
    }
}

struct SagaStepRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "saga_step"
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

    enum Columns {
        static let sagaID = Column(CodingKeys.sagaID)
        static let seq = Column(CodingKeys.seq)
        static let name = Column(CodingKeys.name)
        static let direction = Column(CodingKeys.direction)
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

struct CancellationRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "cancellation"
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

    enum CodingKeys: String, CodingKey {
        case reason, refunded, voided, notify
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
            cancelledAt: cancelledAt
        )
    }
}

struct OutboxRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "outbox"
    var id: Int64?
    var orderID: String
    var kind: String
    var payload: String
    var createdAt: Date
    var deliveredAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, kind, payload
        case orderID = "order_id"
        case createdAt = "created_at"
        case deliveredAt = "delivered_at"
    }

    mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}
