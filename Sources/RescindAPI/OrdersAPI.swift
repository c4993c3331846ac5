import RescindWire

import struct Foundation.Date
import struct Foundation.UUID

/// The methods of the Orders daemon.
public enum OrdersMethods {
    /// Places an order: reserve stock, authorize and capture payment. Answers once the order is open or
    /// rejected (out of stock: `failed_precondition/out_of_stock`; declined: `failed_precondition/card_declined`).
    public static let place = Method<PlaceOrderRequest, Order>("orders.place", callers: [.operator])
    public static let get = Method<OrderRequest, Order>("orders.get", callers: [.operator])
    public static let list = Method<ListOrdersRequest, OrderList>("orders.list", callers: [.operator])
    /// Starts a cancellation saga and answers at once with its id (accepted, not done). With an idempotency
    /// key, a repeat answers with the same saga.
    public static let cancel = Method<CancelOrderRequest, CancelAccepted>("orders.cancel", callers: [.operator])
    /// Fulfils an order, or some of its lines (their units leave stock), through a fulfilment saga; refused
    /// while a cancellation holds the order. Answers once the saga ends, or with the order still open if it takes
    /// longer. An order with units left to fulfil stays open.
    public static let fulfill = Method<FulfilOrderRequest, Order>("orders.fulfill", callers: [.operator])
    /// Edits an open order through an edit saga: a SKU's quantity changed, a line removed, a line added. Added
    /// units are reserved and the payment raised (or charged) first; removed units are released and their
    /// share voided or refunded. Answers once the saga ends; the order keeps its edits.
    public static let edit = Method<EditOrderRequest, Order>("orders.edit", callers: [.operator])
    /// Whether the order can be cancelled now, by staff or by its customer: yes or no, with every rule of the
    /// store's cancellation policy that applied, each with its detail, and for a yes, until when. The same
    /// evaluation enforces the policy when the cancellation is asked.
    public static let canCancel = Method<CanCancelRequest, CancelPolicyDecision>(
        "orders.can_cancel", callers: [.operator])
    /// Replaces an order's customer token: the old link stops working; the answer carries the new one once.
    public static let rotateToken = Method<OrderRequest, Order>("orders.rotate_token", callers: [.operator])
    /// Releases an order held for its fraud risk: it can be fulfilled, and its customer may cancel it again.
    public static let release = Method<OrderRequest, Order>("orders.release", callers: [.operator])
    /// Adds or removes an order's tags (a `cannot-cancel` tag stops its customer from cancelling it).
    public static let tag = Method<TagOrderRequest, Order>("orders.tag", callers: [.operator])
    /// Records that fulfilment of an open order is in progress (a label bought, picking started), or clears it:
    /// while it is marked, a cancellation is refused with the rule named.
    public static let mark = Method<MarkOrderRequest, Order>("orders.mark", callers: [.operator])
    /// Places a new order with the same lines for the same customer, paid with the card saved with the first
    /// order's payment (its processor token; never the card number); the two orders link to each other.
    public static let reorder = Method<ReorderRequest, Order>("orders.reorder", callers: [.operator])
    /// Refunds part or all of what an order's payment captured and has not refunded yet, now (a refund left for
    /// later by a cancellation, or a goodwill refund); idempotent with a key, and recorded with its reason and
    /// who asked.
    public static let refund = Method<RefundOrderRequest, Order>("orders.refund", callers: [.operator])
    /// Hides a closed (fulfilled or cancelled) order from `orders.list`; a repeat changes nothing.
    public static let archive = Method<OrderRequest, Order>("orders.archive", callers: [.operator])
    /// Shows an archived order in `orders.list` again; a repeat changes nothing.
    public static let unarchive = Method<OrderRequest, Order>("orders.unarchive", callers: [.operator])
    /// Removes an order and its lines for good: only an order placed by staff or through the API, and only
    /// once it is cancelled or archived. Payments and Inventory keep their history under the order's id.
    public static let delete = Method<OrderRequest, DeletedOrder>("orders.delete", callers: [.operator])
    public static let listSagas = Method<ListSagasRequest, SagaList>("sagas.list", callers: [.operator])
    public static let getSaga = Method<SagaRequest, Saga>("sagas.get", callers: [.operator])
    /// Waits until a saga ends (`completed`, `compensated`, `failed` or `settled`) or `timeout_ms` passes, and
    /// answers with it as it stands: a client follows a saga without polling.
    public static let waitSaga = Method<WaitSagaRequest, Saga>("sagas.wait", callers: [.operator])
    /// Resumes a `failed` saga where it stopped: fresh attempts, the same idempotency keys.
    public static let retrySaga = Method<SagaRequest, Saga>("sagas.retry", callers: [.operator])
    /// Ends a `failed` saga by hand: records who (the caller's certificate identity), when and why, puts the
    /// order in the state the person chose and releases its lock. The saga ends `settled`.
    public static let settleSaga = Method<SettleSagaRequest, Saga>("sagas.settle", callers: [.operator])
}

/// The methods a customer reaches through the storefront. Each takes the order's customer token, which Orders
/// checks: the storefront's certificate alone reaches no order.
public enum CustomerMethods {
    /// The order the token opens.
    public static let getOrder = Method<CustomerRequest, Order>("customer.get_order", callers: [.storefront])
    /// What the store's policy says of a cancellation by the customer now (`orders.can_cancel` as the customer).
    public static let canCancel = Method<CustomerRequest, CancelPolicyDecision>(
        "customer.can_cancel", callers: [.storefront])
    /// Cancels the order (or some lines) as its customer: reason `customer`, refunded to the card, restocked, the
    /// customer notified; refused by the same policy evaluation `customer.can_cancel` answers with. A store that
    /// approves cancellations first records the request instead (`cancel_requested`), for staff to decide.
    public static let cancel = Method<CustomerCancelRequest, CustomerCancelResult>(
        "customer.cancel", callers: [.storefront])
    /// Places the order again for its customer (`orders.reorder`: the same lines, the saved card, source
    /// `online_store`); the answer carries the new order's link, once.
    public static let reorder = Method<CustomerRequest, Order>("customer.reorder", callers: [.storefront])
    /// What the store's policy says of the customer changing quantities now: the cancellation's window and rules,
    /// but no cancellation limit; removing units a `cannot-cancel` SKU has, or any units in a store that approves
    /// cancellations first, is refused, and what an edit gives back keeps the restocking fee.
    public static let canEdit = Method<CustomerRequest, CancelPolicyDecision>(
        "customer.can_edit", callers: [.storefront])
    /// Changes the quantities of what the customer ordered (`orders.edit`: stock reserved or released, the card
    /// charged more or refunded), if `customer.can_edit` allows it for these changes now.
    public static let edit = Method<CustomerEditRequest, Order>("customer.edit", callers: [.storefront])
    /// What the order page shows, read at one instant: the order, and what the policy says of the customer
    /// cancelling it and changing its quantities now (`customer.get_order`, `customer.can_cancel` and
    /// `customer.can_edit` in one call).
    public static let view = Method<CustomerRequest, CustomerOrderView>("customer.view", callers: [.storefront])
}

/// The cancellation requests customers made in a store that approves them first.
public enum RequestMethods {
    /// Requests waiting for staff, oldest first.
    public static let list = Method<ListRequestsRequest, CancelRequestList>("requests.list", callers: [.operator])
    /// Approves a request: the cancellation saga starts (reason `customer`), whatever the window now.
    public static let approve = Method<DecideRequest, CancelAccepted>("requests.approve", callers: [.operator])
    /// Declines a request, with a note the customer reads; the order stays open.
    public static let decline = Method<DecideRequest, Order>("requests.decline", callers: [.operator])
}

/// An order's fraud risk, assessed at placement from rules on the order.
public struct RiskAssessment: Codable, Sendable, Hashable {
    /// `low`, `medium` or `high`. Extensible.
    public struct Level: ExtensibleValue, Comparable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let low = Level("low")
        public static let medium = Level("medium")
        public static let high = Level("high")

        public static let known: [Level] = [.low, .medium, .high]

        /// Known levels in order; an unknown one ranks highest (a newer peer knows why).
        public static func < (a: Level, b: Level) -> Bool {
            (known.firstIndex(of: a) ?? known.count) < (known.firstIndex(of: b) ?? known.count)
        }
    }

    public var level: Level
    /// Why, one line per rule that raised it.
    public var reasons: [String]
    /// Held at or above the store's hold level: not fulfilled, and not cancelled by the customer, until staff
    /// release it (or cancel it, reason `fraud`).
    public var held: Bool
    public var releasedBy: String?
    public var releasedAt: Date?

    public init(level: Level, reasons: [String], held: Bool, releasedBy: String? = nil, releasedAt: Date? = nil) {
        self.level = level
        self.reasons = reasons
        self.held = held
        self.releasedBy = releasedBy
        self.releasedAt = releasedAt
    }

    enum CodingKeys: String, CodingKey {
        case level, reasons, held
        case releasedBy = "released_by"
        case releasedAt = "released_at"
    }
}

/// An order as its customer sees it, with what they may do now: `customer.view`.
public struct CustomerOrderView: Codable, Sendable, Hashable {
    public var order: Order
    /// `customer.can_cancel`'s answer.
    public var canCancel: CancelPolicyDecision
    /// `customer.can_edit`'s answer.
    public var canEdit: CancelPolicyDecision

    public init(order: Order, canCancel: CancelPolicyDecision, canEdit: CancelPolicyDecision) {
        self.order = order
        self.canCancel = canCancel
        self.canEdit = canEdit
    }

    enum CodingKeys: String, CodingKey {
        case order
        case canCancel = "can_cancel"
        case canEdit = "can_edit"
    }
}

/// What `customer.cancel` did: started the cancellation (`saga_id`), or, in a store that approves them first,
/// recorded the request (`request`).
public struct CustomerCancelResult: Codable, Sendable, Hashable {
    public var sagaID: UUID?
    public var request: CancelRequest?
    public var order: Order

    public init(sagaID: UUID?, request: CancelRequest?, order: Order) {
        self.sagaID = sagaID
        self.request = request
        self.order = order
    }

    enum CodingKeys: String, CodingKey {
        case request, order
        case sagaID = "saga_id"
    }
}

/// A customer's request to cancel, in a store that approves cancellations first.
public struct CancelRequest: Codable, Sendable, Hashable {
    /// Where a request stands. Extensible.
    public struct State: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Waiting for staff.
        public static let pending = State("pending")
        /// Approved: the cancellation saga `saga_id` runs or ran.
        public static let approved = State("approved")
        /// Declined, with a note for the customer.
        public static let declined = State("declined")

        public static let known: [State] = [.pending, .approved, .declined]
    }

    public var orderID: UUID
    public var state: State
    /// The customer's words.
    public var note: String?
    /// The units asked for (absent: the whole order).
    public var lines: [LineQuantity]?
    public var requestedAt: Date
    /// Who decided (a certificate identity), when, and why.
    public var decidedBy: String?
    public var decidedAt: Date?
    public var decisionNote: String?
    public var sagaID: UUID?

    public init(
        orderID: UUID, state: State, note: String?, lines: [LineQuantity]?, requestedAt: Date, decidedBy: String? = nil,
        decidedAt: Date? = nil, decisionNote: String? = nil, sagaID: UUID? = nil
    ) {
        self.orderID = orderID
        self.state = state
        self.note = note
        self.lines = lines
        self.requestedAt = requestedAt
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
        self.decisionNote = decisionNote
        self.sagaID = sagaID
    }

    enum CodingKeys: String, CodingKey {
        case state, note, lines
        case orderID = "order_id"
        case requestedAt = "requested_at"
        case decidedBy = "decided_by"
        case decidedAt = "decided_at"
        case decisionNote = "decision_note"
        case sagaID = "saga_id"
    }
}

public struct ListRequestsRequest: Codable, Sendable, Hashable {
    /// Only requests in this state (default: pending).
    public var state: CancelRequest.State?
    public var limit: Int?

    public init(state: CancelRequest.State? = nil, limit: Int? = nil) {
        self.state = state
        self.limit = limit
    }
}

public struct CancelRequestList: Codable, Sendable, Hashable {
    public var requests: [CancelRequest]
    public init(requests: [CancelRequest]) { self.requests = requests }
}

public struct DecideRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// Why (required to decline: the customer reads it; at most 255 characters).
    public var note: String?

    public init(orderID: UUID, note: String? = nil) {
        self.orderID = orderID
        self.note = note
    }

    enum CodingKeys: String, CodingKey {
        case note
        case orderID = "order_id"
    }
}

/// A customer method's request: the order's customer token, from the order-status link.
public struct CustomerRequest: Codable, Sendable, Hashable {
    public var token: String
    public init(token: String) { self.token = token }
}

public struct CustomerCancelRequest: Codable, Sendable, Hashable {
    public var token: String
    /// Why, in the customer's words (kept as the staff note; at most 255 characters).
    public var note: String?
    /// Only these open units; absent: the whole order.
    public var lines: [LineQuantity]?

    public init(token: String, note: String? = nil, lines: [LineQuantity]? = nil) {
        self.token = token
        self.note = note
        self.lines = lines
    }
}

public struct CustomerEditRequest: Codable, Sendable, Hashable {
    public var token: String
    /// 1 to 100 SKUs of the order, each with the open units it should have; 0 removes it.
    public var lines: [LineQuantity]
    /// Why, in the customer's words (kept with the edit; at most 255 characters).
    public var note: String?

    public init(token: String, lines: [LineQuantity], note: String? = nil) {
        self.token = token
        self.lines = lines
        self.note = note
    }
}

public struct PlaceOrderRequest: Codable, Sendable, Hashable {
    /// A line to order: the same shape as a line of the placed order.
    public typealias Line = Order.Line

    public var customerEmail: String
    public var currency: String
    public var lines: [Line]
    /// The processor's reference to the customer's payment method (`pm_...`), from the store's checkout; never a
    /// card number (a request with `card_number` is refused).
    public var paymentMethod: String
    /// Where the order comes from; `api` when absent.
    public var source: Order.Source?
    /// Spend the customer's store credit first; the card pays the rest.
    public var useStoreCredit: Bool?
    /// The order's tags (identifiers), e.g. `cannot-cancel`.
    public var tags: [String]?
    /// The customer's language, a lowercase ISO 639 code (`en`, `nb`): their emails, and their order page when
    /// their browser does not say. Absent: the store's.
    public var language: String?

    public init(
        customerEmail: String, currency: String, lines: [Line], paymentMethod: String, source: Order.Source? = nil,
        useStoreCredit: Bool? = nil, tags: [String]? = nil, language: String? = nil
    ) {
        self.language = language
        self.tags = tags
        self.useStoreCredit = useStoreCredit
        self.customerEmail = customerEmail
        self.currency = currency
        self.lines = lines
        self.paymentMethod = paymentMethod
        self.source = source
    }

    /// Reads a request; one that carries `card_number` is refused with `invalid_argument/card_number_refused`.
    public init(from decoder: any Decoder) throws {
        try PaymentMethodReference.refuseCardNumber(in: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        customerEmail = try c.decode(String.self, forKey: .customerEmail)
        currency = try c.decode(String.self, forKey: .currency)
        lines = try c.decode([Line].self, forKey: .lines)
        paymentMethod = try c.decode(String.self, forKey: .paymentMethod)
        source = try c.decodeIfPresent(Order.Source.self, forKey: .source)
        useStoreCredit = try c.decodeIfPresent(Bool.self, forKey: .useStoreCredit)
        tags = try c.decodeIfPresent([String].self, forKey: .tags)
        language = try c.decodeIfPresent(String.self, forKey: .language)
    }

    enum CodingKeys: String, CodingKey {
        case customerEmail = "customer_email"
        case currency, lines, source, tags, language
        case paymentMethod = "payment_method"
        case useStoreCredit = "use_store_credit"
    }
}

/// An order as a store owner sees it. Amounts are integer minor units of `currency`.
public struct Order: Codable, Sendable, Hashable {
    /// Where an order stands. Extensible: a peer keeps a status it does not know as text.
    public struct Status: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Being placed: stock and payment not settled yet.
        public static let pending = Status("pending")
        /// Placed and paid; can be fulfilled or cancelled.
        public static let open = Status("open")
        /// A cancellation holds the order (semantic lock): fulfilment is refused.
        public static let cancelling = Status("cancelling")
        public static let cancelled = Status("cancelled")
        public static let fulfilled = Status("fulfilled")
        /// Placement failed (out of stock, card declined); nothing is held or charged.
        public static let rejected = Status("rejected")

        /// Open, and its customer asked to cancel it: staff approve or decline (`requests.approve`, `decline`).
        public static let cancelRequested = Status("cancel_requested")

        public static let known: [Status] = [
            .pending, .open, .cancelling, .cancelled, .fulfilled, .rejected, .cancelRequested,
        ]
    }

    /// Where an order came from, which decides whether it may ever be deleted. Extensible.
    public struct Source: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The store's online checkout (a customer's order): archived, never deleted.
        public static let onlineStore = Source("online_store")
        /// The point of sale: archived, never deleted.
        public static let pos = Source("pos")
        /// Made by staff (a draft order): may be deleted once cancelled or archived.
        public static let staff = Source("staff")
        /// Placed by a program through the protocol: may be deleted once cancelled or archived.
        public static let api = Source("api")

        public static let known: [Source] = [.onlineStore, .pos, .staff, .api]

        /// Whether orders from this source may be deleted at all.
        public var isDeletable: Bool { self == .staff || self == .api }
    }

    public struct Line: Codable, Sendable, Hashable {
        public var sku: String
        /// Units ordered, cancelled ones included.
        public var quantity: Int64
        public var unitPriceMinor: Int64
        /// Units of the line cancelled on their own or with the order (absent: none).
        public var cancelled: Int64?
        /// Units of the line fulfilled (absent: none).
        public var fulfilled: Int64?

        public init(
            sku: String, quantity: Int64, unitPriceMinor: Int64, cancelled: Int64? = nil, fulfilled: Int64? = nil
        ) {
            self.sku = sku
            self.quantity = quantity
            self.unitPriceMinor = unitPriceMinor
            self.cancelled = cancelled
            self.fulfilled = fulfilled
        }

        /// Units neither cancelled nor fulfilled: what a cancellation or a fulfilment can still take.
        public var open: Int64 { quantity - (cancelled ?? 0) - (fulfilled ?? 0) }

        enum CodingKeys: String, CodingKey {
            case sku, quantity, cancelled, fulfilled
            case unitPriceMinor = "unit_price"
        }
    }

    public var id: UUID
    public var customerEmail: String
    public var status: Status
    public var currency: String
    public var totalMinor: Int64
    public var amountRefundedMinor: Int64
    public var lines: [Line]
    public var cardLast4: String
    public var createdAt: Date
    public var updatedAt: Date
    /// Why placement failed, for a rejected order.
    public var rejection: String?
    /// The cancellation, once the order is cancelled.
    public var cancellation: Cancellation?
    /// Cancellation attempts that failed and were compensated, newest last.
    public var failedCancellations: [FailedCancellation]
    /// Where the order came from (absent from daemons older than the field).
    public var source: Source?
    /// When the order was archived (hidden from `orders.list`), if it is.
    public var archivedAt: Date?
    /// While the payment is only authorized: when Orders captures it, unless fulfilment or a cancellation
    /// comes first.
    public var captureDueAt: Date?
    /// Refunds made by `orders.refund`, oldest first (a cancellation's refund is in `cancellation`).
    public var refunds: [OrderRefund]?
    /// Fulfilment in progress (`orders.mark`): a cancellation is refused while it is set.
    public var fulfilmentInProgress: FulfilmentProgress?
    /// The order this one places again (`orders.reorder`).
    public var reorderOf: UUID?
    /// Orders placed again from this one, oldest first.
    public var reorders: [UUID]?
    /// The order's edits, oldest first; absent when there were none.
    public var edits: [OrderEdit]?
    /// The order's tags, sorted; absent when it has none.
    public var tags: [String]?
    /// The fraud risk assessed at placement, and whether the order is held for it.
    public var risk: RiskAssessment?
    /// The customer's language, as placed (absent: the store's).
    public var language: String?
    /// The customer's request to cancel, in a store that approves cancellations first (while it is `pending`,
    /// the order's status is `cancel_requested`).
    public var cancelRequest: CancelRequest?
    /// The customer token of the order-status link: only in the answer to the call that made it
    /// (`orders.place`, `orders.reorder`, `orders.rotate_token`). Orders keeps only its hash.
    public var customerToken: String?
    /// The order-status link with that token, under the store's `storefront_url`.
    public var statusLink: String?
    /// Cancellations of some lines that left the order open (or fulfilled, when the rest had shipped), oldest
    /// first; absent when there were none.
    public var lineCancellations: [Cancellation]?

    public init(
        id: UUID, customerEmail: String, status: Status, currency: String, totalMinor: Int64,
        amountRefundedMinor: Int64, lines: [Line], cardLast4: String, createdAt: Date, updatedAt: Date,
        rejection: String? = nil, cancellation: Cancellation? = nil, failedCancellations: [FailedCancellation] = [],
        source: Source? = nil, archivedAt: Date? = nil, captureDueAt: Date? = nil, refunds: [OrderRefund]? = nil,
        reorderOf: UUID? = nil, reorders: [UUID]? = nil, fulfilmentInProgress: FulfilmentProgress? = nil,
        lineCancellations: [Cancellation]? = nil, edits: [OrderEdit]? = nil, tags: [String]? = nil,
        cancelRequest: CancelRequest? = nil, risk: RiskAssessment? = nil, language: String? = nil
    ) {
        self.risk = risk
        self.language = language
        self.cancelRequest = cancelRequest
        self.tags = tags
        self.lineCancellations = lineCancellations
        self.edits = edits
        self.fulfilmentInProgress = fulfilmentInProgress
        self.reorderOf = reorderOf
        self.reorders = reorders
        self.refunds = refunds
        self.captureDueAt = captureDueAt
        self.source = source
        self.archivedAt = archivedAt
        self.id = id
        self.customerEmail = customerEmail
        self.status = status
        self.currency = currency
        self.totalMinor = totalMinor
        self.amountRefundedMinor = amountRefundedMinor
        self.lines = lines
        self.cardLast4 = cardLast4
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.rejection = rejection
        self.cancellation = cancellation
        self.failedCancellations = failedCancellations
    }

    enum CodingKeys: String, CodingKey {
        case id, status, currency, lines, rejection, cancellation
        case customerEmail = "customer_email"
        case totalMinor = "total"
        case amountRefundedMinor = "amount_refunded"
        case cardLast4 = "card_last4"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case failedCancellations = "failed_cancellations"
        case source
        case archivedAt = "archived_at"
        case captureDueAt = "capture_due_at"
        case refunds, reorders
        case reorderOf = "reorder_of"
        case fulfilmentInProgress = "fulfilment_in_progress"
        case lineCancellations = "line_cancellations"
        case edits, tags
        case cancelRequest = "cancel_request"
        case risk, language
        case customerToken = "customer_token"
        case statusLink = "status_link"
    }
}

/// Units of one of an order's SKUs: which lines a cancellation or a fulfilment takes.
public struct LineQuantity: Codable, Sendable, Hashable {
    public var sku: String
    public var quantity: Int64

    public init(sku: String, quantity: Int64) {
        self.sku = sku
        self.quantity = quantity
    }
}

/// Why a merchant cancels, as in the store admin.
public enum CancelReason: String, Codable, Sendable, Hashable, CaseIterable {
    case customer, declined, fraud, inventory, staff, other
}

/// The record of a completed cancellation.
public struct Cancellation: Codable, Sendable, Hashable {
    public var sagaID: UUID
    public var reason: CancelReason
    public var staffNote: String?
    public var refundedMinor: Int64
    public var feeKeptMinor: Int64
    /// Whether the authorization was voided instead of a refund (no money had moved).
    public var voided: Bool
    public var unitsRestocked: Int64
    public var notify: Bool
    public var cancelledAt: Date
    /// For a void: the processor's fee that a capture would have cost, saved by cancelling before capture.
    public var feeSavedMinor: Int64?
    /// The store's restocking fee kept from a customer's cancellation refund, if any.
    public var restockingFeeMinor: Int64?
    /// Where the refund went (absent: the card, or nothing was refunded).
    public var refundTo: RefundDestination?
    /// For a cancellation of some lines: which units (absent: the whole order).
    public var lines: [LineQuantity]?
    /// For a cancellation of some lines before the capture: how much of the authorization was voided.
    public var voidedAmountMinor: Int64?

    public init(
        sagaID: UUID, reason: CancelReason, staffNote: String?, refundedMinor: Int64, feeKeptMinor: Int64,
        voided: Bool, unitsRestocked: Int64, notify: Bool, cancelledAt: Date, feeSavedMinor: Int64? = nil,
        restockingFeeMinor: Int64? = nil, refundTo: RefundDestination? = nil, lines: [LineQuantity]? = nil,
        voidedAmountMinor: Int64? = nil
    ) {
        self.lines = lines
        self.voidedAmountMinor = voidedAmountMinor
        self.restockingFeeMinor = restockingFeeMinor
        self.refundTo = refundTo
        self.feeSavedMinor = feeSavedMinor
        self.sagaID = sagaID
        self.reason = reason
        self.staffNote = staffNote
        self.refundedMinor = refundedMinor
        self.feeKeptMinor = feeKeptMinor
        self.voided = voided
        self.unitsRestocked = unitsRestocked
        self.notify = notify
        self.cancelledAt = cancelledAt
    }

    enum CodingKeys: String, CodingKey {
        case reason, voided, notify
        case sagaID = "saga_id"
        case staffNote = "staff_note"
        case refundedMinor = "refunded"
        case feeKeptMinor = "fee_kept"
        case unitsRestocked = "units_restocked"
        case cancelledAt = "cancelled_at"
        case feeSavedMinor = "fee_saved"
        case restockingFeeMinor = "restocking_fee"
        case refundTo = "refund_to"
        case lines
        case voidedAmountMinor = "voided_amount"
    }
}

/// A cancellation that failed and was undone; the order went back to open.
public struct FailedCancellation: Codable, Sendable, Hashable {
    public var sagaID: UUID
    public var failedStep: String
    public var error: RescindErrorSummary
    public var at: Date

    public init(sagaID: UUID, failedStep: String, error: RescindErrorSummary, at: Date) {
        self.sagaID = sagaID
        self.failedStep = failedStep
        self.error = error
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case error, at
        case sagaID = "saga_id"
        case failedStep = "failed_step"
    }
}

/// An error as recorded in a saga or order: its code, reason and message.
public struct RescindErrorSummary: Codable, Sendable, Hashable {
    public var code: String
    public var reason: String?
    public var message: String

    public init(code: String, reason: String?, message: String) {
        self.code = code
        self.reason = reason
        self.message = message
    }
}

public struct OrderRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    public init(orderID: UUID) { self.orderID = orderID }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
    }
}

public struct ListOrdersRequest: Codable, Sendable, Hashable {
    public var status: Order.Status?
    public var limit: Int?
    /// `true`: archived orders only. Absent or `false`: orders that are not archived.
    public var archived: Bool?

    public init(status: Order.Status? = nil, limit: Int? = nil, archived: Bool? = nil) {
        self.status = status
        self.limit = limit
        self.archived = archived
    }
}

/// What `orders.delete` answers: the order is gone, and when it went.
public struct DeletedOrder: Codable, Sendable, Hashable {
    public var orderID: UUID
    public var source: Order.Source
    public var deletedBy: String
    public var deletedAt: Date

    public init(orderID: UUID, source: Order.Source, deletedBy: String, deletedAt: Date) {
        self.orderID = orderID
        self.source = source
        self.deletedBy = deletedBy
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case source
        case orderID = "order_id"
        case deletedBy = "deleted_by"
        case deletedAt = "deleted_at"
    }
}

public struct OrderList: Codable, Sendable, Hashable {
    public var orders: [Order]
    public init(orders: [Order]) { self.orders = orders }
}

public struct CancelOrderRequest: Codable, Sendable, Hashable {
    /// The longest staff note, as in the store admin.
    public static let maxStaffNoteLength = 255

    public var orderID: UUID
    public var reason: CancelReason
    public var refund: Bool
    public var restock: Bool
    public var notify: Bool
    public var staffNote: String?
    /// With `refund`: refund this much now instead of everything not refunded yet (no restocking fee applies).
    public var refundAmountMinor: Int64?
    /// With `refund`: where the refund goes; the card when absent.
    public var refundTo: RefundDestination?
    /// Cancel only these units: they are restocked (or written off), their share is refunded (or voided from the
    /// authorization), and the order stays open with the rest. Absent: every unit not fulfilled yet.
    public var lines: [LineQuantity]?

    public init(
        orderID: UUID, reason: CancelReason, refund: Bool = true, restock: Bool = true, notify: Bool = false,
        staffNote: String? = nil, refundAmountMinor: Int64? = nil, refundTo: RefundDestination? = nil,
        lines: [LineQuantity]? = nil
    ) {
        self.lines = lines
        self.refundAmountMinor = refundAmountMinor
        self.refundTo = refundTo
        self.orderID = orderID
        self.reason = reason
        self.refund = refund
        self.restock = restock
        self.notify = notify
        self.staffNote = staffNote
    }

    enum CodingKeys: String, CodingKey {
        case reason, refund, restock, notify
        case orderID = "order_id"
        case staffNote = "staff_note"
        case refundAmountMinor = "refund_amount"
        case refundTo = "refund_to"
        case lines
    }
}

/// One change of an order edit: how many open units of a SKU the order should have.
public struct LineChange: Codable, Sendable, Hashable {
    public var sku: String
    /// Open units of the SKU after the edit; 0 removes them. Units cancelled or fulfilled are not counted.
    public var quantity: Int64
    /// The unit price of a SKU the order does not have yet (a line added); absent for one it has.
    public var unitPriceMinor: Int64?

    public init(sku: String, quantity: Int64, unitPriceMinor: Int64? = nil) {
        self.sku = sku
        self.quantity = quantity
        self.unitPriceMinor = unitPriceMinor
    }

    enum CodingKeys: String, CodingKey {
        case sku, quantity
        case unitPriceMinor = "unit_price"
    }
}

public struct EditOrderRequest: Codable, Sendable, Hashable {
    /// The longest note, as for a cancellation's staff note.
    public static let maxNoteLength = 255

    public var orderID: UUID
    /// 1 to 100 changes, one per SKU.
    public var changes: [LineChange]
    /// Why (kept with the edit).
    public var note: String?

    public init(orderID: UUID, changes: [LineChange], note: String? = nil) {
        self.orderID = orderID
        self.changes = changes
        self.note = note
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case changes, note
    }
}

/// An edit of an order, as recorded.
public struct OrderEdit: Codable, Sendable, Hashable {
    public var sagaID: UUID
    public var changes: [LineChange]
    /// What the edit changed of the money: more charged (positive) or given back (negative), in minor units.
    public var amountMinor: Int64
    /// How the money moved: `increase` (the authorization raised, or the extra charged), `void` (part of the
    /// authorization voided), `refund`, or absent when the amount is 0.
    public var payment: String?
    /// The store's restocking fee kept from what a customer's edit gave back (absent when none was kept): removing
    /// units is cancelling them.
    public var restockingFeeMinor: Int64?
    public var note: String?
    /// The certificate identity of the caller, or `customer` for the order's customer (`customer.edit`).
    public var by: String
    public var at: Date

    public init(
        sagaID: UUID, changes: [LineChange], amountMinor: Int64, payment: String?, restockingFeeMinor: Int64? = nil,
        note: String?, by: String, at: Date
    ) {
        self.sagaID = sagaID
        self.changes = changes
        self.amountMinor = amountMinor
        self.payment = payment
        self.restockingFeeMinor = restockingFeeMinor
        self.note = note
        self.by = by
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case changes, payment, note, by, at
        case sagaID = "saga_id"
        case amountMinor = "amount"
        case restockingFeeMinor = "restocking_fee"
    }
}

public struct CanCancelRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// Evaluate the customer's rules (the window, the cut-off, tags, the abuse limit) instead of staff's.
    public var asCustomer: Bool?

    public init(orderID: UUID, asCustomer: Bool? = nil) {
        self.orderID = orderID
        self.asCustomer = asCustomer
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case asCustomer = "as_customer"
    }
}

/// What the store's cancellation policy says of an order now: of a cancellation, or of a customer's change of
/// quantities (`action` `edit`).
public struct CancelPolicyDecision: Codable, Sendable, Hashable {
    /// Whether the action would be accepted now.
    public var allowed: Bool
    /// For a yes: until when (the earliest deadline of the rules that have one); absent without a deadline.
    public var until: Date?
    /// Who the rules were evaluated for: `staff` or `customer`.
    public var actor: String
    /// Every rule evaluated, in order.
    public var rules: [PolicyRule]
    /// For the customer: whether the store approves the cancellation first (a request, not a cancellation).
    public var needsApproval: Bool?
    /// What was evaluated: `edit` for a change of quantities; absent for a cancellation.
    public var action: String?

    public init(
        allowed: Bool, until: Date?, actor: String, rules: [PolicyRule], needsApproval: Bool? = nil,
        action: String? = nil
    ) {
        self.allowed = allowed
        self.until = until
        self.actor = actor
        self.rules = rules
        self.needsApproval = needsApproval
        self.action = action
    }

    enum CodingKeys: String, CodingKey {
        case allowed, until, actor, rules, action
        case needsApproval = "needs_approval"
    }
}

/// One rule of the cancellation policy, as it applied to an order.
public struct PolicyRule: Codable, Sendable, Hashable {
    /// The rule's stable name, e.g. `cancellation_window`.
    public var rule: String
    public var passed: Bool
    /// What the rule found, for a person: "you can cancel until 15:42", "part of this order has shipped".
    public var detail: String
    /// A passed rule's deadline.
    public var until: Date?
    /// A failed rule: the reason of the error a cancellation gets, e.g. `cancellation_window_closed`.
    public var reason: String?

    public init(rule: String, passed: Bool, detail: String, until: Date? = nil, reason: String? = nil) {
        self.rule = rule
        self.passed = passed
        self.detail = detail
        self.until = until
        self.reason = reason
    }
}

public struct TagOrderRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    public var add: [String]?
    public var remove: [String]?

    public init(orderID: UUID, add: [String]? = nil, remove: [String]? = nil) {
        self.orderID = orderID
        self.add = add
        self.remove = remove
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case add, remove
    }
}

public struct FulfilOrderRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// Fulfil only these units; absent: every unit not fulfilled or cancelled yet.
    public var lines: [LineQuantity]?

    public init(orderID: UUID, lines: [LineQuantity]? = nil) {
        self.orderID = orderID
        self.lines = lines
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case lines
    }
}

/// Where a refund goes. Extensible.
public struct RefundDestination: ExtensibleValue {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Back to the card the order was paid with (the processor keeps its fee).
    public static let original = RefundDestination("original")
    /// To the customer's store credit in Payments, which a later order can spend; no money leaves the store.
    public static let storeCredit = RefundDestination("store_credit")

    public static let known: [RefundDestination] = [.original, .storeCredit]
}

/// How far fulfilment of an order has gone before its units leave stock. Extensible.
public struct FulfilmentProgress: ExtensibleValue {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A shipping label was bought.
    public static let labelPurchased = FulfilmentProgress("label_purchased")
    /// Picking has started in the warehouse.
    public static let picking = FulfilmentProgress("picking")

    public static let known: [FulfilmentProgress] = [.labelPurchased, .picking]
}

/// `orders.mark`: set or clear an order's fulfilment in progress.
public struct MarkOrderRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// The progress to record; absent clears it.
    public var inProgress: FulfilmentProgress?

    public init(orderID: UUID, inProgress: FulfilmentProgress?) {
        self.orderID = orderID
        self.inProgress = inProgress
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case inProgress = "in_progress"
    }
}

/// `orders.reorder`: the order to place again.
public struct ReorderRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// Where the new order comes from; the first order's source when absent.
    public var source: Order.Source?
    /// Spend the customer's store credit first; the saved card pays the rest.
    public var useStoreCredit: Bool?

    public init(orderID: UUID, source: Order.Source? = nil, useStoreCredit: Bool? = nil) {
        self.orderID = orderID
        self.source = source
        self.useStoreCredit = useStoreCredit
    }

    enum CodingKeys: String, CodingKey {
        case source
        case orderID = "order_id"
        case useStoreCredit = "use_store_credit"
    }
}

/// `orders.refund`: refund an amount of an order's captured payment now.
public struct RefundOrderRequest: Codable, Sendable, Hashable {
    /// The longest reason.
    public static let maxReasonLength = 255

    public var orderID: UUID
    public var amountMinor: Int64
    /// Why: kept with the refund (required, at most 255 characters).
    public var reason: String
    /// Where the refund goes; the card when absent.
    public var refundTo: RefundDestination?

    public init(orderID: UUID, amountMinor: Int64, reason: String, refundTo: RefundDestination? = nil) {
        self.orderID = orderID
        self.amountMinor = amountMinor
        self.reason = reason
        self.refundTo = refundTo
    }

    enum CodingKeys: String, CodingKey {
        case reason
        case orderID = "order_id"
        case amountMinor = "amount"
        case refundTo = "refund_to"
    }
}

/// A refund made by `orders.refund`.
public struct OrderRefund: Codable, Sendable, Hashable {
    public var sagaID: UUID
    public var amountMinor: Int64
    public var reason: String
    /// The certificate identity of the caller.
    public var by: String
    public var at: Date
    /// Where it went (absent: the card).
    public var refundTo: RefundDestination?

    public init(
        sagaID: UUID, amountMinor: Int64, reason: String, by: String, at: Date, refundTo: RefundDestination? = nil
    ) {
        self.refundTo = refundTo
        self.sagaID = sagaID
        self.amountMinor = amountMinor
        self.reason = reason
        self.by = by
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case reason, by, at
        case sagaID = "saga_id"
        case amountMinor = "amount"
        case refundTo = "refund_to"
    }
}

public struct CancelAccepted: Codable, Sendable, Hashable {
    public var sagaID: UUID
    public var order: Order

    public init(sagaID: UUID, order: Order) {
        self.sagaID = sagaID
        self.order = order
    }

    enum CodingKeys: String, CodingKey {
        case order
        case sagaID = "saga_id"
    }
}

/// A saga and its step log.
public struct Saga: Codable, Sendable, Hashable {
    /// What a saga does. Extensible: a peer keeps a kind it does not know as text.
    public struct Kind: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Placing an order: reserve stock, authorize and capture the payment.
        public static let placeOrder = Kind("place_order")
        /// Cancelling an order: hold its stock, move its money back, restock or write off, record.
        public static let cancelOrder = Kind("cancel_order")
        /// Fulfilling an order: its reserved units leave stock.
        public static let fulfilOrder = Kind("fulfil_order")
        /// Capturing an authorization when it falls due (the store captures later than placement).
        public static let capturePayment = Kind("capture_payment")
        /// A refund made after placement by `orders.refund`, outside a cancellation.
        public static let refundPayment = Kind("refund_payment")
        /// An edit of an open order (`orders.edit`).
        public static let editOrder = Kind("edit_order")

        public static let known: [Kind] = [
            .placeOrder, .cancelOrder, .fulfilOrder, .capturePayment, .refundPayment, .editOrder,
        ]
    }

    /// Where a saga stands. Extensible: a peer keeps a state it does not know as text.
    public struct State: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Going forward.
        public static let running = State("running")
        /// A step failed for good; undoing the completed steps in reverse.
        public static let compensating = State("compensating")
        /// Every step succeeded.
        public static let completed = State("completed")
        /// A step failed and every completed step was undone.
        public static let compensated = State("compensated")
        /// Stopped: a step after the pivot, an uncertain pivot or a compensation failed for good, or ran out of
        /// attempts. Needs a person: `sagas.retry` resumes it, `sagas.settle` ends it by hand.
        public static let failed = State("failed")
        /// A person ended a failed saga by hand (`sagas.settle`); the saga says who, when and why.
        public static let settled = State("settled")

        public static let known: [State] = [.running, .compensating, .completed, .compensated, .failed, .settled]

        /// Whether the saga will do nothing more by itself. `failed` is terminal until a person retries it.
        /// An unknown state is not terminal: a newer peer may still be driving it.
        public var isTerminal: Bool {
            self == .completed || self == .compensated || self == .failed || self == .settled
        }
    }

    public struct Step: Codable, Sendable, Hashable {
        public enum Direction: String, Codable, Sendable, Hashable {
            case forward, compensate
        }

        public enum Status: String, Codable, Sendable, Hashable {
            /// Written before the request went out; no answer recorded yet.
            case started
            case succeeded
            case failed
        }

        public var seq: Int
        public var name: String
        public var direction: Direction
        public var status: Status
        public var attempt: Int
        public var idempotencyKey: String?
        public var detail: String?
        public var error: RescindErrorSummary?
        public var startedAt: Date
        public var finishedAt: Date?

        public init(
            seq: Int, name: String, direction: Direction, status: Status, attempt: Int, idempotencyKey: String?,
            detail: String?, error: RescindErrorSummary?, startedAt: Date, finishedAt: Date?
        ) {
            self.seq = seq
            self.name = name
            self.direction = direction
            self.status = status
            self.attempt = attempt
            self.idempotencyKey = idempotencyKey
            self.detail = detail
            self.error = error
            self.startedAt = startedAt
            self.finishedAt = finishedAt
        }

        enum CodingKeys: String, CodingKey {
            case seq, name, direction, status, attempt, detail, error
            case idempotencyKey = "idempotency_key"
            case startedAt = "started_at"
            case finishedAt = "finished_at"
        }
    }

    /// How a person ended a failed saga.
    public struct Settlement: Codable, Sendable, Hashable {
        /// The certificate identity of the person's client.
        public var by: String
        public var at: Date
        /// What the person made of the order.
        public var outcome: SettleOutcome
        public var note: String

        public init(by: String, at: Date, outcome: SettleOutcome, note: String) {
            self.by = by
            self.at = at
            self.outcome = outcome
            self.note = note
        }

        enum CodingKeys: String, CodingKey {
            case by, at, note
            case outcome = "as"
        }
    }

    public var id: UUID
    public var kind: Kind
    public var orderID: UUID
    public var state: State
    public var steps: [Step]
    /// The error that sent the saga into compensation or failure.
    public var error: RescindErrorSummary?
    public var createdAt: Date
    public var updatedAt: Date
    /// Set once a person settled the saga.
    public var settlement: Settlement?

    public init(
        id: UUID, kind: Kind, orderID: UUID, state: State, steps: [Step], error: RescindErrorSummary?,
        createdAt: Date, updatedAt: Date, settlement: Settlement? = nil
    ) {
        self.id = id
        self.kind = kind
        self.orderID = orderID
        self.state = state
        self.steps = steps
        self.error = error
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.settlement = settlement
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, state, steps, error, settlement
        case orderID = "order_id"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// What a person made of an order whose saga they settled. Extensible.
public struct SettleOutcome: ExtensibleValue {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The order is cancelled (whatever moved was put right by hand).
    public static let cancelled = SettleOutcome("cancelled")
    /// The order is open again, as if the saga had not run (a cancellation), or placed (a placement).
    public static let open = SettleOutcome("open")
    /// The order's units left the building (a fulfilment).
    public static let fulfilled = SettleOutcome("fulfilled")

    public static let known: [SettleOutcome] = [.cancelled, .open, .fulfilled]
}

public struct SettleSagaRequest: Codable, Sendable, Hashable {
    /// The longest note, as a staff note.
    public static let maxNoteLength = 255

    public var sagaID: UUID
    public var outcome: SettleOutcome
    /// Why, and what the person did by hand; required.
    public var note: String

    public init(sagaID: UUID, outcome: SettleOutcome, note: String) {
        self.sagaID = sagaID
        self.outcome = outcome
        self.note = note
    }

    enum CodingKeys: String, CodingKey {
        case note
        case sagaID = "saga_id"
        case outcome = "as"
    }
}

public struct ListSagasRequest: Codable, Sendable, Hashable {
    public var orderID: UUID?
    public var state: Saga.State?
    public var limit: Int?
    /// Only sagas that need attention: `failed`, or unfinished for longer than the daemon's threshold.
    public var stuck: Bool?

    public init(orderID: UUID? = nil, state: Saga.State? = nil, limit: Int? = nil, stuck: Bool? = nil) {
        self.orderID = orderID
        self.state = state
        self.limit = limit
        self.stuck = stuck
    }

    enum CodingKeys: String, CodingKey {
        case state, limit, stuck
        case orderID = "order_id"
    }
}

public struct SagaList: Codable, Sendable, Hashable {
    public var sagas: [Saga]
    public init(sagas: [Saga]) { self.sagas = sagas }
}

public struct WaitSagaRequest: Codable, Sendable, Hashable {
    /// The longest wait a daemon grants, in milliseconds.
    public static let maxTimeoutMillis: Int64 = 60_000

    public var sagaID: UUID
    /// How long to wait at most (default 30 000, at most 60 000); the request's own deadline should be later.
    public var timeoutMillis: Int64?

    public init(sagaID: UUID, timeoutMillis: Int64? = nil) {
        self.sagaID = sagaID
        self.timeoutMillis = timeoutMillis
    }

    enum CodingKeys: String, CodingKey {
        case sagaID = "saga_id"
        case timeoutMillis = "timeout_ms"
    }
}

public struct SagaRequest: Codable, Sendable, Hashable {
    public var sagaID: UUID
    public init(sagaID: UUID) { self.sagaID = sagaID }

    enum CodingKeys: String, CodingKey {
        case sagaID = "saga_id"
    }
}
