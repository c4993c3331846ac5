import Foundation
import Logging
import RescindAPI
import RescindStorage
import RescindTransport
import RescindWire

/// Stock per SKU and location, and each order's reservation, in the Inventory daemon's own database.
///
/// Every movement writes a ledger row in the same transaction as the stock change. Methods that other
/// daemons call with an idempotency key answer a repeat with the first answer.
public final class InventoryService: Sendable {
    let store: InventoryStore
    private let logger: Logger

    /// Opens (and migrates) Inventory's database: a SQLite file, or a PostgreSQL database its replicas share.
    /// - Throws: database errors.
    public convenience init(storage: StorageLocation, logger: Logger) async throws {
        self.init(store: try await InventoryStore.open(storage, logger: logger), logger: logger)
    }

    /// Opens (and migrates) the SQLite database at `path`.
    /// - Throws: database errors.
    public convenience init(databasePath: String, logger: Logger) throws {
        self.init(
            store: InventoryStore(
                database: try SQLiteDatabase(path: databasePath, migrator: InventoryDatabase.migrator)),
            logger: logger)
    }

    init(store: InventoryStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// The database, for a test that looks at what Inventory wrote.
    public var database: any SQLDatabase { store.database }

    /// Registers every Inventory method.
    public func register(into router: inout RPCRouter) {
        router.register(InventoryMethods.setStock) { request, _ in try await self.setStock(request) }
        router.register(InventoryMethods.listStock) { request, _ in try await self.listStock(request) }
        router.register(InventoryMethods.deactivateLocation) { request, _ in
            try await self.deactivateLocation(request.location)
        }
        router.register(InventoryMethods.getReservation) { request, _ in try await self.reservation(request.orderID) }
        router.register(InventoryMethods.reserve) { request, context in
            try await self.movement(context) { db in try Self.reserve(db, request, key: context.idempotencyKey) }
        }
        router.register(InventoryMethods.release) { request, context in
            try await self.movement(context) { db in
                try Self.transition(db, request.orderID, .release, key: context.idempotencyKey)
            }
        }
        router.register(InventoryMethods.prepareRestock) { request, context in
            try await self.movement(context) { db in
                try Self.transition(db, request.orderID, .prepareRestock, key: context.idempotencyKey)
            }
        }
        router.register(InventoryMethods.restock) { request, context in
            try await self.movement(context) { db in
                try Self.transition(db, request.orderID, .restock, key: context.idempotencyKey)
            }
        }
        router.register(InventoryMethods.writeOff) { request, context in
            try await self.movement(context) { db in
                try Self.transition(db, request.orderID, .writeOff, key: context.idempotencyKey)
            }
        }
        router.register(InventoryMethods.takeBack) { request, context in
            try await self.movement(context) { db in
                try Self.transition(db, request.orderID, .takeBack, key: context.idempotencyKey)
            }
        }
        router.register(InventoryMethods.commit) { request, context in
            try await self.movement(context) { db in
                try Self.transition(db, request.orderID, .commit, key: context.idempotencyKey)
            }
        }
        router.register(InventoryMethods.split) { request, context in
            try await self.movement(context) { db in try Self.split(db, request) }
        }
        router.register(InventoryMethods.merge) { request, context in
            try await self.movement(context) { db in try Self.merge(db, request) }
        }
    }

    private func movement(
        _ context: RequestContext,
        _ body: @escaping @Sendable (InventoryTransaction) throws -> Reservation
    ) async throws -> Reservation {
        let reservation = try await store.idempotentWrite(
            key: context.idempotencyKey, method: context.method, request: context.rawPayload, body)
        context.logger.info(
            "stock moved",
            metadata: ["order_id": "\(reservation.orderID)", "status": "\(reservation.status.rawValue)"]
        )
        return reservation
    }

    // MARK: Operator methods

    /// Sets the units on hand of a SKU at a location, creating the location if it is new.
    /// - Throws: `invalid_argument` for bad names or a negative count; `failed_precondition` if fewer than the
    ///   reserved units would remain.
    public func setStock(_ request: SetStockRequest) async throws -> StockLevel {
        try Validation.identifier(request.sku, field: "sku")
        try Validation.identifier(request.location, field: "location")
        guard request.onHand >= 0 else {
            throw RescindError.invalidArgument("on_hand must not be negative", reason: "negative_quantity")
        }
        return try await store.write { db in
            let now = Date()
            if try db.location(request.location) == nil {
                try db.insert(LocationRecord(id: request.location, active: true, createdAt: now))
            }
            var stock =
                try db.stock(request.sku, at: request.location)
                ?? StockRecord(sku: request.sku, location: request.location, onHand: 0, reserved: 0)
            guard request.onHand >= stock.reserved else {
                throw RescindError.failedPrecondition(
                    "\(stock.reserved) units of \(request.sku) at \(request.location) are reserved; on hand cannot go below that",
                    reason: "below_reserved"
                )
            }
            let delta = request.onHand - stock.onHand
            stock.onHand = request.onHand
            try db.save(stock)
            try db.append(
                LedgerRecord(
                    at: now, sku: request.sku, location: request.location, kind: "adjust", onHandDelta: delta,
                    reservedDelta: 0, orderID: nil, idempotencyKey: nil))
            return stock.api
        }
    }

    /// Stock levels and locations, optionally for one SKU or one location.
    public func listStock(_ request: ListStockRequest) async throws -> StockReport {
        try await store.read { db in
            StockReport(
                levels: try db.stockLevels(sku: request.sku, location: request.location).map(\.api),
                locations: try db.locations().map(\.api))
        }
    }

    /// Deactivates a location; restocks to it fail from now on.
    /// - Throws: `not_found` for an unknown location.
    public func deactivateLocation(_ id: String) async throws -> Location {
        try await store.write { db in
            guard var location = try db.location(id) else {
                throw RescindError.notFound("no location \(id)", reason: "unknown_location")
            }
            location.active = false
            try db.setActive(id, false)
            return location.api
        }
    }

    /// An order's reservation.
    /// - Throws: `not_found` if the order has none.
    public func reservation(_ orderID: UUID) async throws -> Reservation {
        try await store.read { db in try Self.load(db, orderID) }
    }

    // MARK: Movements

    static func load(_ db: InventoryTransaction, _ orderID: UUID) throws -> Reservation {
        guard let record = try db.reservation(orderID.uuidString) else {
            throw RescindError.notFound("no reservation for order \(orderID)", reason: "unknown_reservation")
        }
        return Reservation(
            orderID: orderID,
            status: record.status,
            allocations: try db.allocations(orderID.uuidString).map {
                .init(sku: $0.sku, location: $0.location, quantity: $0.quantity)
            },
            partOf: record.partOf.flatMap(UUID.init(uuidString:))
        )
    }

    /// Units per SKU, each SKU valid and each quantity 1 to 1,000,000.
    static func unitsBySKU(_ lines: [ReserveRequest.Line]) throws -> [String: Int64] {
        guard !lines.isEmpty else {
            throw RescindError.invalidArgument("at least one line is needed", reason: "no_lines")
        }
        var wanted: [String: Int64] = [:]
        for line in lines {
            try Validation.identifier(line.sku, field: "sku")
            guard line.quantity > 0, line.quantity <= 1_000_000 else {
                throw RescindError.invalidArgument("quantity must be between 1 and 1000000", reason: "bad_quantity")
            }
            wanted[line.sku, default: 0] += line.quantity
        }
        return wanted
    }

    /// Reserves every line at active locations, in location order, splitting a line across locations when
    /// one has too few. All lines or none.
    static func reserve(_ db: InventoryTransaction, _ request: ReserveRequest, key: String?) throws -> Reservation {
        let wanted = try unitsBySKU(request.lines)
        if try db.reservation(request.orderID.uuidString) != nil {
            throw RescindError.failedPrecondition(
                "order \(request.orderID) already has a reservation",
                reason: "already_reserved"
            )
        }
        if let parent = request.partOf {
            guard try db.reservation(parent.uuidString)?.partOf == nil,
                parent != request.orderID
            else {
                throw RescindError.failedPrecondition(
                    "\(parent) is not an order's reservation, so it cannot have parts", reason: "unknown_reservation")
            }
        }
        let now = Date()
        let owner = (request.partOf ?? request.orderID).uuidString
        try db.insert(
            ReservationRecord(
                orderID: request.orderID.uuidString, status: .reserved, createdAt: now, updatedAt: now,
                partOf: request.partOf?.uuidString))
        for (sku, quantity) in wanted.sorted(by: { $0.key < $1.key }) {
            let candidates = try db.available(sku)
            let available = candidates.reduce(0) { $0 + $1.available }
            guard available >= quantity else {
                throw RescindError.failedPrecondition(
                    "only \(available) of \(quantity) units of \(sku) are available",
                    reason: "out_of_stock"
                )
            }
            var remaining = quantity
            for var stock in candidates where remaining > 0 {
                let take = min(remaining, stock.available)
                remaining -= take
                stock.reserved += take
                try db.save(stock)
                try db.allocate(request.orderID.uuidString, sku: sku, at: stock.location, quantity: take)
                try db.append(
                    LedgerRecord(
                        at: now, sku: sku, location: stock.location, kind: "reserve", onHandDelta: 0,
                        reservedDelta: take, orderID: owner, idempotencyKey: key))
            }
        }
        return try load(db, request.orderID)
    }

    /// A change of a reservation's status and what it does to stock.
    ///
    /// A cancellation's restock is two-phase: `prepare_restock` checks the locations and holds the units as
    /// `restocking` (still reserved, so nobody else can take them), then after the refund `restock` makes them
    /// available, or `take_back` keeps them reserved for the order when the refund was declined.
    enum Transition: String {
        case release, prepareRestock = "prepare_restock", restock, takeBack = "take_back", commit
        case writeOff = "write_off"

        var from: Reservation.Status {
            switch self {
            case .release, .prepareRestock, .commit, .writeOff: .reserved
            case .restock, .takeBack: .restocking
            }
        }

        var to: Reservation.Status {
            switch self {
            case .release: .released
            case .prepareRestock: .restocking
            case .restock: .restocked
            case .takeBack: .reserved
            case .commit: .committed
            case .writeOff: .writtenOff
            }
        }

        /// The status that means there is nothing to do: a compensation of what never happened, or a restock
        /// promised again after a person settled an earlier cancellation by hand.
        var noOpState: Reservation.Status? {
            switch self {
            case .release: .released
            case .takeBack: .reserved
            case .prepareRestock: .restocking
            case .restock, .commit, .writeOff: nil
            }
        }

        /// Change of (on hand, reserved) per unit; a hold and its undo move nothing.
        var deltas: (onHand: Int64, reserved: Int64)? {
            switch self {
            case .release, .restock: (0, -1)
            case .commit, .writeOff: (-1, -1)
            case .prepareRestock, .takeBack: nil
            }
        }
    }

    static func transition(_ db: InventoryTransaction, _ orderID: UUID, _ transition: Transition, key: String?) throws
        -> Reservation
    {
        guard let record = try db.reservation(orderID.uuidString) else {
            throw RescindError.notFound("no reservation for order \(orderID)", reason: "unknown_reservation")
        }
        // Undoing what did not happen is done: a compensation may run for a step whose outcome was unknown.
        if record.status == transition.noOpState { return try load(db, orderID) }
        guard record.status == transition.from else {
            throw RescindError.failedPrecondition(
                "cannot \(transition.rawValue) the units of order \(orderID): they are \(record.status.rawValue)",
                reason: "reservation_\(record.status.rawValue)"
            )
        }
        let now = Date()
        let reservation = try load(db, orderID)
        for allocation in reservation.allocations {
            guard let location = try db.location(allocation.location),
                var stock = try db.stock(allocation.sku, at: allocation.location)
            else {
                throw RescindError.internalError("stock row missing for \(allocation.sku) at \(allocation.location)")
            }
            // Checked when the restock is promised; once promised, a later deactivation does not undo it.
            if transition == .prepareRestock, !location.active {
                throw RescindError.failedPrecondition(
                    "location \(allocation.location) is deactivated; cannot restock \(allocation.sku) there",
                    reason: "location_deactivated"
                )
            }
            guard let (onHand, reserved) = transition.deltas else { continue }
            stock.onHand += onHand * allocation.quantity
            stock.reserved += reserved * allocation.quantity
            try db.save(stock)
            try db.append(
                LedgerRecord(
                    at: now, sku: allocation.sku, location: allocation.location, kind: transition.rawValue,
                    onHandDelta: onHand * allocation.quantity, reservedDelta: reserved * allocation.quantity,
                    orderID: record.owner, idempotencyKey: key))
        }
        try db.setStatus(record.orderID, transition.to, at: now)
        return try load(db, orderID)
    }

    // MARK: Parts

    /// Moves `request.lines` of an order's reserved units into the part `request.partID`, taking each SKU from
    /// the order's last locations first. No stock moves. A repeat (the part exists, of this order) answers with
    /// the part as it stands.
    static func split(_ db: InventoryTransaction, _ request: SplitRequest) throws -> Reservation {
        let wanted = try unitsBySKU(request.lines)
        if let part = try db.reservation(request.partID.uuidString) {
            guard part.partOf == request.orderID.uuidString else {
                throw RescindError.failedPrecondition(
                    "\(request.partID) is already a reservation, not a part of order \(request.orderID)",
                    reason: "already_reserved")
            }
            return try load(db, request.partID)
        }
        guard let parent = try db.reservation(request.orderID.uuidString), parent.partOf == nil
        else {
            throw RescindError.notFound("no reservation for order \(request.orderID)", reason: "unknown_reservation")
        }
        guard parent.status == .reserved else {
            throw RescindError.failedPrecondition(
                "cannot split the units of order \(request.orderID): they are \(parent.status.rawValue)",
                reason: "reservation_\(parent.status.rawValue)")
        }
        let now = Date()
        try db.insert(
            ReservationRecord(
                orderID: request.partID.uuidString, status: .reserved, createdAt: now, updatedAt: now,
                partOf: parent.orderID))
        for (sku, quantity) in wanted.sorted(by: { $0.key < $1.key }) {
            let held = try db.allocations(parent.orderID, sku: sku)
            let reserved = held.reduce(0) { $0 + $1.quantity }
            guard reserved >= quantity else {
                throw RescindError.failedPrecondition(
                    "order \(request.orderID) has \(reserved) units of \(sku) reserved, not \(quantity)",
                    reason: "not_reserved")
            }
            var remaining = quantity
            for var allocation in held where remaining > 0 {
                let take = min(remaining, allocation.quantity)
                remaining -= take
                allocation.quantity -= take
                try db.setQuantity(allocation)
                try db.allocate(request.partID.uuidString, sku: sku, at: allocation.location, quantity: take)
            }
        }
        return try load(db, request.partID)
    }

    /// Moves a reserved part's units into its order's reservation and ends the part `merged`. No stock moves.
    /// Merging a part that is merged already, or that was never made (a compensation of a split whose answer
    /// was lost), answers with the order's reservation.
    static func merge(_ db: InventoryTransaction, _ request: MergeRequest) throws -> Reservation {
        guard let parent = try db.reservation(request.orderID.uuidString), parent.partOf == nil
        else {
            throw RescindError.notFound("no reservation for order \(request.orderID)", reason: "unknown_reservation")
        }
        guard let part = try db.reservation(request.partID.uuidString) else {
            return try load(db, request.orderID)
        }
        guard part.partOf == parent.orderID else {
            throw RescindError.failedPrecondition(
                "\(request.partID) is not a part of order \(request.orderID)", reason: "not_a_part")
        }
        if part.status == .merged { return try load(db, request.orderID) }
        guard part.status == .reserved, parent.status == .reserved else {
            let status = part.status == .reserved ? parent.status : part.status
            throw RescindError.failedPrecondition(
                "cannot merge part \(request.partID) into order \(request.orderID): units are \(status.rawValue)",
                reason: "reservation_\(status.rawValue)")
        }
        for allocation in try db.allocations(part.orderID) {
            try db.allocate(parent.orderID, sku: allocation.sku, at: allocation.location, quantity: allocation.quantity)
        }
        try db.setStatus(part.orderID, .merged, at: Date())
        return try load(db, request.orderID)
    }
}
