import Foundation
import GRDB
import RescindAPI
import RescindStorage

/// The schema of the Payments database.
enum PaymentsDatabase {
    static let schema = Schema(sqlite: migrator, postgres: postgres)

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        IdempotencyStore.registerMigration(in: &migrator)
        migrator.registerMigration("payments-v1") { db in
            try db.create(table: "payment") { t in
                t.primaryKey("order_id", .text)
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('authorized', 'captured', 'voided', 'partially_refunded', 'refunded')")
                t.column("currency", .text).notNull()
                t.column("amount_authorized", .integer).notNull().check(sql: "amount_authorized > 0")
                t.column("amount_captured", .integer).notNull().check(sql: "amount_captured >= 0")
                t.column("amount_refunded", .integer).notNull()
                    .check(sql: "amount_refunded >= 0 AND amount_refunded <= amount_captured")
                t.column("fee", .integer).notNull().check(sql: "fee >= 0")
                t.column("card_last4", .text).notNull().check(sql: "length(card_last4) = 4")
                t.column("processor_token", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
            }
            try db.create(table: "payment_event") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("order_id", .text).notNull()
                t.column("kind", .text).notNull()
                    .check(sql: "kind IN ('authorize', 'capture', 'void', 'refund')")
                t.column("amount", .integer).notNull()
                t.column("fee", .integer).notNull()
                t.column("at", .datetime).notNull()
                t.column("idempotency_key", .text)
            }
        }
        // What voiding an authorization saved: the fee a capture would have cost.
        migrator.registerMigration("payments-v2-fee-saved") { db in
            try db.alter(table: "payment") { t in
                t.add(column: "fee_saved", .integer).check(sql: "fee_saved >= 0")  // NULL unless voided since
            }
        }
        // Store credit: a balance per customer that refunds can go to instead of the card, with its ledger.
        migrator.registerMigration("payments-v3-store-credit") { db in
            try db.alter(table: "payment") { t in
                t.add(column: "refunded_to_credit", .integer).notNull().defaults(to: 0)
                    .check(sql: "refunded_to_credit >= 0")
            }
            try db.create(table: "store_credit") { t in
                t.primaryKey("customer", .text)
                t.column("balance", .integer).notNull().check(sql: "balance >= 0")
                t.column("updated_at", .datetime).notNull()
            }
            try db.create(table: "store_credit_entry") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("customer", .text).notNull().references("store_credit").indexed()
                t.column("order_id", .text).notNull()
                t.column("amount", .integer).notNull().check(sql: "amount != 0")
                t.column("kind", .text).notNull().check(sql: "kind IN ('refund', 'spend', 'restore')")
                t.column("at", .datetime).notNull()
                t.column("idempotency_key", .text)
            }
        }
        // Spending store credit at placement: the card may pay nothing (amount_authorized 0), what credit paid is
        // kept with the payment and can be refunded. SQLite cannot change a CHECK: the table is rebuilt.
        migrator.registerMigration("payments-v4-spend-credit") { db in
            try db.create(table: "payment_v4") { t in
                t.primaryKey("order_id", .text)
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('authorized', 'captured', 'voided', 'partially_refunded', 'refunded')")
                t.column("currency", .text).notNull()
                t.column("amount_authorized", .integer).notNull().check(sql: "amount_authorized >= 0")
                t.column("amount_captured", .integer).notNull().check(sql: "amount_captured >= 0")
                t.column("amount_refunded", .integer).notNull().check(sql: "amount_refunded >= 0")
                t.column("fee", .integer).notNull().check(sql: "fee >= 0")
                t.column("card_last4", .text).notNull().check(sql: "length(card_last4) = 4")
                t.column("processor_token", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
                t.column("fee_saved", .integer).check(sql: "fee_saved >= 0")
                t.column("refunded_to_credit", .integer).notNull().defaults(to: 0).check(sql: "refunded_to_credit >= 0")
                t.column("credit_applied", .integer).notNull().defaults(to: 0).check(sql: "credit_applied >= 0")
                t.column("credit_customer", .text)
                t.check(sql: "amount_refunded <= amount_captured + credit_applied")
                t.check(sql: "amount_authorized + credit_applied > 0")
                t.check(sql: "(credit_applied = 0) OR (credit_customer IS NOT NULL)")
            }
            try db.execute(
                sql: """
                    INSERT INTO payment_v4 (order_id, status, currency, amount_authorized, amount_captured,
                        amount_refunded, fee, card_last4, processor_token, created_at, updated_at, fee_saved,
                        refunded_to_credit)
                    SELECT order_id, status, currency, amount_authorized, amount_captured, amount_refunded, fee,
                        card_last4, processor_token, created_at, updated_at, fee_saved, refunded_to_credit
                    FROM payment
                    """)
            try db.drop(table: "payment")
            try db.rename(table: "payment_v4", to: "payment")
        }
        // The processor as a system of its own, called outside any transaction: each call recorded before it is
        // made and with its outcome after (`processor_call`); the processor's charges (PaymentIntents) a payment
        // is made of (`processor_charge`: one per authorization, a second when an increase needs one); what the
        // processor said of the card, kept instead of read from its token; `processor_token` holds the payment
        // method (`pm_...`) that a reorder charges again.
        migrator.registerMigration("payments-v5-processor") { db in
            try db.alter(table: "payment") { t in
                t.add(column: "card_fingerprint", .text)
                t.add(column: "risk_signal", .text)
                t.add(column: "address_check", .text)
            }
            try db.create(table: "processor_charge") { t in
                t.primaryKey("id", .text)
                t.column("order_id", .text).notNull().references("payment").indexed()
                t.column("amount", .integer).notNull().check(sql: "amount > 0")
                t.column("amount_captured", .integer).notNull().defaults(to: 0).check(sql: "amount_captured >= 0")
                t.column("amount_refunded", .integer).notNull().defaults(to: 0)
                    .check(sql: "amount_refunded >= 0 AND amount_refunded <= amount_captured")
                t.column("fee", .integer).notNull().defaults(to: 0).check(sql: "fee >= 0")
                t.column("status", .text).notNull().check(sql: "status IN ('authorized', 'captured', 'voided')")
                t.column("created_at", .datetime).notNull()
                t.check(sql: "amount_captured <= amount")
            }
            try db.execute(
                sql: """
                    INSERT INTO processor_charge (id, order_id, amount, amount_captured, amount_refunded, fee, status,
                        created_at)
                    SELECT processor_token, order_id, amount_authorized, amount_captured,
                        max(0, min(amount_captured, amount_refunded - refunded_to_credit)), fee,
                        CASE status WHEN 'authorized' THEN 'authorized' WHEN 'voided' THEN 'voided' ELSE 'captured' END,
                        created_at
                    FROM payment WHERE amount_authorized > 0
                    """)
            try db.create(table: "processor_call") { t in
                t.primaryKey("key", .text)
                t.column("effect_key", .text).notNull().indexed()
                t.column("order_id", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("charge_id", .text)
                t.column("amount", .integer).notNull()
                t.column("state", .text).notNull().check(sql: "state IN ('pending', 'succeeded', 'failed')")
                t.column("outcome", .blob)
                t.column("started_at", .datetime).notNull()
                t.column("finished_at", .datetime)
                t.check(sql: "(state = 'pending') = (outcome IS NULL)")
            }
            try db.create(
                index: "processor_call_pending", on: "processor_call", columns: ["started_at"],
                condition: Column("state") == "pending")
            // What an effect decided before its first call (the store credit it spends), so that a later pass of
            // the effect makes the same calls for the same amounts.
            try db.create(table: "processor_decision") { t in
                t.column("effect_key", .text).notNull()
                t.column("name", .text).notNull()
                t.column("value", .integer).notNull()
                t.primaryKey(["effect_key", "name"])
            }
        }
        // What the processor tells Payments on its own (webhooks): each event once, by the processor's id, with
        // whether a person must act on it and who did.
        migrator.registerMigration("payments-v6-processor-events") { db in
            try db.create(table: "processor_event") { t in
                t.primaryKey("id", .text)
                t.column("type", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("order_id", .text).indexed()
                t.column("charge_id", .text)
                t.column("amount", .integer)
                t.column("detail", .text)
                t.column("occurred_at", .datetime).notNull()
                t.column("received_at", .datetime).notNull()
                t.column("needs_attention", .boolean).notNull()
                t.column("resolved_at", .datetime)
                t.column("resolved_by", .text)
                t.column("resolution", .text)
                // When the store's staff were mailed about it (only events that need a person are).
                t.column("staff_notified_at", .datetime)
                t.check(sql: "(resolved_at IS NULL) = (resolved_by IS NULL)")
                t.check(sql: "resolved_at IS NULL OR needs_attention")
            }
            try db.create(
                index: "processor_event_attention", on: "processor_event", columns: ["received_at"],
                condition: Column("needs_attention") == true && Column("resolved_at") == nil)
        }
        // Leases, so that of several replicas one at a time sweeps abandoned authorizations and mails the staff.
        Lease.registerMigration(in: &migrator)
        return migrator
    }
}

struct PaymentRecord: SQLRecord {
    static let table = "payment"
    static let primaryKey = ["order_id"]
    var orderID: String
    var status: Payment.Status
    var currency: String
    var amountAuthorized: Int64
    var amountCaptured: Int64
    var amountRefunded: Int64
    var fee: Int64
    var cardLast4: String
    var processorToken: String
    var createdAt: Date
    var updatedAt: Date
    var feeSaved: Int64?
    var refundedToCredit: Int64
    /// What the customer's store credit paid of the order (the card paid `amountAuthorized`).
    var creditApplied: Int64
    var creditCustomer: String?
    var cardFingerprint: String?
    var riskSignal: String?
    var addressCheck: String?

    enum CodingKeys: String, CodingKey {
        case status, currency, fee
        case orderID = "order_id"
        case amountAuthorized = "amount_authorized"
        case amountCaptured = "amount_captured"
        case amountRefunded = "amount_refunded"
        case cardLast4 = "card_last4"
        case processorToken = "processor_token"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case feeSaved = "fee_saved"
        case refundedToCredit = "refunded_to_credit"
        case creditApplied = "credit_applied"
        case creditCustomer = "credit_customer"
        case cardFingerprint = "card_fingerprint"
        case riskSignal = "risk_signal"
        case addressCheck = "address_check"
    }

    /// What was paid, by card and by store credit together: the most that can be refunded in all.
    var paid: Int64 { amountCaptured + creditApplied }

    var api: Payment {
        Payment(
            orderID: UUID(uuidString: orderID) ?? UUID(), status: status, currency: currency,
            amountAuthorized: amountAuthorized, amountCaptured: amountCaptured, amountRefunded: amountRefunded,
            fee: fee, cardLast4: cardLast4, feeSaved: feeSaved,
            refundedToCreditMinor: refundedToCredit > 0 ? refundedToCredit : nil,
            creditAppliedMinor: creditApplied > 0 ? creditApplied : nil,
            riskSignal: riskSignal, cardFingerprint: cardFingerprint, addressCheck: addressCheck
        )
    }
}

/// `processor_charge`: a charge at the processor (a PaymentIntent) that pays for an order, by the processor's id.
struct ProcessorChargeRecord: SQLRecord {
    static let table = "processor_charge"
    static let primaryKey = ["id"]
    enum Status: String, Codable {
        case authorized, captured, voided
    }

    var id: String
    var orderID: String
    var amount: Int64
    var amountCaptured: Int64
    var amountRefunded: Int64
    var fee: Int64
    var status: Status
    var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, amount, fee, status
        case orderID = "order_id"
        case amountCaptured = "amount_captured"
        case amountRefunded = "amount_refunded"
        case createdAt = "created_at"
    }

    /// An order's charges, oldest first.
    static func of(_ db: any SQLTransaction, _ orderID: String) throws -> [ProcessorChargeRecord] {
        try db.fetchAll(
            ProcessorChargeRecord.self, "SELECT * FROM processor_charge WHERE order_id = ? ORDER BY created_at, id",
            [orderID])
    }
}

struct PaymentEventRecord: SQLRecord {
    static let table = "payment_event"
    static let primaryKey = ["id"]
    var orderID: String
    var kind: String
    var amount: Int64
    var fee: Int64
    var at: Date
    var idempotencyKey: String?

    enum CodingKeys: String, CodingKey {
        case kind, amount, fee, at
        case orderID = "order_id"
        case idempotencyKey = "idempotency_key"
    }
}

struct StoreCreditRecord: SQLRecord {
    static let table = "store_credit"
    static let primaryKey = ["customer"]
    var customer: String
    var balance: Int64
    var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case customer, balance
        case updatedAt = "updated_at"
    }
}

struct StoreCreditEntryRecord: SQLRecord {
    static let table = "store_credit_entry"
    static let primaryKey = ["id"]
    static let generated = ["id"]
    /// Given by the database when the entry is written.
    var id: Int64?
    var customer: String
    var orderID: String
    var amount: Int64
    var kind: String
    var at: Date
    var idempotencyKey: String?

    init(customer: String, orderID: String, amount: Int64, kind: String, at: Date, idempotencyKey: String?) {
        self.customer = customer
        self.orderID = orderID
        self.amount = amount
        self.kind = kind
        self.at = at
        self.idempotencyKey = idempotencyKey
    }

    enum CodingKeys: String, CodingKey {
        case id, customer, amount, kind, at
        case orderID = "order_id"
        case idempotencyKey = "idempotency_key"
    }
}
