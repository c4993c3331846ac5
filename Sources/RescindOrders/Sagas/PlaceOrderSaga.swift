import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// Placing an order: `create` → `reserve` → `authorize` → `capture` (pivot) → `open`.
/// Undo, in reverse: `void`, `release`, `reject`. The customer's card is the processor's payment method reference
/// (`pm_...`), kept in the context: no card number ever reaches Orders.
///
/// A store that captures later (`StoreSettings.capture`) places without `capture`: the order opens with its
/// payment authorized and a time at which `CaptureScheduler` captures it, unless fulfilment or a cancellation
/// (a void) comes first.
enum PlaceOrderSaga: SagaDefinition {
    struct Context: Codable, Sendable {
        var orderID: UUID
        var lines: [Order.Line]
        var amount: Int64
        var currency: String
        /// The payment's status as the last payment step answered.
        var paymentStatus: String?
        /// When the authorization is to be captured by the clock; `nil`: captured during placement.
        var captureDueAt: Date?
        /// The processor's reference to the customer's payment method (`nil` for a reorder).
        var paymentMethod: String?
        /// A reorder: charge the payment method saved with this earlier order's payment.
        var savedCardOf: UUID?
        /// The card's last four digits, as the processor answered the authorization.
        var cardLast4: String?
        /// Spend this customer's store credit first.
        var spendCreditOf: String?
        /// The processor's fraud screening of the card, from its authorization (`nil`: normal).
        var riskSignal: String?
        /// The processor's fingerprint of the card, and its failed address check, from its authorization.
        var cardFingerprint: String?
        var addressCheck: String?
        /// The store's risk rules when the order was placed (`nil` in sagas from before them).
        var risk: RiskRules?
    }

    static let kind = Saga.Kind.placeOrder

    /// An order, or the same lines as an earlier order charged to the card saved with it (a reorder).
    struct Request: Sendable {
        enum What: Sendable {
            case order(PlaceOrderRequest)
            case again(ReorderRequest)
        }

        var what: What
        /// The customer's token: Orders keeps its hash; the caller hands it out once.
        var token: String
    }

    /// What a placement writes: the order, and how its card is charged (the processor's payment method, or the
    /// one saved with an earlier order).
    private struct Placement {
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

    /// Writes the order, its lines and the customer's confirmation (sent once the order opens) with the saga. A
    /// repeat (same key, same request) answers with the saga of the order it placed.
    /// - Throws: `invalid_argument` for a bad order; `not_found`, `failed_precondition/no_saved_card` for a
    ///   reorder of an order that never had a payment; `failed_precondition/order_deleted` for a key whose order
    ///   was deleted; `conflict/idempotency_key_reused`.
    static func begin(_ db: any SQLTransaction, _ request: Request, _ start: SagaStart) throws -> SagaBeginning<Context>
    {
        let placement = try placement(db, request.what)
        if let key = start.requestKey {
            if let deleted = try db.fetchOne(
                DeletedOrderRecord.self, "SELECT * FROM deleted_order WHERE idempotency_key = ?", [key])
            {
                throw RescindError.failedPrecondition(
                    "idempotency key \(key) placed order \(deleted.orderID), which was deleted on "
                        + "\(deleted.deletedAt.formatted(.iso8601)): it is not placed again",
                    reason: "order_deleted")
            }
            if let previous = try db.fetchOne(OrderRecord.self, "SELECT * FROM orders WHERE idempotency_key = ?", [key])
            {
                guard previous.request == start.requestFingerprint else {
                    throw RescindError.conflict(
                        "idempotency key \(key) was first used for another order", reason: "idempotency_key_reused")
                }
                let saga = try db.fetchOne(
                    SagaRecord.self, "SELECT * FROM saga WHERE order_id = ? AND kind = ?", [previous.id, kind.rawValue])
                return .existing(sagaID: saga?.id ?? start.sagaID, orderID: previous.id)
            }
            if let previous: SagaBeginning<Context> = try start.repeated(db, orderID: nil, what: "request") {
                return previous
            }
        }
        let now = start.now
        let orderID = UUID.timeOrdered(at: now)
        let total = placement.lines.reduce(Int64(0)) { $0 + $1.quantity * $1.unitPriceMinor }
        try db.insert(
            OrderRecord(
                id: orderID.uuidString, customerEmail: placement.customerEmail, status: .pending,
                currency: placement.currency, total: total, amountRefunded: 0, paymentStatus: nil,
                cardLast4: placement.cardLast4, rejection: nil, idempotencyKey: start.requestKey,
                request: start.requestFingerprint, createdAt: now, updatedAt: now, source: placement.source.rawValue,
                archivedAt: nil, captureDueAt: nil, reorderOf: placement.savedCardOf?.uuidString,
                tags: try JSON.encode(placement.tags), customerTokenHash: SecretToken.hash(request.token),
                customerTokenIssuedAt: now, language: placement.language
            ))
        // The customer's confirmation with their link: sent once the order opens (dropped if it is rejected), and
        // the link removed from the message once it is delivered (Orders keeps only the token's hash).
        try db.insert(
            OutboxRecord(
                id: nil, orderID: orderID.uuidString,
                kind: placement.savedCardOf == nil ? "order_confirmed" : "reorder_placed",
                payload: try JSON.encode(
                    Confirmation(
                        orderID: orderID.uuidString, customerEmail: placement.customerEmail, total: total,
                        currency: placement.currency, statusLink: start.store.statusLink(request.token),
                        reorderOf: placement.savedCardOf?.uuidString)),
                createdAt: now, deliveredAt: nil
            ))
        for (index, line) in placement.lines.enumerated() {
            try db.insert(
                OrderLineRecord(
                    orderID: orderID.uuidString, lineNo: index + 1, sku: line.sku, quantity: line.quantity,
                    unitPrice: line.unitPriceMinor
                ))
        }
        return .new(
            orderID: orderID,
            context: .init(
                orderID: orderID, lines: placement.lines, amount: total, currency: placement.currency,
                captureDueAt: start.store.captureDue(authorizedAt: now), paymentMethod: placement.paymentMethod,
                savedCardOf: placement.savedCardOf,
                spendCreditOf: placement.spendsCredit ? placement.customerEmail : nil, risk: RiskRules(start.store)))
    }

    /// The customer's confirmation.
    private struct Confirmation: Encodable {
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

    /// What is placed: a new order, validated; or an earlier order's lines (as ordered, cancelled units included)
    /// for its customer, on the card saved with its payment.
    private static func placement(_ db: any SQLTransaction, _ what: Request.What) throws -> Placement {
        switch what {
        case .order(let request):
            try validate(request)
            return Placement(
                customerEmail: request.customerEmail, currency: request.currency, lines: request.lines,
                source: request.source ?? .api, cardLast4: "", paymentMethod: request.paymentMethod, savedCardOf: nil,
                spendsCredit: request.useStoreCredit == true, tags: try OrderRecord.tags(request.tags ?? []),
                language: request.language)
        case .again(let request):
            if let source = request.source, !Order.Source.known.contains(source) {
                throw RescindError.invalidArgument("no order source \(source)", reason: "unknown_source")
            }
            let first = try OrderRecord.existing(db, request.orderID)
            guard first.paymentStatus != nil else {
                throw RescindError.failedPrecondition(
                    "order \(first.id) never had a payment, so there is no saved card to charge",
                    reason: "no_saved_card")
            }
            let lines = try OrderLineRecord.of(db, first.id).map {
                Order.Line(sku: $0.sku, quantity: $0.quantity, unitPriceMinor: $0.unitPrice)
            }
            return Placement(
                customerEmail: first.customerEmail, currency: first.currency, lines: lines,
                source: request.source ?? Order.Source(first.source), cardLast4: first.cardLast4, paymentMethod: nil,
                savedCardOf: request.orderID, spendsCredit: request.useStoreCredit == true, tags: [],
                language: first.language)
        }
    }

    private static func validate(_ request: PlaceOrderRequest) throws {
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

    static let steps: [SagaStep<Context>] = [create, reserve, authorize, capture, open]

    static func plan(_ context: Context) -> [SagaStep<Context>] {
        context.captureDueAt == nil ? [create, reserve, authorize, capture, open] : [create, reserve, authorize, open]
    }

    /// The order and its lines were written with the saga, in `OrdersService.place`.
    static let create = SagaStep<Context>.local("create", role: .compensatable(undo: reject)) { db, context, _ in
        _ = try OrderRecord.load(db, context.orderID)
        return "order of \(context.amount) \(context.currency), \(context.lines.count) lines"
    }

    static let reject = SagaStep<Context>.local("reject", role: .retriable) { db, context, info in
        try OrderRecord.change(db, context.orderID, at: info.now) { order in
            order.status = .rejected
            order.rejection = info.error?.message ?? "placement failed"
            order.paymentStatus = context.paymentStatus
            order.cardLast4 = context.cardLast4 ?? order.cardLast4
        }
        return "order rejected; nothing held or charged"
    }

    static let reserve = SagaStep<Context>.remote(
        "reserve", .inventory, InventoryMethods.reserve, role: .compensatable(undo: release),
        request: { context in
            ReserveRequest(
                orderID: context.orderID, lines: context.lines.map { .init(sku: $0.sku, quantity: $0.quantity) })
        },
        answered: { reservation, _ in "reserved \(reservation.describedAllocations)" }
    )

    static let release = SagaStep<Context>.remote(
        "release", .inventory, InventoryMethods.release, role: .retriable,
        request: { context in OrderStockRequest(orderID: context.orderID) },
        answered: { reservation, _ in "released \(reservation.units) units" }
    )

    static let authorize = SagaStep<Context>.remote(
        "authorize", .payments, PaymentsMethods.authorize, role: .compensatable(undo: void),
        request: { context in
            var request =
                if let earlier = context.savedCardOf {
                    AuthorizeRequest(
                        orderID: context.orderID, amountMinor: context.amount, currency: context.currency,
                        savedCardOf: earlier)
                } else {
                    AuthorizeRequest(
                        orderID: context.orderID, amountMinor: context.amount, currency: context.currency,
                        paymentMethod: context.paymentMethod ?? "")
                }
            request.spendStoreCreditOf = context.spendCreditOf
            return request
        },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            context.riskSignal = payment.riskSignal
            context.cardFingerprint = payment.cardFingerprint
            context.addressCheck = payment.addressCheck
            context.cardLast4 = payment.cardLast4
            return
                "authorized \(payment.amountAuthorized) \(payment.currency) minor units on card ending \(payment.cardLast4)"
        }
    )

    static let void = SagaStep<Context>.remote(
        "void", .payments, PaymentsMethods.void, role: .retriable,
        request: { context in VoidRequest(orderID: context.orderID) },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            return "voided the authorization of \(payment.amountAuthorized) \(payment.currency) minor units"
        }
    )

    static let capture = SagaStep<Context>.remote(
        "capture", .payments, PaymentsMethods.capture, role: .pivot,
        request: { context in PaymentRequest(orderID: context.orderID) },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            return "captured \(payment.amountCaptured) \(payment.currency) minor units, fee \(payment.fee)"
        }
    )

    static let open = SagaStep<Context>.local("open", role: .retriable) { db, context, info in
        let order = try OrderRecord.change(db, context.orderID, at: info.now) { order in
            order.status = .open
            order.paymentStatus = context.paymentStatus
            if context.paymentStatus == Payment.Status.authorized.rawValue {
                order.captureDueAt = context.captureDueAt
            }
            order.cardFingerprint = context.cardFingerprint
            order.cardLast4 = context.cardLast4 ?? order.cardLast4
            if let rules = context.risk {
                let risk = try rules.assess(
                    db, order,
                    card: .init(
                        signal: context.riskSignal, fingerprint: context.cardFingerprint,
                        addressCheck: context.addressCheck), now: info.now)
                order.riskLevel = risk.level.rawValue
                order.riskReasons = try JSON.encode(risk.reasons)
                order.riskHeld = risk.held
            }
        }
        if order.riskHeld {
            return "order open, held for its fraud risk (\(order.riskLevel ?? "")): staff release or cancel it"
        }
        if let due = context.captureDueAt, context.paymentStatus == Payment.Status.authorized.rawValue {
            return "order open; payment authorized, to be captured by \(due.formatted(.iso8601))"
        }
        return "order open"
    }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    {
        let order = try OrderRecord.change(db, context.orderID, at: info.now) { order in
            switch outcome {
            case .open:
                order.status = .open
            case .cancelled:
                order.status = .rejected
                order.rejection = "placement settled by hand"
            default:
                throw RescindError.invalidArgument(
                    "a placement settles as open or cancelled, not \(outcome)", reason: "bad_outcome")
            }
            order.paymentStatus = context.paymentStatus ?? order.paymentStatus
        }
        return "order \(order.status.rawValue)"
    }
}

extension Reservation {
    /// "2 A at east, 1 B at west".
    var describedAllocations: String {
        allocations.map { "\($0.quantity) \($0.sku) at \($0.location)" }.joined(separator: ", ")
    }
}
