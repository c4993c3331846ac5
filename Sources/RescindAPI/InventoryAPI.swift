import RescindWire

import struct Foundation.UUID

/// The methods of the Inventory daemon.
public enum InventoryMethods {
    /// Sets the units on hand of a SKU at a location, creating either if new.
    public static let setStock = Method<SetStockRequest, StockLevel>("inventory.set_stock", callers: [.operator])
    /// Stock levels and locations, optionally filtered.
    public static let listStock = Method<ListStockRequest, StockReport>(
        "inventory.list_stock", callers: [.operator, .orders]
    )
    /// Deactivates a location: no restock can go there any more.
    public static let deactivateLocation = Method<LocationRequest, Location>(
        "inventory.deactivate_location", callers: [.operator]
    )
    /// Reserves an order's units at locations with enough available stock, all lines or none.
    public static let reserve = Method<ReserveRequest, Reservation>(
        "inventory.reserve", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Releases an order's reservation (the order was never placed).
    public static let release = Method<OrderStockRequest, Reservation>(
        "inventory.release", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Promises an order's reserved units back to stock (a cancellation, before its refund): checks that
    /// every location they are at is active and holds them as `restocking`, still reserved.
    public static let prepareRestock = Method<OrderStockRequest, Reservation>(
        "inventory.prepare_restock", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Returns units held by `prepare_restock` to available stock (the cancellation's money has moved).
    public static let restock = Method<OrderStockRequest, Reservation>(
        "inventory.restock", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Takes back a restock promised by `prepare_restock`: the units stay reserved for the order (a
    /// cancellation being compensated). Nothing was available to others in between, so it cannot fail for
    /// want of stock.
    public static let takeBack = Method<OrderStockRequest, Reservation>(
        "inventory.take_back", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Writes off an order's reserved units (a cancellation without restock): on hand and reserved both go
    /// down, one ledger row each says why.
    public static let writeOff = Method<OrderStockRequest, Reservation>(
        "inventory.write_off", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Commits an order's reserved units: they leave the building (fulfilment).
    public static let commit = Method<OrderStockRequest, Reservation>(
        "inventory.commit", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Moves some of an order's reserved units into a part of its own (`part_id`, chosen by the caller), so that
    /// the transitions above can act on those units alone: a line cancelled or fulfilled on its own. No stock
    /// moves. A repeat with the same part answers with the part.
    public static let split = Method<SplitRequest, Reservation>(
        "inventory.split", callers: [.orders], requiresIdempotencyKey: true
    )
    /// Moves a part's units back into its order's reservation: the undo of `split`, and how units reserved for
    /// an edit join the order. No stock moves; the part ends `merged`.
    public static let merge = Method<MergeRequest, Reservation>(
        "inventory.merge", callers: [.orders], requiresIdempotencyKey: true
    )
    /// An order's reservation.
    public static let getReservation = Method<OrderStockRequest, Reservation>(
        "inventory.get_reservation", callers: [.orders, .operator]
    )
}

public struct SetStockRequest: Codable, Sendable, Hashable {
    public var sku: String
    public var location: String
    public var onHand: Int64

    public init(sku: String, location: String, onHand: Int64) {
        self.sku = sku
        self.location = location
        self.onHand = onHand
    }

    enum CodingKeys: String, CodingKey {
        case sku, location
        case onHand = "on_hand"
    }
}

/// Units of one SKU at one location. `available = onHand - reserved`.
public struct StockLevel: Codable, Sendable, Hashable {
    public var sku: String
    public var location: String
    public var onHand: Int64
    public var reserved: Int64
    public var available: Int64

    public init(sku: String, location: String, onHand: Int64, reserved: Int64) {
        self.sku = sku
        self.location = location
        self.onHand = onHand
        self.reserved = reserved
        self.available = onHand - reserved
    }

    enum CodingKeys: String, CodingKey {
        case sku, location, reserved, available
        case onHand = "on_hand"
    }
}

public struct ListStockRequest: Codable, Sendable, Hashable {
    public var sku: String?
    public var location: String?

    public init(sku: String? = nil, location: String? = nil) {
        self.sku = sku
        self.location = location
    }
}

public struct StockReport: Codable, Sendable, Hashable {
    public var levels: [StockLevel]
    public var locations: [Location]

    public init(levels: [StockLevel], locations: [Location]) {
        self.levels = levels
        self.locations = locations
    }
}

public struct Location: Codable, Sendable, Hashable {
    public var id: String
    public var active: Bool

    public init(id: String, active: Bool) {
        self.id = id
        self.active = active
    }
}

public struct LocationRequest: Codable, Sendable, Hashable {
    public var location: String
    public init(location: String) { self.location = location }
}

public struct ReserveRequest: Codable, Sendable, Hashable {
    public struct Line: Codable, Sendable, Hashable {
        public var sku: String
        public var quantity: Int64
        public init(sku: String, quantity: Int64) {
            self.sku = sku
            self.quantity = quantity
        }
    }

    public var orderID: UUID
    public var lines: [Line]
    /// The order these units are for, when `orderID` names a part of its reservation (an edit adding lines,
    /// merged into the order once paid for).
    public var partOf: UUID?

    public init(orderID: UUID, lines: [Line], partOf: UUID? = nil) {
        self.orderID = orderID
        self.lines = lines
        self.partOf = partOf
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case lines
        case partOf = "part_of"
    }
}

/// Which of an order's reserved units become a part of their own.
public struct SplitRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    /// The part's id, which the transitions then take as `order_id`.
    public var partID: UUID
    /// Units per SKU; at most what the order has reserved of it.
    public var lines: [ReserveRequest.Line]

    public init(orderID: UUID, partID: UUID, lines: [ReserveRequest.Line]) {
        self.orderID = orderID
        self.partID = partID
        self.lines = lines
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case partID = "part_id"
        case lines
    }
}

/// A part to merge back into its order.
public struct MergeRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    public var partID: UUID

    public init(orderID: UUID, partID: UUID) {
        self.orderID = orderID
        self.partID = partID
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case partID = "part_id"
    }
}

public struct OrderStockRequest: Codable, Sendable, Hashable {
    public var orderID: UUID
    public init(orderID: UUID) { self.orderID = orderID }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
    }
}

/// Where an order's units are held and what has happened to them.
public struct Reservation: Codable, Sendable, Hashable {
    /// The life of an order's units.
    /// The life of an order's units. Extensible: a peer keeps a status it does not know as text.
    public struct Status: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Held for the order: counted in `reserved`, not available to others.
        public static let reserved = Status("reserved")
        /// Given back because the order was never placed.
        public static let released = Status("released")
        /// Promised back to stock by a cancellation whose money has not moved yet: still counted in
        /// `reserved`, so nobody else can take them before the refund succeeds (`inventory.prepare_restock`).
        public static let restocking = Status("restocking")
        /// Back in available stock after a cancellation.
        public static let restocked = Status("restocked")
        /// Shipped: gone from on hand.
        public static let committed = Status("committed")
        /// Cancelled without restock: gone from on hand and from reserved, for good.
        public static let writtenOff = Status("written_off")
        /// A part whose units went back into (or joined) its order's reservation.
        public static let merged = Status("merged")

        public static let known: [Status] = [
            .reserved, .released, .restocking, .restocked, .committed, .writtenOff, .merged,
        ]
    }

    public struct Allocation: Codable, Sendable, Hashable {
        public var sku: String
        public var location: String
        public var quantity: Int64

        public init(sku: String, location: String, quantity: Int64) {
            self.sku = sku
            self.location = location
            self.quantity = quantity
        }
    }

    public var orderID: UUID
    public var status: Status
    public var allocations: [Allocation]
    /// For a part (`inventory.split`, or a reservation made for an edit): the order it belongs to.
    public var partOf: UUID?

    public init(orderID: UUID, status: Status, allocations: [Allocation], partOf: UUID? = nil) {
        self.orderID = orderID
        self.status = status
        self.allocations = allocations
        self.partOf = partOf
    }

    /// The number of units across all allocations.
    public var units: Int64 { allocations.reduce(0) { $0 + $1.quantity } }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case status, allocations
        case partOf = "part_of"
    }
}
