import Foundation
import RescindWire

/// A card processor that behaves like a well-known processor's test mode: some test cards fail on purpose.
///
/// | card | behaviour |
/// |---|---|
/// | 4242424242424242 (and any other valid number) | succeeds |
/// | 4000000000000002 | declines authorization |
/// | 4000000000005126 | authorizes and captures, declines every refund |
///
/// The processor keeps its fee on a refund, as real processors do.
public struct SimulatedProcessor: Sendable {
    /// The processor's fee: `basisPoints` of the captured amount (rounded half up) plus `fixedMinor`.
    public struct Configuration: Codable, Sendable, Hashable {
        public var feeBasisPoints: Int64
        public var fixedFeeMinor: Int64

        /// 2.9% + 30 minor units.
        public init(feeBasisPoints: Int64 = 290, fixedFeeMinor: Int64 = 30) {
            self.feeBasisPoints = feeBasisPoints
            self.fixedFeeMinor = fixedFeeMinor
        }

        /// Reads a configuration; absent fields take their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            feeBasisPoints = try c.decodeIfPresent(Int64.self, forKey: .feeBasisPoints) ?? 290
            fixedFeeMinor = try c.decodeIfPresent(Int64.self, forKey: .fixedFeeMinor) ?? 30
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
        }
    }

    public static let declinedCard = "4000000000000002"
    public static let refundDeclinedCard = "4000000000005126"

    public var configuration: Configuration

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// A payment method token: what we keep instead of the card number.
    public struct Token: Sendable, Hashable {
        public var value: String
        public var last4: String
        var declinesRefunds: Bool { value.hasPrefix("pm_norefund_") }
    }

    /// Authorizes a card, returning the token to use for later operations.
    /// - Throws: `invalid_argument/bad_card` for a number that is not a card; `failed_precondition/card_declined`.
    public func authorize(cardNumber: String, amountMinor: Int64) throws -> Token {
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
        let kind = digits == Self.refundDeclinedCard ? "norefund" : "card"
        return Token(value: "pm_\(kind)_\(UUID().uuidString.prefix(8).lowercased())", last4: last4)
    }

    /// The fee charged on capturing an amount.
    public func fee(forCaptured amountMinor: Int64) -> Int64 {
        (amountMinor * configuration.feeBasisPoints + 5_000) / 10_000 + configuration.fixedFeeMinor
    }

    /// Refunds to the card behind a token.
    /// - Throws: `failed_precondition/refund_declined` for the card that declines refunds.
    public func refund(token: Token, amountMinor: Int64) throws {
        if token.declinesRefunds {
            throw RescindError.failedPrecondition("the processor declined the refund", reason: "refund_declined")
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
