import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// The units of an order's lines that a cancellation or a fulfilment takes: those asked for, or every unit
/// neither cancelled nor fulfilled yet.
///
/// Asked-for units of a SKU are taken from its lines in line order, never more than a line has open.
struct LineSelection: Sendable {
    /// Units taken per line number.
    var perLine: [Int: Int64]
    /// What the units taken cost.
    var amount: Int64
    /// Units taken, in all.
    var units: Int64
    /// Whether every open unit of the order is taken.
    var takesEverythingOpen: Bool

    /// - Throws: `invalid_argument/bad_lines` for no lines or a quantity that is not positive;
    ///   `failed_precondition/line_not_open` for a SKU the order does not have open in that quantity, naming the
    ///   units it has; `failed_precondition/nothing_open` when nothing is left to take.
    init(_ asked: [LineQuantity]?, of lines: [OrderLineRecord], doing what: String) throws {
        var wanted: [String: Int64] = [:]
        if let asked {
            guard (1...100).contains(asked.count) else {
                throw RescindError.invalidArgument("name 1 to 100 lines to \(what)", reason: "bad_lines")
            }
            for line in asked {
                guard (1...1_000_000).contains(line.quantity) else {
                    throw RescindError.invalidArgument(
                        "the quantity of \(line.sku) to \(what) must be between 1 and 1000000", reason: "bad_lines")
                }
                wanted[line.sku, default: 0] += line.quantity
            }
        } else {
            for line in lines { wanted[line.sku, default: 0] += line.open }
        }
        perLine = [:]
        amount = 0
        units = 0
        for (sku, quantity) in wanted.sorted(by: { $0.key < $1.key }) {
            var remaining = quantity
            for line in lines where line.sku == sku && line.open > 0 && remaining > 0 {
                let take = min(remaining, line.open)
                perLine[line.lineNo] = take
                amount += take * line.unitPrice
                units += take
                remaining -= take
            }
            guard remaining == 0 else {
                let open = lines.filter { $0.sku == sku }.reduce(Int64(0)) { $0 + $1.open }
                throw RescindError.failedPrecondition(
                    "cannot \(what) \(quantity) of \(sku): the order has \(open) open (not cancelled or fulfilled)",
                    reason: "line_not_open")
            }
        }
        guard units > 0 else {
            throw RescindError.failedPrecondition(
                "the order has no units left to \(what): every line is cancelled or fulfilled", reason: "nothing_open")
        }
        takesEverythingOpen = units == lines.reduce(0) { $0 + $1.open }
    }

    /// Adds the units taken to each line's `cancelled` or `fulfilled`, and returns the lines as they are now.
    @discardableResult
    func apply(
        _ db: any SQLTransaction, to lines: [OrderLineRecord], as counter: WritableKeyPath<OrderLineRecord, Int64>
    )
        throws -> [OrderLineRecord]
    {
        try lines.map { line in
            guard let take = perLine[line.lineNo] else { return line }
            var line = line
            line[keyPath: counter] += take
            try db.update(line)
            return line
        }
    }

    /// The units taken, per SKU.
    func asked(of lines: [OrderLineRecord]) -> [LineQuantity] {
        var units: [String: Int64] = [:]
        for line in lines { if let take = perLine[line.lineNo] { units[line.sku, default: 0] += take } }
        return units.sorted { $0.key < $1.key }.map { LineQuantity(sku: $0.key, quantity: $0.value) }
    }
}

/// Some of an order's units in a part of their own (Inventory's `split`, or a reservation `part_of` the order).
struct StockPart: Sendable {
    var orderID: UUID
    var partID: UUID
    var lines: [ReserveRequest.Line]
}

extension SagaStep {
    /// `inventory.split` of `part`'s units, undone by `undo` (`merge`).
    static func split(_ name: String, undo: SagaStep, _ part: @escaping @Sendable (Context) -> StockPart?) -> SagaStep {
        .remote(
            name, .inventory, InventoryMethods.split, role: .compensatable(undo: undo),
            request: { context in
                guard let part = part(context) else { throw RescindError.internalError("a split without a part") }
                return SplitRequest(orderID: part.orderID, partID: part.partID, lines: part.lines)
            },
            answered: { part, _ in "set apart \(part.describedAllocations)" }
        )
    }

    /// `inventory.merge` of `part` into its order: the undo of a split, or an edit's added units joining it.
    static func merge(_ name: String, role: Role = .retriable, _ part: @escaping @Sendable (Context) -> StockPart?)
        -> SagaStep
    {
        .remote(
            name, .inventory, InventoryMethods.merge, role: role,
            request: { context in
                guard let part = part(context) else { throw RescindError.internalError("a merge without a part") }
                return MergeRequest(orderID: part.orderID, partID: part.partID)
            },
            answered: { reservation, _ in "the order holds \(reservation.units) units" }
        )
    }
}

/// A saga context that may act on some of an order's lines: their units are split into a part of the order's
/// reservation (`partID`), and the stock steps act on the part.
protocol LineContext: Codable, Sendable {
    var orderID: UUID { get }
    /// The part of the reservation the saga acts on; `nil`: the order's whole reservation.
    var partID: UUID? { get }
    /// The units split into the part.
    var partLines: [ReserveRequest.Line]? { get }
}

extension LineContext {
    /// Whose units the stock steps move: the part's, or the order's.
    var stockID: UUID { partID ?? orderID }

    var part: StockPart? {
        guard let partID, let partLines else { return nil }
        return StockPart(orderID: orderID, partID: partID, lines: partLines)
    }
}

extension SagaStep where Context: LineContext {
    /// `split` the lines taken into their part, undone by `merge`.
    static var split: SagaStep { .split("split", undo: .merge("merge") { $0.part }) { $0.part } }
}

/// What an edit does to an order's lines: units added per SKU (reserved, then joined to the order), units
/// removed per SKU (set apart, then released), and what that changes of the money.
///
/// A change names how many open units of a SKU the order should have. Units are added to the SKU's last
/// line (or a new line, for a SKU the order does not have) and removed from its last lines first.
struct LineEdit: Sendable {
    var added: [ReserveRequest.Line] = []
    var removed: [ReserveRequest.Line] = []
    /// Added units' cost less removed units' cost.
    var amount: Int64 = 0
    private var changes: [LineChange]

    /// - Throws: `invalid_argument/bad_changes` (none, over 100, a SKU twice, a bad SKU or quantity, a new SKU
    ///   without a price); `invalid_argument/price_fixed` (another price for a SKU the order has);
    ///   `invalid_argument/no_change`; `failed_precondition/line_not_open` (removing a SKU the order does not have
    ///   open); `failed_precondition/edit_empties_order` (nothing would be left open: cancel instead).
    init(_ changes: [LineChange], of lines: [OrderLineRecord]) throws {
        self.changes = changes
        guard (1...100).contains(changes.count) else {
            throw RescindError.invalidArgument("an edit has 1 to 100 changes", reason: "bad_changes")
        }
        guard Set(changes.map(\.sku)).count == changes.count else {
            throw RescindError.invalidArgument("each SKU is changed once in an edit", reason: "bad_changes")
        }
        var openAfter = lines.reduce(Int64(0)) { $0 + $1.open }
        for change in changes {
            try Validation.identifier(change.sku, field: "sku")
            guard (0...1_000_000).contains(change.quantity) else {
                throw RescindError.invalidArgument(
                    "the quantity of \(change.sku) must be between 0 and 1000000", reason: "bad_changes")
            }
            let existing = lines.filter { $0.sku == change.sku }
            let open = existing.reduce(Int64(0)) { $0 + $1.open }
            let price: Int64
            if let last = existing.last {
                if let asked = change.unitPriceMinor, asked != last.unitPrice {
                    throw RescindError.invalidArgument(
                        "\(change.sku) costs \(last.unitPrice) in this order; an edit changes quantities, not prices",
                        reason: "price_fixed")
                }
                price = last.unitPrice
            } else {
                guard let asked = change.unitPriceMinor, (0...1_000_000_000).contains(asked) else {
                    throw RescindError.invalidArgument(
                        "\(change.sku) is new to the order: give its unit price (0 to 1e9 minor units)",
                        reason: "bad_changes")
                }
                guard change.quantity > 0 else {
                    throw RescindError.failedPrecondition(
                        "the order has no \(change.sku) to remove", reason: "line_not_open")
                }
                price = asked
            }
            let delta = change.quantity - open
            if delta > 0 { added.append(.init(sku: change.sku, quantity: delta)) }
            if delta < 0 { removed.append(.init(sku: change.sku, quantity: -delta)) }
            amount += delta * price
            openAfter += delta
        }
        guard !added.isEmpty || !removed.isEmpty else {
            throw RescindError.invalidArgument("the edit changes nothing", reason: "no_change")
        }
        guard openAfter > 0 else {
            throw RescindError.failedPrecondition(
                "the edit leaves nothing open in the order; cancel it instead", reason: "edit_empties_order")
        }
    }

    /// Writes the new quantities: added units on the SKU's last line or a new line, removed units off its last
    /// lines (a line left with no units goes).
    func apply(_ db: any SQLTransaction, to lines: [OrderLineRecord], orderID: String) throws {
        var nextLine = (lines.map(\.lineNo).max() ?? 0) + 1
        for change in changes {
            let existing = lines.filter { $0.sku == change.sku }
            var delta = change.quantity - existing.reduce(Int64(0)) { $0 + $1.open }
            if delta > 0 {
                if var last = existing.last {
                    last.quantity += delta
                    try db.update(last)
                } else {
                    try db.insert(
                        OrderLineRecord(
                            orderID: orderID, lineNo: nextLine, sku: change.sku, quantity: delta,
                            unitPrice: change.unitPriceMinor ?? 0
                        ))
                    nextLine += 1
                }
            }
            for var line in existing.reversed() where delta < 0 && line.open > 0 {
                let take = min(-delta, line.open)
                line.quantity -= take
                delta += take
                if line.quantity == 0 {
                    try db.delete(OrderLineRecord.self, key: [line.orderID, line.lineNo])
                } else {
                    try db.update(line)
                }
            }
        }
    }
}
