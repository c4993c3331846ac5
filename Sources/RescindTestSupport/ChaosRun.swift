import Foundation
import RescindAPI
import RescindSuite
import RescindTransport
import RescindWire
import Synchronization

/// A chaos run: a suite under concurrent placements, cancellations (with and without refund and restock,
/// declined refunds, a deactivated location, of some lines), fulfilments (of some lines too), edits, reorders,
/// later refunds and double cancellations, while daemons are
/// killed, paused, stopped and restarted, links are cut and the processor misbehaves. Then the faults stop,
/// the run waits for every saga to end, and the invariant checker reads the databases.
///
/// The choices (which operation, which fault, how long) come from a generator seeded with `seed`; timing
/// on a shared machine still varies from run to run.
public struct ChaosRun: Sendable {
    public struct Configuration: Sendable {
        public var directory: URL
        public var duration: Duration
        public var seed: UInt64
        /// Clients placing and cancelling at once.
        public var workers = 8
        /// Pause between two faults, at random in this range.
        public var faultGap: ClosedRange<Double> = 1.5...4.0
        /// How long a fault lasts, at random in this range: below the sagas' give-up horizon, so that every
        /// saga can still finish once it heals.
        public var faultLength: ClosedRange<Double> = 0.3...3.0
        /// How long to wait for every saga to end once the faults stop.
        public var quietTimeout: Duration = .seconds(180)
        /// A Stripe-compatible server (localstripe) for Payments instead of the simulator: the processor's faults
        /// are then the fault proxy's on Payments' HTTP link to it, and the check reads its PaymentIntents.
        public var stripeAPIBase: String?
        /// Where the daemons keep their data: with `.postgres`, a PostgreSQL server the run starts, crashed and
        /// restarted once half-way.
        public var backend: RescindHarness.Backend = .sqlite
        /// Replicas of each daemon (`.postgres` only): a fault strikes one replica, a cut link one replica's.
        public var replicas = 1

        public init(directory: URL, duration: Duration, seed: UInt64) {
            self.directory = directory
            self.duration = duration
            self.seed = seed
        }
    }

    /// What the run did and found. Its JSON (`rescindctl chaos --json`) carries the totals and the verdict too.
    public struct Summary: Encodable, Sendable {
        public var seed: UInt64
        public var seconds: Double
        public var operations: [String: Int]
        /// Errors the operations met while faults were on (expected; counted by code).
        public var operationErrors: [String: Int]
        public var faults: [String: Int]
        public var sagas: [String: Int]
        public var sagasLeftOpen: Int
        public var violations: [InvariantChecker.Violation]

        public var faultCount: Int { faults.values.reduce(0, +) }
        public var cancellations: Int { sagas.filter { $0.key.hasPrefix("cancel_order ") }.values.reduce(0, +) }
        public var passed: Bool { violations.isEmpty && sagasLeftOpen == 0 }

        enum CodingKeys: String, CodingKey {
            case seed, seconds, operations, operationErrors, faults, sagas, sagasLeftOpen, violations
            case faultCount, cancellations, passed
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(seed, forKey: .seed)
            try c.encode(seconds, forKey: .seconds)
            try c.encode(operations, forKey: .operations)
            try c.encode(operationErrors, forKey: .operationErrors)
            try c.encode(faults, forKey: .faults)
            try c.encode(sagas, forKey: .sagas)
            try c.encode(sagasLeftOpen, forKey: .sagasLeftOpen)
            try c.encode(violations, forKey: .violations)
            try c.encode(faultCount, forKey: .faultCount)
            try c.encode(cancellations, forKey: .cancellations)
            try c.encode(passed, forKey: .passed)
        }
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// Runs it; `progress` gets a line every two seconds.
    /// - Throws: if the suite cannot start or its databases cannot be read.
    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> Summary {
        var options = RescindHarness.Options()
        options.logLevel = "info"
        // Patient enough to outlast any single fault (about 25 s of retrying a step), quick to notice a heal.
        options.sagas = [
            "max_attempts": 30, "initial_retry_delay_seconds": 0.05, "max_retry_delay_seconds": 1,
            "call_timeout_seconds": 2, "poll_interval_seconds": 0.1, "place_timeout_seconds": 5,
            "lease_seconds": 2,
        ]
        options.replicas = configuration.replicas
        if configuration.backend == .postgres { options.postgres = try await PostgresServer.shared() }
        // The store captures when a short cancellation window closes: cancellations before it are voids, later
        // ones refunds, fulfilments capture first, and orders left open are captured by the clock, all under the
        // same faults.
        options.capture = "when_window_closes"
        options.storeSeconds = ["cancellation_window_seconds": 0.3]
        options.stripeAPIBase = configuration.stripeAPIBase
        // Shorter than a fault lasts at most, so that a call into a black hole is given up and looked up.
        options.stripeTimeoutSeconds = 4
        let h = try await RescindHarness.start(directory: configuration.directory, options: options)
        let cards = configuration.stripeAPIBase == nil ? Self.cards : Self.stripeCards
        let tally = Tally()
        let started = ContinuousClock.now
        let end = started + configuration.duration
        do {
            for sku in Self.skus {
                for location in Self.locations { try await h.setStock(sku, at: location, onHand: 400) }
            }
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<configuration.workers {
                    group.addTask {
                        var random = SplitMix64(seed: configuration.seed &+ UInt64(worker) &* 0x9E37_79B9)
                        await Self.work(h, until: end, cards: cards, random: &random, tally: tally)
                    }
                }
                group.addTask {
                    var random = SplitMix64(seed: configuration.seed ^ 0xFA17)
                    await Self.injectFaults(h, until: end, configuration: configuration, random: &random, tally: tally)
                }
                group.addTask { await Self.replenish(h, until: end, tally: tally) }
                group.addTask {
                    while ContinuousClock.now < end {
                        try? await Task.sleep(for: .seconds(2))
                        progress(tally.line(elapsed: ContinuousClock.now - started, of: configuration.duration))
                    }
                }
            }
            progress("faults stopped; healing and waiting for every saga to end")
            try await Self.healEverything(h)
            var left = 0
            do {
                try await Self.waitUntilSettled(h, timeout: configuration.quietTimeout)
            } catch {
                left = try await Self.openSagas(h)
            }
            let report = try await h.checkWithProcessor()
            // Payments' own reconciliation must find what the checker found.
            let reconciled = try await h.payments.call(
                PaymentsMethods.reconcile, ReconcileRequest(), idempotencyKey: nil, timeout: .seconds(120))
            let differences = reconciled.differences.map { d in
                InvariantChecker.Violation(
                    rule: "reconcile_difference",
                    message: "payments.reconcile: charge \(d.charge) \(d.field): Rescind \(d.rescind ?? "nothing"), "
                        + "processor \(d.processor ?? "nothing")", rows: [])
            }
            let summary = Summary(
                seed: configuration.seed, seconds: (ContinuousClock.now - started).seconds,
                operations: tally.snapshot.operations, operationErrors: tally.snapshot.errors,
                faults: tally.snapshot.faults, sagas: report.sagas, sagasLeftOpen: left,
                violations: report.violations + differences)
            await h.stop(removeFiles: false)
            return summary
        } catch {
            await h.stop(removeFiles: false)
            throw error
        }
    }

    /// Every saga ended, and every open order's capture timer has fired: a timer that fires after the sagas went
    /// quiet (the window is 0.3 s) starts a capture saga the check would find running. Waits until a second past
    /// the last timer still to come (the scheduler polls every 0.1 s), then for the sagas it started.
    static func waitUntilSettled(_ h: RescindHarness, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        try await h.waitUntilQuiet(timeout: timeout)
        let open = try await h.orders.call(OrdersMethods.list, ListOrdersRequest(status: .open, limit: 1_000))
        guard let last = open.orders.compactMap(\.captureDueAt).max(), last.timeIntervalSinceNow > -1 else { return }
        try await Task.sleep(for: .seconds(last.timeIntervalSinceNow + 1))
        try await h.waitUntilQuiet(timeout: max(deadline - ContinuousClock.now, .seconds(1)))
    }

    static let skus = ["MUG", "TEE", "POSTER", "CAP"]
    static let locations = ["east", "west"]
    static let cards = [
        "pm_card_visa", "pm_card_visa", "pm_card_visa", "pm_card_visa",
        // Declines refunds: its cancellations are compensated.
        "pm_card_refundFail",
        // Declined: the placement is rejected and its stock released.
        "pm_card_visa_chargeDeclined",
    ]
    /// localstripe's: it declines a card when it is charged only for this one, and declines no refund.
    static let stripeCards = [
        "pm_card_visa", "pm_card_visa", "pm_card_visa", "pm_card_visa", "pm_card_chargeCustomerFail",
    ]

    /// One client: place, then cancel, double-cancel, fulfil or leave the order, until the end.
    private static func work(
        _ h: RescindHarness, until end: ContinuousClock.Instant, cards: [String], random: inout SplitMix64,
        tally: Tally
    ) async {
        while ContinuousClock.now < end {
            let lines = (0..<Int(random.next(upTo: 3) + 1)).map { _ in
                (
                    sku: skus[Int(random.next(upTo: UInt64(skus.count)))], quantity: Int64(random.next(upTo: 3) + 1),
                    unitPrice: Int64(random.next(upTo: 5_000) + 100)
                )
            }
            let card = cards[Int(random.next(upTo: UInt64(cards.count)))]
            let order: Order
            do {
                // A quarter spend the (shared) customer's store credit first, which later refunds give back.
                let credit: Bool? = random.next(upTo: 4) == 0 ? true : nil
                order = try await h.place(lines, paymentMethod: card, useStoreCredit: credit, timeout: .seconds(10))
                tally.count("place")
            } catch {
                tally.failed("place", error)
                // A daemon is down or a link cut: back off a little, as a real client would.
                try? await Task.sleep(for: .milliseconds(Int64(random.next(upTo: 200) + 50)))
                continue
            }
            guard order.status == .open else { continue }
            // Some act inside the cancellation window (a void), some after the capture (a refund).
            try? await Task.sleep(for: .milliseconds(Int64(random.next(upTo: 600))))
            let roll = random.next(upTo: 100)
            let refund = random.next(upTo: 10) >= 2
            let restock = random.next(upTo: 10) >= 2
            do {
                let first = order.lines[0].sku
                let units = order.lines.reduce(Int64(0)) { $0 + $1.quantity }
                let openOfFirst = order.lines.filter { $0.sku == first }.reduce(Int64(0)) { $0 + $1.quantity }
                switch roll {
                case 0..<40:
                    _ = try await h.cancel(order.id, refund: refund, restock: restock)
                    tally.count("cancel")
                case 40..<47 where units > 1:
                    // One unit cancelled (its share refunded or voided), then, for half, the rest.
                    let accepted = try await h.orders.call(
                        OrdersMethods.cancel,
                        CancelOrderRequest(
                            orderID: order.id, reason: .customer, refund: refund, restock: restock,
                            lines: [LineQuantity(sku: first, quantity: 1)]))
                    tally.count("cancel_lines")
                    if roll % 2 == 0 {
                        _ = try await h.waitForSaga(accepted.sagaID, timeout: .seconds(60))
                        _ = try await h.cancel(order.id, refund: refund, restock: restock)
                        tally.count("cancel")
                    }
                case 47..<51 where units > 1:
                    // One unit ships; the rest is cancelled (only its share refunded).
                    _ = try await h.orders.call(
                        OrdersMethods.fulfill,
                        FulfilOrderRequest(orderID: order.id, lines: [LineQuantity(sku: first, quantity: 1)]),
                        timeout: .seconds(10))
                    tally.count("fulfil_lines")
                    _ = try await h.cancel(order.id, refund: refund, restock: restock)
                    tally.count("cancel")
                case 51..<55:
                    // One more (or one fewer) of the first SKU, and for half a new line: charged, voided or
                    // refunded to match.
                    var changes = [
                        LineChange(
                            sku: first, quantity: roll % 3 == 0 && openOfFirst > 1 ? openOfFirst - 1 : openOfFirst + 1)
                    ]
                    if roll % 2 == 0, let added = skus.first(where: { sku in !order.lines.contains { $0.sku == sku } })
                    {
                        changes.append(LineChange(sku: added, quantity: 1, unitPriceMinor: 700))
                    }
                    _ = try await h.orders.call(
                        OrdersMethods.edit, EditOrderRequest(orderID: order.id, changes: changes),
                        idempotencyKey: "chaos-edit-\(order.id)", timeout: .seconds(10))
                    tally.count("edit")
                case 40..<51:
                    _ = try await h.cancel(order.id, refund: refund, restock: restock)
                    tally.count("cancel")
                case 55..<62:
                    // Cancelled by mistake, then placed again with the saved card.
                    _ = try await h.waitForSaga(
                        try await h.cancel(order.id, refund: refund, restock: restock).sagaID, timeout: .seconds(60))
                    _ = try await h.orders.call(
                        OrdersMethods.reorder, ReorderRequest(orderID: order.id),
                        idempotencyKey: "chaos-reorder-\(order.id)", timeout: .seconds(10))
                    tally.count("reorder")
                case 62..<66:
                    // Fulfilment begins: a cancellation is refused until the mark is cleared.
                    _ = try await h.orders.call(
                        OrdersMethods.mark, MarkOrderRequest(orderID: order.id, inProgress: .picking))
                    do {
                        _ = try await h.cancel(order.id, refund: refund, restock: restock)
                        tally.count("cancel_while_picking_accepted")
                    } catch let error as RescindError where error.reason == "fulfilment_in_progress" {
                        tally.count("cancel_while_picking_refused")
                    }
                    _ = try await h.orders.call(
                        OrdersMethods.mark, MarkOrderRequest(orderID: order.id, inProgress: nil))
                    _ = try await h.cancel(order.id, refund: refund, restock: restock)
                    tally.count("cancel")
                case 66..<75:
                    async let first = h.cancel(order.id, refund: refund, restock: restock)
                    async let second = h.cancel(order.id, refund: refund, restock: restock)
                    let (a, b) = try await (first, second)
                    tally.count(a.sagaID == b.sagaID ? "double_cancel" : "double_cancel_two_sagas")
                case 75..<86:
                    _ = try await h.orders.call(
                        OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id), timeout: .seconds(10))
                    tally.count("fulfil")
                case 86..<92:
                    // A goodwill refund of part of the order, asked twice with one key: refunded once.
                    let part = max(order.totalMinor / 3, 1)
                    // Half of them to the customer's store credit instead of the card.
                    let request = RefundOrderRequest(
                        orderID: order.id, amountMinor: part, reason: "goodwill",
                        refundTo: roll % 2 == 0 ? .storeCredit : nil)
                    let key = "chaos-refund-\(order.id)"
                    _ = try await h.orders.call(
                        OrdersMethods.refund, request, idempotencyKey: key, timeout: .seconds(10))
                    _ = try await h.orders.call(
                        OrdersMethods.refund, request, idempotencyKey: key, timeout: .seconds(10))
                    tally.count("refund_later")
                default:
                    tally.count("left_open")
                }
            } catch {
                tally.failed("act", error)
            }
        }
    }

    /// Keeps stock on the shelves, as a store receiving deliveries does: every second, any SKU and location
    /// with fewer than 100 units available gets 400 more on hand (an `adjust` ledger row).
    private static func replenish(_ h: RescindHarness, until end: ContinuousClock.Instant, tally: Tally) async {
        while ContinuousClock.now < end {
            try? await Task.sleep(for: .seconds(1))
            do {
                let report = try await h.inventory.call(InventoryMethods.listStock, ListStockRequest())
                for level in report.levels where level.available < 100 {
                    try await h.setStock(level.sku, at: level.location, onHand: level.onHand + 400)
                    tally.count("delivery")
                }
            } catch {
                tally.failed("delivery", error)
            }
        }
    }

    /// One fault at a time, each healed before the next.
    private static func injectFaults(
        _ h: RescindHarness, until end: ContinuousClock.Instant, configuration: Configuration,
        random: inout SplitMix64, tally: Tally
    ) async {
        var deactivated = false
        var restartedDatabase = false
        let halfway = end - configuration.duration / 2
        while ContinuousClock.now + .seconds(configuration.faultGap.upperBound) < end {
            try? await Task.sleep(for: .seconds(random.next(in: configuration.faultGap)))
            let length = Duration.seconds(random.next(in: configuration.faultLength))
            // One process: a daemon, or one of its replicas; one link: to a participant's replica.
            let daemons = [Identity.orders, .payments, .inventory].flatMap(h.suite.processes)
            let daemon = daemons[Int(random.next(upTo: UInt64(daemons.count)))]
            let peers = [Identity.payments, .inventory].flatMap(h.suite.processes)
            let peer = peers[Int(random.next(upTo: UInt64(peers.count)))]
            let kind = random.next(upTo: 100)
            do {
                if let server = h.postgresServer, !restartedDatabase, ContinuousClock.now > halfway {
                    // Once: PostgreSQL itself dies (SIGKILL) and starts again, recovering from its log.
                    restartedDatabase = true
                    tally.fault("kill -9 postgresql")
                    server.crash()
                    try await Task.sleep(for: length)
                    try await server.restart()
                    continue
                }
                switch kind {
                case 0..<22:
                    tally.fault("kill -9 \(daemon)")
                    await h.crash(daemon)
                    try await Task.sleep(for: length)
                    try await h.restart()
                case 22..<32:
                    tally.fault("sigstop \(daemon)")
                    h.pause(daemon)
                    try await Task.sleep(for: length)
                    h.resume(daemon)
                case 32..<40:
                    tally.fault("sigterm \(daemon)")
                    await h.terminate(daemon)
                    try await h.restart()
                case 40..<75:
                    let modes: [FaultProxy.Mode] = [
                        .drop, .blackhole, .reset, .loseAnswers, .delay(.milliseconds(Int64(random.next(upTo: 300)))),
                    ]
                    let mode = modes[Int(random.next(upTo: UInt64(modes.count)))]
                    tally.fault("link to \(peer): \(mode.name)")
                    let proxy = try h.proxy(peer)
                    proxy.set(mode)
                    try await Task.sleep(for: length)
                    proxy.set(.pass)
                case 75..<95 where h.processorProxy != nil:
                    // The processor's HTTP link: slow, cut, reset, or answers lost after the processor acted.
                    guard let proxy = h.processorProxy else { continue }
                    let modes: [FaultProxy.Mode] = [
                        .drop, .blackhole, .reset, .loseAnswers, .delay(.milliseconds(Int64(random.next(upTo: 800)))),
                    ]
                    let mode = modes[Int(random.next(upTo: UInt64(modes.count)))]
                    tally.fault("link to the processor: \(mode.name)")
                    proxy.set(mode)
                    try await Task.sleep(for: length)
                    proxy.set(.pass)
                case 75..<95:
                    let modes: [ProcessorFaults] = [
                        .init(mode: .slow, delayMillis: Int64(random.next(upTo: 800))), .init(mode: .unavailable),
                        .init(mode: .refundAnswerLost),
                    ]
                    let faults = modes[Int(random.next(upTo: UInt64(modes.count)))]
                    tally.fault("processor: \(faults.mode)")
                    try await h.setProcessorFaults(faults)
                    try await Task.sleep(for: length)
                    try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
                default:
                    // Once: a location goes away; restocks to it fail and those cancellations are undone.
                    guard !deactivated else { continue }
                    deactivated = true
                    tally.fault("deactivate location west")
                    _ = try await h.inventory.call(
                        InventoryMethods.deactivateLocation, LocationRequest(location: "west"))
                }
            } catch {
                tally.failed("fault", error)
                try? await healEverything(h)
            }
        }
    }

    /// Every link passes, nothing is paused, every daemon runs, the processor behaves.
    /// - Throws: if a daemon does not come back or Payments does not answer.
    private static func healEverything(_ h: RescindHarness) async throws {
        for proxy in h.proxies.values { proxy.set(.pass) }
        h.processorProxy?.set(.pass)
        for daemon in [Identity.orders, .payments, .inventory].flatMap(h.suite.processes) { h.resume(daemon) }
        try await h.restart()
        if h.stripeAPIBase == nil { try await h.setProcessorFaults(ProcessorFaults(mode: .normal)) }
    }

    private static func openSagas(_ h: RescindHarness) async throws -> Int {
        let running = try await h.orders.call(OrdersMethods.listSagas, ListSagasRequest(state: .running))
        let compensating = try await h.orders.call(OrdersMethods.listSagas, ListSagasRequest(state: .compensating))
        return running.sagas.count + compensating.sagas.count
    }
}

/// Counts shared by the run's tasks.
private final class Tally: Sendable {
    struct Counts: Sendable {
        var operations: [String: Int] = [:]
        var errors: [String: Int] = [:]
        var faults: [String: Int] = [:]
    }

    private let counts = Mutex(Counts())

    var snapshot: Counts { counts.withLock { $0 } }

    func count(_ operation: String) { counts.withLock { $0.operations[operation, default: 0] += 1 } }

    func failed(_ operation: String, _ error: any Error) {
        let code = (error as? RescindError).map { "\($0.code)\($0.reason.map { "/\($0)" } ?? "")" } ?? "other"
        counts.withLock { $0.errors["\(operation): \(code)", default: 0] += 1 }
    }

    func fault(_ kind: String) { counts.withLock { $0.faults[kind, default: 0] += 1 } }

    func line(elapsed: Duration, of total: Duration) -> String {
        let counts = snapshot
        let faults = counts.faults.values.reduce(0, +)
        let errors = counts.errors.values.reduce(0, +)
        let operations = counts.operations.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        return "chaos \(Int(elapsed.seconds))s/\(Int(total.seconds))s  \(operations.joined(separator: ", "))  "
            + "faults \(faults)  errors \(errors)"
    }
}

/// A small, fast, seedable generator (SplitMix64): the same seed makes the same choices.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 0..<bound.
    mutating func next(upTo bound: UInt64) -> UInt64 { next() % max(bound, 1) }

    mutating func next(in range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * Double(next() >> 11) / Double(1 << 53)
    }
}

extension FaultProxy.Mode {
    /// The mode's name without its parameter.
    var name: String {
        switch self {
        case .delay: "delay"
        default: description
        }
    }
}
