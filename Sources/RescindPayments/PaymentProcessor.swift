import Foundation
import RescindWire

/// The store's card processor, as Payments uses it: the seam between Rescind's records and the money.
///
/// Payments never calls it inside a database transaction: it records the call and its key (`ProcessorCall`) in
/// one commit, calls, and records the outcome in another. Every call carries that key (a processor that honours
/// idempotency keys answers a repeat with its first answer), and `lookup` says what the processor did under a
/// key, so that after a crash between the two commits Payments finds out before it asks again, even from a
/// processor that ignores the keys.
///
/// Errors: a decline or a refusal is a non-retryable `RescindError` (`failed_precondition/card_declined`,
/// `capture_declined`, `refund_declined`, `invalid_argument/unknown_payment_method`); a processor that cannot be
/// reached, rate-limits or fails on its side throws a retryable one (`unavailable`), and nothing is recorded.
public protocol PaymentProcessor: Sendable {
    /// Authorizes an amount on a payment method without capturing it: a new charge.
    func authorize(_ request: ProcessorAuthorization, key: String) async throws -> ProcessorCharge
    /// Captures `amountMinor` of an authorized charge (the rest of its authorization is released); answers the
    /// processor's fee when it says it, else `nil` (Payments then applies the store's fee schedule).
    func capture(charge: String, amountMinor: Int64, key: String) async throws -> Int64?
    /// Cancels an uncaptured charge: nothing is taken, no fee.
    func void(charge: String, key: String) async throws
    /// Raises an uncaptured charge's authorization to `totalMinor`.
    /// - Throws: `failed_precondition/increment_unsupported` when the processor cannot for this charge (Payments
    ///   then authorizes a second charge), `card_declined`.
    func authorizeMore(charge: String, totalMinor: Int64, key: String) async throws
    /// Refunds `amountMinor` of a captured charge; answers the refund's id.
    func refund(charge: String, amountMinor: Int64, key: String) async throws -> String
    /// What the processor did under a call's key: its outcome, or `nil` when it did nothing.
    func lookup(_ call: ProcessorCall) async throws -> ProcessorOutcome?
    /// The charges made for Rescind's orders (by Rescind's key in their metadata) created at or after `since`
    /// (`nil`: all), declined ones left out: what a reconciliation compares Payments' records with.
    func charges(since: Date?) async throws -> [ProcessorChargeState]
    /// One charge as the processor holds it now, or `nil` if it has none by that id.
    func charge(_ id: String) async throws -> ProcessorChargeState?
}

/// A charge as the processor holds it, in Payments' terms.
public struct ProcessorChargeState: Sendable, Hashable {
    public var id: String
    /// The order its metadata names.
    public var orderID: UUID?
    /// The key it was authorized under.
    public var key: String?
    /// `authorized`, `captured` or `voided`; another processor status as the processor names it.
    public var status: String
    public var amountMinor: Int64
    public var capturedMinor: Int64
    public var refundedMinor: Int64
    public var createdAt: Date

    public init(
        id: String, orderID: UUID?, key: String?, status: String, amountMinor: Int64, capturedMinor: Int64,
        refundedMinor: Int64, createdAt: Date
    ) {
        self.id = id
        self.orderID = orderID
        self.key = key
        self.status = status
        self.amountMinor = amountMinor
        self.capturedMinor = capturedMinor
        self.refundedMinor = refundedMinor
        self.createdAt = createdAt
    }

    /// Payments' name for a Stripe PaymentIntent status (the simulator keeps Stripe's names too).
    public static func status(ofIntent status: String) -> String {
        switch status {
        case "requires_capture": "authorized"
        case "succeeded": "captured"
        case "canceled": "voided"
        default: status
        }
    }
}

/// What an authorization asks for.
public struct ProcessorAuthorization: Codable, Sendable, Hashable {
    public var orderID: UUID
    public var paymentMethod: String
    public var amountMinor: Int64
    public var currency: String

    public init(orderID: UUID, paymentMethod: String, amountMinor: Int64, currency: String) {
        self.orderID = orderID
        self.paymentMethod = paymentMethod
        self.amountMinor = amountMinor
        self.currency = currency
    }
}

/// A charge at the processor (a Stripe PaymentIntent): what it authorized, and what it says of the card.
public struct ProcessorCharge: Codable, Sendable, Hashable {
    /// The processor's id of the charge (`pi_...`).
    public var id: String
    public var paymentMethod: String
    public var amountMinor: Int64
    public var last4: String
    /// The processor's name for the card: the same card, the same fingerprint.
    public var fingerprint: String?
    /// The processor's fraud screening, when above normal: `elevated` or `highest`.
    public var riskSignal: String?
    /// The issuer's billing address check, when it failed: `fail`.
    public var addressCheck: String?

    public init(
        id: String, paymentMethod: String, amountMinor: Int64, last4: String, fingerprint: String? = nil,
        riskSignal: String? = nil, addressCheck: String? = nil
    ) {
        self.id = id
        self.paymentMethod = paymentMethod
        self.amountMinor = amountMinor
        self.last4 = last4
        self.fingerprint = fingerprint
        self.riskSignal = riskSignal
        self.addressCheck = addressCheck
    }
}

/// One call Payments makes to the processor, recorded (with its key) before it is made.
public struct ProcessorCall: Codable, Sendable, Hashable {
    public struct Kind: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let authorize = Kind("authorize")
        public static let capture = Kind("capture")
        public static let void = Kind("void")
        public static let authorizeMore = Kind("authorize_more")
        public static let refund = Kind("refund")

        public static let known: [Kind] = [.authorize, .capture, .void, .authorizeMore, .refund]
    }

    public var kind: Kind
    /// The idempotency key it goes out with: the effect's key, `/`, its place among the effect's calls.
    public var key: String
    public var orderID: UUID
    /// The charge it acts on; `nil` for an authorization, which makes one.
    public var charge: String?
    /// The amount (for `authorize_more`, the new total; for `void`, what the charge authorized).
    public var amountMinor: Int64
    /// An authorization's payment method and currency.
    public var paymentMethod: String?
    public var currency: String?

    public init(
        kind: Kind, key: String, orderID: UUID, charge: String? = nil, amountMinor: Int64,
        paymentMethod: String? = nil, currency: String? = nil
    ) {
        self.kind = kind
        self.key = key
        self.orderID = orderID
        self.charge = charge
        self.amountMinor = amountMinor
        self.paymentMethod = paymentMethod
        self.currency = currency
    }
}

/// What a processor call did.
public struct ProcessorOutcome: Codable, Sendable, Hashable {
    /// An authorization's new charge.
    public var charge: ProcessorCharge?
    /// A capture's fee, when the processor said it.
    public var feeMinor: Int64?
    /// A refund's id.
    public var refundID: String?

    public init(charge: ProcessorCharge? = nil, feeMinor: Int64? = nil, refundID: String? = nil) {
        self.charge = charge
        self.feeMinor = feeMinor
        self.refundID = refundID
    }
}

extension PaymentProcessor {
    /// Makes a recorded call.
    /// - Throws: the processor's errors.
    public func perform(_ call: ProcessorCall) async throws -> ProcessorOutcome {
        func charge() throws -> String {
            guard let charge = call.charge else {
                throw RescindError.internalError("a \(call.kind) call without a charge")
            }
            return charge
        }
        switch call.kind {
        case .authorize:
            guard let paymentMethod = call.paymentMethod, let currency = call.currency else {
                throw RescindError.internalError("an authorization without its payment method")
            }
            let charge = try await authorize(
                .init(
                    orderID: call.orderID, paymentMethod: paymentMethod, amountMinor: call.amountMinor,
                    currency: currency),
                key: call.key)
            return ProcessorOutcome(charge: charge)
        case .capture:
            return ProcessorOutcome(
                feeMinor: try await capture(charge: charge(), amountMinor: call.amountMinor, key: call.key))
        case .void:
            try await void(charge: charge(), key: call.key)
            return ProcessorOutcome()
        case .authorizeMore:
            try await authorizeMore(charge: charge(), totalMinor: call.amountMinor, key: call.key)
            return ProcessorOutcome()
        case .refund:
            return ProcessorOutcome(
                refundID: try await refund(charge: charge(), amountMinor: call.amountMinor, key: call.key))
        default:
            throw RescindError.internalError("no processor call of kind \(call.kind)")
        }
    }
}

/// The store's fee schedule: what a capture costs when the processor does not say (and what a void saved).
public struct FeeSchedule: Codable, Sendable, Hashable {
    public var basisPoints: Int64
    public var fixedMinor: Int64

    /// 2.9% + 30 minor units.
    public init(basisPoints: Int64 = 290, fixedMinor: Int64 = 30) {
        self.basisPoints = basisPoints
        self.fixedMinor = fixedMinor
    }

    /// `basisPoints` of the amount (rounded half up) plus `fixedMinor`; nothing on nothing.
    public func fee(forCaptured amountMinor: Int64) -> Int64 {
        amountMinor > 0 ? (amountMinor * basisPoints + 5_000) / 10_000 + fixedMinor : 0
    }
}
