import Foundation
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
        /// How long a replica's hold on a saga, the relay or the capture scheduler runs unrenewed: how soon
        /// another replica on the same database takes the work of one that died.
        public var leaseSeconds: Double

        public init(
            maxAttempts: Int = 30,
            initialRetryDelaySeconds: Double = 0.2,
            maxRetryDelaySeconds: Double = 10,
            callTimeoutSeconds: Double = 5,
            placeTimeoutSeconds: Double = 30,
            pollIntervalSeconds: Double = 0.5,
            stuckAfterSeconds: Double = 300,
            leaseSeconds: Double = 10
        ) {
            self.maxAttempts = maxAttempts
            self.initialRetryDelaySeconds = initialRetryDelaySeconds
            self.maxRetryDelaySeconds = maxRetryDelaySeconds
            self.callTimeoutSeconds = callTimeoutSeconds
            self.placeTimeoutSeconds = placeTimeoutSeconds
            self.pollIntervalSeconds = pollIntervalSeconds
            self.stuckAfterSeconds = stuckAfterSeconds
            self.leaseSeconds = leaseSeconds
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
            leaseSeconds = try c.decodeIfPresent(Double.self, forKey: .leaseSeconds) ?? d.leaseSeconds
            guard leaseSeconds >= 0.5, leaseSeconds.isFinite else {
                throw DecodingError.dataCorruptedError(
                    forKey: .leaseSeconds, in: c, debugDescription: "lease_seconds must be at least 0.5")
            }
        }

        enum CodingKeys: String, CodingKey {
            case maxAttempts = "max_attempts"
            case initialRetryDelaySeconds = "initial_retry_delay_seconds"
            case maxRetryDelaySeconds = "max_retry_delay_seconds"
            case callTimeoutSeconds = "call_timeout_seconds"
            case placeTimeoutSeconds = "place_timeout_seconds"
            case pollIntervalSeconds = "poll_interval_seconds"
            case stuckAfterSeconds = "stuck_after_seconds"
            case leaseSeconds = "lease_seconds"
        }
    }

    /// Orders' database: a SQLite file, or a PostgreSQL database its replicas share.
    let database: any SQLDatabase
    let configuration: Configuration
    let store: StoreSettings
    let notifications: NotificationSettings
    /// The store's mail server, when the notifications name one.
    let smtp: SMTPClient?
    let runner: SagaRunner
    let logger: Logger

    /// Opens (and migrates) Orders' database: a SQLite file, or a PostgreSQL database its replicas share. Sagas
    /// run once the runner runs (`services` or `run()`).
    /// - Throws: database errors; `SMTPError` when the mail server's password or CA cannot be read.
    public convenience init(
        storage: StorageLocation,
        inventory: any RPCCaller,
        payments: any RPCCaller,
        configuration: Configuration = .init(),
        store: StoreSettings = .init(),
        notifications: NotificationSettings = .init(),
        crashPoint: CrashPoint? = nil,
        leaseHolder: LeaseHolder = .process,
        logger: Logger
    ) async throws {
        try self.init(
            database: try await OrdersDatabase.schema.open(storage, logger: logger), inventory: inventory,
            payments: payments, configuration: configuration, store: store, notifications: notifications,
            crashPoint: crashPoint, logger: logger, registry: .standard, leaseHolder: leaseHolder)
    }

    /// As the public initializers, over an open database, running the saga kinds of `registry` (a test's own
    /// kinds, say).
    init(
        database: any SQLDatabase, inventory: any RPCCaller, payments: any RPCCaller, configuration: Configuration,
        store: StoreSettings, notifications: NotificationSettings, crashPoint: CrashPoint?, logger: Logger,
        registry: SagaRegistry, leaseHolder: LeaseHolder = .process
    ) throws {
        self.database = database
        self.configuration = configuration
        self.store = store
        self.notifications = notifications
        self.smtp = try notifications.mail.map { try SMTPClient(settings: $0.smtp) }
        self.logger = logger
        self.runner = SagaRunner(
            database: database,
            registry: registry,
            participants: SagaParticipants(inventory: inventory, payments: payments),
            configuration: .init(
                retry: RetryPolicy(
                    maxAttempts: max(configuration.maxAttempts, 1),
                    initialDelay: .seconds(configuration.initialRetryDelaySeconds),
                    maxDelay: .seconds(configuration.maxRetryDelaySeconds)
                ),
                callTimeout: .seconds(configuration.callTimeoutSeconds),
                pollInterval: .seconds(configuration.pollIntervalSeconds),
                crashPoint: crashPoint,
                lease: SagaLease(holder: leaseHolder, duration: configuration.leaseSeconds)
            ),
            logger: logger
        )
    }

    /// What the daemon runs beside its server, in start order: the saga runner, then the outbox relay. On
    /// SIGTERM the relay stops, then the runner lets its current steps finish and record.
    public var services: [any Service] {
        [runner, CaptureScheduler(service: self, lease: lease("capture_scheduler")), relay]
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
            database: database, sinks: sinks, maxBackoff: notifications.maxBackoffSeconds, logger: logger,
            lease: lease("outbox_relay"))
    }

    /// A named lease of this replica's (the relay's, the capture scheduler's), as long as a saga's.
    func lease(_ name: String) -> LeaseKeeper {
        LeaseKeeper(
            Lease(name, holder: runner.lease.holder, duration: .seconds(runner.lease.duration)), database: database)
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
        try await place(.order(request), idempotencyKey: idempotencyKey, rawRequest: rawRequest)
    }

    /// Places an order again: the same lines for the same customer, through the placement saga, paid with the
    /// card saved with the first order's payment. The new order names the first (`reorder_of`), and the first
    /// lists it (`reorders`).
    /// - Throws: `not_found`; `failed_precondition/no_saved_card` for an order that never had a payment (its card
    ///   was declined, say); the placement's errors (`out_of_stock`, ...).
    public func reorder(_ request: ReorderRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [])
        async throws -> Order
    {
        try await place(.again(request), idempotencyKey: idempotencyKey, rawRequest: rawRequest)
    }

    private func place(_ what: PlaceOrderSaga.Request.What, idempotencyKey: String?, rawRequest: [UInt8])
        async throws -> Order
    {
        let token = SecretToken.generate()
        let saga = try await start(
            PlaceOrderSaga.self, .init(what: what, token: token), idempotencyKey: idempotencyKey,
            rawRequest: rawRequest)
        if saga.isNew {
            var metadata: Logger.Metadata = ["order_id": "\(saga.orderID)", "saga_id": "\(saga.id)"]
            if case .again(let first) = what { metadata["reorder_of"] = "\(first.orderID)" }
            logger.info("placing order", metadata: metadata)
        }
        await runner.waitUntilTerminal(saga.id, timeout: placeTimeout)
        let order = try await placedOrder(saga.orderID)
        // The link goes out once, in this answer (and in the confirmation): a repeat gets the order without it.
        return saga.isNew ? withToken(order, token) : order
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
        let order = try await database.write { db in
            var record = try OrderRecord.existing(db, orderID)
            guard record.riskHeld else { return try Self.loadOrder(db, record.id) }
            let now = Date()
            record.riskHeld = false
            record.riskReleasedBy = person.rawValue
            record.riskReleasedAt = now
            record.updatedAt = now
            try db.update(record)
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
        let order = try await database.write { db in
            var record = try OrderRecord.existing(db, orderID)
            record.customerTokenHash = SecretToken.hash(token)
            record.customerTokenIssuedAt = Date()
            try db.update(record)
            return try Self.loadOrder(db, record.id)
        }
        (logger ?? self.logger).info("customer token rotated", metadata: ["order_id": "\(orderID)"])
        return withToken(order, token)
    }

    /// The order a customer token opens.
    /// - Throws: `not_found/unknown_token` for a token that opens no order (wrong, or rotated since);
    ///   `permission_denied/token_expired` for one older than the store's `customer_link_days`.
    func customerOrder(_ db: any SQLTransaction, token: String, now: Date = Date()) throws -> OrderRecord {
        let hash = SecretToken.hash(token)
        // Found by the token's hash, then compared in constant time: the lookup's timing says nothing of the token.
        guard SecretToken.isWellFormed(token),
            let order = try db.fetchOne(OrderRecord.self, "SELECT * FROM orders WHERE customer_token_hash = ?", [hash]),
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
    func customerFacts(_ db: any SQLTransaction, token: String) throws -> CancellationPolicy.Facts {
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
            let asked = try await database.write { db -> CancelRequest in
                let order = try self.customerOrder(db, token: request.token)
                if let pending = try db.find(CancelRequestRecord.self, key: [order.id]), pending.state == "pending" {
                    return pending.api
                }
                let facts = try CancellationPolicy.Facts.read(db, order, store: self.store, now: Date())
                try CancellationPolicy.evaluate(facts, as: .customer, store: self.store).enforce(order.id)
                _ = try LineSelection(request.lines, of: facts.lines, doing: "cancel")
                try SagaStore.refuseWhileBusy(db, order.id)
                let now = Date()
                let record = CancelRequestRecord(
                    orderID: order.id, state: "pending", note: request.note,
                    lines: try request.lines.map { try JSON.encode($0) }, requestedAt: now)
                try db.upsert(record)
                try Self.notify(db, order, kind: "cancellation_requested", note: request.note, at: now)
                // As stored (to the millisecond), so that a repeat answers exactly the same.
                return try db.find(CancelRequestRecord.self, key: [order.id])?.api ?? record.api
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
            let records = try db.fetchAll(
                CancelRequestRecord.self, "SELECT * FROM cancel_request WHERE state = ? ORDER BY requested_at LIMIT ?",
                [(request.state ?? .pending).rawValue, limit])
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
            try db.find(CancelRequestRecord.self, key: [request.orderID.uuidString])
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
            guard var record = try db.find(CancelRequestRecord.self, key: [asked.orderID]), record.state == "pending"
            else { return }
            let now = Date()
            record.state = "approved"
            record.decidedBy = person.rawValue
            record.decidedAt = now
            record.decisionNote = note
            record.sagaID = sagaID
            try db.update(record)
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
        let order = try await database.write { db in
            guard var record = try db.find(CancelRequestRecord.self, key: [request.orderID.uuidString]) else {
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
            try db.update(record)
            try Self.notify(
                db, try OrderRecord.load(db, request.orderID), kind: "cancellation_declined", note: note, at: now)
            return try Self.loadOrder(db, record.orderID)
        }
        (logger ?? self.logger).info(
            "cancellation request declined", metadata: ["order_id": "\(request.orderID)", "peer": "\(person.rawValue)"])
        return order
    }

    /// Queues a message for the order's customer.
    static func notify(_ db: any SQLTransaction, _ order: OrderRecord, kind: String, note: String?, at now: Date) throws
    {
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
        try db.insert(
            OutboxRecord(
                id: nil, orderID: order.id, kind: kind,
                payload: try JSON.encode(Notice(orderID: order.id, customerEmail: order.customerEmail, note: note)),
                createdAt: now, deliveredAt: nil
            ))
    }

    private var placeTimeout: Duration { .seconds(configuration.placeTimeoutSeconds) }

    /// The order, or the error that rejected it.
    private func placedOrder(_ id: String) async throws -> Order {
        try await database.read { db in
            let order = try Self.loadOrder(db, id)
            if order.status == .rejected,
                let saga = try db.fetchOne(
                    SagaRecord.self, "SELECT * FROM saga WHERE order_id = ? AND kind = ?",
                    [id, Saga.Kind.placeOrder.rawValue]),
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
        as actor: CancellationPolicy.Actor, started: (@Sendable (any SQLTransaction, String) throws -> Void)? = nil
    ) async throws -> CancelAccepted {
        let saga = try await start(
            CancelOrderSaga.self, .init(cancel: request, actor: actor), idempotencyKey: idempotencyKey,
            rawRequest: rawRequest, then: started)
        if saga.isNew {
            (logger ?? self.logger).info(
                "cancellation started",
                metadata: [
                    "order_id": "\(request.orderID)", "saga_id": "\(saga.id)", "reason": "\(request.reason.rawValue)",
                ]
            )
        }
        return CancelAccepted(sagaID: UUID(uuidString: saga.id) ?? UUID(), order: try await order(request.orderID))
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

    // MARK: Fulfilling

    /// Fulfils an open order, or some of its lines, through a fulfilment saga (their units leave stock) and waits
    /// for it. Refused while a cancellation holds the order. A repeat while the saga runs waits for the same saga.
    /// - Throws: `failed_precondition/order_cancelling` and the like; `failed_precondition/line_not_open` for
    ///   units the order does not have open; Inventory's error if the commit was refused (the order is open
    ///   again).
    public func fulfill(_ request: FulfilOrderRequest, logger: Logger? = nil) async throws -> Order {
        let orderID = request.orderID
        let saga = try await start(FulfilOrderSaga.self, request)
        let ended = try await outcome(
            of: saga.id, notDone: "order \(orderID) was not fulfilled", doing: "fulfilment of order \(orderID)")
        if ended?.state == .completed {
            (logger ?? self.logger).info(
                "order fulfilled", metadata: ["order_id": "\(orderID)", "saga_id": "\(saga.id)"])
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
        let saga = try await start(
            EditOrderSaga.self, .init(edit: request, by: person, actor: actor), idempotencyKey: idempotencyKey,
            rawRequest: rawRequest)
        let ended = try await outcome(
            of: saga.id, notDone: "order \(request.orderID) was not edited", doing: "edit of order \(request.orderID)")
        if saga.isNew, ended?.state == .completed {
            (logger ?? self.logger).info(
                "order edited",
                metadata: ["order_id": "\(request.orderID)", "saga_id": "\(saga.id)", "peer": "\(person)"])
        }
        return try await order(request.orderID)
    }

    // MARK: The cancellation policy

    /// What the store's cancellation policy says of the order now, for staff or for its customer: the same
    /// evaluation that enforces it.
    /// - Throws: `not_found`.
    public func canCancel(_ request: CanCancelRequest) async throws -> CancelPolicyDecision {
        try await database.read { db in
            let order = try OrderRecord.existing(db, request.orderID)
            let facts = try CancellationPolicy.Facts.read(db, order, store: self.store, now: Date())
            return CancellationPolicy.evaluate(
                facts, as: request.asCustomer == true ? .customer : .staff, store: self.store)
        }
    }

    /// Adds and removes an order's tags. A repeat changes nothing.
    /// - Throws: `not_found`; `invalid_argument/bad_tag` (not an identifier, or more than 20 in all).
    public func tag(_ request: TagOrderRequest, logger: Logger? = nil) async throws -> Order {
        let order = try await database.write { db in
            var record = try OrderRecord.existing(db, request.orderID)
            let removed = Set(request.remove ?? [])
            let tags = try OrderRecord.tags(record.tagList.filter { !removed.contains($0) } + (request.add ?? []))
            guard tags != record.tagList else { return try Self.loadOrder(db, record.id) }
            record.tags = try JSON.encode(tags)
            record.updatedAt = Date()
            try db.update(record)
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
        let order = try await database.write { db in
            var record = try OrderRecord.existing(db, request.orderID)
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
            try db.update(record)
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
        let saga = try await start(
            RefundPaymentSaga.self, .init(refund: request, by: person.rawValue), idempotencyKey: idempotencyKey,
            rawRequest: rawRequest)
        let ended = try await outcome(
            of: saga.id, notDone: "order \(request.orderID) was not refunded",
            doing: "refund of order \(request.orderID)")
        if saga.isNew, ended?.state == .completed {
            (logger ?? self.logger).info(
                "order refunded",
                metadata: [
                    "order_id": "\(request.orderID)", "saga_id": "\(saga.id)", "peer": "\(person.rawValue)",
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
            var record = try OrderRecord.existing(db, orderID)
            guard record.archivedAt == nil else { return try Self.loadOrder(db, record.id) }
            try SagaStore.refuseWhileBusy(db, record.id)
            guard record.status.isClosed else {
                throw RescindError.failedPrecondition(
                    "order \(orderID) is \(record.status.rawValue): only a fulfilled, cancelled or rejected order can "
                        + "be archived", reason: "order_not_closed")
            }
            let now = Date()
            record.archivedAt = now
            record.updatedAt = now
            try db.update(record)
            return try Self.loadOrder(db, record.id)
        }
        (logger ?? self.logger).info("order archived", metadata: ["order_id": "\(orderID)"])
        return order
    }

    /// Brings an archived order back into `orders.list`. A repeat returns the order as it is.
    /// - Throws: `not_found`.
    public func unarchive(_ orderID: UUID, logger: Logger? = nil) async throws -> Order {
        let order = try await database.write { db in
            var record = try OrderRecord.existing(db, orderID)
            guard record.archivedAt != nil else { return try Self.loadOrder(db, record.id) }
            record.archivedAt = nil
            record.updatedAt = Date()
            try db.update(record)
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
            if let deleted = try db.find(DeletedOrderRecord.self, key: [id]) { return deleted.api }
            let record = try OrderRecord.existing(db, orderID)
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
            try SagaStore.refuseWhileBusy(db, record.id)
            let unsent =
                try db.scalar(
                    Int64.self, "SELECT COUNT(*) FROM outbox WHERE order_id = ? AND delivered_at IS NULL", [id])
                ?? 0
            guard unsent == 0 else {
                throw RescindError(
                    .unavailable, "order \(orderID)'s customer notification is still being sent; try again in a moment",
                    reason: "notification_pending", retryable: true)
            }
            try db.execute("DELETE FROM saga_step WHERE saga_id IN (SELECT id FROM saga WHERE order_id = ?)", [id])
            try db.delete(CancellationRecord.self, key: [id])
            try db.execute("DELETE FROM outbox WHERE order_id = ?", [id])
            try db.execute("DELETE FROM order_refund WHERE order_id = ?", [id])
            try db.execute("DELETE FROM saga WHERE order_id = ?", [id])
            try db.delete(OrderRecord.self, key: [id])  // its lines go with it (ON DELETE CASCADE)
            let tombstone = DeletedOrderRecord(
                orderID: id, source: record.source, idempotencyKey: record.idempotencyKey,
                deletedBy: person.rawValue, deletedAt: Date())
            try db.insert(tombstone)
            // As stored (to the millisecond), so that a repeat answers exactly the same.
            return try db.find(DeletedOrderRecord.self, key: [id])?.api ?? tombstone.api
        }
        (logger ?? self.logger).info(
            "order deleted", metadata: ["order_id": "\(orderID)", "peer": "\(person.rawValue)"])
        return deleted
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
            var filters = [request.archived == true ? "archived_at IS NOT NULL" : "archived_at IS NULL"]
            var arguments: SQLArguments = []
            if let status = request.status {
                guard let known = OrderStatus(rawValue: status.rawValue) else {
                    throw RescindError.invalidArgument("no order status \(status)", reason: "unknown_status")
                }
                let stored: [OrderStatus] = known == .open ? [.open, .fulfilling] : [known]
                filters.append("status IN (" + stored.map { _ in "?" }.joined(separator: ", ") + ")")
                arguments += stored.map(\.rawValue)
            }
            let ids = try db.query(
                "SELECT id FROM orders WHERE " + filters.joined(separator: " AND ")
                    + " ORDER BY created_at DESC LIMIT \(limit)", arguments
            ).map { try $0["id"] as String }
            return OrderList(orders: try ids.map { try Self.loadOrder(db, $0) })
        }
    }

    static func loadOrder(_ db: any SQLTransaction, _ id: String) throws -> Order {
        let record = try OrderRecord.existing(db, id)
        let lines = try OrderLineRecord.of(db, id)
        let cancellation = try db.find(CancellationRecord.self, key: [id])
        let request = try db.find(CancelRequestRecord.self, key: [id])?.api
        // Open with a request waiting for staff: the customer and staff see `cancel_requested`.
        let status = record.status.api == .open && request?.state == .pending ? .cancelRequested : record.status.api
        let failed = try db.fetchAll(
            SagaRecord.self,
            "SELECT * FROM saga WHERE order_id = ? AND state = 'compensated' AND kind = ? ORDER BY created_at",
            [id, Saga.Kind.cancelOrder.rawValue])
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
                let refunds = try db.fetchAll(
                    OrderRefundRecord.self, "SELECT * FROM order_refund WHERE order_id = ? ORDER BY at", [id])
                return refunds.isEmpty ? nil : refunds.map(\.api)
            }(),
            reorderOf: record.reorderOf.flatMap(UUID.init(uuidString:)),
            reorders: try {
                let ids = try db.query("SELECT id FROM orders WHERE reorder_of = ? ORDER BY created_at", [id])
                    .map { try $0["id"] as String }
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
            var filters: [String] = []
            var arguments: SQLArguments = []
            if let orderID = request.orderID {
                filters.append("order_id = ?")
                arguments.append(orderID.uuidString)
            }
            if let state = request.state {
                filters.append("state = ?")
                arguments.append(state.rawValue)
            }
            if request.stuck == true {
                filters.append(self.stuck.sql)
                arguments += self.stuck.arguments
            }
            let sagas = try db.fetchAll(
                SagaRecord.self,
                "SELECT * FROM saga" + (filters.isEmpty ? "" : " WHERE " + filters.joined(separator: " AND "))
                    + " ORDER BY created_at DESC LIMIT \(limit)", arguments)
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
