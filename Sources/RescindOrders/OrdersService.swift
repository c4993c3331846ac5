import Foundation
import GRDB
import Logging
import RescindAPI
import RescindMail
import RescindStorage
import RescindTransport
import RescindWire
import ServiceLifecycle

/// Orders and their sagas, in the Orders daemon's own database.
///
/// Placing and cancelling an order are sagas: each is written to the database with its first local step
/// before any request goes out, and `SagaRunner` drives it to a terminal state, across restarts.
public final class OrdersService: Sendable {
    /// Retry and timeout policy of the sagas.
    public struct Configuration: Codable, Sendable, Hashable {
        /// Attempts of one step on transient errors before the saga is marked failed.
        public var maxAttempts: Int
        public var initialRetryDelaySeconds: Double
        public var maxRetryDelaySeconds: Double
        /// Deadline of each call to Payments or Inventory.
        public var callTimeoutSeconds: Double
        /// How long `orders.place` and `orders.fulfill` wait for their saga before answering with the order as it
        /// stands.
        public var placeTimeoutSeconds: Double
        /// How often the runner looks for sagas whose retry is due.
        public var pollIntervalSeconds: Double
        /// A saga still running this long after it began counts as stuck in `health` and `sagas list --stuck`.
        public var stuckAfterSeconds: Double

        public init(
            maxAttempts: Int = 30,
            initialRetryDelaySeconds: Double = 0.2,
            maxRetryDelaySeconds: Double = 10,
            callTimeoutSeconds: Double = 5,
            placeTimeoutSeconds: Double = 30,
            pollIntervalSeconds: Double = 0.5,
            stuckAfterSeconds: Double = 300
        ) {
            self.maxAttempts = maxAttempts
            self.initialRetryDelaySeconds = initialRetryDelaySeconds
            self.maxRetryDelaySeconds = maxRetryDelaySeconds
            self.callTimeoutSeconds = callTimeoutSeconds
            self.placeTimeoutSeconds = placeTimeoutSeconds
            self.pollIntervalSeconds = pollIntervalSeconds
            self.stuckAfterSeconds = stuckAfterSeconds
        }

        /// Reads a configuration; absent fields take their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Configuration()
            maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? d.maxAttempts
            initialRetryDelaySeconds =
                try c.decodeIfPresent(Double.self, forKey: .initialRetryDelaySeconds) ?? d.initialRetryDelaySeconds
            maxRetryDelaySeconds =
                try c.decodeIfPresent(Double.self, forKey: .maxRetryDelaySeconds) ?? d.maxRetryDelaySeconds
            callTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .callTimeoutSeconds) ?? d.callTimeoutSeconds
            placeTimeoutSeconds =
                try c.decodeIfPresent(Double.self, forKey: .placeTimeoutSeconds) ?? d.placeTimeoutSeconds
            pollIntervalSeconds =
                try c.decodeIfPresent(Double.self, forKey: .pollIntervalSeconds) ?? d.pollIntervalSeconds
            stuckAfterSeconds = try c.decodeIfPresent(Double.self, forKey: .stuckAfterSeconds) ?? d.stuckAfterSeconds
        }

        enum CodingKeys: String, CodingKey {
            case maxAttempts = "max_attempts"
            case initialRetryDelaySeconds = "initial_retry_delay_seconds"
            case maxRetryDelaySeconds = "max_retry_delay_seconds"
            case callTimeoutSeconds = "call_timeout_seconds"
            case placeTimeoutSeconds = "place_timeout_seconds"
            case pollIntervalSeconds = "poll_interval_seconds"
            case stuckAfterSeconds = "stuck_after_seconds"
        }
    }

    let database: DatabasePool
    let configuration: Configuration
    let store: StoreSettings
    let notifications: NotificationSettings
    /// The store's mail server, when the notifications name one.
    let smtp: SMTPClient?
    let runner: SagaRunner
    let logger: Logger

    /// Opens (and migrates) the database at `path`. Sagas run once the runner runs (`services` or `run()`).
    /// - Throws: database errors; `SMTPError` when the mail server's password or CA cannot be read.
    public init(
        databasePath: String,
        inventory: any RPCCaller,
        payments: any RPCCaller,
        configuration: Configuration = .init(),
        store: StoreSettings = .init(),
        notifications: NotificationSettings = .init(),
        crashPoint: CrashPoint? = nil,
        logger: Logger
    ) throws {
        let database = try DatabaseOpener.open(path: databasePath, migrator: OrdersDatabase.migrator)
        self.database = database
        self.configuration = configuration
        self.store = store
        self.notifications = notifications
        self.smtp = try notifications.mail.map { try SMTPClient(settings: $0.smtp) }
        self.logger = logger
        self.runner = SagaRunner(
            database: database,
            registry: .standard,
            participants: SagaParticipants(inventory: inventory, payments: payments),
            configuration: .init(
                retry: RetryPolicy(
                    maxAttempts: max(configuration.maxAttempts, 1),
                    initialDelay: .seconds(configuration.initialRetryDelaySeconds),
                    maxDelay: .seconds(configuration.maxRetryDelaySeconds)
                ),
                callTimeout: .seconds(configuration.callTimeoutSeconds),
                pollInterval: .seconds(configuration.pollIntervalSeconds),
                crashPoint: crashPoint
            ),
            logger: logger
        )
    }

    /// What the daemon runs beside its server, in start order: the saga runner, then the outbox relay. On
    /// SIGTERM the relay stops, then the runner lets its current steps finish and record.
    public var services: [any Service] {
        [runner, CaptureScheduler(service: self), relay]
    }

    /// The relay of customer notifications to the configured sinks.
    var relay: OutboxRelay {
        var sinks: [any NotificationSink] = []
        if let file = notifications.file { sinks.append(FileSink(path: file)) }
        if let webhook = notifications.webhook { sinks.append(WebhookSink(webhook: webhook)) }
        let mail = CustomerMail(
            language: notifications.language, from: notifications.mail?.from ?? notifications.mailFrom,
            storeName: notifications.storeName)
        if let folder = notifications.mailDrop { sinks.append(MailDropSink(directory: folder, mail: mail)) }
        if let smtp {
            sinks.append(SMTPSink(client: smtp, mail: mail, staff: notifications.mail?.staff, logger: logger))
        }
        return OutboxRelay(
            database: database, sinks: sinks, maxBackoff: notifications.maxBackoffSeconds, logger: logger)
    }

    /// Runs the services until cancelled (for tests and tools without a service group).
    public func run() async {
        await withDiscardingTaskGroup { group in
            for service in services {
                group.addTask { try? await service.run() }
            }
        }
    }

    /// Registers every Orders method.
    public func register(into router: inout RPCRouter) {
        router.register(OrdersMethods.place) { request, context in
            try await self.place(request, idempotencyKey: context.idempotencyKey, rawRequest: context.rawPayload)
        }
        router.register(OrdersMethods.get) { request, _ in try await self.order(request.orderID) }
        router.register(OrdersMethods.list) { request, _ in try await self.list(request) }
        router.register(OrdersMethods.cancel) { request, context in
            try await self.cancel(
                request, idempotencyKey: context.idempotencyKey, rawRequest: context.rawPayload, logger: context.logger)
        }
        router.register(OrdersMethods.fulfill) { request, context in
            try await self.fulfill(request, logger: context.logger)
        }
        router.register(OrdersMethods.edit) { request, context in
            try await self.edit(
                request, idempotencyKey: context.idempotencyKey, rawRequest: context.rawPayload, by: context.peer,
                logger: context.logger)
        }
        router.register(OrdersMethods.canCancel) { request, _ in try await self.canCancel(request) }
        router.register(OrdersMethods.release) { request, context in
            try await self.releaseHold(request.orderID, by: context.peer, logger: context.logger)
        }
        router.register(OrdersMethods.rotateToken) { request, context in
            try await self.rotateToken(request.orderID, logger: context.logger)
        }
        router.register(CustomerMethods.getOrder) { request, _ in try await self.customerOrder(request) }
        router.register(CustomerMethods.canCancel) { request, _ in try await self.customerCanCancel(request) }
        router.register(CustomerMethods.canEdit) { request, _ in try await self.customerCanEdit(request) }
        router.register(CustomerMethods.view) { request, _ in try await self.customerView(request) }
        router.register(CustomerMethods.edit) { request, context in
            try await self.customerEdit(
                request, idempotencyKey: context.idempotencyKey, rawRequest: context.rawPayload, logger: context.logger)
        }
        router.register(CustomerMethods.reorder) { request, context in
            try await self.customerReorder(
                request, idempotencyKey: context.idempotencyKey, rawRequest: context.rawPayload)
        }
        router.register(RequestMethods.list) { request, _ in try await self.requests(request) }
        router.register(RequestMethods.approve) { request, context in
            try await self.approve(request, by: context.peer, logger: context.logger)
        }
        router.register(RequestMethods.decline) { request, context in
            try await self.decline(request, by: context.peer, logger: context.logger)
        }
        router.register(CustomerMethods.cancel) { request, context in
            try await self.customerCancel(
                request, idempotencyKey: context.idempotencyKey, rawRequest: context.rawPayload, logger: context.logger)
        }
        router.register(OrdersMethods.tag) { request, context in try await self.tag(request, logger: context.logger) }
        router.register(OrdersMethods.mark) { request, context in
            try await self.mark(request, logger: context.logger)
        }
        router.register(OrdersMethods.reorder) { request, context in
            try await self.reorder(request, idempotencyKey: context.idempotencyKey, rawRequest: context.rawPayload)
        }
        router.register(OrdersMethods.refund) { request, context in
            try await self.refund(
                request, idempotencyKey: context.idempotencyKey, rawRequest: context.rawPayload, by: context.peer,
                logger: context.logger)
        }
        router.register(OrdersMethods.archive) { request, context in
            try await self.archive(request.orderID, logger: context.logger)
        }
        router.register(OrdersMethods.unarchive) { request, context in
            try await self.unarchive(request.orderID, logger: context.logger)
        }
        router.register(OrdersMethods.delete) { request, context in
            try await self.delete(request.orderID, by: context.peer, logger: context.logger)
        }
        router.register(OrdersMethods.listSagas) { request, _ in try await self.sagas(request) }
        router.register(OrdersMethods.getSaga) { request, _ in try await self.saga(request.sagaID) }
        router.register(OrdersMethods.waitSaga) { request, _ in try await self.waitForSaga(request) }
        router.register(OrdersMethods.retrySaga) { request, context in
            try await self.retry(request.sagaID, logger: context.logger)
        }
        router.register(OrdersMethods.settleSaga) { request, context in
            try await self.settle(request, by: context.peer, logger: context.logger)
        }
    }

    // MARK: Placing

    /// Places an order and waits for its saga (up to `placeTimeoutSeconds`).
    /// - Throws: `invalid_argument` for a bad order; the saga's error if it was rejected (`out_of_stock`,
    ///   `card_declined`); `conflict` for an idempotency key reused with another order.
    public func place(_ request: PlaceOrderRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [])
        async throws -> Order
    {
        try Self.validate(request)
        return try await place(
            Placement(
                customerEmail: request.customerEmail, currency: request.currency, lines: request.lines,
                source: request.source ?? .api, cardLast4: "", paymentMethod: request.paymentMethod, savedCardOf: nil,
                spendsCredit: request.useStoreCredit == true, tags: try Self.tags(request.tags ?? []),
                language: request.language),
            idempotencyKey: idempotencyKey, rawRequest: rawRequest)
    }

    /// Places an order again: the same lines for the same customer, through the placement saga, paid with the
    /// card saved with the first order's payment. The new order names the first (`reorder_of`), and the first
    /// lists it (`reorders`).
    /// - Throws: `not_found`; `failed_precondition/no_saved_card` for an order that never had a payment (its card
    ///   was declined, say); the placement's errors (`out_of_stock`, ...).
    public func reorder(_ request: ReorderRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [])
        async throws -> Order
    {
        if let source = request.source, !Order.Source.known.contains(source) {
            throw RescindError.invalidArgument("no order source \(source)", reason: "unknown_source")
        }
        let (first, lines) = try await database.read { db in
            let record = try Self.existing(db, request.orderID)
            // As ordered, cancelled units included.
            let lines = try OrderLineRecord.of(db, record.id).map {
                Order.Line(sku: $0.sku, quantity: $0.quantity, unitPriceMinor: $0.unitPrice)
            }
            return (record, lines)
        }
        guard first.paymentStatus != nil else {
            throw RescindError.failedPrecondition(
                "order \(first.id) never had a payment, so there is no saved card to charge", reason: "no_saved_card")
        }
        return try await place(
            Placement(
                customerEmail: first.customerEmail, currency: first.currency, lines: lines,
                source: request.source ?? Order.Source(first.source), cardLast4: first.cardLast4, paymentMethod: nil,
                savedCardOf: request.orderID, spendsCredit: request.useStoreCredit == true, tags: [],
                language: first.language),
            idempotencyKey: idempotencyKey, rawRequest: rawRequest)
    }

    /// What a placement writes: the order, and how its card is charged (the processor's payment method, or the
    /// one saved with an earlier order).
    struct Placement {
        var customerEmail: String
        var currency: String
        var lines: [Order.Line]
        var source: Order.Source
        /// Empty until the processor authorizes the card (a reorder: the first order's).
        var cardLast4: String
        var paymentMethod: String?
        var savedCardOf: UUID?
        /// Spend the customer's store credit first.
        var spendsCredit: Bool
        /// Sorted, each once.
        var tags: [String]
        /// The customer's language (`nil`: the store's).
        var language: String?
    }

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

    private func place(_ placement: Placement, idempotencyKey: String?, rawRequest: [UInt8]) async throws -> Order {
        let now = Date()
        let orderID = UUID.timeOrdered(at: now)
        let sagaID = UUID.timeOrdered(at: now).uuidString
        let total = placement.lines.reduce(Int64(0)) { $0 + $1.quantity * $1.unitPriceMinor }
        let token = SecretToken.generate()
        let existing: String? = try await runner.writer.write { db in
            if let idempotencyKey,
                let deleted = try DeletedOrderRecord.filter(DeletedOrderRecord.Columns.idempotencyKey == idempotencyKey)
                    .fetchOne(db)
            {
                throw RescindError.failedPrecondition(
                    "idempotency key \(idempotencyKey) placed order \(deleted.orderID), which was deleted on "
                        + "\(deleted.deletedAt.formatted(.iso8601)): it is not placed again",
                    reason: "order_deleted")
            }
            if let idempotencyKey,
                let previous = try OrderRecord.filter(OrderRecord.Columns.idempotencyKey == idempotencyKey).fetchOne(db)
            {
                guard previous.request == IdempotencyStore.fingerprint(rawRequest) else {
                    throw RescindError.conflict(
                        "idempotency key \(idempotencyKey) was first used for another order",
                        reason: "idempotency_key_reused"
                    )
                }
                return previous.id
            }
            try OrderRecord(
                id: orderID.uuidString, customerEmail: placement.customerEmail, status: .pending,
                currency: placement.currency, total: total, amountRefunded: 0, paymentStatus: nil,
                cardLast4: placement.cardLast4, rejection: nil, idempotencyKey: idempotencyKey,
                request: idempotencyKey == nil ? nil : IdempotencyStore.fingerprint(rawRequest), createdAt: now,
                updatedAt: now, source: placement.source.rawValue, archivedAt: nil, captureDueAt: nil,
                reorderOf: placement.savedCardOf?.uuidString, tags: try JSON.encode(placement.tags),
                customerTokenHash: SecretToken.hash(token), customerTokenIssuedAt: now, language: placement.language
            ).insert(db)
            // The customer's confirmation with their link: sent once the order opens (dropped if it is rejected),
            // and the link removed from the message once it is delivered (Orders keeps only the token's hash).
            struct Confirmation: Encodable {
                var orderID: String
                var customerEmail: String
                var total: Int64
                var currency: String
                var statusLink: String
                var reorderOf: String?

                enum CodingKeys: String, CodingKey {
                    case total, currency
                    case orderID = "order_id"
                    case customerEmail = "customer_email"
                    case statusLink = "status_link"
                    case reorderOf = "reorder_of"
                }
            }
            try OutboxRecord(
                id: nil, orderID: orderID.uuidString,
                kind: placement.savedCardOf == nil ? "order_confirmed" : "reorder_placed",
                payload: try JSON.encode(
                    Confirmation(
                        orderID: orderID.uuidString, customerEmail: placement.customerEmail, total: total,
                        currency: placement.currency, statusLink: self.store.statusLink(token),
                        reorderOf: placement.savedCardOf?.uuidString)),
                createdAt: now, deliveredAt: nil
            ).insert(db)
            for (index, line) in placement.lines.enumerated() {
                try OrderLineRecord(
                    orderID: orderID.uuidString, lineNo: index + 1, sku: line.sku, quantity: line.quantity,
                    unitPrice: line.unitPriceMinor
                ).insert(db)
            }
            try SagaStore.start(
                db, PlaceOrderSaga.self, id: sagaID, orderID: orderID,
                context: .init(
                    orderID: orderID, lines: placement.lines, amount: total, currency: placement.currency,
                    captureDueAt: self.store.captureDue(authorizedAt: now), paymentMethod: placement.paymentMethod,
                    savedCardOf: placement.savedCardOf,
                    spendCreditOf: placement.spendsCredit ? placement.customerEmail : nil, risk: RiskRules(self.store))
            )
            return nil
        }
        if let existing {
            let saga = try await database.read { db in
                try String.fetchOne(
                    db, sql: "SELECT id FROM saga WHERE order_id = ? AND kind = 'place_order'", arguments: [existing])
            }
            if let saga { await runner.waitUntilTerminal(saga, timeout: placeTimeout) }
            return try await placedOrder(existing)
        }
        var metadata: Logger.Metadata = ["order_id": "\(orderID)", "saga_id": "\(sagaID)"]
        if let first = placement.savedCardOf { metadata["reorder_of"] = "\(first)" }
        logger.info("placing order", metadata: metadata)
        runner.submit(sagaID)
        await runner.waitUntilTerminal(sagaID, timeout: placeTimeout)
        // The link goes out once, in this answer (and in the confirmation): a repeat gets the order without it.
        return withToken(try await placedOrder(orderID.uuidString), token)
    }

    /// `order` with its customer token and order-status link.
    private func withToken(_ order: Order, _ token: String) -> Order {
        var order = order
        order.customerToken = token
        order.statusLink = store.statusLink(token)
        return order
    }

    // MARK: Customers

    /// Releases an order held for its fraud risk; who and when are kept. A repeat changes nothing.
    /// - Throws: `not_found`.
    public func releaseHold(_ orderID: UUID, by person: Identity, logger: Logger? = nil) async throws -> Order {
        let order = try await runner.writer.write { db in
            var record = try Self.existing(db, orderID)
            guard record.riskHeld else { return try Self.loadOrder(db, record.id) }
            let now = Date()
            record.riskHeld = false
            record.riskReleasedBy = person.rawValue
            record.riskReleasedAt = now
            record.updatedAt = now
            try record.update(db)
            return try Self.loadOrder(db, record.id)
        }
        (logger ?? self.logger).info(
            "order released from its risk hold", metadata: ["order_id": "\(orderID)", "peer": "\(person.rawValue)"])
        return order
    }

    /// Replaces an order's customer token: the old link stops opening the order at once.
    /// - Throws: `not_found`.
    public func rotateToken(_ orderID: UUID, logger: Logger? = nil) async throws -> Order {
        let token = SecretToken.generate()
        let order = try await runner.writer.write { db in
            var record = try Self.existing(db, orderID)
            record.customerTokenHash = SecretToken.hash(token)
            record.customerTokenIssuedAt = Date()
            try record.update(db)
            return try Self.loadOrder(db, record.id)
        }
        (logger ?? self.logger).info("customer token rotated", metadata: ["order_id": "\(orderID)"])
        return withToken(order, token)
    }

    /// The order a customer token opens.
    /// - Throws: `not_found/unknown_token` for a token that opens no order (wrong, or rotated since);
    ///   `permission_denied/token_expired` for one older than the store's `customer_link_days`.
    func customerOrder(_ db: Database, token: String, now: Date = Date()) throws -> OrderRecord {
        let hash = SecretToken.hash(token)
        let statement = try db.cachedStatement(sql: "SELECT * FROM orders WHERE customer_token_hash = ?")
        // Found by the token's hash, then compared in constant time: the lookup's timing says nothing of the token.
        guard SecretToken.isWellFormed(token), let order = try OrderRecord.fetchOne(statement, arguments: [hash]),
            let stored = order.customerTokenHash, SecretToken.equal(stored, hash)
        else {
            throw RescindError.notFound("this link opens no order", reason: "unknown_token")
        }
        if let issued = order.customerTokenIssuedAt, now > issued.addingTimeInterval(store.customerLinkDays * 86_400) {
            throw RescindError(
                .permissionDenied, "this link has expired; ask the store for a new one", reason: "token_expired",
                retryable: false)
        }
        return order
    }

    /// The order, for its customer.
    public func customerOrder(_ request: CustomerRequest) async throws -> Order {
        try await database.read { db in try Self.loadOrder(db, try self.customerOrder(db, token: request.token).id) }
    }

    /// What the customer's rules look at, for the order a customer token opens, now.
    func customerFacts(_ db: Database, token: String) throws -> CancellationPolicy.Facts {
        try CancellationPolicy.Facts.read(db, try customerOrder(db, token: token), store: store, now: Date())
    }

    /// What the store's policy says of a cancellation by the customer now.
    public func customerCanCancel(_ request: CustomerRequest) async throws -> CancelPolicyDecision {
        try await database.read { db in
            CancellationPolicy.evaluate(
                try self.customerFacts(db, token: request.token), as: .customer, store: self.store)
        }
    }

    /// The order and what the policy says of its customer cancelling it and changing it now, from one read: what
    /// the order page shows is one state of the order.
    public func customerView(_ request: CustomerRequest) async throws -> CustomerOrderView {
        try await database.read { db in
            let facts = try self.customerFacts(db, token: request.token)
            return CustomerOrderView(
                order: try Self.loadOrder(db, facts.order.id),
                canCancel: CancellationPolicy.evaluate(facts, as: .customer, store: self.store),
                canEdit: CancellationPolicy.evaluate(facts, as: .customer, action: .edit, store: self.store))
        }
    }

    /// Cancels as the customer: reason `customer`, refunded to the card, restocked, the customer notified, if the
    /// store's policy allows it now (the same evaluation `customer.can_cancel` answers with). A store that approves
    /// cancellations first gets a request instead (a repeat answers with the pending request).
    public func customerCancel(
        _ request: CustomerCancelRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [],
        logger: Logger? = nil
    ) async throws -> CustomerCancelResult {
        if let note = request.note, note.unicodeScalars.count > CancelOrderRequest.maxStaffNoteLength {
            throw RescindError.invalidArgument(
                "the note is \(note.unicodeScalars.count) characters; at most \(CancelOrderRequest.maxStaffNoteLength)",
                reason: "note_too_long")
        }
        let (orderID, needsApproval) = try await database.read { db in
            let order = try self.customerOrder(db, token: request.token)
            return (order.id, self.store.needsApproval(total: order.total))
        }
        if needsApproval {
            let asked = try await runner.writer.write { db -> CancelRequest in
                let order = try self.customerOrder(db, token: request.token)
                if let pending = try CancelRequestRecord.fetchOne(db, key: order.id), pending.state == "pending" {
                    return pending.api
                }
                let facts = try CancellationPolicy.Facts.read(db, order, store: self.store, now: Date())
                try CancellationPolicy.evaluate(facts, as: .customer, store: self.store).enforce(order.id)
                _ = try LineSelection(request.lines, of: facts.lines, doing: "cancel")
                try Self.refuseWhileBusy(db, order.id)
                let now = Date()
                let record = CancelRequestRecord(
                    orderID: order.id, state: "pending", note: request.note,
                    lines: try request.lines.map { try JSON.encode($0) }, requestedAt: now)
                try record.save(db)
                try Self.notify(db, order, kind: "cancellation_requested", note: request.note, at: now)
                // As stored (to the millisecond), so that a repeat answers exactly the same.
                return try CancelRequestRecord.fetchOne(db, key: order.id)?.api ?? record.api
            }
            (logger ?? self.logger).info("cancellation requested", metadata: ["order_id": "\(orderID)"])
            return CustomerCancelResult(
                sagaID: nil, request: asked, order: try await order(UUID(uuidString: orderID) ?? UUID()))
        }
        let accepted = try await cancel(
            CancelOrderRequest(
                orderID: UUID(uuidString: orderID) ?? UUID(), reason: .customer, refund: true, restock: true,
                notify: true, staffNote: request.note, lines: request.lines),
            idempotencyKey: idempotencyKey, rawRequest: rawRequest, logger: logger, as: .customer)
        return CustomerCancelResult(sagaID: accepted.sagaID, request: nil, order: accepted.order)
    }

    /// What the store's policy says of the customer changing quantities now.
    public func customerCanEdit(_ request: CustomerRequest) async throws -> CancelPolicyDecision {
        try await database.read { db in
            CancellationPolicy.evaluate(
                try self.customerFacts(db, token: request.token), as: .customer, action: .edit, store: self.store)
        }
    }

    /// Changes quantities as the customer (`orders.edit`, recorded as by `customer`), if the store's policy allows
    /// these changes now (the evaluation `customer.can_edit` answers with, given the changes).
    /// - Throws: as `orders.edit`; `failed_precondition/not_on_order` for a SKU the order does not have; the failed
    ///   rule's reason (`cancellation_window_closed`, `customer_edits_off`, `approval_required`, ...).
    public func customerEdit(
        _ request: CustomerEditRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [],
        logger: Logger? = nil
    ) async throws -> Order {
        let orderID = try await database.read { db in try self.customerOrder(db, token: request.token).id }
        return try await edit(
            EditOrderRequest(
                orderID: UUID(uuidString: orderID) ?? UUID(),
                changes: request.lines.map { LineChange(sku: $0.sku, quantity: $0.quantity) }, note: request.note),
            idempotencyKey: idempotencyKey, rawRequest: rawRequest, by: "customer", as: .customer, logger: logger)
    }

    /// Places the order again for its customer: the same lines, the card saved with it, from the online store.
    /// The answer carries the new order's link (once; a repeat with the same key answers without it).
    public func customerReorder(_ request: CustomerRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [])
        async throws -> Order
    {
        let orderID = try await database.read { db in try self.customerOrder(db, token: request.token).id }
        return try await reorder(
            ReorderRequest(orderID: UUID(uuidString: orderID) ?? UUID(), source: .onlineStore),
            idempotencyKey: idempotencyKey, rawRequest: rawRequest)
    }

    // MARK: Requests

    /// Customers' requests, oldest first: pending ones unless another state is asked for.
    public func requests(_ request: ListRequestsRequest) async throws -> CancelRequestList {
        let limit = min(max(request.limit ?? 100, 1), 1000)
        return try await database.read { db in
            let records = try CancelRequestRecord.filter(Column("state") == (request.state ?? .pending).rawValue)
                .order(Column("requested_at")).limit(limit).fetchAll(db)
            return CancelRequestList(requests: records.map(\.api))
        }
    }

    /// Approves a pending request: the cancellation saga starts as the customer asked (reason `customer`,
    /// refunded, restocked, notified), whatever the window now; staff's rules apply. A repeat answers with the
    /// same saga.
    /// - Throws: `not_found/no_request`; `failed_precondition/request_declined`; the cancellation's errors.
    public func approve(_ request: DecideRequest, by person: Identity, logger: Logger? = nil) async throws
        -> CancelAccepted
    {
        let asked = try await database.read { db in
            try CancelRequestRecord.fetchOne(db, key: request.orderID.uuidString)
        }
        guard let asked else {
            throw RescindError.notFound("order \(request.orderID) has no cancellation request", reason: "no_request")
        }
        guard asked.state != "declined" else {
            throw RescindError.failedPrecondition(
                "the request to cancel order \(request.orderID) was declined", reason: "request_declined")
        }
        // One key per request: approving again finds the same saga. The request is marked approved, and the
        // customer's notice queued, in the transaction that starts the saga.
        let note = request.note
        let accepted = try await cancel(
            CancelOrderRequest(
                orderID: request.orderID, reason: .customer, refund: true, restock: true, notify: true,
                staffNote: asked.note, lines: asked.api.lines),
            idempotencyKey: "request-approve-\(asked.orderID)-\(asked.requestedAt.timeIntervalSince1970)",
            rawRequest: [], logger: logger, as: .staff
        ) { db, sagaID in
            guard var record = try CancelRequestRecord.fetchOne(db, key: asked.orderID), record.state == "pending"
            else { return }
            let now = Date()
            record.state = "approved"
            record.decidedBy = person.rawValue
            record.decidedAt = now
            record.decisionNote = note
            record.sagaID = sagaID
            try record.update(db)
            try Self.notify(
                db, try OrderRecord.load(db, request.orderID), kind: "cancellation_approved", note: note, at: now)
        }
        (logger ?? self.logger).info(
            "cancellation request approved",
            metadata: ["order_id": "\(request.orderID)", "saga_id": "\(accepted.sagaID)", "peer": "\(person.rawValue)"])
        return CancelAccepted(sagaID: accepted.sagaID, order: try await order(request.orderID))
    }

    /// Declines a pending request with a note the customer reads; the order stays open.
    /// - Throws: `invalid_argument/note_required`; `not_found/no_request`; `failed_precondition/request_<state>`.
    public func decline(_ request: DecideRequest, by person: Identity, logger: Logger? = nil) async throws -> Order {
        let note = request.note?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !note.isEmpty, note.unicodeScalars.count <= 255 else {
            throw RescindError.invalidArgument(
                "say why in 1 to 255 characters: the customer reads it", reason: "note_required")
        }
        let order = try await runner.writer.write { db in
            guard var record = try CancelRequestRecord.fetchOne(db, key: request.orderID.uuidString) else {
                throw RescindError.notFound(
                    "order \(request.orderID) has no cancellation request", reason: "no_request")
            }
            guard record.state == "pending" else {
                if record.state == "declined" { return try Self.loadOrder(db, record.orderID) }
                throw RescindError.failedPrecondition(
                    "the request to cancel order \(request.orderID) is \(record.state)",
                    reason: "request_\(record.state)")
            }
            let now = Date()
            record.state = "declined"
            record.decidedBy = person.rawValue
            record.decidedAt = now
            record.decisionNote = note
            try record.update(db)
            try Self.notify(
                db, try OrderRecord.load(db, request.orderID), kind: "cancellation_declined", note: note, at: now)
            return try Self.loadOrder(db, record.orderID)
        }
        (logger ?? self.logger).info(
            "cancellation request declined", metadata: ["order_id": "\(request.orderID)", "peer": "\(person.rawValue)"])
        return order
    }

    /// Queues a message for the order's customer.
    static func notify(_ db: Database, _ order: OrderRecord, kind: String, note: String?, at now: Date) throws {
        struct Notice: Encodable {
            var orderID: String
            var customerEmail: String
            var note: String?

            enum CodingKeys: String, CodingKey {
                case note
                case orderID = "order_id"
                case customerEmail = "customer_email"
            }
        }
        try OutboxRecord(
            id: nil, orderID: order.id, kind: kind,
            payload: try JSON.encode(Notice(orderID: order.id, customerEmail: order.customerEmail, note: note)),
            createdAt: now, deliveredAt: nil
        ).insert(db)
    }

    private var placeTimeout: Duration { .seconds(configuration.placeTimeoutSeconds) }

    /// The order, or the error that rejected it.
    private func placedOrder(_ id: String) async throws -> Order {
        try await database.read { db in
            let order = try Self.loadOrder(db, id)
            if order.status == .rejected,
                let saga = try SagaRecord.filter(SagaRecord.Columns.orderID == id).fetchOne(db),
                let code = saga.errorCode
            {
                throw RescindError(
                    RescindError.Code(code),
                    "order \(id) was rejected: \(saga.errorMessage ?? "")",
                    reason: saga.errorReason,
                    retryable: false
                )
            }
            return order
        }
    }

    static func validate(_ request: PlaceOrderRequest) throws {
        if let source = request.source, !Order.Source.known.contains(source) {
            throw RescindError.invalidArgument(
                "no order source \(source); one of \(Order.Source.known.map(\.rawValue).joined(separator: ", "))",
                reason: "unknown_source")
        }
        try Validation.email(request.customerEmail)
        try Validation.currency(request.currency)
        if let language = request.language,
            !(2...3).contains(language.count) || !language.allSatisfy({ $0.isASCII && $0.isLowercase })
        {
            throw RescindError.invalidArgument(
                "language is a lowercase ISO 639 code such as en or nb, not \(language)", reason: "bad_language")
        }
        guard (1...100).contains(request.lines.count) else {
            throw RescindError.invalidArgument("an order has 1 to 100 lines", reason: "bad_lines")
        }
        var total: Int64 = 0
        for line in request.lines {
            try Validation.identifier(line.sku, field: "sku")
            guard (1...1_000_000).contains(line.quantity) else {
                throw RescindError.invalidArgument("quantity must be between 1 and 1000000", reason: "bad_quantity")
            }
            guard (0...1_000_000_000).contains(line.unitPriceMinor) else {
                throw RescindError.invalidArgument(
                    "unit price must be between 0 and 1e9 minor units", reason: "bad_price")
            }
            total += line.quantity * line.unitPriceMinor
        }
        guard total > 0, total <= 1_000_000_000_000 else {
            throw RescindError.invalidArgument("the order total must be positive", reason: "bad_total")
        }
        try PaymentMethodReference.validate(request.paymentMethod)
    }

    // MARK: Cancelling

    /// Locks the order and starts its cancellation saga; answers at once.
    ///
    /// A repeat answers with the saga the first request started: the same idempotency key, or, without one, the
    /// same options while that saga runs.
    /// - Throws: `not_found`; `invalid_argument` for a note over 255 characters; `failed_precondition` for an
    ///   order that is fulfilled, cancelled, rejected, still pending or being fulfilled; `conflict/order_cancelling`
    ///   (naming the saga) while a cancellation with other options holds it; `conflict/idempotency_key_reused`.
    ///   Nothing changes when it throws.
    public func cancel(
        _ request: CancelOrderRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [], logger: Logger? = nil
    ) async throws -> CancelAccepted {
        try await cancel(request, idempotencyKey: idempotencyKey, rawRequest: rawRequest, logger: logger, as: .staff)
    }

    /// A cancellation asked by staff or by the customer, whose rules of the store's policy it obeys. `started`
    /// runs in the transaction that starts a new saga, with its id.
    func cancel(
        _ request: CancelOrderRequest, idempotencyKey: String?, rawRequest: [UInt8], logger: Logger?,
        as actor: CancellationPolicy.Actor, started: (@Sendable (Database, String) throws -> Void)? = nil
    ) async throws -> CancelAccepted {
        if let destination = request.refundTo, !RefundDestination.known.contains(destination) {
            throw RescindError.invalidArgument("no refund destination \(destination)", reason: "unknown_refund_to")
        }
        // Counted in Unicode scalars, as SQLite's length() in the schema's CHECK counts them.
        if let note = request.staffNote, note.unicodeScalars.count > CancelOrderRequest.maxStaffNoteLength {
            throw RescindError.invalidArgument(
                "the staff note is \(note.unicodeScalars.count) characters; at most \(CancelOrderRequest.maxStaffNoteLength)",
                reason: "note_too_long"
            )
        }
        let newID = UUID.timeOrdered().uuidString
        let fingerprint = idempotencyKey.map { _ in IdempotencyStore.fingerprint(rawRequest) }
        let sagaID: String = try await runner.writer.write { db in
            if let previous = try Self.sagaStarted(
                db, by: idempotencyKey, fingerprint: fingerprint, orderID: request.orderID, what: "cancellation")
            {
                return previous
            }
            guard let order = try OrderRecord.fetchOne(db, key: request.orderID.uuidString) else {
                throw RescindError.notFound("no order \(request.orderID)", reason: "unknown_order")
            }
            let lines = try OrderLineRecord.of(db, order.id)
            let selection: LineSelection
            do {
                selection = try LineSelection(request.lines, of: lines, doing: "cancel")
            } catch {
                // Nothing open to cancel: a bad stated amount, then the order's status (cancelled, fulfilled, ...)
                // name the rule if they do, as for a whole order.
                _ = try self.moneyAction(for: request, order: order)
                if order.status != .cancelling { try order.requireCancellable() }
                throw error
            }
            // All that is not refunded yet, unless part of it paid for units not cancelled now: some lines, units
            // shipped, or a restocking fee kept when units were cancelled or removed before. Then the money of
            // these units only.
            let share = selection.amount < order.total - order.amountRefunded ? selection.amount : nil
            let money = try self.moneyAction(for: request, order: order, share: share)
            let options = CancelOrderSaga.Context.Options(
                reason: request.reason, restock: request.restock, notify: request.notify,
                staffNote: request.staffNote, payment: money.action, refundAmount: money.refundAmount,
                restockingFee: money.restockingFee, refundTo: request.refundTo, lines: request.lines,
                voidAmount: money.voidAmount
            )
            if order.status == .cancelling, let running = try Self.unfinishedSaga(db, order.id, kind: .cancelOrder) {
                guard try JSON.decode(CancelOrderSaga.Context.self, running.context).options.asks(as: options) else {
                    throw RescindError.conflict(
                        "order \(order.id) is already being cancelled, with other options, by saga \(running.id)",
                        reason: "order_cancelling")
                }
                return running.id
            }
            // The store's policy names the rule first (the order's status, then a customer's rules); then any saga
            // that holds the order.
            if actor == .customer {
                let facts = try CancellationPolicy.Facts.read(db, order, store: self.store, now: Date())
                try CancellationPolicy.evaluate(facts, as: .customer, store: self.store).enforce(order.id)
            } else {
                try order.requireCancellable()
            }
            try Self.refuseWhileBusy(db, order.id)
            var context = CancelOrderSaga.Context(orderID: request.orderID, options: options)
            if !selection.takesEverythingOpen {
                context.partID = UUID(uuidString: newID)
                context.partLines = selection.asked(of: lines).map { .init(sku: $0.sku, quantity: $0.quantity) }
            }
            if request.refundTo == .storeCredit, money.action == .refund { context.storeCreditOf = order.customerEmail }
            try SagaStore.start(
                db, CancelOrderSaga.self, id: newID, orderID: request.orderID,
                context: context, requestKey: idempotencyKey,
                requestFingerprint: fingerprint
            )
            try started?(db, newID)
            return newID
        }
        if sagaID == newID {
            (logger ?? self.logger).info(
                "cancellation started",
                metadata: [
                    "order_id": "\(request.orderID)", "saga_id": "\(sagaID)", "reason": "\(request.reason.rawValue)",
                ]
            )
            runner.submit(sagaID)
        }
        return CancelAccepted(sagaID: UUID(uuidString: sagaID) ?? UUID(), order: try await order(request.orderID))
    }

    /// The saga that idempotency key `key` started, if it did; `conflict/idempotency_key_reused` when the key
    /// came with another request (`what`) or for another order.
    static func sagaStarted(_ db: Database, by key: String?, fingerprint: Data?, orderID: UUID, what: String) throws
        -> String?
    {
        guard let key, let previous = try SagaRecord.filter(SagaRecord.Columns.requestKey == key).fetchOne(db) else {
            return nil
        }
        guard previous.requestFingerprint == fingerprint, previous.orderID == orderID.uuidString else {
            throw RescindError.conflict(
                "idempotency key \(key) was first used for another \(what)", reason: "idempotency_key_reused")
        }
        return previous.id
    }

    /// The saga once it ended (or the wait ran out): its error, not retryable, if it was undone (`notDone` says
    /// what did not happen); `saga_failed` if it stopped after its pivot (`doing` says what stopped).
    func outcome(of sagaID: String, notDone: String, doing: String) async throws -> SagaRecord? {
        await runner.waitUntilTerminal(sagaID, timeout: placeTimeout)
        let saga = try await database.read { db in try SagaRecord.find(db, sagaID) }
        if let saga, saga.state == .compensated, let error = saga.error {
            throw RescindError(
                RescindError.Code(error.code), "\(notDone): \(error.message)", reason: error.reason, retryable: false)
        }
        if let saga, saga.state == .failed { throw Self.sagaFailed(saga, doing: doing) }
        return saga
    }

    /// A saga that stopped after its pivot and needs a person: the money or the stock may have moved.
    static func sagaFailed(_ saga: SagaRecord, doing what: String) -> RescindError {
        RescindError(
            .failedPrecondition,
            "the \(what) stopped at step \(saga.failedStep ?? "?") (\(saga.error?.message ?? "no error recorded")); "
                + "saga \(saga.id) needs a person: sagas retry or settle",
            reason: "saga_failed", retryable: false)
    }

    /// What a cancellation does with the money: void an authorization (or, for some lines, their `share` of it);
    /// refund (all that is not refunded yet or the lines' share, a stated amount, or either less the store's
    /// restocking fee when the customer asked); or keep it.
    /// - Throws: `invalid_argument/bad_refund_amount` for a stated amount that is not 1 to what is refundable,
    ///   or one given where nothing is refunded.
    func moneyAction(for request: CancelOrderRequest, order: OrderRecord, share: Int64? = nil) throws -> (
        action: CancelOrderSaga.Context.PaymentAction, refundAmount: Int64?, restockingFee: Int64?, voidAmount: Int64?
    ) {
        let refundable = order.total - order.amountRefunded
        let captured = order.paymentStatus == "captured" || order.paymentStatus == "partially_refunded"
        if let stated = request.refundAmountMinor {
            guard request.refund, captured else {
                throw RescindError.invalidArgument(
                    "refund_amount needs refund and a captured payment; order \(order.id)'s payment is "
                        + "\(order.paymentStatus ?? "absent")", reason: "bad_refund_amount")
            }
            guard stated > 0, stated <= refundable else {
                throw RescindError.invalidArgument(
                    "refund_amount \(stated) is not between 1 and the \(refundable) not refunded yet",
                    reason: "bad_refund_amount")
            }
            return (.refund, stated, nil, nil)
        }
        if order.paymentStatus == "authorized" {
            if share == 0 { return (.keep, nil, nil, nil) }  // lines that cost nothing
            // A share of all that is authorized is all of it.
            return (.void, nil, nil, share.flatMap { $0 < order.total ? $0 : nil })
        }
        let base = min(share ?? refundable, refundable)
        guard captured, request.refund, base > 0 else { return (.keep, nil, nil, nil) }
        let stated = share == nil ? nil : base
        guard request.reason == .customer else { return (.refund, stated, nil, nil) }
        let fee = store.restockingFee(on: base)
        if fee == 0 { return (.refund, stated, nil, nil) }
        return fee >= base ? (.keep, nil, fee, nil) : (.refund, base - fee, fee, nil)
    }

    /// Refuses a change of the order while another saga holds it (one unfinished saga per order): a capture
    /// (`capture_in_progress`, retryable, or `capture_failed`), or any other saga (`conflict/order_busy`, naming
    /// it; retryable unless it failed and needs a person). One indexed read.
    static func refuseWhileBusy(_ db: Database, _ orderID: String) throws {
        let statement = try db.cachedStatement(
            sql: "SELECT * FROM saga WHERE order_id = ? AND state IN ('running', 'compensating', 'failed') LIMIT 1")
        guard let busy = try SagaRecord.fetchOne(statement, arguments: [orderID]) else { return }
        if busy.kind == .capturePayment {
            if busy.state == .failed {
                throw RescindError.failedPrecondition(
                    "order \(orderID)'s capture saga \(busy.id) failed and needs a person (sagas retry or settle)",
                    reason: "capture_failed")
            }
            throw RescindError(
                .unavailable, "order \(orderID)'s payment is being captured by saga \(busy.id); try again in a moment",
                reason: "capture_in_progress", retryable: true)
        }
        throw RescindError(
            .conflict,
            "order \(orderID) is held by saga \(busy.id) (\(busy.kind.rawValue), \(busy.state.rawValue))"
                + (busy.state == .failed ? ": it needs a person (sagas retry or settle)" : ""),
            reason: "order_busy", retryable: busy.state != .failed)
    }

    /// The order's saga of `kind` that has not ended (running, compensating or failed), if any.
    static func unfinishedSaga(_ db: Database, _ orderID: String, kind: Saga.Kind) throws -> SagaRecord? {
        try SagaRecord.filter(SagaRecord.Columns.orderID == orderID)
            .filter(SagaRecord.Columns.kind == kind.rawValue)
            .filter([Saga.State.running, .compensating, .failed].map(\.rawValue).contains(SagaRecord.Columns.state))
            .fetchOne(db)
    }

    // MARK: Fulfilling

    /// Fulfils an open order, or some of its lines, through a fulfilment saga (their units leave stock) and waits
    /// for it. Refused while a cancellation holds the order. A repeat while the saga runs waits for the same saga.
    /// - Throws: `failed_precondition/order_cancelling` and the like; `failed_precondition/line_not_open` for
    ///   units the order does not have open; Inventory's error if the commit was refused (the order is open
    ///   again).
    public func fulfill(_ request: FulfilOrderRequest, logger: Logger? = nil) async throws -> Order {
        let orderID = request.orderID
        let newID = UUID.timeOrdered().uuidString
        let sagaID: String = try await runner.writer.write { db in
            guard let order = try OrderRecord.fetchOne(db, key: orderID.uuidString) else {
                throw RescindError.notFound("no order \(orderID)", reason: "unknown_order")
            }
            if order.status == .fulfilling, let running = try Self.unfinishedSaga(db, order.id, kind: .fulfilOrder) {
                return running.id
            }
            try FulfilOrderSaga.requireFulfillable(order)
            if order.riskHeld {
                throw RescindError.failedPrecondition(
                    "order \(order.id) is held for its fraud risk (\(order.riskLevel ?? "")): release it or cancel it first",
                    reason: "risk_hold")
            }
            if try CancelRequestRecord.fetchOne(db, key: order.id)?.state == "pending" {
                throw RescindError.failedPrecondition(
                    "order \(order.id)'s customer asked to cancel it: approve or decline the request first",
                    reason: "cancel_requested")
            }
            let lines = try OrderLineRecord.of(db, order.id)
            let selection = try LineSelection(request.lines, of: lines, doing: "fulfil")
            try Self.refuseWhileBusy(db, order.id)
            var context = FulfilOrderSaga.Context(
                orderID: orderID, captures: order.paymentStatus == "authorized", lines: request.lines)
            if !selection.takesEverythingOpen {
                context.partID = UUID(uuidString: newID)
                context.partLines = selection.asked(of: lines).map { .init(sku: $0.sku, quantity: $0.quantity) }
            }
            try SagaStore.start(db, FulfilOrderSaga.self, id: newID, orderID: orderID, context: context)
            return newID
        }
        if sagaID == newID { runner.submit(sagaID) }
        let saga = try await outcome(
            of: sagaID, notDone: "order \(orderID) was not fulfilled", doing: "fulfilment of order \(orderID)")
        if saga?.state == .completed {
            (logger ?? self.logger).info(
                "order fulfilled", metadata: ["order_id": "\(orderID)", "saga_id": "\(sagaID)"])
        }
        return try await order(orderID)
    }

    // MARK: Editing

    /// Edits an open order through an edit saga and waits for it (up to `placeTimeoutSeconds`). With an
    /// idempotency key, a repeat (same key, same request) answers with the same edit instead of editing again.
    /// - Throws: `invalid_argument` (`bad_changes`, `price_fixed`, `no_change`, `note_too_long`); `not_found`;
    ///   `failed_precondition/order_<status>` for an order that is not open, `fulfilment_in_progress`,
    ///   `line_not_open`, `edit_empties_order`, `would_void_payment`; `conflict/order_busy` while another saga
    ///   holds the order; `conflict/idempotency_key_reused`; the stock's or the card's refusal (`out_of_stock`,
    ///   `card_declined`: the order is as it was).
    public func edit(
        _ request: EditOrderRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [], by person: Identity,
        logger: Logger? = nil
    ) async throws -> Order {
        try await edit(
            request, idempotencyKey: idempotencyKey, rawRequest: rawRequest, by: person.rawValue, as: .staff,
            logger: logger)
    }

    /// An edit by staff (`orders.edit`) or by the customer (`customer.edit`): the store's policy for `actor`
    /// decides in the transaction that starts the saga.
    func edit(
        _ request: EditOrderRequest, idempotencyKey: String?, rawRequest: [UInt8], by person: String,
        as actor: CancellationPolicy.Actor, logger: Logger?
    ) async throws -> Order {
        if let note = request.note, note.unicodeScalars.count > EditOrderRequest.maxNoteLength {
            throw RescindError.invalidArgument(
                "the note is \(note.unicodeScalars.count) characters; at most \(EditOrderRequest.maxNoteLength)",
                reason: "note_too_long")
        }
        let newID = UUID.timeOrdered().uuidString
        let fingerprint = idempotencyKey.map { _ in IdempotencyStore.fingerprint(rawRequest) }
        let sagaID: String = try await runner.writer.write { db in
            if let previous = try Self.sagaStarted(
                db, by: idempotencyKey, fingerprint: fingerprint, orderID: request.orderID, what: "request")
            {
                return previous
            }
            let order = try Self.existing(db, request.orderID)
            var facts =
                actor == .customer
                ? try CancellationPolicy.Facts.read(db, order, store: self.store, now: Date())
                : CancellationPolicy.Facts(order: order, lines: try OrderLineRecord.of(db, order.id), now: Date())
            if actor == .customer,
                let other = request.changes.first(where: { change in
                    !facts.lines.contains { $0.sku == change.sku }
                })
            {
                throw RescindError.failedPrecondition(
                    "\(other.sku) is not in this order: a customer changes the quantities of what was ordered",
                    reason: "not_on_order")
            }
            facts.changes = request.changes
            try CancellationPolicy.evaluate(facts, as: actor, action: .edit, store: self.store).enforce(order.id)
            let edit = try LineEdit(request.changes, of: facts.lines)
            try Self.refuseWhileBusy(db, order.id)
            var context = EditOrderSaga.Context(
                orderID: request.orderID, changes: request.changes, note: request.note, by: person,
                amount: edit.amount)
            if edit.amount > 0 {
                context.payment = .increase
            } else if edit.amount < 0 {
                if order.paymentStatus == Payment.Status.authorized.rawValue {
                    guard -edit.amount < order.total else {
                        throw RescindError.failedPrecondition(
                            "the edit would void all of order \(order.id)'s authorization; cancel it instead",
                            reason: "would_void_payment")
                    }
                    context.payment = .void
                } else {
                    // Never more than is not refunded yet: a refund made earlier may have covered some of it.
                    let share = max(min(-edit.amount, order.total - order.amountRefunded), 0)
                    // A customer who removes units cancels them: what the edit gives back keeps the store's
                    // restocking fee, as the refund of a customer's cancellation does.
                    let fee = actor == .customer ? self.store.restockingFee(on: share) : 0
                    if fee > 0 { context.restockingFee = fee }
                    context.amount = -(share - fee)
                    if share - fee > 0 { context.payment = .refund }
                }
            }
            if !edit.added.isEmpty {
                context.added = edit.added
                context.addedPartID = UUID.timeOrdered()
            }
            if !edit.removed.isEmpty {
                context.removed = edit.removed
                context.removedPartID = UUID.timeOrdered()
            }
            try SagaStore.start(
                db, EditOrderSaga.self, id: newID, orderID: request.orderID, context: context,
                requestKey: idempotencyKey, requestFingerprint: fingerprint)
            return newID
        }
        if sagaID == newID { runner.submit(sagaID) }
        let saga = try await outcome(
            of: sagaID, notDone: "order \(request.orderID) was not edited", doing: "edit of order \(request.orderID)")
        if sagaID == newID, saga?.state == .completed {
            (logger ?? self.logger).info(
                "order edited",
                metadata: ["order_id": "\(request.orderID)", "saga_id": "\(sagaID)", "peer": "\(person)"])
        }
        return try await order(request.orderID)
    }

    // MARK: The cancellation policy

    /// What the store's cancellation policy says of the order now, for staff or for its customer: the same
    /// evaluation that enforces it.
    /// - Throws: `not_found`.
    public func canCancel(_ request: CanCancelRequest) async throws -> CancelPolicyDecision {
        try await database.read { db in
            let order = try Self.existing(db, request.orderID)
            let facts = try CancellationPolicy.Facts.read(db, order, store: self.store, now: Date())
            return CancellationPolicy.evaluate(
                facts, as: request.asCustomer == true ? .customer : .staff, store: self.store)
        }
    }

    /// Adds and removes an order's tags. A repeat changes nothing.
    /// - Throws: `not_found`; `invalid_argument/bad_tag` (not an identifier, or more than 20 in all).
    public func tag(_ request: TagOrderRequest, logger: Logger? = nil) async throws -> Order {
        let order = try await runner.writer.write { db in
            var record = try Self.existing(db, request.orderID)
            let removed = Set(request.remove ?? [])
            let tags = try Self.tags(record.tagList.filter { !removed.contains($0) } + (request.add ?? []))
            guard tags != record.tagList else { return try Self.loadOrder(db, record.id) }
            record.tags = try JSON.encode(tags)
            record.updatedAt = Date()
            try record.update(db)
            return try Self.loadOrder(db, record.id)
        }
        (logger ?? self.logger).info(
            "order tagged", metadata: ["order_id": "\(request.orderID)", "tags": "\(order.tags ?? [])"])
        return order
    }

    // MARK: Fulfilment in progress

    /// Marks an open order's fulfilment as in progress (or clears the mark): a cancellation is refused while it
    /// is marked. A repeat changes nothing.
    /// - Throws: `not_found`; `invalid_argument/unknown_progress`; `failed_precondition/order_<status>` for an
    ///   order that is not open.
    public func mark(_ request: MarkOrderRequest, logger: Logger? = nil) async throws -> Order {
        if let progress = request.inProgress, !FulfilmentProgress.known.contains(progress) {
            throw RescindError.invalidArgument(
                "no fulfilment progress \(progress); one of \(FulfilmentProgress.known.map(\.rawValue).joined(separator: ", "))",
                reason: "unknown_progress")
        }
        let order = try await runner.writer.write { db in
            var record = try Self.existing(db, request.orderID)
            guard record.fulfilmentInProgress != request.inProgress?.rawValue else {
                return try Self.loadOrder(db, record.id)
            }
            guard record.status == .open else {
                throw RescindError.failedPrecondition(
                    "order \(record.id) is \(record.status.rawValue): only an open order's fulfilment is marked",
                    reason: "order_\(record.status.rawValue)")
            }
            record.fulfilmentInProgress = request.inProgress?.rawValue
            record.updatedAt = Date()
            try record.update(db)
            return try Self.loadOrder(db, record.id)
        }
        (logger ?? self.logger).info(
            "fulfilment progress marked",
            metadata: ["order_id": "\(request.orderID)", "progress": "\(request.inProgress?.rawValue ?? "cleared")"])
        return order
    }

    // MARK: Refunding later

    /// Refunds an amount of an order's captured payment through a refund saga and waits for it (up to
    /// `placeTimeoutSeconds`). With an idempotency key, a repeat (same key, same request) answers with the same
    /// refund instead of refunding again; the refund is recorded with its reason and the caller's identity.
    /// - Throws: `invalid_argument/bad_amount`, `invalid_argument/reason_required`, `invalid_argument/reason_too_long`;
    ///   `not_found`; `failed_precondition/payment_not_captured`, `failed_precondition/refund_exceeds_capture`;
    ///   `conflict/order_busy` while another saga holds the order; `conflict/idempotency_key_reused`; the
    ///   processor's refusal (nothing changed).
    public func refund(
        _ request: RefundOrderRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [], by person: Identity,
        logger: Logger? = nil
    ) async throws -> Order {
        let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard request.amountMinor > 0 else {
            throw RescindError.invalidArgument("the amount must be positive", reason: "bad_amount")
        }
        if let destination = request.refundTo, !RefundDestination.known.contains(destination) {
            throw RescindError.invalidArgument("no refund destination \(destination)", reason: "unknown_refund_to")
        }
        guard !reason.isEmpty else {
            throw RescindError.invalidArgument("say why: the reason is kept with the refund", reason: "reason_required")
        }
        guard reason.unicodeScalars.count <= RefundOrderRequest.maxReasonLength else {
            throw RescindError.invalidArgument(
                "the reason is \(reason.unicodeScalars.count) characters; at most \(RefundOrderRequest.maxReasonLength)",
                reason: "reason_too_long")
        }
        let newID = UUID.timeOrdered().uuidString
        let fingerprint = idempotencyKey.map { _ in IdempotencyStore.fingerprint(rawRequest) }
        let sagaID: String = try await runner.writer.write { db in
            if let previous = try Self.sagaStarted(
                db, by: idempotencyKey, fingerprint: fingerprint, orderID: request.orderID, what: "request")
            {
                return previous
            }
            let order = try Self.existing(db, request.orderID)
            try Self.refuseWhileBusy(db, order.id)
            try SagaStore.start(
                db, RefundPaymentSaga.self, id: newID, orderID: request.orderID,
                context: .init(
                    orderID: request.orderID, amount: request.amountMinor, reason: reason, by: person.rawValue,
                    storeCreditOf: request.refundTo == .storeCredit ? order.customerEmail : nil),
                requestKey: idempotencyKey, requestFingerprint: fingerprint)
            return newID
        }
        if sagaID == newID { runner.submit(sagaID) }
        let saga = try await outcome(
            of: sagaID, notDone: "order \(request.orderID) was not refunded",
            doing: "refund of order \(request.orderID)")
        if sagaID == newID, saga?.state == .completed {
            (logger ?? self.logger).info(
                "order refunded",
                metadata: [
                    "order_id": "\(request.orderID)", "saga_id": "\(sagaID)", "peer": "\(person.rawValue)",
                    "amount": "\(request.amountMinor)",
                ])
        }
        return try await order(request.orderID)
    }

    // MARK: Archiving and deleting

    /// Archives a closed order (fulfilled, cancelled or rejected): `orders.list` no longer shows it unless asked
    /// for archived orders. A repeat returns the order as it is.
    /// - Throws: `not_found`; `failed_precondition/order_not_closed` for an order that is still open or busy.
    public func archive(_ orderID: UUID, logger: Logger? = nil) async throws -> Order {
        let order = try await database.write { db in
            var record = try Self.existing(db, orderID)
            guard record.archivedAt == nil else { return try Self.loadOrder(db, record.id) }
            try Self.refuseWhileBusy(db, record.id)
            guard record.status.isClosed else {
                throw RescindError.failedPrecondition(
                    "order \(orderID) is \(record.status.rawValue): only a fulfilled, cancelled or rejected order can "
                        + "be archived", reason: "order_not_closed")
            }
            let now = Date()
            record.archivedAt = now
            record.updatedAt = now
            try record.update(db)
            return try Self.loadOrder(db, record.id)
        }
        (logger ?? self.logger).info("order archived", metadata: ["order_id": "\(orderID)"])
        return order
    }

    /// Brings an archived order back into `orders.list`. A repeat returns the order as it is.
    /// - Throws: `not_found`.
    public func unarchive(_ orderID: UUID, logger: Logger? = nil) async throws -> Order {
        let order = try await database.write { db in
            var record = try Self.existing(db, orderID)
            guard record.archivedAt != nil else { return try Self.loadOrder(db, record.id) }
            record.archivedAt = nil
            record.updatedAt = Date()
            try record.update(db)
            return try Self.loadOrder(db, record.id)
        }
        (logger ?? self.logger).info("order unarchived", metadata: ["order_id": "\(orderID)"])
        return order
    }

    /// Deletes an order for good: its lines, its cancellation, its sagas and their steps. Only an order placed by
    /// staff or through the API, once it is cancelled or archived; what is left is who deleted it and when (and
    /// the idempotency key it was placed with, so that a late repeat does not place it again). Payments and
    /// Inventory keep their history under the order's id. A repeat answers as the first call did.
    /// - Throws: `not_found`; `failed_precondition/order_source_not_deletable` for an order from the online store
    ///   or the point of sale; `failed_precondition/order_not_cancelled_or_archived`.
    public func delete(_ orderID: UUID, by person: Identity, logger: Logger? = nil) async throws -> DeletedOrder {
        let id = orderID.uuidString
        let deleted = try await database.write { db -> DeletedOrder in
            if let deleted = try DeletedOrderRecord.fetchOne(db, key: id) { return deleted.api }
            let record = try Self.existing(db, orderID)
            let source = Order.Source(record.source)
            guard source.isDeletable else {
                throw RescindError.failedPrecondition(
                    "order \(orderID) came from \(source.rawValue): orders from the online store or the point of sale "
                        + "can be archived, never deleted", reason: "order_source_not_deletable")
            }
            guard record.status == .cancelled || record.archivedAt != nil else {
                throw RescindError.failedPrecondition(
                    "order \(orderID) is \(record.status.rawValue) and not archived: only a cancelled or archived order "
                        + "can be deleted", reason: "order_not_cancelled_or_archived")
            }
            try Self.refuseWhileBusy(db, record.id)
            let unsent =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM outbox WHERE order_id = ? AND delivered_at IS NULL", arguments: [id])
                ?? 0
            guard unsent == 0 else {
                throw RescindError(
                    .unavailable, "order \(orderID)'s customer notification is still being sent; try again in a moment",
                    reason: "notification_pending", retryable: true)
            }
            let sagas = SagaRecord.filter(SagaRecord.Columns.orderID == id)
            try db.execute(
                sql: "DELETE FROM saga_step WHERE saga_id IN (SELECT id FROM saga WHERE order_id = ?)", arguments: [id])
            try CancellationRecord.deleteAll(db, keys: [id])
            try db.execute(sql: "DELETE FROM outbox WHERE order_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM order_refund WHERE order_id = ?", arguments: [id])
            try sagas.deleteAll(db)
            try record.delete(db)  // its lines go with it (ON DELETE CASCADE)
            let tombstone = DeletedOrderRecord(
                orderID: id, source: record.source, idempotencyKey: record.idempotencyKey,
                deletedBy: person.rawValue, deletedAt: Date())
            try tombstone.insert(db)
            // As stored (to the millisecond), so that a repeat answers exactly the same.
            return try DeletedOrderRecord.fetchOne(db, key: id)?.api ?? tombstone.api
        }
        (logger ?? self.logger).info(
            "order deleted", metadata: ["order_id": "\(orderID)", "peer": "\(person.rawValue)"])
        return deleted
    }

    /// The order's record, or `not_found` (naming a deletion if there was one).
    static func existing(_ db: Database, _ orderID: UUID) throws -> OrderRecord {
        if let record = try OrderRecord.fetchOne(db, key: orderID.uuidString) { return record }
        _ = try loadOrder(db, orderID.uuidString)  // throws the right `not_found`
        throw RescindError.notFound("no order \(orderID)", reason: "unknown_order")
    }

    // MARK: Reading

    /// An order with its lines, cancellation and failed cancellation attempts.
    /// - Throws: `not_found`.
    public func order(_ orderID: UUID) async throws -> Order {
        try await database.read { db in try Self.loadOrder(db, orderID.uuidString) }
    }

    /// Orders, newest first.
    public func list(_ request: ListOrdersRequest) async throws -> OrderList {
        let limit = min(max(request.limit ?? 100, 1), 1000)
        return try await database.read { db in
            var query = OrderRecord.all()
            query = query.filter(request.archived == true ? Column("archived_at") != nil : Column("archived_at") == nil)
            if let status = request.status {
                guard let known = OrderStatus(rawValue: status.rawValue) else {
                    throw RescindError.invalidArgument("no order status \(status)", reason: "unknown_status")
                }
                let stored: [OrderStatus] = known == .open ? [.open, .fulfilling] : [known]
                query = query.filter(stored.map(\.rawValue).contains(OrderRecord.Columns.status))
            }
            let ids = try query.order(OrderRecord.Columns.createdAt.desc).limit(limit).fetchAll(db).map(\.id)
            return OrderList(orders: try ids.map { try Self.loadOrder(db, $0) })
        }
    }

    static func loadOrder(_ db: Database, _ id: String) throws -> Order {
        guard let record = try OrderRecord.fetchOne(db, key: id) else {
            if let deleted = try DeletedOrderRecord.fetchOne(db, key: id) {
                throw RescindError.notFound(
                    "order \(id) was deleted on \(deleted.deletedAt.formatted(.iso8601)) by \(deleted.deletedBy)",
                    reason: "order_deleted")
            }
            throw RescindError.notFound("no order \(id)", reason: "unknown_order")
        }
        let lines = try OrderLineRecord.of(db, id)
        let cancellation = try CancellationRecord.fetchOne(db, key: id)
        let request = try CancelRequestRecord.fetchOne(db, key: id)?.api
        // Open with a request waiting for staff: the customer and staff see `cancel_requested`.
        let status = record.status.api == .open && request?.state == .pending ? .cancelRequested : record.status.api
        let failed = try SagaRecord.filter(SagaRecord.Columns.orderID == id)
            .filter(SagaRecord.Columns.state == Saga.State.compensated.rawValue)
            .filter(Column("kind") == Saga.Kind.cancelOrder.rawValue)
            .order(SagaRecord.Columns.createdAt).fetchAll(db)
        return Order(
            id: UUID(uuidString: record.id) ?? UUID(), customerEmail: record.customerEmail, status: status,
            currency: record.currency, totalMinor: record.total, amountRefundedMinor: record.amountRefunded,
            lines: lines.map(\.api),
            cardLast4: record.cardLast4, createdAt: record.createdAt, updatedAt: record.updatedAt,
            rejection: record.rejection, cancellation: cancellation?.api,
            failedCancellations: failed.map {
                FailedCancellation(
                    sagaID: UUID(uuidString: $0.id) ?? UUID(), failedStep: $0.failedStep ?? "",
                    error: $0.error ?? RescindErrorSummary(code: "internal", reason: nil, message: ""),
                    at: $0.updatedAt
                )
            },
            source: Order.Source(record.source), archivedAt: record.archivedAt, captureDueAt: record.captureDueAt,
            refunds: try {
                let statement = try db.cachedStatement(sql: "SELECT * FROM order_refund WHERE order_id = ? ORDER BY at")
                let refunds = try OrderRefundRecord.fetchAll(statement, arguments: [id])
                return refunds.isEmpty ? nil : refunds.map(\.api)
            }(),
            reorderOf: record.reorderOf.flatMap(UUID.init(uuidString:)),
            reorders: try {
                let statement = try db.cachedStatement(
                    sql: "SELECT id FROM orders WHERE reorder_of = ? ORDER BY created_at")
                let ids = try String.fetchAll(statement, arguments: [id])
                return ids.isEmpty ? nil : ids.compactMap(UUID.init(uuidString:))
            }(),
            fulfilmentInProgress: record.fulfilmentInProgress.map(FulfilmentProgress.init(rawValue:)),
            lineCancellations: try LineCancellationRecord.of(db, id),
            edits: try OrderEditRecord.of(db, id),
            tags: record.tagList.isEmpty ? nil : record.tagList,
            cancelRequest: request,
            risk: record.risk, language: record.language
        )
    }

    /// Sagas, newest first.
    public func sagas(_ request: ListSagasRequest) async throws -> SagaList {
        let limit = min(max(request.limit ?? 100, 1), 1000)
        return try await database.read { db in
            var query = SagaRecord.all()
            if let orderID = request.orderID { query = query.filter(SagaRecord.Columns.orderID == orderID.uuidString) }
            if let state = request.state { query = query.filter(SagaRecord.Columns.state == state.rawValue) }
            if request.stuck == true { query = query.filter(self.stuck) }
            let sagas = try query.order(SagaRecord.Columns.createdAt.desc).limit(limit).fetchAll(db)
            return SagaList(sagas: try sagas.map { try $0.api(db) })
        }
    }

    /// Waits until a saga ends or the request's timeout passes; the saga as it stands then.
    /// - Throws: `not_found`; `invalid_argument/bad_timeout` for a timeout that is not positive.
    public func waitForSaga(_ request: WaitSagaRequest) async throws -> Saga {
        let millis = request.timeoutMillis ?? 30_000
        guard millis > 0 else {
            throw RescindError.invalidArgument("timeout_ms must be positive", reason: "bad_timeout")
        }
        _ = try await saga(request.sagaID)
        await runner.waitUntilTerminal(
            request.sagaID.uuidString, timeout: .milliseconds(min(millis, WaitSagaRequest.maxTimeoutMillis)))
        return try await saga(request.sagaID)
    }

    /// A saga and its step log.
    /// - Throws: `not_found`.
    public func saga(_ sagaID: UUID) async throws -> Saga {
        try await database.read { db in
            guard let saga = try SagaRecord.find(db, sagaID.uuidString) else {
                throw RescindError.notFound("no saga \(sagaID)", reason: "unknown_saga")
            }
            return try saga.api(db)
        }
    }
}
