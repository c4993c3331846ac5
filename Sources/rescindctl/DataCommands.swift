import ArgumentParser
import Foundation
import RescindAPI
import RescindSuite
import RescindTransport
import RescindWire

extension CancelReason: ExpressibleByArgument {}
extension Order.Status: ExpressibleByArgument {}
extension Order.Source: ExpressibleByArgument {}
extension FulfilmentProgress: ExpressibleByArgument {}
extension RefundDestination: ExpressibleByArgument {}
extension Saga.State: ExpressibleByArgument {}
extension SettleOutcome: ExpressibleByArgument {}

/// `SKU:QTY`, as `--line` of `orders cancel` and `orders fulfill` takes it.
extension LineQuantity: ExpressibleByArgument {
    public init?(argument: String) {
        let parts = argument.split(separator: ":")
        guard parts.count == 2, let quantity = Int64(parts[1]) else { return nil }
        self.init(sku: String(parts[0]), quantity: quantity)
    }
}

extension ExtensibleValue where Self: ExpressibleByArgument {
    /// Only the values this build knows: a typo is refused here rather than sent.
    public init?(argument: String) {
        guard Self.known.contains(Self(rawValue: argument)) else { return nil }
        self.init(rawValue: argument)
    }

    public static var allValueStrings: [String] { known.map(\.rawValue) }
}

struct InventoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inventory",
        abstract: "Stock per SKU and location.",
        subcommands: [Set.self, Show.self, DeactivateLocation.self]
    )

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set the units on hand of a SKU at a location.")
        @Option var sku: String
        @Option var location: String
        @Option var onHand: Int64
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let level = try await target.with { c in
                    try await c.inventory.call(
                        InventoryMethods.setStock, SetStockRequest(sku: sku, location: location, onHand: onHand)
                    )
                }
                try output.emit(level) {
                    "\($0.sku) at \($0.location): \($0.onHand) on hand, \($0.reserved) reserved, \($0.available) available"
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show stock levels and locations.")
        @Option var sku: String?
        @Option var location: String?
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let report = try await target.with { c in
                    try await c.inventory.call(
                        InventoryMethods.listStock, ListStockRequest(sku: sku, location: location))
                }
                try output.emit(report, text: Render.stock)
            }
        }
    }

    struct DeactivateLocation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deactivate a location: restocks to it fail from now on."
        )
        @Option var location: String
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let result = try await target.with { c in
                    try await c.inventory.call(InventoryMethods.deactivateLocation, LocationRequest(location: location))
                }
                try output.emit(result) { "location \($0.id) is \($0.active ? "active" : "deactivated")" }
            }
        }
    }
}

struct OrdersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orders",
        abstract: "Place, show, cancel, fulfil, archive and delete orders.",
        subcommands: [
            Place.self, Show.self, List.self, CanCancel.self, Cancel.self, Fulfill.self, Edit.self, Mark.self,
            Tag.self, RotateToken.self, Risk.self, Release.self, Reorder.self, Archive.self, Unarchive.self,
            Delete.self,
        ]
    )

    struct Place: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Place an order: reserve stock, authorize and capture the card."
        )
        @Option(help: "The customer's email.")
        var customer: String
        @Option(help: "SKU:QTY:UNIT_PRICE in minor units (repeatable).")
        var line: [String]
        @Option var currency = "USD"
        @Option(
            help:
                "The processor's payment method from the store's checkout, never a card number (simulator test methods: pm_card_visa succeeds, pm_card_visa_chargeDeclined declines, pm_card_refundFail declines refunds; README lists them all)."
        )
        var paymentMethod = "pm_card_visa"
        @Option(help: "Where the order comes from: online_store, pos, staff (a draft order) or api.")
        var source: Order.Source = .staff
        @Flag(help: "Spend the customer's store credit first; the card pays the rest.")
        var useStoreCredit = false
        @Option(help: "A tag (repeatable), e.g. cannot-cancel.")
        var tag: [String] = []
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let lines = try line.map { text -> PlaceOrderRequest.Line in
                let parts = text.split(separator: ":")
                guard parts.count == 3, let quantity = Int64(parts[1]), let price = Int64(parts[2]) else {
                    throw ValidationError("--line is SKU:QTY:UNIT_PRICE, e.g. TSHIRT:2:2500")
                }
                return PlaceOrderRequest.Line(sku: String(parts[0]), quantity: quantity, unitPriceMinor: price)
            }
            let request = PlaceOrderRequest(
                customerEmail: customer, currency: currency, lines: lines, paymentMethod: paymentMethod, source: source,
                useStoreCredit: useStoreCredit ? true : nil, tags: tag.isEmpty ? nil : tag)
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(
                        OrdersMethods.place, request, idempotencyKey: "ctl-\(UUID().uuidString)", timeout: .seconds(40)
                    )
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an order.")
        @Argument var id: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        /// The order, and what the processor said of its payment (JSON: the order's fields and
        /// `processor_events`).
        struct View: Encodable {
            var order: Order
            var processorEvents: [ProcessorEvent]?

            enum CodingKeys: String, CodingKey { case processorEvents = "processor_events" }

            func encode(to encoder: any Encoder) throws {
                try order.encode(to: encoder)
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encodeIfPresent(processorEvents, forKey: .processorEvents)
            }
        }

        func run() async throws {
            try await reportingErrors(output) {
                let view = try await target.with { c in
                    let order = try await c.orders.call(OrdersMethods.get, OrderRequest(orderID: id))
                    // A rejected order may have no payment; the order is shown all the same.
                    let payment = try? await c.payments.call(PaymentsMethods.get, PaymentRequest(orderID: id))
                    return View(order: order, processorEvents: payment?.processorEvents)
                }
                try output.emit(view) { view in
                    ([Render.order(view.order)]
                        + (view.processorEvents ?? []).map {
                            "  " + Render.processorEvent($0, currency: view.order.currency)
                        }).joined(separator: "\n")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List orders, newest first (archived orders only with --archived).")
        @Option var status: Order.Status?
        @Option var limit = 50
        @Flag(help: "List archived orders instead.")
        var archived = false
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let list = try await target.with { c in
                    try await c.orders.call(
                        OrdersMethods.list, ListOrdersRequest(status: status, limit: limit, archived: archived))
                }
                try output.emit(list) { list in
                    list.orders.isEmpty ? "no orders" : list.orders.map(Render.orderRow).joined(separator: "\n")
                }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel an order: lock, restock, refund (or void), record, notify — as a saga."
        )
        @Argument var id: UUID
        @Option(help: "customer, declined, fraud, inventory, staff or other.")
        var reason: CancelReason
        @Flag(help: "Keep the money (no refund).")
        var noRefund = false
        @Flag(help: "Do not return the units to stock.")
        var noRestock = false
        @Flag(help: "Queue a notification to the customer.")
        var notify = false
        @Option(help: "A staff note (at most 255 characters, never shown to the customer).")
        var note: String?
        @Option(help: "An idempotency key: a repeat with the same key answers with the same saga.")
        var idempotencyKey: String?
        @Option(help: "Refund this much (minor units) instead of everything; no restocking fee applies.")
        var refundAmount: Int64?
        @Option(help: "Where the refund goes: original (the card, default) or store_credit.")
        var refundTo: RefundDestination?
        @Option(
            name: .customLong("line"),
            help: "Cancel only these units, SKU:QTY (repeatable); the order stays open with the rest.")
        var lines: [LineQuantity] = []
        @Flag(help: "Wait until the saga ends and show its timeline.")
        var wait = false
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let request = CancelOrderRequest(
                orderID: id, reason: reason, refund: !noRefund, restock: !noRestock, notify: notify, staffNote: note,
                refundAmountMinor: refundAmount, refundTo: refundTo, lines: lines.isEmpty ? nil : lines
            )
            try await reportingErrors(output) {
                try await target.with { c in
                    let accepted = try await c.orders.call(
                        OrdersMethods.cancel, request, idempotencyKey: idempotencyKey)
                    guard wait else {
                        try output.emit(accepted) {
                            "cancellation accepted: saga \($0.sagaID) (rescindctl sagas show \($0.sagaID))"
                        }
                        return
                    }
                    let saga = try await waitForSaga(accepted.sagaID, connection: c, output: output)
                    try output.emit(saga, text: Render.saga)
                }
            }
        }
    }

    struct Fulfill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fulfil an order, or some of its lines: their units leave stock.")
        @Argument var id: UUID
        @Option(
            name: .customLong("line"), help: "Fulfil only these units, SKU:QTY (repeatable); the rest stays open.")
        var lines: [LineQuantity] = []
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(
                        OrdersMethods.fulfill, FulfilOrderRequest(orderID: id, lines: lines.isEmpty ? nil : lines))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }
}

extension OrdersCommand {
    struct CanCancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "can-cancel",
            abstract: "Whether an order can be cancelled now, with every rule of the store's policy that applied.")
        @Argument var id: UUID
        @Flag(help: "Evaluate the customer's rules (window, cut-off, tags, limit) instead of staff's.")
        var asCustomer = false
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let decision = try await target.with { c in
                    try await c.orders.call(
                        OrdersMethods.canCancel, CanCancelRequest(orderID: id, asCustomer: asCustomer ? true : nil))
                }
                try output.emit(decision, text: Render.decision)
            }
        }
    }

    struct Tag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add or remove an order's tags.")
        @Argument var id: UUID
        @Option(help: "A tag to add (repeatable).")
        var add: [String] = []
        @Option(help: "A tag to remove (repeatable).")
        var remove: [String] = []
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(OrdersMethods.tag, TagOrderRequest(orderID: id, add: add, remove: remove))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct Risk: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "An order's fraud risk: its level, why, and whether it is held.")
        @Argument var id: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(OrdersMethods.get, OrderRequest(orderID: id))
                }
                guard let risk = order.risk else {
                    throw RescindError.failedPrecondition(
                        "order \(id) has no risk assessment (it is \(order.status.rawValue))", reason: "not_assessed")
                }
                try output.emit(risk) { risk in
                    var lines = [
                        "risk \(risk.level.rawValue.uppercased())"
                            + (risk.held ? ", HELD: not fulfilled until released" : "")
                    ]
                    lines += risk.reasons.map { "  - \($0)" }
                    if let by = risk.releasedBy, let at = risk.releasedAt {
                        lines.append("  released by \(by) at \(Render.time(at))")
                    }
                    return lines.joined(separator: "\n")
                }
            }
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release an order held for its fraud risk: it can be fulfilled, and its customer may cancel.")
        @Argument var id: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(OrdersMethods.release, OrderRequest(orderID: id))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-token",
            abstract: "Give an order a new order-status link; the old one opens nothing from now on.")
        @Argument var id: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(OrdersMethods.rotateToken, OrderRequest(orderID: id))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Edit an open order: change a SKU's quantity, remove it (0), or add a line.",
            discussion: """
                Each --set SKU:QTY gives the units of SKU the order should have open; a SKU the order does not have
                is added with SKU:QTY:UNIT_PRICE. Added units are reserved and the card charged first; removed
                units are released and their share voided or refunded.
                """)
        @Argument var id: UUID
        @Option(name: .customLong("set"), help: "SKU:QTY, or SKU:QTY:UNIT_PRICE for a new line (repeatable).")
        var changes: [String]
        @Option(help: "Why (kept with the edit; at most 255 characters).")
        var note: String?
        @Option(help: "An idempotency key (default: a new one; give one to retry safely from a script).")
        var idempotencyKey: String?
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let parsed = try changes.map { text -> LineChange in
                let parts = text.split(separator: ":")
                guard (2...3).contains(parts.count), let quantity = Int64(parts[1]),
                    parts.count == 2 || Int64(parts[2]) != nil
                else {
                    throw ValidationError("--set is SKU:QTY or SKU:QTY:UNIT_PRICE, e.g. MUG:3 or CAP:1:1500")
                }
                return LineChange(
                    sku: String(parts[0]), quantity: quantity, unitPriceMinor: parts.count == 3 ? Int64(parts[2]) : nil)
            }
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(
                        OrdersMethods.edit, EditOrderRequest(orderID: id, changes: parsed, note: note),
                        idempotencyKey: idempotencyKey ?? "ctl-edit-\(UUID().uuidString)", timeout: .seconds(40))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct Mark: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Record that an order's fulfilment is in progress (cancellation is refused meanwhile), or clear it.")
        @Argument var id: UUID
        @Option(help: "label_purchased or picking.")
        var inProgress: FulfilmentProgress?
        @Flag(help: "Clear the mark.")
        var clear = false
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            guard (inProgress == nil) == clear else {
                throw ValidationError("give --in-progress label_purchased|picking, or --clear")
            }
        }

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(OrdersMethods.mark, MarkOrderRequest(orderID: id, inProgress: inProgress))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct Reorder: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Place an order again: the same lines for the same customer, charged to the card saved with it.")
        @Argument var id: UUID
        @Option(help: "Where the new order comes from (default: the first order's source).")
        var source: Order.Source?
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(
                        OrdersMethods.reorder, ReorderRequest(orderID: id, source: source),
                        idempotencyKey: "ctl-\(UUID().uuidString)", timeout: .seconds(40))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct Archive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Archive a fulfilled, cancelled or rejected order: `orders list` no longer shows it.")
        @Argument var id: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(OrdersMethods.archive, OrderRequest(orderID: id))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct Unarchive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Bring an archived order back to `orders list`.")
        @Argument var id: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(OrdersMethods.unarchive, OrderRequest(orderID: id))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete an order for good: only a staff or API order, once cancelled or archived.",
            discussion: "Orders from the online store or the point of sale can be archived, never deleted. "
                + "Payments and Inventory keep their history under the order's id.")
        @Argument var id: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let deleted = try await target.with { c in
                    try await c.orders.call(OrdersMethods.delete, OrderRequest(orderID: id))
                }
                try output.emit(deleted) {
                    "order \($0.orderID) (\($0.source.rawValue)) deleted by \($0.deletedBy) at \(Render.time($0.deletedAt))"
                }
            }
        }
    }
}

/// Polls a saga until it is terminal, printing each new step as progress.
func waitForSaga(
    _ id: UUID, connection: SuiteConnection, output: OutputOptions, showProgress: Bool = true,
    timeout: Duration = .seconds(120)
) async throws -> Saga {
    let deadline = ContinuousClock.now + timeout
    var shown = 0
    while true {
        let saga = try await connection.orders.call(OrdersMethods.getSaga, SagaRequest(sagaID: id))
        for step in saga.steps.dropFirst(shown) where showProgress && step.status != .started {
            output.progress("  … \(step.name) \(step.status.rawValue)")
        }
        shown = saga.steps.prefix { $0.status != .started }.count
        if saga.state.isTerminal { return saga }
        guard ContinuousClock.now < deadline else {
            throw RescindError(.deadlineExceeded, "saga \(id) is still \(saga.state.rawValue) after \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(100))
    }
}

extension CancelRequest.State: ExpressibleByArgument {}

struct RequestsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requests",
        abstract: "Customers' requests to cancel, in a store that approves cancellations first.",
        subcommands: [List.self, Approve.self, Decline.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Requests waiting for staff, oldest first.")
        @Option(help: "pending (default), approved or declined.")
        var state: CancelRequest.State?
        @Option var limit = 100
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let list = try await target.with { c in
                    try await c.orders.call(RequestMethods.list, ListRequestsRequest(state: state, limit: limit))
                }
                try output.emit(list) { list in
                    list.requests.isEmpty
                        ? "no requests"
                        : list.requests.map { request in
                            let units = request.lines?.map { "\($0.quantity) × \($0.sku)" }.joined(separator: ", ")
                            return
                                "\(request.orderID)  \(request.state.rawValue)  \(Render.time(request.requestedAt))  "
                                + (units ?? "whole order") + (request.note.map { "  “\($0)”" } ?? "")
                        }.joined(separator: "\n")
                }
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a request: the cancellation starts (refunded, restocked, the customer notified).")
        @Argument var id: UUID
        @Option(help: "A note kept with the decision.")
        var note: String?
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let accepted = try await target.with { c in
                    try await c.orders.call(RequestMethods.approve, DecideRequest(orderID: id, note: note))
                }
                try output.emit(accepted) {
                    "approved: cancellation saga \($0.sagaID) (rescindctl sagas show \($0.sagaID))"
                }
            }
        }
    }

    struct Decline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decline a request, saying why: the customer reads it; the order stays open.")
        @Argument var id: UUID
        @Option(help: "Why (required; the customer reads it).")
        var note: String
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let order = try await target.with { c in
                    try await c.orders.call(RequestMethods.decline, DecideRequest(orderID: id, note: note))
                }
                try output.emit(order, text: Render.order)
            }
        }
    }
}

struct PaymentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payments", abstract: "Payments per order, and customers' store credit.",
        subcommands: [Show.self, Refund.self, Credit.self, Attention.self, Resolve.self, Reconcile.self]
    )

    struct Refund: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Refund an amount of an order's captured payment now (a refund left for later, or goodwill).",
            discussion: "Never more than was captured and not refunded yet. A repeat with the same idempotency key "
                + "refunds once. The refund is recorded with its reason and your certificate's identity.")
        @Argument var orderID: UUID
        @Option(help: "The amount in minor units (1250 is 12.50).")
        var amount: Int64
        @Option(help: "Why (kept with the refund; at most 255 characters).")
        var reason: String
        @Option(help: "An idempotency key (default: a new one; give one to retry safely from a script).")
        var idempotencyKey: String?
        @Flag(help: "Refund to the customer's store credit instead of the card.")
        var toStoreCredit = false
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let payment = try await target.with { c in
                    _ = try await c.orders.call(
                        OrdersMethods.refund,
                        RefundOrderRequest(
                            orderID: orderID, amountMinor: amount, reason: reason,
                            refundTo: toStoreCredit ? .storeCredit : nil),
                        idempotencyKey: idempotencyKey ?? "ctl-refund-\(UUID().uuidString)", timeout: .seconds(40))
                    return try await c.payments.call(PaymentsMethods.get, PaymentRequest(orderID: orderID))
                }
                try output.emit(payment, text: Render.payment)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an order's payment.")
        @Argument var orderID: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let payment = try await target.with { c in
                    try await c.payments.call(PaymentsMethods.get, PaymentRequest(orderID: orderID))
                }
                try output.emit(payment, text: Render.payment)
            }
        }
    }
}

extension PaymentsCommand {
    struct Attention: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List what the processor reported that a person must act on.",
            discussion: "A refund that failed after it was accepted, a dispute, money captured or cancelled outside "
                + "Rescind, a charge Payments has no record of. Each stays listed until someone resolves it.")
        @Flag(help: "List every event received, not only those waiting for a person.")
        var all = false
        @Option(help: "Only this order's events.")
        var order: UUID?
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let list = try await target.with { c in
                    try await c.payments.call(
                        PaymentsMethods.events, ProcessorEventsRequest(all: all ? true : nil, orderID: order))
                }
                try output.emit(list) { list in
                    guard !list.events.isEmpty else {
                        return all ? "no processor events" : "nothing waits for a person"
                    }
                    return list.events.map { event in
                        "\(event.id)  order \(event.orderID.map { "\($0)" } ?? "-")  \(Render.processorEvent(event))"
                    }.joined(separator: "\n")
                }
            }
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record that you dealt with a processor event (it leaves `payments attention`).")
        @Argument(help: "The event's id (evt_...).")
        var eventID: String
        @Option(help: "What you did (kept with the event; at most 500 characters).")
        var note: String
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let event = try await target.with { c in
                    try await c.payments.call(
                        PaymentsMethods.resolveEvent, ResolveEventRequest(eventID: eventID, note: note))
                }
                try output.emit(event) { "\($0.id)  \(Render.processorEvent($0))" }
            }
        }
    }

    struct Reconcile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare Payments' records with the processor's objects and list every difference.",
            discussion: "Exits 1 when there is a difference. Charges with a processor call under way are left out.")
        @Option(help: "Only charges created since: an ISO 8601 time or an age such as 24h, 7d, 30m.")
        var since: String?
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let start = try since.map(Self.time)
            var differences = 0
            try await reportingErrors(output) {
                output.progress("reconciling Payments' charges with the processor...")
                let report = try await target.with { c in
                    try await c.payments.call(
                        PaymentsMethods.reconcile, ReconcileRequest(since: start), idempotencyKey: nil,
                        timeout: .seconds(300))
                }
                differences = report.differences.count
                try output.emit(report) { report in
                    (["\(report.checked) charges checked, \(report.differences.count) differences"]
                        + report.differences.map { d in
                            "  order \(d.orderID.map { "\($0)" } ?? "-")  \(d.charge)  \(d.field): Rescind \(d.rescind ?? "nothing"), processor \(d.processor ?? "nothing")"
                        }).joined(separator: "\n")
                }
            }
            if differences > 0 { throw ExitCode(1) }
        }

        /// `2026-12-01T00:00:00Z`, or an age back from now: `90s`, `30m`, `24h`, `7d`.
        static func time(_ text: String) throws -> Date {
            if let date = ISO8601DateFormatter().date(from: text) { return date }
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
            guard let unit = text.last.flatMap({ units[$0] }), let count = Double(text.dropLast()), count >= 0 else {
                throw ValidationError("--since is an ISO 8601 time or an age such as 24h, 7d, 30m")
            }
            return Date().addingTimeInterval(-count * unit)
        }
    }

    struct Credit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a customer's store credit and its ledger.")
        @Argument var customer: String
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let credit = try await target.with { c in
                    try await c.payments.call(PaymentsMethods.storeCredit, StoreCreditRequest(customer: customer))
                }
                try output.emit(credit) { credit in
                    (["store credit of \(credit.customer): \(credit.balanceMinor) (minor units)"]
                        + credit.entries.map {
                            "  \(Render.time($0.at))  \(Render.pad($0.kind, 8)) \($0.amountMinor > 0 ? "+" : "")\($0.amountMinor)  order \($0.orderID)"
                        }).joined(separator: "\n")
                }
            }
        }
    }
}

struct SagasCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sagas", abstract: "Placement, cancellation and fulfilment sagas: find, read, retry, settle.",
        subcommands: [List.self, Show.self, Retry.self, Settle.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sagas, newest first.")
        @Option var order: UUID?
        @Option var state: Saga.State?
        @Flag(help: "Only sagas that need attention: failed, or running longer than the daemon's threshold.")
        var stuck = false
        @Option var limit = 50
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let list = try await target.with { c in
                    try await c.orders.call(
                        OrdersMethods.listSagas,
                        ListSagasRequest(orderID: order, state: state, limit: limit, stuck: stuck ? true : nil))
                }
                try output.emit(list) { list in
                    list.sagas.isEmpty
                        ? "no sagas"
                        : list.sagas.map {
                            "\($0.id)  \(Render.pad($0.kind.rawValue, 13)) \(Render.pad($0.state.rawValue, 12)) order \($0.orderID)  \($0.steps.count) steps"
                        }.joined(separator: "\n")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a saga's step log as a timeline.")
        @Argument var id: UUID
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let saga = try await target.with { c in
                    try await c.orders.call(OrdersMethods.getSaga, SagaRequest(sagaID: id))
                }
                try output.emit(saga, text: Render.saga)
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resume a failed saga where it stopped: fresh attempts, the same idempotency keys.")
        @Argument var id: UUID
        @Flag(help: "Wait until the saga ends and show its timeline.")
        var wait = false
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                try await target.with { c in
                    let resumed = try await c.orders.call(OrdersMethods.retrySaga, SagaRequest(sagaID: id))
                    let saga = wait ? try await waitForSaga(id, connection: c, output: output) : resumed
                    try output.emit(saga, text: Render.saga)
                }
            }
        }
    }

    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a failed saga by hand: say what the order is now and why; its lock is released.",
            discussion: """
                Put things right first (at the processor, on the shelf), then record it here. The saga ends \
                settled, with your certificate identity, the time and the note; the order becomes what --as says.
                """
        )
        @Argument var id: UUID
        @Option(name: .customLong("as"), help: "What the order is now.")
        var outcome: SettleOutcome
        @Option(help: "Why, and what was done by hand (required, at most 255 characters).")
        var note: String
        @OptionGroup var target: TargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors(output) {
                let saga = try await target.with { c in
                    try await c.orders.call(
                        OrdersMethods.settleSaga, SettleSagaRequest(sagaID: id, outcome: outcome, note: note))
                }
                try output.emit(saga, text: Render.saga)
            }
        }
    }
}

extension UUID: @retroactive ExpressibleByArgument {
    public init?(argument: String) { self.init(uuidString: argument) }
}
