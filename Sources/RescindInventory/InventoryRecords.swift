import Foundation
import RescindAPI
import RescindStorage

struct LocationRecord: Sendable {
    var id: String
    var active: Bool
    var createdAt: Date

    var api: Location { Location(id: id, active: active) }
}

struct StockRecord: Sendable {
    var sku: String
    var location: String
    var onHand: Int64
    var reserved: Int64

    var api: StockLevel { StockLevel(sku: sku, location: location, onHand: onHand, reserved: reserved) }
    var available: Int64 { onHand - reserved }
}

struct ReservationRecord: Sendable {
    var orderID: String
    var status: Reservation.Status
    var createdAt: Date
    var updatedAt: Date
    /// For a part: the order it belongs to.
    var partOf: String?

    /// The order whose units these are: the parent of a part, or the order itself.
    var owner: String { partOf ?? orderID }
}

struct AllocationRecord: Sendable {
    var orderID: String
    var sku: String
    var location: String
    var quantity: Int64
}

struct LedgerRecord: Sendable {
    var at: Date
    var sku: String
    var location: String
    var kind: String
    var onHandDelta: Int64
    var reservedDelta: Int64
    var orderID: String?
    var idempotencyKey: String?
}

extension Reservation.Status: SQLValueConvertible {}
