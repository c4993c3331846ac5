import Foundation
import RescindAPI
import RescindStorage

/// The store's fraud-risk rules, as a placement saga carries them from its start: each rule that applies
/// raises the order's level and says why; an order at or above the store's hold level is held.
struct RiskRules: Codable, Sendable, Hashable {
    var holdLevel: RiskAssessment.Level?
    var amountAbove: Int64?
    var cancellationsAtLeast: Int?
    var periodSeconds: Double

    init(_ store: StoreSettings) {
        holdLevel = store.riskHoldLevel
        amountAbove = store.riskAmountAboveMinor
        cancellationsAtLeast = store.riskCancellationsAtLeast
        periodSeconds = store.customerCancellationsPeriodSeconds
    }

    /// What the card processor said of the order's card when it authorized it.
    struct Card: Sendable {
        /// `elevated` or `highest` (`nil`: normal).
        var signal: String?
        var fingerprint: String?
        /// `fail` when the issuer's check of the billing address failed.
        var addressCheck: String?
    }

    /// The order's risk: the processor's screening of the card (`elevated`: medium, `highest`: high), its
    /// issuer's failed address check (medium), the card used before by a customer with another email address
    /// (medium), a total above the store's threshold (medium), a customer who cancelled often lately (medium).
    func assess(_ db: any SQLTransaction, _ order: OrderRecord, card: Card, now: Date) throws -> RiskAssessment {
        var level = RiskAssessment.Level.low
        var reasons: [String] = []
        func raise(to raised: RiskAssessment.Level, _ why: String) {
            level = max(level, raised)
            reasons.append(why)
        }
        switch card.signal {
        case "highest": raise(to: .high, "the card processor rates the card highest risk")
        case "elevated": raise(to: .medium, "the card processor rates the card elevated risk")
        default: break
        }
        if card.addressCheck == "fail" {
            raise(to: .medium, "the billing address does not match the one the card's issuer has")
        }
        if let fingerprint = card.fingerprint, try Self.cardUsed(db, fingerprint, byOtherThan: order.customerEmail) {
            raise(to: .medium, "the card was used before with another email address")
        }
        if let amountAbove, order.total > amountAbove {
            raise(to: .medium, "the total \(order.total) \(order.currency) is above \(amountAbove)")
        }
        if let cancellationsAtLeast {
            let count = try CancellationPolicy.customerCancellations(
                db, of: order.customerEmail, besides: order.id, since: now.addingTimeInterval(-periodSeconds))
            if count >= cancellationsAtLeast {
                raise(to: .medium, "the customer cancelled \(count) orders lately")
            }
        }
        let held = holdLevel.map { level >= $0 } ?? false
        return RiskAssessment(level: level, reasons: reasons, held: held)
    }

    /// Whether an order paid with the card `fingerprint` has another customer email: two seeks of
    /// `orders_by_card_fingerprint`, below and above the email, whatever the card's history.
    static func cardUsed(_ db: any SQLTransaction, _ fingerprint: String, byOtherThan email: String) throws -> Bool {
        try db.scalar(
            Int64.self,
            """
            SELECT
                (SELECT COUNT(*) FROM (SELECT 1 FROM orders WHERE card_fingerprint = ? AND customer_email < ? LIMIT 1) b)
                + (SELECT COUNT(*) FROM (SELECT 1 FROM orders WHERE card_fingerprint = ? AND customer_email > ? LIMIT 1) a)
            """, [fingerprint, email, fingerprint, email]) ?? 0 > 0
    }
}
