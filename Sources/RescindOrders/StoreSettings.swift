import Foundation

/// How the store runs its money: the `store` section of the Orders configuration.
public struct StoreSettings: Codable, Sendable, Hashable {
    /// When a placed order's authorization is captured.
    public enum CaptureTiming: String, Codable, Sendable, Hashable, CaseIterable {
        /// At placement: every cancellation is a refund, and the processor keeps its fee.
        case atPlacement = "at_placement"
        /// When the order is fulfilled (the fulfilment saga captures before the units leave stock), or before
        /// the authorization expires, whichever comes first. A cancellation before then is a free void.
        case atFulfilment = "at_fulfilment"
        /// When the cancellation window closes, at fulfilment, or before the authorization expires, whichever
        /// comes first.
        case whenWindowCloses = "when_window_closes"
    }

    public var capture: CaptureTiming
    /// How long after placement the store's cancellation window stays open.
    public var cancellationWindowSeconds: Double
    /// How long the processor honours an authorization (7 days by default, as card networks do).
    public var authorizationExpirySeconds: Double
    /// How long before its expiry an authorization still uncaptured is captured.
    public var captureMarginSeconds: Double
    /// The restocking fee kept from the refund of a cancellation the customer asked for (reason `customer`):
    /// a fixed amount in minor units, plus a percentage of what would be refunded. 0 and 0: none.
    public var restockingFeeFixedMinor: Int64
    public var restockingFeePercent: Double

    public init(
        capture: CaptureTiming = .atPlacement,
        cancellationWindowSeconds: Double = 3_600,
        authorizationExpirySeconds: Double = 7 * 86_400,
        captureMarginSeconds: Double = 3_600,
        restockingFeeFixedMinor: Int64 = 0,
        restockingFeePercent: Double = 0
    ) {
        self.restockingFeeFixedMinor = restockingFeeFixedMinor
        self.restockingFeePercent = restockingFeePercent
        self.capture = capture
        self.cancellationWindowSeconds = cancellationWindowSeconds
        self.authorizationExpirySeconds = authorizationExpirySeconds
        self.captureMarginSeconds = captureMarginSeconds
    }

    /// When an authorization made at `authorizedAt` is to be captured by the clock, or `nil` to capture it at
    /// once (capture at placement).
    public func captureDue(authorizedAt: Date) -> Date? {
        let beforeExpiry = authorizedAt.addingTimeInterval(authorizationExpirySeconds - captureMarginSeconds)
        switch capture {
        case .atPlacement:
            return nil
        case .atFulfilment:
            return beforeExpiry
        case .whenWindowCloses:
            return min(authorizedAt.addingTimeInterval(cancellationWindowSeconds), beforeExpiry)
        }
    }

    /// The restocking fee on a customer's cancellation whose refund would be `refundable`: never more than that.
    public func restockingFee(on refundable: Int64) -> Int64 {
        let percent = (Double(refundable) * restockingFeePercent / 100).rounded()
        return min(refundable, restockingFeeFixedMinor + Int64(percent))
    }

    /// Reads the section; absent fields take their defaults, and values out of range are refused, naming the
    /// field.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = StoreSettings()
        capture = try c.decodeIfPresent(CaptureTiming.self, forKey: .capture) ?? d.capture
        func seconds(_ key: CodingKeys, _ fallback: Double) throws -> Double {
            let value = try c.decodeIfPresent(Double.self, forKey: key) ?? fallback
            guard value.isFinite, value >= 0, value <= 365 * 86_400 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: c, debugDescription: "\(key.stringValue) must be 0 to 31536000 seconds")
            }
            return value
        }
        cancellationWindowSeconds = try seconds(.cancellationWindowSeconds, d.cancellationWindowSeconds)
        authorizationExpirySeconds = try seconds(.authorizationExpirySeconds, d.authorizationExpirySeconds)
        captureMarginSeconds = try seconds(.captureMarginSeconds, d.captureMarginSeconds)
        restockingFeeFixedMinor = try c.decodeIfPresent(Int64.self, forKey: .restockingFeeFixedMinor) ?? 0
        guard (0...1_000_000_000).contains(restockingFeeFixedMinor) else {
            throw DecodingError.dataCorruptedError(
                forKey: .restockingFeeFixedMinor, in: c, debugDescription: "restocking_fee_fixed must be 0 to 10^9")
        }
        restockingFeePercent = try c.decodeIfPresent(Double.self, forKey: .restockingFeePercent) ?? 0
        guard restockingFeePercent.isFinite, (0...100).contains(restockingFeePercent) else {
            throw DecodingError.dataCorruptedError(
                forKey: .restockingFeePercent, in: c, debugDescription: "restocking_fee_percent must be 0 to 100")
        }
        guard captureMarginSeconds < authorizationExpirySeconds else {
            throw DecodingError.dataCorruptedError(
                forKey: .captureMarginSeconds, in: c,
                debugDescription: "capture_margin_seconds must be less than authorization_expiry_seconds")
        }
    }

    enum CodingKeys: String, CodingKey {
        case capture
        case cancellationWindowSeconds = "cancellation_window_seconds"
        case authorizationExpirySeconds = "authorization_expiry_seconds"
        case captureMarginSeconds = "capture_margin_seconds"
        case restockingFeeFixedMinor = "restocking_fee_fixed"
        case restockingFeePercent = "restocking_fee_percent"
    }
}
