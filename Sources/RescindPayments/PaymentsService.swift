import Foundation
import GRDB
import Logging
import RescindAPI
import RescindStorage
import RescindTransport
import RescindWire

/// Payments per order through a (simulated) processor, in the Payments daemon's own database.
///
/// Only the last four digits of a card are stored. Each effect is idempotent by the caller's key.
public final class PaymentsService: Sendable {
    let database: DatabasePool
    /// Every change goes through it: the effects of concurrent calls share one durable commit.
    let writer: GroupCommitWriter
    let processor: SimulatedProcessor
    private let logger: Logger
    /// A test's crash point: `payments.refund/after_commit` dies once a refund is committed, before it is
    /// answered. Nil in production.
    private let crashPoint: String?

    /// Opens (and migrates) the database at `path`.
    /// - Throws: database errors.
    public init(
        databasePath: String, processor: SimulatedProcessor = .init(), crashPoint: String? = nil, logger: Logger
    ) throws {
        self.crashPoint = crashPoint
        self.database = try DatabaseOpener.open(path: databasePath, migrator: PaymentsDatabase.migrator)
        self.writer = GroupCommitWriter(pool: database)
        self.processor = processor
        self.logger = logger
    }

    /// Registers every Payments method.
    public func register(into router: inout RPCRouter) {
        router.register(PaymentsMethods.authorize) { request, context in
            try await self.effect(context) { db in try self.authorize(db, request, key: context.idempotencyKey) }
        }
        router.register(PaymentsMethods.capture) { request, context in
            try await self.effect(context) { db in try self.capture(db, request.orderID, key: context.idempotencyKey) }
        }
        router.register(PaymentsMethods.void) { request, context in
            try await self.effect(context) { db in try self.void(db, request, key: context.idempotencyKey) }
        }
        router.register(PaymentsMethods.increase) { request, context in
            try await self.effect(context) { db in try self.increase(db, request, key: context.idempotencyKey) }
        }
        router.register(PaymentsMethods.setProcessorFaults) { request, context in
            try self.processor.setFaults(request)
            context.logger.warning("processor fault mode set", metadata: ["mode": "\(request.mode)"])
            return request
        }
        router.register(PaymentsMethods.refund) { request, context in
            await self.processor.latency()
            let result = try await self.writer.idempotentWrite(
                key: context.idempotencyKey,
                method: context.method,
                request: context.rawPayload
            ) { db in try self.refund(db, request, key: context.idempotencyKey) }
            context.logger.info(
                "refunded",
                metadata: ["order_id": "\(request.orderID)", "amount": "\(result.refundedMinor)"]
            )
            if self.crashPoint == "payments.refund/after_commit" {
                context.logger.critical("crash point reached: payments.refund/after_commit")
                kill(getpid(), SIGKILL)
            }
            return result
        }
        router.register(PaymentsMethods.get) { request, _ in try await self.payment(request.orderID) }
        router.register(PaymentsMethods.storeCredit) { request, _ in try await self.storeCredit(request.customer) }
    }

    private func effect(
        _ context: RequestContext,
        _ body: @escaping @Sendable (Database) throws -> Payment
    ) async throws -> Payment {
        await processor.latency()
        let payment = try await writer.idempotentWrite(
            key: context.idempotencyKey,
            method: context.method,
            request: context.rawPayload,
            body: body
        )
        context.logger.info(
            "payment changed",
            metadata: ["order_id": "\(payment.orderID)", "status": "\(payment.status.rawValue)"]
        )
        return payment
    }

    /// An order's payment.
    /// - Throws: `not_found`.
    /// A customer's store credit and its ledger; a customer who never had any has a balance of 0.
    public func storeCredit(_ customer: String) async throws -> StoreCredit {
        try await database.read { db in
            let balance = try StoreCreditRecord.fetchOne(db, key: customer)?.balance ?? 0
            let entries = try StoreCreditEntryRecord.filter(Column("customer") == customer).order(Column("id"))
                .fetchAll(db)
            return StoreCredit(
                customer: customer, balanceMinor: balance,
                entries: entries.map {
                    .init(
                        orderID: UUID(uuidString: $0.orderID) ?? UUID(), amountMinor: $0.amount, kind: $0.kind,
                        at: $0.at)
                })
        }
    }

    public func payment(_ orderID: UUID) async throws -> Payment {
        try await database.read { db in try Self.load(db, orderID).api }
    }

    static func load(_ db: Database, _ orderID: UUID) throws -> PaymentRecord {
        guard let record = try PaymentRecord.fetchOne(db, key: orderID.uuidString) else {
            throw RescindError.notFound("no payment for order \(orderID)", reason: "unknown_payment")
        }
        return record
    }

    func authorize(_ db: Database, _ request: AuthorizeRequest, key: String?) throws -> Payment {
        try Validation.currency(request.currency)
        guard request.amountMinor > 0 else {
            throw RescindError.invalidArgument("amount must be positive", reason: "bad_amount")
        }
        if try PaymentRecord.fetchOne(db, key: request.orderID.uuidString) != nil {
            throw RescindError.failedPrecondition(
                "order \(request.orderID) already has a payment",
                reason: "already_authorized"
            )
        }
        let now = Date()
        // Store credit first: what it pays, the card does not. Spent in this transaction, so a decline below
        // gives it back with everything else.
        var credit: Int64 = 0
        if let customer = request.spendStoreCreditOf,
            var balance = try StoreCreditRecord.fetchOne(db, key: customer), balance.balance > 0
        {
            credit = min(balance.balance, request.amountMinor)
            balance.balance -= credit
            balance.updatedAt = now
            try balance.update(db)
            try StoreCreditEntryRecord(
                customer: customer, orderID: request.orderID.uuidString, amount: -credit, kind: "spend", at: now,
                idempotencyKey: key
            ).insert(db)
        }
        let onCard = request.amountMinor - credit
        // A decline throws before anything is written; the idempotency store keeps it as the key's answer.
        let token: SimulatedProcessor.Token
        switch (request.cardNumber, request.savedCardOf) {
        case (let number?, nil):
            token = try processor.authorize(cardNumber: number, amountMinor: onCard)
        case (nil, let earlier?):
            guard let saved = try PaymentRecord.fetchOne(db, key: earlier.uuidString) else {
                throw RescindError.failedPrecondition(
                    "order \(earlier) has no payment, so no saved card", reason: "no_saved_card")
            }
            token = try processor.authorize(
                token: .init(value: saved.processorToken, last4: saved.cardLast4), amountMinor: onCard)
        default:
            throw RescindError.invalidArgument(
                "give either card_number or saved_card_of, not both or neither", reason: "bad_card")
        }
        let record = PaymentRecord(
            orderID: request.orderID.uuidString, status: .authorized, currency: request.currency,
            amountAuthorized: onCard, amountCaptured: 0, amountRefunded: 0, fee: 0,
            cardLast4: token.last4, processorToken: token.value, createdAt: now, updatedAt: now, feeSaved: nil,
            refundedToCredit: 0, creditApplied: credit, creditCustomer: credit > 0 ? request.spendStoreCreditOf : nil
        )
        try record.insert(db)
        try event(db, record, "authorize", amount: request.amountMinor, fee: 0, key: key)
        return record.api
    }

    func capture(_ db: Database, _ orderID: UUID, key: String?) throws -> Payment {
        var record = try Self.load(db, orderID)
        guard record.status == .authorized else {
            throw RescindError.failedPrecondition(
                "cannot capture a payment that is \(record.status.rawValue)",
                reason: "payment_\(record.status.rawValue)"
            )
        }
        if record.amountAuthorized > 0 {
            try processor.capture(token: record.token)
        } else {
            try processor.checkAvailable()
        }
        record.amountCaptured = record.amountAuthorized
        record.fee = record.amountCaptured > 0 ? processor.fee(forCaptured: record.amountCaptured) : 0
        record.status = .captured
        record.updatedAt = Date()
        try record.update(db)
        try event(db, record, "capture", amount: record.amountCaptured, fee: record.fee, key: key)
        return record.api
    }

    func void(_ db: Database, _ request: VoidRequest, key: String?) throws -> Payment {
        var record = try Self.load(db, request.orderID)
        guard record.status == .authorized else {
            throw RescindError.failedPrecondition(
                "only an uncaptured authorization can be voided; this payment is \(record.status.rawValue)",
                reason: "payment_\(record.status.rawValue)"
            )
        }
        let whole = record.amountAuthorized + record.creditApplied
        let amount = request.amountMinor ?? whole
        guard amount > 0, amount <= whole else {
            throw RescindError.invalidArgument(
                "a void of \(amount) is not between 1 and the \(whole) authorized", reason: "bad_amount")
        }
        try processor.checkAvailable()
        // The card's authorization goes down first; what store credit paid beyond it goes back to the balance.
        let fromCard = min(amount, record.amountAuthorized)
        let fromCredit = amount - fromCard
        let fee = { (captured: Int64) in captured > 0 ? self.processor.fee(forCaptured: captured) : 0 }
        record.feeSaved =
            (record.feeSaved ?? 0) + fee(record.amountAuthorized) - fee(record.amountAuthorized - fromCard)
        record.amountAuthorized -= fromCard
        record.creditApplied -= fromCredit
        if amount == whole {
            // All of it: the authorization stays on record at what it was, voided.
            record.status = .voided
            record.amountAuthorized += fromCard
            record.creditApplied += fromCredit
        }
        record.updatedAt = Date()
        try giveBackCredit(db, record, fromCredit, kind: "restore", key: key)
        try record.update(db)
        try event(db, record, "void", amount: amount, fee: 0, key: key)
        return record.api
    }

    /// Charges `request.amountMinor` more: an authorization is raised; a captured payment's card is charged
    /// the extra and it is captured at once, with its fee. Recorded as an `authorize` event (and a `capture`).
    func increase(_ db: Database, _ request: IncreaseRequest, key: String?) throws -> Payment {
        var record = try Self.load(db, request.orderID)
        guard request.amountMinor > 0, request.amountMinor <= 1_000_000_000_000 else {
            throw RescindError.invalidArgument("an increase must be positive", reason: "bad_amount")
        }
        let token = record.token
        switch record.status {
        case .authorized:
            _ = try processor.authorize(token: token, amountMinor: record.amountAuthorized + request.amountMinor)
            record.amountAuthorized += request.amountMinor
            try event(db, record, "authorize", amount: request.amountMinor, fee: 0, key: key)
        case .captured, .partiallyRefunded, .refunded:
            _ = try processor.authorize(token: token, amountMinor: request.amountMinor)
            let fee = processor.fee(forCaptured: request.amountMinor)
            record.amountAuthorized += request.amountMinor
            record.amountCaptured += request.amountMinor
            record.fee += fee
            record.status = record.amountRefunded == 0 ? .captured : .partiallyRefunded
            try event(db, record, "authorize", amount: request.amountMinor, fee: 0, key: key)
            try event(db, record, "capture", amount: request.amountMinor, fee: fee, key: key)
        case .voided:
            throw RescindError.failedPrecondition(
                "cannot charge more on a voided payment", reason: "payment_voided")
        }
        record.updatedAt = Date()
        try record.update(db)
        return record.api
    }

    /// Puts `amount` back on the store credit of the customer whose credit paid part of `record`.
    private func giveBackCredit(_ db: Database, _ record: PaymentRecord, _ amount: Int64, kind: String, key: String?)
        throws
    {
        guard amount > 0, let customer = record.creditCustomer else { return }
        let now = Date()
        var credit =
            try StoreCreditRecord.fetchOne(db, key: customer)
            ?? StoreCreditRecord(customer: customer, balance: 0, updatedAt: now)
        credit.balance += amount
        credit.updatedAt = now
        try credit.save(db)
        try StoreCreditEntryRecord(
            customer: customer, orderID: record.orderID, amount: amount, kind: kind, at: now, idempotencyKey: key
        ).insert(db)
    }

    func refund(_ db: Database, _ request: RefundRequest, key: String?) throws -> RefundResult {
        var record = try Self.load(db, request.orderID)
        guard record.status == .captured || record.status == .partiallyRefunded else {
            throw RescindError.failedPrecondition(
                "cannot refund a payment that is \(record.status.rawValue)",
                reason: "payment_\(record.status.rawValue)"
            )
        }
        let refundable = record.paid - record.amountRefunded
        let amount = request.amountMinor ?? refundable
        guard amount > 0 else {
            throw RescindError.invalidArgument("a refund must be positive", reason: "bad_amount")
        }
        guard amount <= refundable else {
            throw RescindError.failedPrecondition(
                "refund of \(amount) exceeds the \(refundable) captured and not yet refunded",
                reason: "refund_exceeds_capture"
            )
        }
        let now = Date()
        if let customer = request.storeCreditOf {
            // To store credit: the store keeps the money and owes the customer; no processor call.
            try Validation.email(customer)
            var credit =
                try StoreCreditRecord.fetchOne(db, key: customer)
                ?? StoreCreditRecord(customer: customer, balance: 0, updatedAt: now)
            credit.balance += amount
            credit.updatedAt = now
            try credit.save(db)
            try StoreCreditEntryRecord(
                customer: customer, orderID: record.orderID, amount: amount, kind: "refund", at: now,
                idempotencyKey: key
            ).insert(db)
            record.refundedToCredit += amount
        } else {
            // To the original means: to the card what the card paid, and back to store credit what credit paid.
            let cardRefundable = record.amountCaptured - (record.amountRefunded - record.refundedToCredit)
            let toCard = min(amount, max(cardRefundable, 0))
            if toCard > 0 {
                try processor.refund(token: record.token, amountMinor: toCard, key: key)
            }
            if amount > toCard {
                try giveBackCredit(db, record, amount - toCard, kind: "refund", key: key)
                record.refundedToCredit += amount - toCard
            }
        }
        record.amountRefunded += amount
        record.status = record.amountRefunded == record.paid ? .refunded : .partiallyRefunded
        record.updatedAt = Date()
        try record.update(db)
        try event(db, record, "refund", amount: amount, fee: 0, key: key)
        return RefundResult(payment: record.api, refundedMinor: amount, feeKeptMinor: record.fee)
    }

    private func event(_ db: Database, _ record: PaymentRecord, _ kind: String, amount: Int64, fee: Int64, key: String?)
        throws
    {
        try PaymentEventRecord(
            orderID: record.orderID, kind: kind, amount: amount, fee: fee, at: Date(), idempotencyKey: key
        ).insert(db)
    }
}
