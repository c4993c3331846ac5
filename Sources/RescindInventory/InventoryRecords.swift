import Foundation
import GRDB
import RescindAPI

struct LocationRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "location"
    var id: String
    var active: Bool
    var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, active
        case createdAt = "created_at"
    }

    var api: Location { Location(id: id, active: active) }
}

struct StockRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "stock"
    var sku: String
    var location: String
    var onHand: Int64
    var reserved: Int64

    enum CodingKeys: String, CodingKey {
        case sku, location, reserved
        case onHand = "on_hand"
    }

    enum Columns {
        static let sku = Column(CodingKeys.sku)
        static let location = Column(CodingKeys.location)
    }

    var api: StockLevel { StockLevel(sku: sku, location: location, onHand: onHand, reserved: reserved) }
    var available: Int64 { onHand - reserved }
}

struct ReservationRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "reservation"
    var orderID: String
    var status: Reservation.Status
    var createdAt: Date
    var updatedAt: Date
    /// For a part: the order it belongs to.
    var partOf: String?

    /// The order whose units these are: the parent of a part, or the order itself.
    var owner: String { partOf ?? orderID }

    enum CodingKeys: String, CodingKey {
        case status
        case partOf = "part_of"
        case orderID = "order_id"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

struct AllocationRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "allocation"
    var orderID: String
    var sku: String
    var location: String
    var quantity: Int64

    enum CodingKeys: String, CodingKey {
        case sku, location, quantity
        case orderID = "order_id"
    }

    enum Columns {
        static let orderID = Column(CodingKeys.orderID)
    }
}

struct LedgerRecord: Codable, PersistableRecord {
    static let databaseTableName = "ledger"
    var at: Date
    var sku: String
    var location: String
    var kind: String
    var onHandDelta: Int64
    var reservedDelta: Int64
    var orderID: String?
    var idempotencyKey: String?

    enum CodingKeys: String, CodingKey {
        case at, sku, location, kind
        case onHandDelta = "on_hand_delta"
        case reservedDelta = "reserved_delta"
        case orderID = "order_id"
        case idempotencyKey = "idempotency_key"
    }
}
