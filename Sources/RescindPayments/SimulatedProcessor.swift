import Crypto
import Foundation
import RescindAPI
import RescindWire
import Synchronization

/// A card processor that behaves like a well-known processor's test mode: some test cards fail on purpose.
///
/// | card | behaviour |
/// |---|---|
/// | 4242424242424242 (and any other valid number) | succeeds |
/// | 4000000000000002 | declines authorization |
/// | 4000000000005126 | authorizes and captures, declines every refund |
/// | 4000000000000341 | authorizes, declines the capture (as an issuer does when an authorization has lapsed) |
/// | 4000000000000010 | authorizes, but the issuer's address check fails |
///
/// Like real processors, it names each card by a fingerprint (the same card, the same fingerprint; never the
/// number), so that a store sees one card used by several customers.
/// The processor keeps its fee on a refund, as real processors do.
public struct SimulatedProcessor: Sendable {
    /// The processor's fee: `basisPoints` of the captured amount (rounded half up) plus `fixedMinor`.
    public struct Configuration: Codable, Sendable, Hashable {
        public var feeBasisPoints: Int64
        public var fixedFeeMinor: Int64
        /// Whether `payments.set_processor_faults` may switch fault modes (tests and chaos runs only).
        public var faultInjection: Bool

        /// 2.9% + 30 minor units.
        public init(feeBasisPoints: Int64 = 290, fixedFeeMinor: Int64 = 30, faultInjection: Bool = false) {
            self.feeBasisPoints = feeBasisPoints
            self.fixedFeeMinor = fixedFeeMinor
            self.faultInjection = faultInjection
        }

        /// Reads a configuration; absent fields take their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            feeBasisPoints = try c.decodeIfPresent(Int64.self, forKey: .feeBasisPoints) ?? 290
            fixedFeeMinor = try c.decodeIfPresent(Int64.self, forKey: .fixedFeeMinor) ?? 30
            faultInjection = try c.decodeIfPresent(Bool.self, forKey: .faultInjection) ?? false
            guard feeBasisPoints >= 0, feeBasisPoints <= 10_000, fixedFeeMinor >= 0 else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: c.codingPath,
                        debugDescription: "fees must be 0 to 10000 basis points and not negative")
                )
            }
        }

        enum CodingKeys: String, CodingKey {
            case feeBasisPoints = "fee_basis_points"
            case fixedFeeMinor = "fixed_fee"
            case faultInjection = "fault_injection"
        }
    }

    /// The fault mode, and the refunds the processor made whose answer was lost (by idempotency key).
    private final class Faults: Sendable {
        let state = Mutex<(faults: ProcessorFaults, refundedUnanswered: Set<String>)>((.init(mode: .normal), []))
    }

    public static let declinedCard = "4000000000000002"
    public static let refundDeclinedCard = "4000000000005126"
    /// A card whose authorization succeeds and whose capture the issuer declines.
    public static let captureDeclinedCard = "4000000000000341"
    /// A card with little room: an authorization above `limitedCardLimit` in all is declined (insufficient funds).
    public static let limitedCard = "4000000000009995"
    public static let limitedCardLimit: Int64 = 10_000
    /// Cards the processor's fraud screening rates above normal (it still authorizes them).
    public static let elevatedRiskCard = "4000000000009235"
    public static let highestRiskCard = "4100000000000019"
    /// A card whose issuer says the billing address does not match its records (AVS); it still authorizes.
    public static let addressMismatchCard = "4000000000000010"
    /// The key of card fingerprints: a real processor keeps its own; this simulated one is public.
    static let fingerprintKey = Data("rescind-simulated-processor/fingerprint".utf8)

    public var configuration: Configuration
    private let faults = Faults()

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Switches the fault mode.
    /// - Throws: `failed_precondition/fault_injection_disabled` unless the configuration allows it.
    public func setFaults(_ faults: ProcessorFaults) throws {
        guard configuration.faultInjection else {
            throw RescindError.failedPrecondition(
                "processor faults are off; set processor.fault_injection in the configuration (tests only)",
                reason: "fault_injection_disabled")
        }
        self.faults.state.withLock { $0.faults = faults }
    }

    /// The extra latency of a call in `slow` mode.
    public func latency() async {
        let faults = self.faults.state.withLock { $0.faults }
        guard faults.mode == .slow, let delay = faults.delayMillis, delay > 0 else { return }
        try? await Task.sleep(for: .milliseconds(delay))
    }

    /// - Throws: `unavailable` (retryable) in `unavailable` mode.
    func checkAvailable() throws {
        if faults.state.withLock({ $0.faults.mode == .unavailable }) {
            throw RescindError.unavailable("the card processor is unavailable", reason: "processor_unavailable")
        }
    }

    /// A payment method token: what we keep instead of the card number.
    public struct Token: Sendable, Hashable {
        public var value: String
        public var last4: String

        public init(value: String, last4: String) {
            self.value = value
            self.last4 = last4
        }
        var declinesRefunds: Bool { value.hasPrefix("pm_norefund_") }
        var declinesCaptures: Bool { value.hasPrefix("pm_nocapture_") }
        var isLimited: Bool { value.hasPrefix("pm_limit_") }

        /// The processor's fraud screening of the card: `normal`, `elevated` or `highest`.
        public var riskSignal: String {
            value.hasPrefix("pm_highest_") ? "highest" : value.hasPrefix("pm_elevated_") ? "elevated" : "normal"
        }

        /// The issuer's check of the billing address: `fail`, or `nil` when it matched.
        public var addressCheck: String? { value.hasPrefix("pm_avsfail_") ? "fail" : nil }

        /// The card's fingerprint, which this processor keeps in the token (`pm_KIND_FINGERPRINT_RANDOM`);
        /// `nil` for a token from before fingerprints.
        public var fingerprint: String? {
            let parts = value.split(separator: "_")
            return parts.count == 4 ? "fp_\(parts[2])" : nil
        }
    }

    /// Authorizes a card, returning the token to use for later operations.
    /// - Throws: `invalid_argument/bad_card` for a number that is not a card; `failed_precondition/card_declined`.
    public func authorize(cardNumber: String, amountMinor: Int64) throws -> Token {
        try checkAvailable()
        let digits = cardNumber.filter { $0 != " " && $0 != "-" }
        guard (12...19).contains(digits.count), digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
            Self.luhnValid(digits)
        else {
            throw RescindError.invalidArgument("the card number is not valid", reason: "bad_card")
        }
        if digits == Self.declinedCard {
            throw RescindError.failedPrecondition("the card was declined", reason: "card_declined")
        }
        let last4 = String(digits.suffix(4))
        let kind =
            switch digits {
            case Self.refundDeclinedCard: "norefund"
            case Self.captureDeclinedCard: "nocapture"
            case Self.limitedCard: "limit"
            case Self.elevatedRiskCard: "elevated"
            case Self.highestRiskCard: "highest"
            case Self.addressMismatchCard: "avsfail"
            default: "card"
            }
        let fingerprint = HMAC<SHA256>.authenticationCode(
            for: Data(digits.utf8), using: SymmetricKey(data: Self.fingerprintKey)
        )
        .prefix(10).map { String(format: "%02x", $0) }.joined()
        let token = Token(
            value: "pm_\(kind)_\(fingerprint)_\(UUID().uuidString.prefix(8).lowercased())", last4: last4)
        try checkLimit(token, amountMinor)
        return token
    }

    /// Authorizes again the card behind a token the processor issued before (a saved card, or more on the same
    /// authorization): the same token.
    /// - Throws: `unavailable` in `unavailable` mode; `failed_precondition/card_declined` over the limited card's
    ///   limit.
    public func authorize(token: Token, amountMinor: Int64) throws -> Token {
        try checkAvailable()
        try checkLimit(token, amountMinor)
        return token
    }

    private func checkLimit(_ token: Token, _ amountMinor: Int64) throws {
        if token.isLimited, amountMinor > Self.limitedCardLimit {
            throw RescindError.failedPrecondition(
                "the card was declined: insufficient funds for \(amountMinor)", reason: "card_declined")
        }
    }

    /// The fee charged on capturing an amount.
    public func fee(forCaptured amountMinor: Int64) -> Int64 {
        (amountMinor * configuration.feeBasisPoints + 5_000) / 10_000 + configuration.fixedFeeMinor
    }

    /// Captures what the card behind a token authorized.
    /// - Throws: `failed_precondition/capture_declined` for the card whose captures are declined; `unavailable`
    ///   in `unavailable` mode.
    public func capture(token: Token) throws {
        try checkAvailable()
        if token.declinesCaptures {
            throw RescindError.failedPrecondition(
                "the issuer declined the capture: the authorization is no longer valid", reason: "capture_declined")
        }
    }

    /// Refunds to the card behind a token, once per idempotency key, as real processors do.
    /// - Throws: `failed_precondition/refund_declined` for the card that declines refunds; `unavailable` in
    ///   `unavailable` mode, and in `refund_answer_lost` mode after refunding.
    public func refund(token: Token, amountMinor: Int64, key: String?) throws {
        try checkAvailable()
        if token.declinesRefunds {
            throw RescindError.failedPrecondition("the processor declined the refund", reason: "refund_declined")
        }
        guard let key else { return }
        let lost = faults.state.withLock { state -> Bool in
            // A repeat of a refund already made: the processor answers it without moving money again.
            if state.refundedUnanswered.remove(key) != nil { return false }
            guard state.faults.mode == .refundAnswerLost else { return false }
            state.refundedUnanswered.insert(key)
            return true
        }
        if lost {
            throw RescindError.unavailable(
                "the processor refunded but its answer was lost", reason: "processor_answer_lost")
        }
    }

    static func luhnValid(_ digits: String) -> Bool {
        var sum = 0
        for (index, character) in digits.reversed().enumerated() {
            guard var digit = character.wholeNumberValue else { return false }
            if index % 2 == 1 {
                digit *= 2
                if digit > 9 { digit -= 9 }
            }
            sum += digit
        }
        return sum % 10 == 0
    }
}
