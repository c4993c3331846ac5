import Foundation
import GRDB
import RescindAPI

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

    /// The order's risk: the processor's screening of the card (`elevated`: medium, `highest`: high), a total
    /// above the store's threshold (medium), a customer who cancelled often lately (medium).
    func assess(_ db: Database, _ order: OrderRecord, signal: String?, now: Date) throws -> RiskAssessment {
        var level = RiskAssessment.Level.low
        var reasons: [String] = []
        func raise(to raised: RiskAssessment.Level, _ why: String) {
            level = max(level, raised)
            reasons.append(why)
        }
        switch signal {
        case "highest": raise(to: .high, "the card processor rates the card highest risk")
        case "elevated": raise(to: .medium, "the card processor rates the card elevated risk")
        default: break
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
}
