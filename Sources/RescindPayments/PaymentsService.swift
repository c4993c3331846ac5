import Foundation
import Logging
import RescindAPI
import RescindStorage
import RescindTransport
import RescindWire
import ServiceLifecycle
import Synchronization

/// Payments per order through the store's processor, in the Payments daemon's own database.
///
/// No card number reaches it: an authorization names the processor's payment method (`pm_...`), and what is kept
/// of the card is what the processor says (last four digits, fingerprint, screening). Each effect is idempotent by
/// the caller's key. The processor is called with no transaction open: an effect's calls are recorded before they
/// are made and their outcomes after (see `ProcessorCalls`), so a crash between the two is found out by asking the
/// processor, and no charge, capture or refund is made twice or lost.
public final class PaymentsService: Sendable {
    /// Payments' database: a SQLite file (every write through one group-commit writer, so the effects of concurrent
    /// calls share one durable commit) or a PostgreSQL database its replicas share.
    let database: any SQLDatabase
    let processor: any PaymentProcessor
    /// What a capture costs when the processor does not say, and what a void saved.
    let fees: FeeSchedule
    let logger: Logger
    /// A test's crash point: `payments.refund/after_commit` dies once a refund is committed, before it is
    /// answered; `payments/KIND/before_call` once a processor call of that kind is recorded, before it is made;
    /// `payments/KIND/after_call` once the processor answered, before its outcome is recorded. Nil in production.
    private let crashPoint: String?
    /// The effects under way, by key: a repeat that arrives while its first is still calling the processor is
    /// told to retry, so the two never both ask the processor.
    private let inFlight = Mutex<Set<String>>([])

    /// Opens (and migrates) the SQLite database at `path`. Without a processor, the simulator keeps its own database
    /// beside it (`SimulatedProcessor.databasePath(besidePayments:)`).
    /// - Throws: database errors.
    public convenience init(
        databasePath: String, processor: (any PaymentProcessor)? = nil, fees: FeeSchedule = .init(),
        crashPoint: String? = nil, logger: Logger
    ) throws {
        self.init(
            database: try SQLiteDatabase(path: databasePath, migrator: PaymentsDatabase.migrator),
            processor: try processor
                ?? SimulatedProcessor(
                    configuration: .init(fees: fees),
                    databasePath: SimulatedProcessor.databasePath(besidePayments: databasePath)),
            fees: fees, crashPoint: crashPoint, logger: logger)
    }

    /// Opens (and migrates) Payments' database: a SQLite file, or a PostgreSQL database its replicas share.
    /// - Throws: database errors.
    public convenience init(
        storage: StorageLocation, processor: any PaymentProcessor, fees: FeeSchedule = .init(),
        crashPoint: String? = nil, logger: Logger
    ) async throws {
        self.init(
            database: try await PaymentsDatabase.schema.open(storage, logger: logger), processor: processor,
            fees: fees, crashPoint: crashPoint, logger: logger)
    }

    init(
        database: any SQLDatabase, processor: any PaymentProcessor, fees: FeeSchedule, crashPoint: String?,
        logger: Logger
    ) {
        self.crashPoint = crashPoint
        self.database = database
        self.processor = processor
        self.fees = fees
        self.logger = logger
    }

    /// Registers every Payments method.
    public func register(into router: inout RPCRouter) {
        router.register(PaymentsMethods.authorize) { request, context in
            try await self.effect(context, request.orderID) { db, calls in try self.authorize(db, request, calls) }
        }
        router.register(PaymentsMethods.capture) { request, context in
            try await self.effect(context, request.orderID) { db, calls in try self.capture(db, request.orderID, calls)
            }
        }
        router.register(PaymentsMethods.void) { request, context in
            try await self.effect(context, request.orderID) { db, calls in try self.void(db, request, calls) }
        }
        router.register(PaymentsMethods.increase) { request, context in
            try await self.effect(context, request.orderID) { db, calls in try self.increase(db, request, calls) }
        }
        router.register(PaymentsMethods.setProcessorFaults) { request, context in
            guard let simulator = self.processor as? SimulatedProcessor else {
                throw RescindError.failedPrecondition(
                    "fault modes belong to the simulated processor", reason: "fault_injection_disabled")
            }
            try simulator.setFaults(request)
            context.logger.warning("processor fault mode set", metadata: ["mode": "\(request.mode)"])
            return request
        }
        router.register(PaymentsMethods.refund) { request, context in
            let result = try await self.effect(context, request.orderID) { db, calls in
                try self.refund(db, request, calls)
            }
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
        router.register(PaymentsMethods.events) { request, _ in try await self.events(request) }
        router.register(PaymentsMethods.resolveEvent) { request, context in
            let event = try await self.resolveEvent(request, by: context.peer.rawValue)
            context.logger.info(
                "processor event resolved", metadata: ["event": "\(event.id)", "by": "\(context.peer.rawValue)"])
            return event
        }
        router.register(PaymentsMethods.reconcile) { request, _ in try await self.reconcile(since: request.since) }
        router.register(PaymentsMethods.storeCredit) { request, _ in try await self.storeCredit(request.customer) }
    }

    /// One pass of an effect: answered (the idempotency store's answer), or stopped at a processor call to make.
    private enum Pass<Response: Sendable>: Sendable {
        case answered(Result<Response, RescindError>)
        case call(ProcessorCall, new: Bool)
    }

    /// Performs an effect at most once per idempotency key, calling the processor between its commits.
    ///
    /// Each pass runs `body` in a transaction of the group-commit writer. A pass that stops at a call not made yet
    /// commits the call as `pending`; the call is then made with no transaction open (a call recorded by an earlier
    /// attempt is first looked up at the processor by its key); the next pass records its outcome and runs `body`
    /// again. A processor refusal is an outcome (the effect answers it, once and for all); a processor that cannot
    /// be reached leaves the call pending and the caller retries with the same key.
    /// - Throws: `RescindError` (the effect's answer, replayed), `unavailable` (retry), database errors.
    func effect<Response: Codable & Sendable>(
        _ context: RequestContext, _ orderID: UUID,
        _ body: @escaping @Sendable (any SQLTransaction, ProcessorCalls) throws -> Response
    ) async throws -> Response {
        guard let key = context.idempotencyKey else {
            throw RescindError.invalidArgument(
                "\(context.method) needs an idempotency key", reason: "missing_idempotency_key")
        }
        guard inFlight.withLock({ $0.insert(key).inserted }) else {
            throw RescindError.unavailable(
                "a request with idempotency key \(key) is under way; retry", reason: "request_in_progress")
        }
        defer { _ = inFlight.withLock { $0.remove(key) } }
        let method = context.method
        let request = context.rawPayload
        var made: (key: String, outcome: Result<ProcessorOutcome, RescindError>)?
        while true {
            let finished = made
            let pass = try await database.write { db -> Pass<Response> in
                if let finished { try ProcessorCallRecord.finish(db, finished.key, finished.outcome) }
                let calls = ProcessorCalls(db, effectKey: key, orderID: orderID)
                do {
                    return .answered(
                        try IdempotencyStore.perform(db, key: key, method: method, request: request) {
                            try body(db, calls)
                        })
                } catch let needed as ProcessorCallNeeded {
                    try calls.recordDecisions()
                    return .call(needed.call, new: try ProcessorCallRecord.begin(db, needed.call, effectKey: key))
                }
            }
            switch pass {
            case .answered(let result):
                let value = try result.get()
                if let payment = (value as? Payment) ?? (value as? RefundResult)?.payment {
                    context.logger.info(
                        "payment changed",
                        metadata: ["order_id": "\(payment.orderID)", "status": "\(payment.status.rawValue)"])
                }
                return value
            case .call(let call, let new):
                made = (call.key, try await make(call, new: new, logger: context.logger))
            }
        }
    }

    /// Makes a recorded call; one recorded before (a crash, a lost answer) is first looked up by its key.
    /// - Throws: the processor's retryable errors (the call stays pending).
    private func make(_ call: ProcessorCall, new: Bool, logger: Logger) async throws
        -> Result<ProcessorOutcome, RescindError>
    {
        let metadata: Logger.Metadata = [
            "order_id": "\(call.orderID)", "processor_call": "\(call.kind)", "key": "\(call.key)",
        ]
        crash("payments/\(call.kind)/before_call", logger)
        if !new, let done = try await processor.lookup(call) {
            logger.info("processor call found done by its key", metadata: metadata)
            crash("payments/\(call.kind)/after_call", logger)
            return .success(done)
        }
        let outcome: Result<ProcessorOutcome, RescindError>
        do {
            outcome = .success(try await processor.perform(call))
        } catch let error as RescindError where !error.retryable {
            outcome = .failure(error)
        } catch let error as RescindError {
            logger.warning(
                "processor call not made: \(error.message)",
                metadata: metadata.merging(["reason": "\(error.reason ?? "")"]) { $1 })
            throw error
        }
        crash("payments/\(call.kind)/after_call", logger)
        return outcome
    }

    private func crash(_ point: String, _ logger: Logger) {
        guard crashPoint == point else { return }
        logger.critical("crash point reached: \(point)")
        kill(getpid(), SIGKILL)
    }

    /// An order's payment.
    /// - Throws: `not_found`.
    /// A customer's store credit and its ledger; a customer who never had any has a balance of 0.
    public func storeCredit(_ customer: String) async throws -> StoreCredit {
        try await database.read { db in
            let balance = try db.find(StoreCreditRecord.self, key: [customer])?.balance ?? 0
            let entries = try db.fetchAll(
                StoreCreditEntryRecord.self, "SELECT * FROM store_credit_entry WHERE customer = ? ORDER BY id",
                [customer])
            return StoreCredit(
                customer: customer, balanceMinor: balance,
                entries: entries.map {
                    .init(
                        orderID: UUID(uuidString: $0.orderID) ?? UUID(), amountMinor: $0.amount, kind: $0.kind,
                        at: $0.at)
                })
        }
    }

    /// An order's payment, with the processor's events about it.
    public func payment(_ orderID: UUID) async throws -> Payment {
        try await database.read { db in
            var payment = try Self.load(db, orderID).api
            let events = try Self.events(db, of: orderID)
            payment.processorEvents = events.isEmpty ? nil : events
            return payment
        }
    }

    /// An order's payment row (the hottest read of every effect: its statement is prepared once).
    static func find(_ db: any SQLTransaction, _ orderID: String) throws -> PaymentRecord? {
        try db.find(PaymentRecord.self, key: [orderID])
    }

    static func load(_ db: any SQLTransaction, _ orderID: UUID) throws -> PaymentRecord {
        guard let record = try find(db, orderID.uuidString) else {
            throw RescindError.notFound("no payment for order \(orderID)", reason: "unknown_payment")
        }
        return record
    }

    func authorize(_ db: any SQLTransaction, _ request: AuthorizeRequest, _ calls: ProcessorCalls) throws -> Payment {
        let key = calls.effectKey
        try Validation.currency(request.currency)
        guard request.amountMinor > 0 else {
            throw RescindError.invalidArgument("amount must be positive", reason: "bad_amount")
        }
        if try Self.find(db, request.orderID.uuidString) != nil {
            throw RescindError.failedPrecondition(
                "order \(request.orderID) already has a payment",
                reason: "already_authorized"
            )
        }
        let paymentMethod: String
        switch (request.paymentMethod, request.savedCardOf) {
        case (let reference?, nil):
            try PaymentMethodReference.validate(reference)
            paymentMethod = reference
        case (nil, let earlier?):
            guard let saved = try Self.find(db, earlier.uuidString) else {
                throw RescindError.failedPrecondition(
                    "order \(earlier) has no payment, so no saved card", reason: "no_saved_card")
            }
            paymentMethod = saved.processorToken
        default:
            throw RescindError.invalidArgument(
                "give either payment_method or saved_card_of, not both or neither", reason: "bad_payment_method")
        }
        let now = Date()
        // Store credit first: what it pays, the card does not. How much is decided once, before the card's call, and
        // kept with it: another order of the customer's may spend or give credit while the call is made, and every
        // pass must ask the card for the same amount.
        let balance = try request.spendStoreCreditOf.flatMap { try db.find(StoreCreditRecord.self, key: [$0]) }
        let credit =
            request.spendStoreCreditOf == nil
            ? 0 : try calls.decide("store_credit", min(balance?.balance ?? 0, request.amountMinor))
        let onCard = request.amountMinor - credit
        // A decline throws before anything is written; the idempotency store keeps it as the key's answer. When
        // store credit pays it all, the card is not charged at all.
        let charge =
            onCard > 0 ? try calls.authorize(onCard, paymentMethod: paymentMethod, currency: request.currency) : nil
        if credit > 0, let customer = request.spendStoreCreditOf {
            // Spent in this transaction, so a refusal gives it back with everything else.
            guard var balance, balance.balance >= credit else {
                // Spent by another order while the card was asked: this order cannot have it. What the card
                // authorized is cancelled first; then the refusal is the answer.
                if let charge { _ = try calls.make(.void, charge: charge.id, amountMinor: charge.amountMinor) }
                throw RescindError.failedPrecondition(
                    "the customer's store credit was spent by another order meanwhile", reason: "store_credit_spent")
            }
            balance.balance -= credit
            balance.updatedAt = now
            try db.update(balance)
            try db.insert(
                StoreCreditEntryRecord(
                    customer: customer, orderID: request.orderID.uuidString, amount: -credit, kind: "spend", at: now,
                    idempotencyKey: key
                ))
        }
        let record = PaymentRecord(
            orderID: request.orderID.uuidString, status: .authorized, currency: request.currency,
            amountAuthorized: onCard, amountCaptured: 0, amountRefunded: 0, fee: 0,
            cardLast4: charge?.last4 ?? "----", processorToken: paymentMethod, createdAt: now, updatedAt: now,
            feeSaved: nil, refundedToCredit: 0, creditApplied: credit,
            creditCustomer: credit > 0 ? request.spendStoreCreditOf : nil, cardFingerprint: charge?.fingerprint,
            riskSignal: charge?.riskSignal, addressCheck: charge?.addressCheck
        )
        try db.insert(record)
        if let charge { try Self.addCharge(db, charge, of: record, at: now) }
        try event(db, record, "authorize", amount: request.amountMinor, fee: 0, key: key)
        return record.api
    }

    private static func addCharge(
        _ db: any SQLTransaction, _ charge: ProcessorCharge, of record: PaymentRecord, at now: Date
    )
        throws
    {
        try db.insert(
            ProcessorChargeRecord(
                id: charge.id, orderID: record.orderID, amount: charge.amountMinor, amountCaptured: 0,
                amountRefunded: 0,
                fee: 0, status: .authorized, createdAt: now
            ))
    }

    /// Captures what the payment has authorized: each authorized charge for its share of `amount_authorized`
    /// (a charge with no share left, after partial voids, is cancelled).
    func capture(_ db: any SQLTransaction, _ orderID: UUID, _ calls: ProcessorCalls) throws -> Payment {
        var record = try Self.load(db, orderID)
        guard record.status == .authorized else {
            throw RescindError.failedPrecondition(
                "cannot capture a payment that is \(record.status.rawValue)",
                reason: "payment_\(record.status.rawValue)"
            )
        }
        var left = record.amountAuthorized
        var fee: Int64 = 0
        for var charge in try ProcessorChargeRecord.of(db, record.orderID) where charge.status == .authorized {
            let share = min(left, charge.amount)
            if share > 0 {
                let said = try calls.make(.capture, charge: charge.id, amountMinor: share).feeMinor
                charge.fee = said ?? fees.fee(forCaptured: share)
                charge.amountCaptured = share
                charge.status = .captured
                fee += charge.fee
                left -= share
            } else {
                _ = try calls.make(.void, charge: charge.id, amountMinor: charge.amount)
                charge.status = .voided
            }
            try db.update(charge)
        }
        record.amountCaptured = record.amountAuthorized
        record.fee = fee
        record.status = .captured
        record.updatedAt = Date()
        try db.update(record)
        try event(db, record, "capture", amount: record.amountCaptured, fee: record.fee, key: calls.effectKey)
        return record.api
    }

    func void(_ db: any SQLTransaction, _ request: VoidRequest, _ calls: ProcessorCalls) throws -> Payment {
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
        // The card's authorization goes down first; what store credit paid beyond it goes back to the balance.
        // Part of an authorization is voided by capturing less later (processors release the rest); all of it
        // by cancelling each charge at the processor.
        let fromCard = min(amount, record.amountAuthorized)
        let fromCredit = amount - fromCard
        record.feeSaved =
            (record.feeSaved ?? 0) + fees.fee(forCaptured: record.amountAuthorized)
            - fees.fee(forCaptured: record.amountAuthorized - fromCard)
        record.amountAuthorized -= fromCard
        record.creditApplied -= fromCredit
        if amount == whole {
            for var charge in try ProcessorChargeRecord.of(db, record.orderID) where charge.status == .authorized {
                _ = try calls.make(.void, charge: charge.id, amountMinor: charge.amount)
                charge.status = .voided
                try db.update(charge)
            }
            // All of it: the authorization stays on record at what it was, voided.
            record.status = .voided
            record.amountAuthorized += fromCard
            record.creditApplied += fromCredit
        }
        record.updatedAt = Date()
        try giveBackCredit(db, record, fromCredit, kind: "restore", key: calls.effectKey)
        try db.update(record)
        try event(db, record, "void", amount: amount, fee: 0, key: calls.effectKey)
        return record.api
    }

    /// Charges `request.amountMinor` more: an authorization is raised (an incremental authorization of its
    /// charge, or a second charge where the processor cannot); a captured payment's saved payment method is
    /// charged the extra in a new charge captured at once, with its fee. Recorded as an `authorize` event (and a
    /// `capture`).
    func increase(_ db: any SQLTransaction, _ request: IncreaseRequest, _ calls: ProcessorCalls) throws -> Payment {
        var record = try Self.load(db, request.orderID)
        guard request.amountMinor > 0, request.amountMinor <= 1_000_000_000_000 else {
            throw RescindError.invalidArgument("an increase must be positive", reason: "bad_amount")
        }
        let key = calls.effectKey
        let now = Date()
        let newCharge = { (amount: Int64) in
            try calls.authorize(amount, paymentMethod: record.processorToken, currency: record.currency)
        }
        switch record.status {
        case .authorized:
            // The charges may hold more than is authorized now (a part voided is released only at the capture):
            // the processor is asked only for what they do not hold.
            let charges = try ProcessorChargeRecord.of(db, record.orderID).filter { $0.status == .authorized }
            let lacking = record.amountAuthorized + request.amountMinor - charges.reduce(0) { $0 + $1.amount }
            if lacking > 0, var charge = charges.last {
                do {
                    _ = try calls.make(.authorizeMore, charge: charge.id, amountMinor: charge.amount + lacking)
                    charge.amount += lacking
                    try db.update(charge)
                } catch let error as RescindError where error.reason == "increment_unsupported" {
                    try Self.addCharge(db, try newCharge(lacking), of: record, at: now)
                }
            } else if lacking > 0 {
                try Self.addCharge(db, try newCharge(lacking), of: record, at: now)
            }
            record.amountAuthorized += request.amountMinor
            try event(db, record, "authorize", amount: request.amountMinor, fee: 0, key: key)
        case .captured, .partiallyRefunded, .refunded:
            let authorized = try newCharge(request.amountMinor)
            let said = try calls.make(.capture, charge: authorized.id, amountMinor: request.amountMinor).feeMinor
            let charge = ProcessorChargeRecord(
                id: authorized.id, orderID: record.orderID, amount: authorized.amountMinor,
                amountCaptured: request.amountMinor, amountRefunded: 0,
                fee: said ?? fees.fee(forCaptured: request.amountMinor), status: .captured, createdAt: now)
            try db.insert(charge)
            record.amountAuthorized += request.amountMinor
            record.amountCaptured += request.amountMinor
            record.fee += charge.fee
            record.status = record.amountRefunded == 0 ? .captured : .partiallyRefunded
            try event(db, record, "authorize", amount: request.amountMinor, fee: 0, key: key)
            try event(db, record, "capture", amount: request.amountMinor, fee: charge.fee, key: key)
        case .voided:
            throw RescindError.failedPrecondition(
                "cannot charge more on a voided payment", reason: "payment_voided")
        }
        record.updatedAt = now
        try db.update(record)
        return record.api
    }

    /// Puts `amount` back on the store credit of the customer whose credit paid part of `record`.
    private func giveBackCredit(
        _ db: any SQLTransaction, _ record: PaymentRecord, _ amount: Int64, kind: String, key: String?
    )
        throws
    {
        guard amount > 0, let customer = record.creditCustomer else { return }
        let now = Date()
        var credit =
            try db.find(StoreCreditRecord.self, key: [customer])
            ?? StoreCreditRecord(customer: customer, balance: 0, updatedAt: now)
        credit.balance += amount
        credit.updatedAt = now
        try db.upsert(credit)
        try db.insert(
            StoreCreditEntryRecord(
                customer: customer, orderID: record.orderID, amount: amount, kind: kind, at: now, idempotencyKey: key
            ))
    }

    func refund(_ db: any SQLTransaction, _ request: RefundRequest, _ calls: ProcessorCalls) throws -> RefundResult {
        let key = calls.effectKey
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
                try db.find(StoreCreditRecord.self, key: [customer])
                ?? StoreCreditRecord(customer: customer, balance: 0, updatedAt: now)
            credit.balance += amount
            credit.updatedAt = now
            try db.upsert(credit)
            try db.insert(
                StoreCreditEntryRecord(
                    customer: customer, orderID: record.orderID, amount: amount, kind: "refund", at: now,
                    idempotencyKey: key
                ))
            record.refundedToCredit += amount
        } else {
            // To the original means: to the card what the card paid, and back to store credit what credit paid.
            let cardRefundable = record.amountCaptured - (record.amountRefunded - record.refundedToCredit)
            let toCard = min(amount, max(cardRefundable, 0))
            // From the charges that have captured money left, oldest first: one refund each.
            var left = toCard
            for var charge in try ProcessorChargeRecord.of(db, record.orderID) where left > 0 {
                let share = min(left, charge.amountCaptured - charge.amountRefunded)
                guard share > 0 else { continue }
                _ = try calls.make(.refund, charge: charge.id, amountMinor: share)
                charge.amountRefunded += share
                try db.update(charge)
                left -= share
            }
            guard left == 0 else {
                throw RescindError.internalError(
                    "the charges of order \(record.orderID) hold \(toCard - left) to refund, not \(toCard)")
            }
            if amount > toCard {
                try giveBackCredit(db, record, amount - toCard, kind: "refund", key: key)
                record.refundedToCredit += amount - toCard
            }
        }
        record.amountRefunded += amount
        record.status = record.amountRefunded == record.paid ? .refunded : .partiallyRefunded
        record.updatedAt = Date()
        try db.update(record)
        try event(db, record, "refund", amount: amount, fee: 0, key: key)
        return RefundResult(payment: record.api, refundedMinor: amount, feeKeptMinor: record.fee)
    }

    private func event(
        _ db: any SQLTransaction, _ record: PaymentRecord, _ kind: String, amount: Int64, fee: Int64, key: String?
    )
        throws
    {
        try db.insert(
            PaymentEventRecord(
                orderID: record.orderID, kind: kind, amount: amount, fee: fee, at: Date(), idempotencyKey: key
            ))
    }
}

extension PaymentsService {
    /// Settles authorizations whose request never came back: a call recorded `pending` longer than `age` ago, for
    /// an order that has no payment, whose effect is not under way. Orders gives up on an authorization it cannot
    /// get answered and undoes the placement, and its `void` finds no payment; without this the processor would
    /// keep an authorization nobody records. Each is looked up at the processor by its key; a charge it made is
    /// cancelled there; the call is recorded failed (`failed_precondition/authorization_abandoned`), which is what
    /// a late repeat of the request then answers. Returns how many calls it settled.
    /// - Throws: database errors; the processor's (the call stays pending for the next sweep).
    @discardableResult
    public func settleAbandonedAuthorizations(olderThan age: TimeInterval, under held: Lease.Held? = nil) async throws
        -> Int
    {
        let before = Date().addingTimeInterval(-age)
        let stale = try await database.read { db in
            try db.fetchAll(
                ProcessorCallRecord.self,
                """
                SELECT * FROM processor_call
                WHERE state = 'pending' AND kind = ? AND started_at < ?
                    AND NOT EXISTS (SELECT 1 FROM payment WHERE payment.order_id = processor_call.order_id)
                """, [ProcessorCall.Kind.authorize.rawValue, before])
        }
        var settled = 0
        for record in stale {
            // The effect and a sweep never ask the processor about one call at once.
            guard inFlight.withLock({ $0.insert(record.effectKey).inserted }) else { continue }
            defer { _ = inFlight.withLock { $0.remove(record.effectKey) } }
            let call = ProcessorCall(
                kind: .authorize, key: record.key, orderID: UUID(uuidString: record.orderID) ?? UUID(),
                amountMinor: record.amount)
            var detail = "nothing was authorized"
            if let done = try await processor.lookup(call), let charge = done.charge {
                try await processor.void(charge: charge.id, key: "\(record.key)/abandoned")
                detail = "its authorization \(charge.id) was cancelled at the processor"
            }
            let abandoned = RescindError.failedPrecondition(
                "the authorization was abandoned: its request did not come back; \(detail)",
                reason: "authorization_abandoned")
            try await database.write { db in
                try held?.check(db)
                try ProcessorCallRecord.finish(db, record.key, .failure(abandoned))
            }
            logger.warning(
                "abandoned authorization settled",
                metadata: ["order_id": "\(record.orderID)", "key": "\(record.key)", "detail": "\(detail)"])
            settled += 1
        }
        return settled
    }
}

/// Runs `settleAbandonedAuthorizations` every `interval` (a lifecycle `Service` of the Payments daemon); of
/// several replicas, the one that holds the lease `abandoned_authorizations`.
public struct AbandonedAuthorizationSweeper: Service {
    let payments: PaymentsService
    /// How old a pending authorization must be: longer than Orders keeps retrying one.
    let age: TimeInterval
    let interval: Duration
    let lease: LeaseKeeper

    public init(
        payments: PaymentsService, age: TimeInterval, interval: Duration, holder: LeaseHolder = .process,
        lease: Duration = .seconds(10)
    ) {
        self.payments = payments
        self.age = age
        self.interval = interval
        self.lease = LeaseKeeper(
            Lease("abandoned_authorizations", holder: holder, duration: lease), database: payments.database)
    }

    public func run() async throws {
        await lease.runPasses(
            every: interval, logger: payments.logger, failure: "settling abandoned authorizations failed"
        ) { held in try await payments.settleAbandonedAuthorizations(olderThan: age, under: held) }
    }
}
