import RescindWire

import struct Foundation.Date
import struct Foundation.UUID

/// The methods of the Payments daemon.
public enum PaymentsMethods {
    /// Authorizes an amount on a card for an order; a declined card is `failed_precondition/card_declined`.
    public static let authorize = Method<AuthorizeRequest, Payment>(
        "payments.authorize", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Captures the authorized amount; the processor's fee is charged here.
    public static let capture = Method<PaymentRequest, Payment>(
        "payments.capture", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Voids an authorization that was never captured: no money moved, no fee. With an amount, voids that much
    /// of it (lines cancelled before the capture): the card's authorization goes down first, then what store
    /// credit paid goes back to the customer's balance; the payment stays `authorized` with the rest.
    public static let void = Method<VoidRequest, Payment>(
        "payments.void", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Charges more for an order (an edit added units): an authorization not captured yet is raised (an
    /// incremental authorization); a captured payment charges the extra to the saved card and captures it at
    /// once, with its own fee. A declined card changes nothing.
    public static let increase = Method<IncreaseRequest, Payment>(
        "payments.increase", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Refunds captured money to the card; the fee is kept.
    public static let refund = Method<RefundRequest, RefundResult>(
        "payments.refund", callers: [.orders], requiresIdempotencyKey: true
    )
    /// An order's payment.
    public static let get = Method<PaymentRequest, Payment>("payments.get", callers: [.orders, .operator])
    /// A customer's store credit: the balance and its ledger.
    public static let storeCredit = Method<StoreCreditRequest, StoreCredit>(
        "payments.store_credit", callers: [.orders, .operator])
    /// Switches the simulated processor's fault mode, for tests and chaos runs. Refused with
    /// `failed_precondition/fault_injection_disabled` unless the configuration sets `processor.fault_injection`.
    public static let setProcessorFaults = Method<ProcessorFaults, ProcessorFaults>(
        "payments.set_processor_faults", callers: [.operator]
    )
}

/// How the simulated processor misbehaves, on purpose.
public struct ProcessorFaults: Codable, Sendable, Hashable {
    /// Extensible: a newer Payments may know more modes.
    public struct Mode: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Behaves.
        public static let normal = Mode("normal")
        /// Every call takes `delay_ms` longer.
        public static let slow = Mode("slow")
        /// Every call fails with `unavailable` (retryable); nothing happens.
        public static let unavailable = Mode("unavailable")
        /// A refund happens at the processor but its answer is lost: Payments answers `unavailable`, and the
        /// retry finds the refund by its key instead of refunding again.
        public static let refundAnswerLost = Mode("refund_answer_lost")
        /// Every call happens at the processor but its answer is lost: Payments finds out what was done by
        /// looking the call up by its key before it asks again.
        public static let answerLost = Mode("answer_lost")
        /// The processor ignores idempotency keys: a repeated request is done again. Payments must look a call
        /// up before repeating it, or charge twice.
        public static let ignoreIdempotency = Mode("ignore_idempotency")

        public static let known: [Mode] = [
            .normal, .slow, .unavailable, .refundAnswerLost, .answerLost, .ignoreIdempotency,
        ]
    }

    public var mode: Mode
    /// The extra latency of `slow`, in milliseconds.
    public var delayMillis: Int64?

    public init(mode: Mode, delayMillis: Int64? = nil) {
        self.mode = mode
        self.delayMillis = delayMillis
    }

    enum CodingKeys: String, CodingKey {
        case mode
        case delayMillis = "delay_ms"
    }
}

public struct AuthorizeRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    public var amountMinor: Int64
    public var currency: String
    /// The processor's reference to the customer's payment method (`pm_...`), from the store's checkout. Exactly
    /// one of this and `savedCardOf`. A card number is refused (`PaymentMethodReference.cardNumberRefused`).
    public var paymentMethod: String?
    /// Charge the payment method saved with this earlier order's payment, as a reorder does.
    public var savedCardOf: UUID?
    /// Spend this customer's store credit first; the card is authorized for the rest (possibly nothing).
    public var spendStoreCreditOf: String?

    public init(orderID: UUID, amountMinor: Int64, currency: String, paymentMethod: String) {
        self.orderID = orderID
        self.amountMinor = amountMinor
        self.currency = currency
        self.paymentMethod = paymentMethod
    }

    public init(orderID: UUID, amountMinor: Int64, currency: String, savedCardOf: UUID) {
        self.orderID = orderID
        self.amountMinor = amountMinor
        self.currency = currency
        self.savedCardOf = savedCardOf
    }

    /// Reads a request; one that carries `card_number` is refused with `invalid_argument/card_number_refused`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try PaymentMethodReference.refuseCardNumber(in: decoder)
        orderID = try c.decode(UUID.self, forKey: .orderID)
        amountMinor = try c.decode(Int64.self, forKey: .amountMinor)
        currency = try c.decode(String.self, forKey: .currency)
        paymentMethod = try c.decodeIfPresent(String.self, forKey: .paymentMethod)
        savedCardOf = try c.decodeIfPresent(UUID.self, forKey: .savedCardOf)
        spendStoreCreditOf = try c.decodeIfPresent(String.self, forKey: .spendStoreCreditOf)
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case amountMinor = "amount"
        case currency
        case paymentMethod = "payment_method"
        case savedCardOf = "saved_card_of"
        case spendStoreCreditOf = "spend_store_credit_of"
    }
}

/// What Rescind accepts instead of a card: the processor's reference to a payment method that the store's
/// checkout created (Stripe.js and the like tokenize the card in the customer's browser), so no card number
/// ever reaches Rescind.
public enum PaymentMethodReference {
    /// The answer to a request that still carries a card number.
    public static let cardNumberRefused = RescindError.invalidArgument(
        "card numbers are not accepted: send payment_method, the processor's reference to the customer's card "
            + "from the store's checkout (pm_...)",
        reason: "card_number_refused")

    private struct CardNumberKey: CodingKey {
        var stringValue: String { "card_number" }
        var intValue: Int? { nil }
        init() {}
        init?(stringValue: String) { nil }
        init?(intValue: Int) { nil }
    }

    /// - Throws: `cardNumberRefused` when the request being decoded has a `card_number` field.
    public static func refuseCardNumber(in decoder: any Decoder) throws {
        if try decoder.container(keyedBy: CardNumberKey.self).contains(CardNumberKey()) {
            throw cardNumberRefused
        }
    }

    /// Checks a payment method reference: `pm_` and 1 to 250 ASCII letters, digits and underscores.
    /// - Throws: `invalid_argument/bad_payment_method`.
    public static func validate(_ reference: String) throws {
        let rest = reference.utf8.dropFirst(3)
        guard reference.hasPrefix("pm_"), (1...250).contains(rest.count),
            rest.allSatisfy({
                $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0)
                    || (0x61...0x7A).contains($0)
            })
        else {
            throw RescindError.invalidArgument(
                "payment_method must be the processor's reference to a payment method (pm_ and letters, digits, _)",
                reason: "bad_payment_method")
        }
    }
}

public struct PaymentRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    public init(orderID: UUID) { self.orderID = orderID }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
    }
}

public struct VoidRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// How much of the authorization to void, in minor units; absent: all of it.
    public var amountMinor: Int64?

    public init(orderID: UUID, amountMinor: Int64? = nil) {
        self.orderID = orderID
        self.amountMinor = amountMinor
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case amountMinor = "amount"
    }
}

public struct IncreaseRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// How much more, in minor units.
    public var amountMinor: Int64

    public init(orderID: UUID, amountMinor: Int64) {
        self.orderID = orderID
        self.amountMinor = amountMinor
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case amountMinor = "amount"
    }
}

public struct RefundRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// The amount to refund in minor units; absent: everything captured and not yet refunded.
    public var amountMinor: Int64?
    /// Refund to this customer's store credit instead of the card: no processor call, no money leaves the
    /// store; the amount counts against what was captured and not refunded, like a refund to the card.
    public var storeCreditOf: String?

    public init(orderID: UUID, amountMinor: Int64? = nil, storeCreditOf: String? = nil) {
        self.orderID = orderID
        self.amountMinor = amountMinor
        self.storeCreditOf = storeCreditOf
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case amountMinor = "amount"
        case storeCreditOf = "store_credit_of"
    }
}

/// An order's payment as the processor sees it. Amounts are integer minor units of `currency`.
public struct Payment: Codable, Sendable, Hashable {
    public enum Status: String, Codable, Sendable, Hashable {
        case authorized
        case captured
        case voided
        case partiallyRefunded = "partially_refunded"
        case refunded
    }

    public var orderID: UUID
    public var status: Status
    public var currency: String
    public var amountAuthorized: Int64
    public var amountCaptured: Int64
    public var amountRefunded: Int64
    /// The processor's fee, charged on capture and not returned by a refund.
    public var fee: Int64
    public var cardLast4: String
    /// What voiding saved: the fee a capture of what was voided would have cost (all of it, or the part voided
    /// with lines cancelled before the capture). Absent when nothing was voided.
    public var feeSaved: Int64?
    /// What of `amount_refunded` went to the customer's store credit instead of the card (absent: none).
    public var refundedToCreditMinor: Int64?
    /// What the customer's store credit paid of the order; the card paid the rest (`amount_authorized`).
    public var creditAppliedMinor: Int64?
    /// The processor's fraud screening of the card, when above normal: `elevated` or `highest`.
    public var riskSignal: String?
    /// The processor's name for the card: the same card, the same fingerprint (never the number).
    public var cardFingerprint: String?
    /// The issuer's check of the billing address (AVS), when it failed: `fail`.
    public var addressCheck: String?
    /// What the processor told Payments about this payment on its own (webhooks), oldest first; only in
    /// `payments.get`'s answer, absent when there is none.
    public var processorEvents: [ProcessorEvent]?

    public init(
        orderID: UUID, status: Status, currency: String, amountAuthorized: Int64, amountCaptured: Int64,
        amountRefunded: Int64, fee: Int64, cardLast4: String, feeSaved: Int64? = nil,
        refundedToCreditMinor: Int64? = nil, creditAppliedMinor: Int64? = nil, riskSignal: String? = nil,
        cardFingerprint: String? = nil, addressCheck: String? = nil
    ) {
        self.riskSignal = riskSignal
        self.cardFingerprint = cardFingerprint
        self.addressCheck = addressCheck
        self.feeSaved = feeSaved
        self.refundedToCreditMinor = refundedToCreditMinor
        self.creditAppliedMinor = creditAppliedMinor
        self.orderID = orderID
        self.status = status
        self.currency = currency
        self.amountAuthorized = amountAuthorized
        self.amountCaptured = amountCaptured
        self.amountRefunded = amountRefunded
        self.fee = fee
        self.cardLast4 = cardLast4
    }

    /// What the store keeps of this payment after refunds and the fee.
    public var net: Int64 { amountCaptured - amountRefunded - fee }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case status, currency, fee
        case amountAuthorized = "amount_authorized"
        case amountCaptured = "amount_captured"
        case amountRefunded = "amount_refunded"
        case cardLast4 = "card_last4"
        case feeSaved = "fee_saved"
        case refundedToCreditMinor = "refunded_to_credit"
        case creditAppliedMinor = "credit_applied"
        case riskSignal = "risk_signal"
        case cardFingerprint = "card_fingerprint"
        case addressCheck = "address_check"
        case processorEvents = "processor_events"
    }
}

/// `payments.store_credit`: whose.
public struct StoreCreditRequest: Codable, Sendable, Hashable {
    public var customer: String
    public init(customer: String) { self.customer = customer }
}

/// A customer's store credit: a balance the store owes, and every change of it, oldest first.
public struct StoreCredit: Codable, Sendable, Hashable {
    public struct Entry: Codable, Sendable, Hashable {
        public var orderID: UUID
        /// Positive: credit given (a refund to store credit); negative: credit spent.
        public var amountMinor: Int64
        public var kind: String
        public var at: Date

        public init(orderID: UUID, amountMinor: Int64, kind: String, at: Date) {
            self.orderID = orderID
            self.amountMinor = amountMinor
            self.kind = kind
            self.at = at
        }

        enum CodingKeys: String, CodingKey {
            case kind, at
            case orderID = "order_id"
            case amountMinor = "amount"
        }
    }

    public var customer: String
    public var balanceMinor: Int64
    public var entries: [Entry]

    public init(customer: String, balanceMinor: Int64, entries: [Entry]) {
        self.customer = customer
        self.balanceMinor = balanceMinor
        self.entries = entries
    }

    enum CodingKeys: String, CodingKey {
        case customer, entries
        case balanceMinor = "balance"
    }
}

public struct RefundResult: Codable, Sendable, Hashable {
    public var payment: Payment
    /// What this refund returned to the card.
    public var refundedMinor: Int64
    /// The fee the processor kept.
    public var feeKeptMinor: Int64

    public init(payment: Payment, refundedMinor: Int64, feeKeptMinor: Int64) {
        self.payment = payment
        self.refundedMinor = refundedMinor
        self.feeKeptMinor = feeKeptMinor
    }

    enum CodingKeys: String, CodingKey {
        case payment
        case refundedMinor = "refunded"
        case feeKeptMinor = "fee_kept"
    }
}

extension PaymentsMethods {
    /// The processor's events a person must act on and has not resolved yet (a refund that failed after it was
    /// accepted, a dispute, money moved outside Rescind), oldest first; with `all`, every event received.
    public static let events = Method<ProcessorEventsRequest, ProcessorEventList>(
        "payments.events", callers: [.operator])
    /// Records that a person dealt with an event: who (the caller), when, and a note. Resolving one twice
    /// answers the first resolution.
    public static let resolveEvent = Method<ResolveEventRequest, ProcessorEvent>(
        "payments.resolve_event", callers: [.operator])
    /// Compares Payments' charges (created since a time) with the processor's objects and lists every difference.
    public static let reconcile = Method<ReconcileRequest, ReconcileReport>(
        "payments.reconcile", callers: [.operator])
}

/// Something the processor told Payments on its own (a webhook), as Payments applied it.
public struct ProcessorEvent: Codable, Sendable, Hashable {
    /// What the event means for Rescind's records.
    public struct Kind: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A refund Payments recorded failed later at the processor: the customer did not get the money.
        public static let refundFailed = Kind("refund_failed")
        /// The customer disputed a charge with their bank (a chargeback); evidence is due.
        public static let disputeOpened = Kind("dispute_opened")
        /// A dispute ended: `detail` says won or lost.
        public static let disputeClosed = Kind("dispute_closed")
        /// A charge was captured at the processor while Payments holds it authorized (the dashboard, another tool).
        public static let capturedOutside = Kind("captured_outside")
        /// A charge was cancelled at the processor while Payments holds it authorized or captured.
        public static let cancelledOutside = Kind("cancelled_outside")
        /// A charge made under Rescind's key or for one of its orders that Payments has no record of.
        public static let unknownCharge = Kind("unknown_charge")
        /// What Payments did, confirmed by the processor.
        public static let confirmed = Kind("confirmed")
        /// An event of a kind, or about an object, that Rescind does not act on.
        public static let ignored = Kind("ignored")

        public static let known: [Kind] = [
            .refundFailed, .disputeOpened, .disputeClosed, .capturedOutside, .cancelledOutside, .unknownCharge,
            .confirmed, .ignored,
        ]
    }

    /// The processor's id of the event (`evt_...`): each is applied once.
    public var id: String
    /// The processor's name for it (`charge.dispute.created`, ...).
    public var type: String
    public var kind: Kind
    public var orderID: UUID?
    /// The processor's charge (`pi_...`) it is about.
    public var charge: String?
    public var amountMinor: Int64?
    /// What a person reads: the refund's failure reason, the dispute's reason or outcome.
    public var detail: String?
    /// When the processor says it happened.
    public var occurredAt: Date
    public var receivedAt: Date
    /// Whether a person must act on it.
    public var needsAttention: Bool
    public var resolvedAt: Date?
    public var resolvedBy: String?
    public var resolution: String?

    public init(
        id: String, type: String, kind: Kind, orderID: UUID? = nil, charge: String? = nil, amountMinor: Int64? = nil,
        detail: String? = nil, occurredAt: Date, receivedAt: Date, needsAttention: Bool, resolvedAt: Date? = nil,
        resolvedBy: String? = nil, resolution: String? = nil
    ) {
        self.id = id
        self.type = type
        self.kind = kind
        self.orderID = orderID
        self.charge = charge
        self.amountMinor = amountMinor
        self.detail = detail
        self.occurredAt = occurredAt
        self.receivedAt = receivedAt
        self.needsAttention = needsAttention
        self.resolvedAt = resolvedAt
        self.resolvedBy = resolvedBy
        self.resolution = resolution
    }

    enum CodingKeys: String, CodingKey {
        case id, type, kind, charge, detail, resolution
        case orderID = "order_id"
        case amountMinor = "amount"
        case occurredAt = "occurred_at"
        case receivedAt = "received_at"
        case needsAttention = "needs_attention"
        case resolvedAt = "resolved_at"
        case resolvedBy = "resolved_by"
    }
}

public struct ProcessorEventsRequest: Codable, Sendable, Hashable {
    /// Every event received, not only those waiting for a person.
    public var all: Bool?
    public var orderID: UUID?
    public var limit: Int?

    public init(all: Bool? = nil, orderID: UUID? = nil, limit: Int? = nil) {
        self.all = all
        self.orderID = orderID
        self.limit = limit
    }

    enum CodingKeys: String, CodingKey {
        case all, limit
        case orderID = "order_id"
    }
}

public struct ProcessorEventList: Codable, Sendable, Hashable {
    public var events: [ProcessorEvent]
    public init(events: [ProcessorEvent]) { self.events = events }
}

public struct ResolveEventRequest: Codable, Sendable, Hashable {
    public var eventID: String
    /// What the person did (at most 500 characters).
    public var note: String

    public init(eventID: String, note: String) {
        self.eventID = eventID
        self.note = note
    }

    enum CodingKeys: String, CodingKey {
        case note
        case eventID = "event_id"
    }
}

/// Payments' processor events in `health`.
public struct ProcessorEventHealth: Codable, Sendable, Hashable {
    /// Events a person must act on and has not resolved (`rescindctl payments attention`).
    public var needsAttention: Int
    /// Events received in all.
    public var received: Int

    public init(needsAttention: Int, received: Int) {
        self.needsAttention = needsAttention
        self.received = received
    }

    enum CodingKeys: String, CodingKey {
        case received
        case needsAttention = "needs_attention"
    }
}

public struct ReconcileRequest: Codable, Sendable, Hashable {
    /// Only charges created at or after this time (absent: all).
    public var since: Date?
    public init(since: Date? = nil) { self.since = since }
}

/// What `payments.reconcile` found.
public struct ReconcileReport: Codable, Sendable, Hashable {
    /// One way Payments' records and the processor's objects disagree.
    public struct Difference: Codable, Sendable, Hashable {
        public var orderID: UUID?
        public var charge: String
        /// `status`, `amount`, `captured`, `refunded`, `missing_at_processor`, `unrecorded`.
        public var field: String
        /// What Payments holds, and what the processor holds (absent where one holds nothing).
        public var rescind: String?
        public var processor: String?

        public init(orderID: UUID?, charge: String, field: String, rescind: String?, processor: String?) {
            self.orderID = orderID
            self.charge = charge
            self.field = field
            self.rescind = rescind
            self.processor = processor
        }

        enum CodingKeys: String, CodingKey {
            case charge, field, rescind, processor
            case orderID = "order_id"
        }
    }

    /// How many of Payments' charges were compared.
    public var checked: Int
    public var differences: [Difference]

    public init(checked: Int, differences: [Difference]) {
        self.checked = checked
        self.differences = differences
    }
}
