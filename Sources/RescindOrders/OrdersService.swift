import Foundation
import GRDB
import Logging
import RescindAPI
import RescindStorage
import RescindTransport
import RescindWire

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
        /// How long `orders.place` waits for its saga before answering with the pending order.
        public var placeTimeoutSeconds: Double
        /// How often the runner looks for sagas whose retry is due.
        public var pollIntervalSeconds: Double

        public init(
            maxAttempts: Int = 30,
            initialRetryDelaySeconds: Double = 0.2,
            maxRetryDelaySeconds: Double = 10,
            callTimeoutSeconds: Double = 5,
            placeTimeoutSeconds: Double = 30,
            pollIntervalSeconds: Double = 0.5
        ) {
            self.maxAttempts = maxAttempts
            self.initialRetryDelaySeconds = initialRetryDelaySeconds
            self.maxRetryDelaySeconds = maxRetryDelaySeconds
            self.callTimeoutSeconds = callTimeoutSeconds
            self.placeTimeoutSeconds = placeTimeoutSeconds
            self.pollIntervalSeconds = pollIntervalSeconds
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
        }

        enum CodingKeys: String, CodingKey {
            case maxAttempts = "max_attempts"
            case initialRetryDelaySeconds = "initial_retry_delay_seconds"
            case maxRetryDelaySeconds = "max_retry_delay_seconds"
            case callTimeoutSeconds = "call_timeout_seconds"
            case placeTimeoutSeconds = "place_timeout_seconds"
            case pollIntervalSeconds = "poll_interval_seconds"
        }
    }

    let database: DatabasePool
    let configuration: Configuration
    private let runner: SagaRunner
    private let logger: Logger

    /// Opens (and migrates) the database at `path`. Sagas run once `run()` is called.
    /// - Throws: database errors.
    public init(
        databasePath: String,
        inventory: any RPCCaller,
        payments: any RPCCaller,
        configuration: Configuration = .init(),
        logger: Logger
    ) throws {
        let database = try DatabaseOpener.open(path: databasePath, migrator: OrdersDatabase.migrator)
        self.database = database
        self.configuration = configuration
        self.logger = logger
        self.runner = SagaRunner(
            database: database,
            steps: SagaSteps(inventory: inventory, payments: payments, database: database),
            configuration: .init(
                maxAttempts: configuration.maxAttempts,
                initialRetryDelay: .milliseconds(Int64(configuration.initialRetryDelaySeconds * 1000)),
                maxRetryDelay: .milliseconds(Int64(configuration.maxRetryDelaySeconds * 1000)),
                callTimeout: .milliseconds(Int64(configuration.callTimeoutSeconds * 1000)),
                pollInterval: .milliseconds(Int64(configuration.pollIntervalSeconds * 1000))
            ),
            logger: logger
        )
    }

    /// Runs the saga runner and the outbox relay until cancelled; resumes sagas a restart interrupted.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.runner.run() }
            group.addTask { await self.relayOutbox() }
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
            try await self.cancel(request, logger: context.logger)
        }
        router.register(OrdersMethods.fulfill) { request, context in
            try await self.fulfill(request.orderID, logger: context.logger)
        }
        router.register(OrdersMethods.listSagas) { request, _ in try await self.sagas(request) }
        router.register(OrdersMethods.getSaga) { request, _ in try await self.saga(request.sagaID) }
    }

    // MARK: Placing

    /// Places an order and waits for its saga (up to `placeTimeoutSeconds`).
    /// - Throws: `invalid_argument` for a bad order; the saga's error if it was rejected (`out_of_stock`,
    ///   `card_declined`); `conflict` for an idempotency key reused with another order.
    public func place(_ request: PlaceOrderRequest, idempotencyKey: String? = nil, rawRequest: [UInt8] = [])
        async throws -> Order
    {
        try Self.validate(request)
        let digits = Self.cardDigits(request.cardNumber)
        let now = Date()
        let orderID = UUID()
        let sagaID = UUID().uuidString
        let total = request.lines.reduce(Int64(0)) { $0 + $1.quantity * $1.unitPriceMinor }
        let existing: String? = try await database.write { db in
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
                id: orderID.uuidString, customerEmail: request.customerEmail, status: .pending,
                currency: request.currency, total: total, amountRefunded: 0, paymentStatus: nil,
                cardLast4: String(digits.suffix(4)), rejection: nil, idempotencyKey: idempotencyKey,
                request: idempotencyKey == nil ? nil : IdempotencyStore.fingerprint(rawRequest), createdAt: now,
                updatedAt: now
            ).insert(db)
            for (index, line) in request.lines.enumerated() {
                try OrderLineRecord(
                    orderID: orderID.uuidString, lineNo: index + 1, sku: line.sku, quantity: line.quantity,
                    unitPrice: line.unitPriceMinor
                ).insert(db)
            }
            try Self.createSaga(
                db, id: sagaID, kind: .placeOrder, orderID: orderID.uuidString,
                plan: SagaDefinitions.placeOrder, options: "{}", maxAttempts: self.configuration.maxAttempts,
                firstStepDetail: "order of \(total) \(request.currency), \(request.lines.count) lines"
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
        logger.info("placing order", metadata: ["order_id": "\(orderID)", "saga_id": "\(sagaID)"])
        await runner.submit(sagaID, card: digits)
        await runner.waitUntilTerminal(sagaID, timeout: placeTimeout)
        return try await placedOrder(orderID.uuidString)
    }

    private var placeTimeout: Duration { .milliseconds(Int64(configuration.placeTimeoutSeconds * 1000)) }

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
        let email = request.customerEmail
        guard email.utf8.count <= 254, let at = email.firstIndex(of: "@"), at != email.startIndex,
            email.index(after: at) != email.endIndex, !email.contains(" ")
        else {
            throw RescindError.invalidArgument("customer email is not an address", reason: "bad_email")
        }
        try Validation.currency(request.currency)
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
        let digits = cardDigits(request.cardNumber)
        guard (12...19).contains(digits.count),
            digits.count == request.cardNumber.filter({ $0 != " " && $0 != "-" }).count
        else {
            throw RescindError.invalidArgument("the card number is not valid", reason: "bad_card")
        }
    }

    /// The ASCII digits of a card number written with spaces or dashes.
    static func cardDigits(_ number: String) -> String {
        number.filter { $0.isASCII && $0.isNumber }
    }

    static func createSaga(
        _ db: Database, id: String, kind: Saga.Kind, orderID: String, plan: [PlannedStep], options: String,
        maxAttempts: Int, firstStepDetail: String
    ) throws {
        let now = Date()
        let machine = SagaStateMachine(plan: plan, completed: 1, maxAttempts: maxAttempts)
        try SagaRecord(
            id: id, kind: kind, orderID: orderID, state: machine.state, machine: try JSON.encode(machine),
            options: options, results: try JSON.encode(SagaResults()), errorCode: nil, errorReason: nil,
            errorMessage: nil, failedStep: nil, nextAttemptAt: now, createdAt: now, updatedAt: now
        ).insert(db)
        try SagaStepRecord(
            sagaID: id, seq: 1, name: plan[0].name, direction: .forward, status: .succeeded, attempt: 1,
            idempotencyKey: nil, detail: firstStepDetail, startedAt: now, finishedAt: now
        ).insert(db)
    }

    // MARK: Cancelling

    /// Locks the order and starts its cancellation saga; answers at once.
    /// - Throws: `not_found`; `invalid_argument` for a note over 255 characters; `failed_precondition` for an
    ///   order that is fulfilled, cancelled, rejected, still pending or being fulfilled; `conflict` while
    ///   another cancellation holds it. Nothing changes when it throws.
    public func cancel(_ request: CancelOrderRequest, logger: Logger? = nil) async throws -> CancelAccepted {
        // Counted in Unicode scalars, as SQLite's length() in the schema's CHECK counts them.
        if let note = request.staffNote, note.unicodeScalars.count > CancelOrderRequest.maxStaffNoteLength {
            throw RescindError.invalidArgument(
                "the staff note is \(note.unicodeScalars.count) characters; at most \(CancelOrderRequest.maxStaffNoteLength)",
                reason: "note_too_long"
            )
        }
        let sagaID = UUID().uuidString
        let configuration = self.configuration
        try await database.write { db in
            guard var order = try OrderRecord.fetchOne(db, key: request.orderID.uuidString) else {
                throw RescindError.notFound("no order \(request.orderID)", reason: "unknown_order")
            }
            switch order.status {
            case .open: break
            case .cancelling:
                throw RescindError.conflict("order \(order.id) is already being cancelled", reason: "order_cancelling")
            case .fulfilling:
                throw RescindError.failedPrecondition(
                    "order \(order.id) is being fulfilled", reason: "fulfilment_in_progress"
                )
            case .cancelled, .fulfilled, .rejected, .pending:
                throw RescindError.failedPrecondition(
                    "order \(order.id) is \(order.status.rawValue) and cannot be cancelled",
                    reason: "order_\(order.status.rawValue)"
                )
            }
            let payment: CancelOptions.PaymentAction =
                switch order.paymentStatus {
                case "authorized": .void
                case "captured", "partially_refunded": request.refund ? .refund : .keep
                default: .keep
                }
            let options = CancelOptions(
                reason: request.reason, restock: request.restock, notify: request.notify,
                staffNote: request.staffNote, payment: payment
            )
            order.status = .cancelling
            order.updatedAt = Date()
            try order.update(db)
            try Self.createSaga(
                db, id: sagaID, kind: .cancelOrder, orderID: order.id, plan: SagaDefinitions.cancelOrder(options),
                options: try JSON.encode(options), maxAttempts: configuration.maxAttempts,
                firstStepDetail: "locked against fulfilment; reason \(request.reason.rawValue)"
            )
        }
        (logger ?? self.logger).info(
            "cancellation started",
            metadata: [
                "order_id": "\(request.orderID)", "saga_id": "\(sagaID)", "reason": "\(request.reason.rawValue)",
            ]
        )
        await runner.submit(sagaID)
        return CancelAccepted(sagaID: UUID(uuidString: sagaID) ?? UUID(), order: try await order(request.orderID))
    }

    // MARK: Fulfilling

    /// Fulfils an open order: its units leave stock. Refused while a cancellation holds the order.
    /// - Throws: `failed_precondition/order_cancelling` and the like; Inventory's error if the commit fails.
    public func fulfill(_ orderID: UUID, logger: Logger? = nil) async throws -> Order {
        let id = orderID.uuidString
        try await database.write { db in
            guard var order = try OrderRecord.fetchOne(db, key: id) else {
                throw RescindError.notFound("no order \(orderID)", reason: "unknown_order")
            }
            switch order.status {
            case .open:
                order.status = .fulfilling
                order.updatedAt = Date()
                try order.update(db)
            case .fulfilling:
                break  // a retry after an interrupted fulfilment
            default:
                throw RescindError.failedPrecondition(
                    "order \(id) is \(order.status.rawValue) and cannot be fulfilled",
                    reason: "order_\(order.status.rawValue)"
                )
            }
        }
        do {
            _ = try await runner.steps.inventory.call(
                InventoryMethods.commit, OrderStockRequest(orderID: orderID), idempotencyKey: "fulfil/\(id)",
                timeout: .milliseconds(Int64(configuration.callTimeoutSeconds * 1000))
            )
        } catch let error as RescindError {
            if !error.retryable {
                try await setStatus(id, from: .fulfilling, to: .open)
            }
            throw error
        }
        try await setStatus(id, from: .fulfilling, to: .fulfilled)
        (logger ?? self.logger).info("order fulfilled", metadata: ["order_id": "\(id)"])
        return try await order(orderID)
    }

    private func setStatus(_ id: String, from: OrderStatus, to: OrderStatus) async throws {
        try await database.write { db in
            try db.execute(
                sql: "UPDATE orders SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                arguments: [to.rawValue, Date(), id, from.rawValue]
            )
        }
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
            if let status = request.status {
                let stored: [OrderStatus] =
                    status == .open ? [.open, .fulfilling] : [OrderStatus(rawValue: status.rawValue) ?? .open]
                query = query.filter(stored.map(\.rawValue).contains(OrderRecord.Columns.status))
            }
            let ids = try query.order(OrderRecord.Columns.createdAt.desc).limit(limit).fetchAll(db).map(\.id)
            return OrderList(orders: try ids.map { try Self.loadOrder(db, $0) })
        }
    }

    static func loadOrder(_ db: Database, _ id: String) throws -> Order {
        guard let record = try OrderRecord.fetchOne(db, key: id) else {
            throw RescindError.notFound("no order \(id)", reason: "unknown_order")
        }
        let lines = try OrderLineRecord.filter(OrderLineRecord.Columns.orderID == id)
            .order(OrderLineRecord.Columns.lineNo).fetchAll(db)
        let cancellation = try CancellationRecord.fetchOne(db, key: id)
        let failed = try SagaRecord.filter(SagaRecord.Columns.orderID == id)
            .filter(SagaRecord.Columns.state == Saga.State.compensated.rawValue)
            .filter(Column("kind") == Saga.Kind.cancelOrder.rawValue)
            .order(SagaRecord.Columns.createdAt).fetchAll(db)
        return Order(
            id: UUID(uuidString: record.id) ?? UUID(), customerEmail: record.customerEmail, status: record.status.api,
            currency: record.currency, totalMinor: record.total, amountRefundedMinor: record.amountRefunded,
            lines: lines.map { .init(sku: $0.sku, quantity: $0.quantity, unitPriceMinor: $0.unitPrice) },
            cardLast4: record.cardLast4, createdAt: record.createdAt, updatedAt: record.updatedAt,
            rejection: record.rejection, cancellation: cancellation?.api,
            failedCancellations: failed.map {
                FailedCancellation(
                    sagaID: UUID(uuidString: $0.id) ?? UUID(), failedStep: $0.failedStep ?? "",
                    error: $0.error ?? RescindErrorSummary(code: "internal", reason: nil, message: ""),
                    at: $0.updatedAt
                )
            }
        )
    }

    /// Sagas, newest first.
    public func sagas(_ request: ListSagasRequest) async throws -> SagaList {
        let limit = min(max(request.limit ?? 100, 1), 1000)
        return try await database.read { db in
            var query = SagaRecord.all()
            if let orderID = request.orderID { query = query.filter(SagaRecord.Columns.orderID == orderID.uuidString) }
            if let state = request.state { query = query.filter(SagaRecord.Columns.state == state.rawValue) }
            let sagas = try query.order(SagaRecord.Columns.createdAt.desc).limit(limit).fetchAll(db)
            return SagaList(sagas: try sagas.map { try $0.api(db) })
        }
    }

    /// A saga and its step log.
    /// - Throws: `not_found`.
    public func saga(_ sagaID: UUID) async throws -> Saga {
        try await database.read { db in
            guard let saga = try SagaRecord.fetchOne(db, key: sagaID.uuidString) else {
                throw RescindError.notFound("no saga \(sagaID)", reason: "unknown_saga")
            }
            return try saga.api(db)
        }
    }

    // MARK: Outbox

    /// Delivers queued customer notifications. This build has no mail gateway: delivering means logging
    /// the notice for the operator and marking it delivered, once.
    private func relayOutbox() async {
        while !Task.isCancelled {
            do {
                let pending = try await database.read { db in
                    try OutboxRecord.filter(Column("delivered_at") == nil).order(Column("id")).limit(100).fetchAll(db)
                }
                for var message in pending {
                    logger.info(
                        "customer notified",
                        metadata: ["order_id": "\(message.orderID)", "kind": "\(message.kind)"]
                    )
                    message.deliveredAt = Date()
                    let delivered = message
                    try await database.write { db in try delivered.update(db) }
                }
            } catch {
                logger.error("outbox relay failed; will retry", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
