import Foundation
import RescindAPI

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
    /// The restocking fee kept from the refund of a cancellation the customer asked for (reason `customer`), and
    /// from what a customer's edit gives back: a fixed amount in minor units, plus a percentage of what would be
    /// refunded. 0 and 0: none.
    public var restockingFeeFixedMinor: Int64
    public var restockingFeePercent: Double
    /// The daily fulfilment cut-off, `HH:MM` in `timeZone`: a customer can cancel until the first cut-off after
    /// placement, when the order goes to be packed. `nil`: no cut-off.
    public var fulfilmentCutoff: String?
    /// The store's time zone (an IANA name), for the cut-off and for the deadlines it shows.
    public var timeZone: String
    /// An order with this tag cannot be cancelled by its customer.
    public var cannotCancelTag: String
    /// SKUs whose orders cannot be cancelled by the customer while units of them are open (made to order, say).
    public var cannotCancelSKUs: [String]
    /// At most this many cancellations by one customer in `customerCancellationsPeriodSeconds`; `nil`: no limit.
    public var customerCancellationsMax: Int?
    public var customerCancellationsPeriodSeconds: Double
    /// Whether a customer's cancellation waits for staff to approve it.
    public enum Approval: String, Codable, Sendable, Hashable {
        /// Cancelled at once.
        case never
        /// Every customer's cancellation is a request staff approve or decline.
        case always
        /// Orders above `approvalAboveMinor` only.
        case aboveAmount = "above_amount"
    }

    public var customerCancelApproval: Approval
    public var approvalAboveMinor: Int64
    /// Orders assessed at or above this fraud risk are held (`medium` or `high`); `nil`: none.
    public var riskHoldLevel: RiskAssessment.Level?
    /// A total above this raises an order's risk to medium; `nil`: no such rule.
    public var riskAmountAboveMinor: Int64?
    /// A customer with at least this many cancellations of their own in `customerCancellationsPeriodSeconds`
    /// raises an order's risk to medium; `nil`: no such rule.
    public var riskCancellationsAtLeast: Int?
    /// Where the storefront serves order-status links: `STOREFRONT_URL/o/TOKEN`.
    public var storefrontURL: String
    /// How long a customer token opens its order after it was issued.
    public var customerLinkDays: Double
    /// Whether customers may change the quantities of what they ordered from their order page, under the same
    /// window and rules as their cancellations (`customer.can_edit`).
    public var customerEdits: Bool

    public init(
        capture: CaptureTiming = .atPlacement,
        cancellationWindowSeconds: Double = 3_600,
        authorizationExpirySeconds: Double = 7 * 86_400,
        captureMarginSeconds: Double = 3_600,
        restockingFeeFixedMinor: Int64 = 0,
        restockingFeePercent: Double = 0,
        fulfilmentCutoff: String? = nil,
        timeZone: String = "UTC",
        cannotCancelTag: String = "cannot-cancel",
        cannotCancelSKUs: [String] = [],
        customerCancellationsMax: Int? = nil,
        customerCancellationsPeriodSeconds: Double = 30 * 86_400,
        storefrontURL: String = "http://127.0.0.1:8080",
        customerLinkDays: Double = 90,
        customerCancelApproval: Approval = .never,
        approvalAboveMinor: Int64 = 0,
        riskHoldLevel: RiskAssessment.Level? = nil,
        riskAmountAboveMinor: Int64? = nil,
        riskCancellationsAtLeast: Int? = nil,
        customerEdits: Bool = true
    ) {
        self.customerEdits = customerEdits
        self.riskHoldLevel = riskHoldLevel
        self.riskAmountAboveMinor = riskAmountAboveMinor
        self.riskCancellationsAtLeast = riskCancellationsAtLeast
        self.customerCancelApproval = customerCancelApproval
        self.approvalAboveMinor = approvalAboveMinor
        self.storefrontURL = storefrontURL
        self.customerLinkDays = customerLinkDays
        self.fulfilmentCutoff = fulfilmentCutoff
        self.timeZone = timeZone
        self.cannotCancelTag = cannotCancelTag
        self.cannotCancelSKUs = cannotCancelSKUs
        self.customerCancellationsMax = customerCancellationsMax
        self.customerCancellationsPeriodSeconds = customerCancellationsPeriodSeconds
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

    /// The restocking fee on a customer's refund (a cancellation, or an edit that gives money back) that would be
    /// `refundable`: never more than that.
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
        fulfilmentCutoff = try c.decodeIfPresent(String.self, forKey: .fulfilmentCutoff)
        if let cutoff = fulfilmentCutoff, Self.cutoffTime(cutoff) == nil {
            throw DecodingError.dataCorruptedError(
                forKey: .fulfilmentCutoff, in: c, debugDescription: "fulfilment_cutoff must be HH:MM, 00:00 to 23:59")
        }
        timeZone = try c.decodeIfPresent(String.self, forKey: .timeZone) ?? d.timeZone
        guard TimeZone(identifier: timeZone) != nil else {
            throw DecodingError.dataCorruptedError(
                forKey: .timeZone, in: c, debugDescription: "time_zone \(timeZone) is not an IANA time zone")
        }
        cannotCancelTag = try c.decodeIfPresent(String.self, forKey: .cannotCancelTag) ?? d.cannotCancelTag
        cannotCancelSKUs = try c.decodeIfPresent([String].self, forKey: .cannotCancelSKUs) ?? []
        customerCancellationsMax = try c.decodeIfPresent(Int.self, forKey: .customerCancellationsMax)
        if let max = customerCancellationsMax, max < 0 {
            throw DecodingError.dataCorruptedError(
                forKey: .customerCancellationsMax, in: c, debugDescription: "customer_cancellations_max must be >= 0")
        }
        customerCancellationsPeriodSeconds = try seconds(
            .customerCancellationsPeriodSeconds, d.customerCancellationsPeriodSeconds)
        storefrontURL = try c.decodeIfPresent(String.self, forKey: .storefrontURL) ?? d.storefrontURL
        guard let url = URL(string: storefrontURL), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw DecodingError.dataCorruptedError(
                forKey: .storefrontURL, in: c, debugDescription: "storefront_url must be an http or https URL")
        }
        customerLinkDays = try c.decodeIfPresent(Double.self, forKey: .customerLinkDays) ?? d.customerLinkDays
        guard customerLinkDays.isFinite, (0...3_650).contains(customerLinkDays) else {
            throw DecodingError.dataCorruptedError(
                forKey: .customerLinkDays, in: c, debugDescription: "customer_link_days must be 0 to 3650")
        }
        customerCancelApproval = try c.decodeIfPresent(Approval.self, forKey: .customerCancelApproval) ?? .never
        customerEdits = try c.decodeIfPresent(Bool.self, forKey: .customerEdits) ?? d.customerEdits
        approvalAboveMinor = try c.decodeIfPresent(Int64.self, forKey: .approvalAboveMinor) ?? 0
        guard approvalAboveMinor >= 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .approvalAboveMinor, in: c, debugDescription: "approval_above must not be negative")
        }
        riskHoldLevel = try c.decodeIfPresent(RiskAssessment.Level.self, forKey: .riskHoldLevel)
        if let level = riskHoldLevel, level != .medium, level != .high {
            throw DecodingError.dataCorruptedError(
                forKey: .riskHoldLevel, in: c, debugDescription: "risk_hold_level must be medium or high")
        }
        riskAmountAboveMinor = try c.decodeIfPresent(Int64.self, forKey: .riskAmountAboveMinor)
        riskCancellationsAtLeast = try c.decodeIfPresent(Int.self, forKey: .riskCancellationsAtLeast)
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
        case fulfilmentCutoff = "fulfilment_cutoff"
        case timeZone = "time_zone"
        case cannotCancelTag = "cannot_cancel_tag"
        case cannotCancelSKUs = "cannot_cancel_skus"
        case customerCancellationsMax = "customer_cancellations_max"
        case customerCancellationsPeriodSeconds = "customer_cancellations_period_seconds"
        case storefrontURL = "storefront_url"
        case customerLinkDays = "customer_link_days"
        case customerCancelApproval = "customer_cancel_approval"
        case approvalAboveMinor = "approval_above"
        case riskHoldLevel = "risk_hold_level"
        case riskAmountAboveMinor = "risk_amount_above"
        case riskCancellationsAtLeast = "risk_cancellations_at_least"
        case customerEdits = "customer_edits"
    }

    /// Whether a customer's cancellation of an order of `total` waits for staff.
    func needsApproval(total: Int64) -> Bool {
        switch customerCancelApproval {
        case .never: false
        case .always: true
        case .aboveAmount: total > approvalAboveMinor
        }
    }

    /// The order-status link of a customer token.
    func statusLink(_ token: String) -> String {
        (storefrontURL.hasSuffix("/") ? String(storefrontURL.dropLast()) : storefrontURL) + "/o/" + token
    }

    /// `HH:MM` as hour and minute, or `nil` if it is not a time of day.
    static func cutoffTime(_ text: String) -> (hour: Int, minute: Int)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 }), let hour = Int(parts[0]),
            let minute = Int(parts[1]), (0...23).contains(hour), (0...59).contains(minute)
        else { return nil }
        return (hour, minute)
    }

    /// The first cut-off strictly after `date`, in the store's time zone; `nil` without a cut-off.
    func nextCutoff(after date: Date) -> Date? {
        guard let cutoff = fulfilmentCutoff.flatMap(Self.cutoffTime), let zone = TimeZone(identifier: timeZone) else {
            return nil
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        return calendar.nextDate(
            after: date, matching: DateComponents(hour: cutoff.hour, minute: cutoff.minute, second: 0),
            matchingPolicy: .nextTime)
    }
}
