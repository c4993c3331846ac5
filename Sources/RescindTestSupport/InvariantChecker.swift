import Foundation
import GRDB
import Logging
import RescindAPI
import RescindPayments
import RescindStorage
import RescindSuite
import RescindTransport

/// Reads the three databases of a suite (read-only) and reports every way they disagree with what Rescind
/// promises: money refunded at most once and never above what was captured, every order's status agreeing
/// with its payment and its stock, stock conserved by the ledger, nothing negative, and, once faults stop,
/// every saga finished; and Payments' records against the processor's own (the simulator's database): every
/// charge the same amount for amount, and no charge at the processor that Payments does not know.
///
/// It reads the files directly, not through the daemons, so it also sees what no method shows.
public struct InvariantChecker: Sendable {
    /// One broken promise, with the rows that show it.
    public struct Violation: Codable, Sendable, Hashable, CustomStringConvertible {
        /// A stable name of the rule, e.g. `refund_above_capture`.
        public var rule: String
        public var message: String
        /// The rows involved, as `table(key): column=value, ...`.
        public var rows: [String]

        public var description: String { "\(rule): \(message)\n    " + rows.joined(separator: "\n    ") }
    }

    /// What the checker looked at and what it found.
    public struct Report: Codable, Sendable, Hashable {
        public var orders = 0
        public var payments = 0
        public var stockRows = 0
        /// Sagas by kind and state, e.g. `cancel_order completed`.
        public var sagas: [String: Int] = [:]
        public var violations: [Violation] = []

        public var isClean: Bool { violations.isEmpty }
    }

    /// What the checker demands of sagas.
    public struct Expectations: Sendable {
        /// No saga still `running` or `compensating` (faults have stopped and the suite is quiet).
        public var quiet = true
        /// No saga `failed`.
        public var noneFailed = true

        public init(quiet: Bool = true, noneFailed: Bool = true) {
            self.quiet = quiet
            self.noneFailed = noneFailed
        }
    }

    public let orders: URL
    public let payments: URL
    public let inventory: URL
    /// The simulated processor's database, when Payments uses the simulator.
    public let processor: URL?

    public init(orders: URL, payments: URL, inventory: URL, processor: URL? = nil) {
        self.orders = orders
        self.payments = payments
        self.inventory = inventory
        self.processor = processor
    }

    /// The checker of a suite's databases, the simulated processor's included when it has one.
    public init(layout: SuiteLayout) {
        let processor = URL(
            fileURLWithPath: SimulatedProcessor.databasePath(besidePayments: layout.database(.payments).path))
        self.init(
            orders: layout.database(.orders), payments: layout.database(.payments),
            inventory: layout.database(.inventory),
            processor: FileManager.default.fileExists(atPath: processor.path) ? processor : nil)
    }

    /// A charge as the processor holds it, read by the checker itself (not through Payments' code).
    public struct ProcessorCharge: Sendable, CustomStringConvertible {
        public var id: String
        /// Stripe's PaymentIntent status: `requires_capture`, `succeeded`, `canceled`.
        public var status: String
        public var amount: Int64
        public var captured: Int64
        public var refunded: Int64
        /// The fee, where the processor says one.
        public var fee: Int64?
        /// Whether its refund objects agree with it: none made twice, and adding up to `refunded`.
        public var refundsConsistent: Bool

        public var description: String {
            "\(id) \(status) amount \(amount) captured \(captured) refunded \(refunded) fee \(fee.map(String.init) ?? "-")"
                + (refundsConsistent ? "" : " (its refunds disagree)")
        }

        /// The simulator's charges, from its database.
        public static func simulated(_ charge: SimulatedProcessor.Charge) -> ProcessorCharge {
            ProcessorCharge(
                id: charge.id, status: charge.status, amount: charge.amount, captured: charge.amountCaptured,
                refunded: charge.amountRefunded, fee: charge.fee,
                refundsConsistent: charge.amountRefunded == charge.refundTotal)
        }

        /// A Stripe-compatible server's PaymentIntents, as `LocalstripeServer` reads them.
        public static func stripe(_ intent: LocalstripeServer.Intent) -> ProcessorCharge {
            ProcessorCharge(
                id: intent.id, status: intent.status, amount: intent.amount, captured: intent.captured,
                refunded: intent.refunded, fee: nil,
                refundsConsistent: Set(intent.refundKeys).count == intent.refundKeys.count)
        }
    }

    /// Checks every invariant, against a Stripe-compatible server's objects (read at `stripeAPIBase`), else the
    /// simulator's database when the suite has one.
    /// - Throws: if a database or the server cannot be read.
    public func check(_ expectations: Expectations = .init(), stripeAPIBase: String?) async throws -> Report {
        guard let stripeAPIBase else { return try check(expectations) }
        let intents = try await LocalstripeServer.intents(at: stripeAPIBase)
        return try check(expectations, processorCharges: intents.map(ProcessorCharge.stripe))
    }

    /// Checks every invariant, reading the SQLite files.
    /// - Parameter processorCharges: what the processor holds (default: the simulator's database, when the
    ///   suite has one).
    /// - Throws: if a database cannot be opened or read.
    public func check(_ expectations: Expectations = .init(), processorCharges: [ProcessorCharge]? = nil) throws
        -> Report
    {
        var read: [Which: [String: [Row]]] = [:]
        for (which, url) in [(Which.orders, orders), (.payments, payments), (.inventory, inventory)] {
            // One read per database: each is looked at as one consistent snapshot.
            read[which] = try self.read(url) { db in
                try Dictionary(
                    uniqueKeysWithValues: Queries.all[which, default: []].map { ($0, try Row.fetchAll(db, sql: $0)) })
            }
        }
        let charges =
            try processorCharges
            ?? processor.map { url in
                try self.read(url) { db in try SimulatedProcessor.charges(SQLiteTransaction(db)) }.map(
                    ProcessorCharge.simulated)
            }
        return try Self.analyze(expectations, processorCharges: charges) { which, sql in read[which]?[sql] ?? [] }
    }

    /// Checks every invariant of a suite whose daemons keep their data in PostgreSQL: the three databases (and the
    /// simulator's, `PAYMENTS_processor`), each read in one transaction.
    /// - Parameter stripeAPIBase: a Stripe-compatible server whose objects are the processor's, instead of the
    ///   simulator's database.
    /// - Throws: if a database or the server cannot be read.
    public static func check(
        postgres: [Identity: PostgresDatabase.Location], expectations: Expectations = .init(),
        stripeAPIBase: String? = nil
    ) async throws -> Report {
        let quiet = Logger(label: "rescind.check", factory: { _ in SwiftLogNoOpLogHandler() })
        var read: [Which: [String: [Row]]] = [:]
        for (which, daemon) in [(Which.orders, Identity.orders), (.payments, .payments), (.inventory, .inventory)] {
            guard let location = postgres[daemon] else { throw SuiteError("no PostgreSQL database for \(daemon)") }
            let database = PostgresDatabase(location, connections: 1, logger: quiet)
            defer { Task { await database.close() } }
            let rows = try await database.read { tx in
                try Dictionary(
                    uniqueKeysWithValues: Queries.all[which, default: []].map { sql in (sql, try tx.query(sql)) })
            }
            read[which] = rows.mapValues { $0.map(Row.init(sqlRow:)) }
        }
        let charges: [ProcessorCharge]
        if let stripeAPIBase {
            charges = try await LocalstripeServer.intents(at: stripeAPIBase).map(ProcessorCharge.stripe)
        } else if let payments = postgres[.payments] {
            let database = PostgresDatabase(
                payments.database(payments.database + "_processor"), connections: 1, logger: quiet)
            defer { Task { await database.close() } }
            charges = try await database.read { tx in try SimulatedProcessor.charges(tx) }.map(
                ProcessorCharge.simulated)
        } else {
            charges = []
        }
        return try analyze(expectations, processorCharges: charges) { which, sql in read[which]?[sql] ?? [] }
    }

    /// The databases the checker reads.
    enum Which: Hashable {
        case orders, payments, inventory
    }

    /// Every query the checker runs, by database: the same SQL on SQLite and PostgreSQL.
    enum Queries {
        static let orders = "SELECT * FROM orders"
        static let sagas = "SELECT id, kind, order_id, state, error_message, created_at FROM saga"
        static let cancellations = "SELECT * FROM cancellation"
        // Refunds recorded apart from the whole order's cancellation: orders.refund's, those of cancellations of
        // some lines, and those of edits.
        static let laterRefunds = """
            SELECT order_id, CAST(SUM(amount) AS BIGINT) AS total FROM order_refund GROUP BY order_id
            UNION ALL
            SELECT order_id, CAST(SUM(refunded) AS BIGINT) FROM line_cancellation GROUP BY order_id
            UNION ALL
            SELECT order_id, CAST(SUM(refunded) AS BIGINT) FROM order_edit GROUP BY order_id
            """
        static let lineUnits = """
            SELECT order_id, CAST(SUM(quantity - cancelled - fulfilled) AS BIGINT) AS open,
                CAST(SUM(cancelled) AS BIGINT) AS cancelled, CAST(SUM(fulfilled) AS BIGINT) AS fulfilled
            FROM order_line GROUP BY order_id
            """
        static let payments = "SELECT * FROM payment"
        static let refundEvents = "SELECT * FROM payment_event WHERE kind = 'refund' ORDER BY id"
        static let credits = """
            SELECT c.customer, c.balance, CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) AS total, COUNT(e.id) AS n
            FROM store_credit c LEFT JOIN store_credit_entry e ON e.customer = c.customer
            GROUP BY c.customer, c.balance
            """
        static let charges = "SELECT * FROM processor_charge"
        static let stock = "SELECT * FROM stock"
        static let ledger = """
            SELECT sku, location, CAST(SUM(on_hand_delta) AS BIGINT) AS on_hand,
                CAST(SUM(reserved_delta) AS BIGINT) AS reserved, COUNT(*) AS n
            FROM ledger GROUP BY sku, location
            """
        static let held = """
            SELECT allocation.sku, allocation.location, CAST(SUM(allocation.quantity) AS BIGINT) AS quantity
            FROM allocation JOIN reservation ON reservation.order_id = allocation.order_id
            WHERE reservation.status IN ('reserved', 'restocking')
            GROUP BY allocation.sku, allocation.location
            """
        static let reservations = "SELECT * FROM reservation WHERE part_of IS NULL"
        // Units per order (its parts counted with it) and what happened to them.
        static let unitsByOrder = """
            SELECT COALESCE(reservation.part_of, reservation.order_id) AS owner, reservation.status,
                CAST(SUM(allocation.quantity) AS BIGINT) AS units
            FROM reservation JOIN allocation ON allocation.order_id = reservation.order_id
            GROUP BY COALESCE(reservation.part_of, reservation.order_id), reservation.status
            """

        static let all: [Which: [String]] = [
            .orders: [orders, sagas, cancellations, laterRefunds, lineUnits],
            .payments: [payments, refundEvents, credits, charges],
            .inventory: [stock, ledger, held, reservations, unitsByOrder],
        ]
    }

    /// Checks every invariant over what `rows` read from each database.
    static func analyze(
        _ expectations: Expectations, processorCharges: [ProcessorCharge]?, rows: (Which, String) -> [Row]
    ) throws -> Report {
        let orderRows = rows(.orders, Queries.orders)
        let sagaRows = rows(.orders, Queries.sagas)
        let cancellations = rows(.orders, Queries.cancellations)
        let laterRefunds = Dictionary(
            rows(.orders, Queries.laterRefunds).map { ($0["order_id"] as String, $0["total"] as Int64) },
            uniquingKeysWith: +)
        let lineUnits = Dictionary(
            uniqueKeysWithValues: rows(.orders, Queries.lineUnits).map { ($0["order_id"] as String, $0) })
        let paymentRows = rows(.payments, Queries.payments)
        let refundEvents = rows(.payments, Queries.refundEvents)
        let creditRows = rows(.payments, Queries.credits)
        let chargeRows = rows(.payments, Queries.charges)
        let stock = rows(.inventory, Queries.stock)
        let ledger = rows(.inventory, Queries.ledger)
        let held = rows(.inventory, Queries.held)
        let reservations = rows(.inventory, Queries.reservations)
        let unitsByOrder = Dictionary(grouping: rows(.inventory, Queries.unitsByOrder), by: { $0["owner"] as String })

        var report = Report()
        report.orders = orderRows.count
        report.payments = paymentRows.count
        report.stockRows = stock.count
        for saga in sagaRows { report.sagas["\(saga["kind"] as String) \(saga["state"] as String)", default: 0] += 1 }
        var violations: [Violation] = []
        func violation(_ rule: String, _ message: String, _ rows: [String]) {
            violations.append(Violation(rule: rule, message: message, rows: rows))
        }

        // Money.
        let refundsByOrder = Dictionary(grouping: refundEvents) { $0["order_id"] as String }
        for payment in paymentRows {
            let id: String = payment["order_id"]
            // What was paid: captured on the card, and what store credit paid.
            let captured: Int64 = (payment["amount_captured"] as Int64) + (payment["credit_applied"] as Int64)
            let refunded: Int64 = payment["amount_refunded"]
            if refunded > captured || refunded < 0 {
                violation(
                    "refund_above_capture", "order \(id) refunded \(refunded) of \(captured) captured",
                    [describe("payment", payment)])
            }
            let events = refundsByOrder[id] ?? []
            let total = events.reduce(Int64(0)) { $0 + ($1["amount"] as Int64) }
            if total != refunded {
                violation(
                    "refund_events_disagree",
                    "order \(id): refund events add up to \(total), the payment says \(refunded)",
                    [describe("payment", payment)] + events.map { describe("payment_event", $0) })
            }
        }
        // Store credit: each balance is what its ledger adds up to, and what went to credit was refunded.
        for credit in creditRows where (credit["balance"] as Int64) != (credit["total"] as Int64) {
            violation(
                "store_credit_disagrees",
                "customer \(credit["customer"] as String) has a balance of \(credit["balance"] as Int64), "
                    + "the ledger adds up to \(credit["total"] as Int64)",
                [describe("store_credit", credit)])
        }
        for payment in paymentRows
        where (payment["refunded_to_credit"] as Int64) > (payment["amount_refunded"] as Int64) {
            violation(
                "refund_above_capture",
                "order \(payment["order_id"] as String) refunded more to store credit than it refunded",
                [describe("payment", payment)])
        }
        for (key, events) in Dictionary(
            grouping: refundEvents.filter { $0["idempotency_key"] != nil }, by: { $0["idempotency_key"] as String })
        where events.count > 1 {
            violation(
                "refund_twice", "idempotency key \(key) refunded \(events.count) times",
                events.map { describe("payment_event", $0) })
        }

        // Payments' charges against the processor's, amount for amount.
        if let processorCharges {
            let atProcessor = Dictionary(uniqueKeysWithValues: processorCharges.map { ($0.id, $0) })
            let status = ["authorized": "requires_capture", "captured": "succeeded", "voided": "canceled"]
            for charge in chargeRows {
                let id: String = charge["id"]
                guard let theirs = atProcessor[id] else {
                    violation(
                        "processor_charge_missing",
                        "charge \(id) of order \(charge["order_id"] as String) is not at the processor",
                        [describe("processor_charge", charge)])
                    continue
                }
                let agrees =
                    (charge["amount"] as Int64) == theirs.amount
                    && (charge["amount_captured"] as Int64) == theirs.captured
                    && (charge["amount_refunded"] as Int64) == theirs.refunded
                    && theirs.refundsConsistent
                    && (theirs.fee == nil || (charge["fee"] as Int64) == theirs.fee)
                    && status[charge["status"] as String] == theirs.status
                if !agrees {
                    violation(
                        "processor_disagrees", "charge \(id): Payments and the processor disagree",
                        [describe("processor_charge", charge), "at the processor: \(theirs)"])
                }
            }
            let known = Set(chargeRows.map { $0["id"] as String })
            for theirs in processorCharges where !known.contains(theirs.id) {
                // An authorization Payments never recorded holds the customer's money (or took it).
                if theirs.status == "requires_capture" || theirs.status == "succeeded" {
                    violation(
                        "processor_charge_unrecorded",
                        "the processor holds charge \(theirs.id) that Payments has no record of",
                        ["at the processor: \(theirs)"])
                }
            }
            let chargesByOrder = Dictionary(grouping: chargeRows) { $0["order_id"] as String }
            for payment in paymentRows {
                let charges = chargesByOrder[payment["order_id"] as String] ?? []
                let captured = charges.reduce(Int64(0)) { $0 + ($1["amount_captured"] as Int64) }
                let fee = charges.reduce(Int64(0)) { $0 + ($1["fee"] as Int64) }
                if captured != (payment["amount_captured"] as Int64) || fee != (payment["fee"] as Int64) {
                    violation(
                        "payment_disagrees_with_charges",
                        "order \(payment["order_id"] as String): its charges captured \(captured) with fee \(fee)",
                        [describe("payment", payment)] + charges.map { describe("processor_charge", $0) })
                }
            }
        }

        // Each order against its payment, its stock and its sagas.
        let paymentsByOrder = Dictionary(uniqueKeysWithValues: paymentRows.map { ($0["order_id"] as String, $0) })
        let reservationsByOrder = Dictionary(uniqueKeysWithValues: reservations.map { ($0["order_id"] as String, $0) })
        let sagasByOrder = Dictionary(grouping: sagaRows) { $0["order_id"] as String }
        let cancellationsByOrder = Dictionary(
            uniqueKeysWithValues: cancellations.map { ($0["order_id"] as String, $0) })
        for order in orderRows {
            let id: String = order["id"]
            let status: String = order["status"]
            let payment = paymentsByOrder[id]
            let paymentStatus: String? = payment?["status"]
            let reservation = reservationsByOrder[id]
            let reservationStatus: String? = reservation?["status"]
            let sagas = (sagasByOrder[id] ?? []).sorted { ($0["created_at"] as Date) < ($1["created_at"] as Date) }
            let unfinished = sagas.filter { ["running", "compensating", "failed"].contains($0["state"] as String) }
            // A person settled the last saga by hand: what they did outside Rescind is theirs to answer for.
            if let last = sagas.last, (last["state"] as String) == "settled" { continue }
            var rows = [describe("orders", order)]
            if let payment { rows.append(describe("payment", payment)) }
            if let reservation { rows.append(describe("reservation", reservation)) }
            rows += sagas.map { describe("saga", $0) }
            func expect(_ holds: Bool, _ rule: String, _ message: String) {
                if !holds { violation(rule, "order \(id) is \(status): \(message)", rows) }
            }
            // What the order says it refunded is what Payments refunded, and what its refunds add up to (those
            // of orders.refund and its cancellation's).
            let orderRefunded: Int64 = order["amount_refunded"]
            // Orders records a refund in the saga's last step, after Payments made it: only a settled order (no
            // unfinished saga) must agree.
            if status != "pending", unfinished.isEmpty {
                let paymentRefunded: Int64 = payment?["amount_refunded"] ?? 0
                expect(
                    paymentRefunded == orderRefunded, "payment_disagrees",
                    "the order says \(orderRefunded) refunded, the payment \(paymentRefunded)")
                let recorded = (laterRefunds[id] ?? 0) + ((cancellationsByOrder[id]?["refunded"] as Int64?) ?? 0)
                expect(
                    recorded == orderRefunded, "refunds_disagree",
                    "the order says \(orderRefunded) refunded, its refund records \(recorded)")
                // What the order charges is what Payments holds for it: the card's authorization (less what voids
                // of some lines took off) and the store credit spent.
                if let payment {
                    let held = (payment["amount_authorized"] as Int64) + (payment["credit_applied"] as Int64)
                    let total: Int64 = order["total"]
                    expect(
                        held == total, "payment_disagrees",
                        "the order's total is \(total), its payment holds \(held) (card and store credit)")
                }
                // Each unit of its lines is where the lines say: open units reserved, fulfilled ones committed,
                // cancelled ones restocked or written off.
                if status != "rejected", let line = lineUnits[id] {
                    var units: [String: Int64] = [:]
                    for row in unitsByOrder[id] ?? [] { units[row["status"] as String, default: 0] += row["units"] }
                    let reserved = (units["reserved"] ?? 0) + (units["restocking"] ?? 0)
                    let gone = (units["restocked"] ?? 0) + (units["written_off"] ?? 0)
                    expect(
                        reserved == line["open"] && (units["committed"] ?? 0) == line["fulfilled"]
                            && gone == line["cancelled"], "stock_disagrees",
                        "its lines have \(line["open"] as Int64) units open, \(line["fulfilled"] as Int64) fulfilled and "
                            + "\(line["cancelled"] as Int64) cancelled; Inventory holds \(reserved) reserved, "
                            + "\(units["committed"] ?? 0) committed and \(gone) restocked or written off")
                }
            }
            let paid = ["captured", "partially_refunded", "refunded"]
            if status != "cancelled", cancellationsByOrder[id] != nil {
                expect(false, "order_unexplained", "it has a cancellation record")
            }
            switch status {
            case "pending":
                expect(
                    unfinished.contains { ($0["kind"] as String) == "place_order" }, "order_unexplained",
                    "no placement saga is unfinished")
            case "cancelling":
                expect(
                    unfinished.contains { ($0["kind"] as String) == "cancel_order" }, "order_unexplained",
                    "no cancellation saga holds it")
            case "fulfilling":
                expect(
                    unfinished.contains { ($0["kind"] as String) == "fulfil_order" }, "order_unexplained",
                    "no fulfilment saga holds it")
            case "open":
                // Captured (and perhaps refunded in part by orders.refund), or authorized until the store's
                // capture time, the fulfilment or a void.
                expect(
                    paid.contains(paymentStatus ?? "") || paymentStatus == "authorized", "payment_disagrees",
                    "its payment is \(paymentStatus ?? "missing"), neither captured nor authorized")
                expect(
                    reservationStatus == "reserved", "stock_disagrees",
                    "its units are \(reservationStatus ?? "missing"), not reserved")
            case "fulfilled":
                // Its units are checked line by line above: some may have been cancelled before the rest shipped.
                expect(
                    paid.contains(paymentStatus ?? ""), "payment_disagrees",
                    "its payment is \(paymentStatus ?? "missing"), not captured")
            case "rejected":
                expect(
                    paymentStatus == nil || paymentStatus == "voided", "payment_disagrees",
                    "a rejected order's payment is \(paymentStatus ?? "")")
                expect(
                    reservationStatus == nil || reservationStatus == "released", "stock_disagrees",
                    "a rejected order's units are \(reservationStatus ?? "")")
            case "cancelled":
                guard let cancellation = cancellationsByOrder[id] else {
                    expect(false, "order_unexplained", "no cancellation record")
                    break
                }
                rows.append(describe("cancellation", cancellation))
                let refunded: Int64 = cancellation["refunded"]
                let voided: Bool = cancellation["voided"]
                if voided {
                    expect(
                        paymentStatus == "voided", "payment_disagrees",
                        "voided, but the payment is \(paymentStatus ?? "missing")")
                } else if refunded > 0 {
                    expect(
                        paymentStatus == "refunded" || paymentStatus == "partially_refunded", "payment_disagrees",
                        "refunded, but the payment is \(paymentStatus ?? "missing")")
                } else {
                    expect(
                        paid.contains(paymentStatus ?? ""), "payment_disagrees",
                        "kept the money, but the payment is \(paymentStatus ?? "missing")")
                }
                expect(
                    reservationStatus == "restocked" || reservationStatus == "written_off", "stock_disagrees",
                    "its units are \(reservationStatus ?? "missing"), neither restocked nor written off")
            default:
                expect(false, "order_unexplained", "a status this checker does not know")
            }
        }

        // Stock: conserved by the ledger, never negative, reserved exactly what reservations hold.
        let ledgerByKey = Dictionary(
            uniqueKeysWithValues: ledger.map { ("\($0["sku"] as String)@\($0["location"] as String)", $0) })
        let heldByKey = Dictionary(
            uniqueKeysWithValues: held.map {
                ("\($0["sku"] as String)@\($0["location"] as String)", $0["quantity"] as Int64)
            })
        for row in stock {
            let key = "\(row["sku"] as String)@\(row["location"] as String)"
            let onHand: Int64 = row["on_hand"]
            let reserved: Int64 = row["reserved"]
            let rows = [describe("stock", row)] + (ledgerByKey[key].map { [describe("ledger_sum", $0)] } ?? [])
            if onHand < 0 || reserved < 0 || reserved > onHand {
                violation("negative_stock", "\(key): \(onHand) on hand, \(reserved) reserved", rows)
            }
            let ledgerOnHand: Int64 = ledgerByKey[key]?["on_hand"] ?? 0
            let ledgerReserved: Int64 = ledgerByKey[key]?["reserved"] ?? 0
            if ledgerOnHand != onHand || ledgerReserved != reserved {
                violation(
                    "stock_not_conserved",
                    "\(key): the ledger adds up to \(ledgerOnHand) on hand and \(ledgerReserved) reserved, the stock row says \(onHand) and \(reserved)",
                    rows)
            }
            let holding = heldByKey[key] ?? 0
            if holding != reserved {
                violation(
                    "reserved_disagrees",
                    "\(key): reservations hold \(holding) units, the stock row reserves \(reserved)", rows)
            }
        }

        // Sagas.
        for saga in sagaRows {
            let state: String = saga["state"]
            if expectations.quiet, state == "running" || state == "compensating" {
                violation("saga_unfinished", "saga \(saga["id"] as String) is still \(state)", [describe("saga", saga)])
            }
            if expectations.noneFailed, state == "failed" {
                violation(
                    "saga_failed", "saga \(saga["id"] as String) failed and needs a person", [describe("saga", saga)])
            }
        }
        report.violations = violations
        return report
    }

    private func read<T>(_ url: URL, _ body: (Database) throws -> T) throws -> T {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: url.path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read(body)
    }

    private static func describe(_ table: String, _ row: Row) -> String {
        let columns = row.columnNames.map { name in "\(name)=\(row[name].map { "\($0)" } ?? "NULL")" }
        return "\(table): " + columns.joined(separator: ", ")
    }
}

extension Row {
    /// A row read from PostgreSQL, as GRDB's: the checker's rules read both alike (times as GRDB keeps them).
    convenience init(sqlRow: SQLRow) {
        var values: [String: (any DatabaseValueConvertible)?] = [:]
        for (name, value) in zip(sqlRow.columns.names, sqlRow.values) {
            switch value {
            case .null: values[name] = .some(nil)
            case .integer(let integer): values[name] = integer
            case .real(let real): values[name] = real
            case .text(let text): values[name] = text
            case .blob(let data): values[name] = data
            case .bool(let bool): values[name] = bool
            case .date(let date): values[name] = date
            }
        }
        self.init(values)
    }
}
