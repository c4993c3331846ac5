import Foundation
import GRDB
import RescindAPI
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
    func apply(_ db: Database, to lines: [OrderLineRecord], as counter: WritableKeyPath<OrderLineRecord, Int64>)
        throws -> [OrderLineRecord]
    {
        try lines.map { line in
            guard let take = perLine[line.lineNo] else { return line }
            var line = line
            line[keyPath: counter] += take
            try line.update(db)
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
}

extension SagaStep where Context: LineContext {
    /// `inventory.split`: the units of the lines taken go into a part of their own, undone by `merge`.
    static var split: SagaStep {
        .remote(
            "split", .inventory, InventoryMethods.split, role: .compensatable(undo: merge),
            request: { context, _ in
                guard let partID = context.partID, let lines = context.partLines else {
                    throw RescindError.internalError("a split without a part")
                }
                return SplitRequest(orderID: context.orderID, partID: partID, lines: lines)
            },
            answered: { part, _ in "set apart \(part.describedAllocations)" }
        )
    }

    /// `inventory.merge`: the part's units go back into the order's reservation.
    static var merge: SagaStep {
        .remote(
            "merge", .inventory, InventoryMethods.merge, role: .retriable,
            request: { context, _ in MergeRequest(orderID: context.orderID, partID: context.partID ?? context.orderID)
            },
            answered: { reservation, _ in "the order holds \(reservation.units) units again" }
        )
    }
}
