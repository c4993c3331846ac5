import Crypto
import Foundation
import GRDB
import Logging
import RescindAPI
import RescindCBOR
import RescindStorage
import RescindWire
import Synchronization

/// The embedded processor: a processor of its own, with its own database, that behaves like Stripe's test mode.
///
/// It knows the test payment methods by the names Stripe's test mode and localstripe give them, and one name for
/// each other behaviour a test needs. A payment method stands for a test card the processor keeps; the card's
/// number never leaves it (Rescind sees the last four digits and a fingerprint, as from a real processor).
///
/// | payment method | card | behaviour |
/// |---|---|---|
/// | `pm_card_visa` | 4242 | succeeds |
/// | `pm_card_mastercard` | 4444 | succeeds (another card: another fingerprint) |
/// | `pm_card_visa_chargeDeclined`, `pm_card_chargeDeclined` | 0002 | declines the authorization |
/// | `pm_card_chargeCustomerFail` | 0341 | declines the authorization (as Stripe and localstripe do) |
/// | `pm_card_refundFail` | 5126 | authorizes and captures, declines every refund |
/// | `pm_card_captureDeclined` | 0259 | authorizes; the issuer declines the capture (a lapsed authorization) |
/// | `pm_card_limitedFunds` | 9995 | declines when more than `limitedFundsLimit` in all is asked of it |
/// | `pm_card_riskLevelElevated`, `pm_card_riskLevelHighest` | 9235, 0019 | authorize; screened as risky |
/// | `pm_card_avsFail` | 0010 | authorizes; the issuer's billing address check fails |
///
/// It keeps every charge, capture and refund in its database (WAL; a process crash loses nothing it answered),
/// answers a repeated idempotency key with its first answer (unless told to ignore keys), and finds what it did
/// under a key (`lookup`), as Stripe's API lets a client do. It keeps its fee on a refund, as real processors do.
public final class SimulatedProcessor: PaymentProcessor {
    /// The fee schedule, the database and whether tests may switch fault modes.
    public struct Configuration: Codable, Sendable, Hashable {
        public var fees: FeeSchedule
        /// Whether `payments.set_processor_faults` may switch fault modes (tests and chaos runs only).
        public var faultInjection: Bool

        /// 2.9% + 30 minor units.
        public init(fees: FeeSchedule = .init(), faultInjection: Bool = false) {
            self.fees = fees
            self.faultInjection = faultInjection
        }

        /// Reads a configuration; absent fields take their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let basisPoints = try c.decodeIfPresent(Int64.self, forKey: .feeBasisPoints) ?? 290
            let fixed = try c.decodeIfPresent(Int64.self, forKey: .fixedFeeMinor) ?? 30
            fees = FeeSchedule(basisPoints: basisPoints, fixedMinor: fixed)
            faultInjection = try c.decodeIfPresent(Bool.self, forKey: .faultInjection) ?? false
            guard basisPoints >= 0, basisPoints <= 10_000, fixed >= 0 else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: c.codingPath,
                        debugDescription: "fees must be 0 to 10000 basis points and not negative")
                )
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(fees.basisPoints, forKey: .feeBasisPoints)
            try c.encode(fees.fixedMinor, forKey: .fixedFeeMinor)
            try c.encode(faultInjection, forKey: .faultInjection)
        }

        enum CodingKeys: String, CodingKey {
            case feeBasisPoints = "fee_basis_points"
            case fixedFeeMinor = "fixed_fee"
            case faultInjection = "fault_injection"
        }
    }

    /// A test payment method: the card it stands for and how that card behaves.
    public struct TestCard: Sendable, Hashable {
        public enum Behaviour: Sendable, Hashable {
            case succeeds, declines, declinesRefunds, declinesCaptures, limitedFunds
        }
        public var number: String
        public var behaviour: Behaviour
        public var riskSignal: String?
        public var addressCheck: String?

        init(_ number: String, _ behaviour: Behaviour = .succeeds, risk: String? = nil, address: String? = nil) {
            self.number = number
            self.behaviour = behaviour
            self.riskSignal = risk
            self.addressCheck = address
        }
    }

    /// Every payment method this processor knows.
    public static let testCards: [String: TestCard] = [
        "pm_card_visa": TestCard("4242424242424242"),
        "pm_card_mastercard": TestCard("5555555555554444"),
        "pm_card_visa_chargeDeclined": TestCard("4000000000000002", .declines),
        "pm_card_chargeDeclined": TestCard("4000000000000002", .declines),
        "pm_card_chargeCustomerFail": TestCard("4000000000000341", .declines),
        "pm_card_refundFail": TestCard("4000000000005126", .declinesRefunds),
        "pm_card_captureDeclined": TestCard("4000000000000259", .declinesCaptures),
        "pm_card_limitedFunds": TestCard("4000000000009995", .limitedFunds),
        "pm_card_riskLevelElevated": TestCard("4000000000009235", risk: "elevated"),
        "pm_card_riskLevelHighest": TestCard("4100000000000019", risk: "highest"),
        "pm_card_avsFail": TestCard("4000000000000010", address: "fail"),
    ]

    /// How much `pm_card_limitedFunds` allows in all.
    public static let limitedFundsLimit: Int64 = 10_000
    /// The key of card fingerprints: a real processor keeps its own; this simulated one is public.
    static let fingerprintKey = Data("rescind-simulated-processor/fingerprint".utf8)

    public let configuration: Configuration
    private let database: any SQLDatabase
    private let faults = Mutex(ProcessorFaults(mode: .normal))

    /// Opens (creating) the processor's own SQLite database at `databasePath`. A processor of its own: it survives a
    /// crash of the Payments process (WAL, synced at checkpoints).
    /// - Throws: database errors.
    public convenience init(configuration: Configuration = .init(), databasePath: String) throws {
        self.init(
            configuration: configuration,
            database: try SQLiteDatabase(path: databasePath, migrator: Self.migrator, synchronous: "NORMAL"))
    }

    /// Opens the processor's own database: beside Payments' SQLite file, or a PostgreSQL database of its own that
    /// every Payments replica shares (`DATABASE_processor` beside Payments' `DATABASE`: one processor for the store).
    /// - Throws: database errors.
    public static func open(
        configuration: Configuration = .init(), besidePayments storage: StorageLocation, logger: Logger
    )
        async throws -> SimulatedProcessor
    {
        switch storage {
        case .sqlite(let path):
            return try SimulatedProcessor(
                configuration: configuration, databasePath: databasePath(besidePayments: path))
        case .postgres(let location):
            let database = try await Schema(sqlite: migrator, postgres: postgres).open(
                .postgres(location.database(location.database + "_processor")), connections: 4, logger: logger)
            return SimulatedProcessor(configuration: configuration, database: database)
        }
    }

    init(configuration: Configuration, database: any SQLDatabase) {
        self.configuration = configuration
        self.database = database
    }

    /// The simulator's database beside Payments' own: `DIR/NAME.sqlite` → `DIR/NAME-processor.sqlite`.
    public static func databasePath(besidePayments path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let name = url.deletingPathExtension().lastPathComponent
        return url.deletingLastPathComponent().appendingPathComponent("\(name)-processor.sqlite").path
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("simulator-v1") { db in
            try db.create(table: "sim_charge") { t in
                t.primaryKey("id", .text)
                t.column("payment_method", .text).notNull()
                t.column("currency", .text).notNull()
                t.column("amount", .integer).notNull().check(sql: "amount > 0")
                t.column("amount_captured", .integer).notNull().check(sql: "amount_captured >= 0")
                t.column("amount_refunded", .integer).notNull()
                    .check(sql: "amount_refunded >= 0 AND amount_refunded <= amount_captured")
                t.column("fee", .integer).notNull().check(sql: "fee >= 0")
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('requires_capture', 'succeeded', 'canceled')")
                t.column("order_id", .text).notNull()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "sim_refund") { t in
                t.primaryKey("id", .text)
                t.column("charge_id", .text).notNull().references("sim_charge").indexed()
                t.column("amount", .integer).notNull().check(sql: "amount > 0")
                t.column("created_at", .datetime).notNull()
            }
            // Every request that changed something, by its idempotency key: how a repeat is answered, and how a
            // client finds out what was done.
            try db.create(table: "sim_request") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("key", .text).notNull().indexed()
                t.column("kind", .text).notNull()
                t.column("outcome", .blob).notNull()
                t.column("at", .datetime).notNull()
            }
        }
        return migrator
    }

    /// The same schema in PostgreSQL.
    static let postgres = [
        SQLMigration(
            "simulator-v1",
            [
                """
                CREATE TABLE sim_charge (
                    id TEXT PRIMARY KEY,
                    payment_method TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    amount BIGINT NOT NULL CHECK (amount > 0),
                    amount_captured BIGINT NOT NULL CHECK (amount_captured >= 0),
                    amount_refunded BIGINT NOT NULL CHECK (amount_refunded >= 0 AND amount_refunded <= amount_captured),
                    fee BIGINT NOT NULL CHECK (fee >= 0),
                    status TEXT NOT NULL CHECK (status IN ('requires_capture', 'succeeded', 'canceled')),
                    order_id TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL
                )
                """,
                """
                CREATE TABLE sim_refund (
                    id TEXT PRIMARY KEY,
                    charge_id TEXT NOT NULL REFERENCES sim_charge (id),
                    amount BIGINT NOT NULL CHECK (amount > 0),
                    created_at TIMESTAMPTZ NOT NULL
                )
                """,
                "CREATE INDEX sim_refund_on_charge_id ON sim_refund (charge_id)",
                """
                CREATE TABLE sim_request (
                    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                    key TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    outcome BYTEA NOT NULL,
                    at TIMESTAMPTZ NOT NULL
                )
                """,
                "CREATE INDEX sim_request_on_key ON sim_request (key)",
            ])
    ]

    // MARK: Faults

    /// Switches the fault mode.
    /// - Throws: `failed_precondition/fault_injection_disabled` unless the configuration allows it.
    public func setFaults(_ faults: ProcessorFaults) throws {
        guard configuration.faultInjection else {
            throw RescindError.failedPrecondition(
                "processor faults are off; set processor.fault_injection in the configuration (tests only)",
                reason: "fault_injection_disabled")
        }
        self.faults.withLock { $0 = faults }
    }

    /// Waits out `slow` mode, then refuses in `unavailable` mode.
    private func arrive() async throws -> ProcessorFaults {
        let faults = self.faults.withLock { $0 }
        if faults.mode == .slow, let delay = faults.delayMillis, delay > 0 {
            try? await Task.sleep(for: .milliseconds(delay))
        }
        if faults.mode == .unavailable {
            throw RescindError.unavailable("the card processor is unavailable", reason: "processor_unavailable")
        }
        return faults
    }

    /// Runs a request once per key (unless keys are ignored), recording what it did; in `answer_lost` modes the
    /// work is done and recorded but the answer never reaches the caller.
    private func request(
        _ kind: ProcessorCall.Kind, key: String,
        _ body: @escaping @Sendable (any SQLTransaction) throws -> ProcessorOutcome
    ) async throws -> ProcessorOutcome {
        let faults = try await arrive()
        let codec = WireCodec()
        let outcome = try await database.write { db -> ProcessorOutcome in
            if faults.mode != .ignoreIdempotency, let first = try Self.firstOutcome(db, key: key) { return first }
            let outcome = try body(db)
            try db.execute(
                "INSERT INTO sim_request (key, kind, outcome, at) VALUES (?, ?, ?, ?)",
                [key, kind.rawValue, Data(try codec.encoder.encode(outcome)), Date()])
            return outcome
        }
        if faults.mode == .answerLost || (faults.mode == .refundAnswerLost && kind == .refund) {
            throw RescindError.unavailable(
                "the processor acted but its answer was lost", reason: "processor_answer_lost")
        }
        return outcome
    }

    // MARK: PaymentProcessor

    public func authorize(_ request: ProcessorAuthorization, key: String) async throws -> ProcessorCharge {
        let outcome = try await self.request(.authorize, key: key) { db in
            guard let card = Self.testCards[request.paymentMethod] else {
                throw RescindError.invalidArgument(
                    "the processor has no payment method \(request.paymentMethod)", reason: "unknown_payment_method")
            }
            try Self.check(card, total: request.amountMinor)
            let charge = ProcessorCharge(
                id: "pi_sim_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(24).lowercased())",
                paymentMethod: request.paymentMethod, amountMinor: request.amountMinor,
                last4: String(card.number.suffix(4)), fingerprint: Self.fingerprint(card.number),
                riskSignal: card.riskSignal,
                addressCheck: card.addressCheck)
            try db.execute(
                """
                INSERT INTO sim_charge (id, payment_method, currency, amount, amount_captured, amount_refunded, fee,
                    status, order_id, created_at)
                VALUES (?, ?, ?, ?, 0, 0, 0, 'requires_capture', ?, ?)
                """,
                [
                    charge.id, request.paymentMethod, request.currency, request.amountMinor,
                    request.orderID.uuidString, Date(),
                ])
            return ProcessorOutcome(charge: charge)
        }
        guard let charge = outcome.charge else { throw RescindError.internalError("an authorization without charge") }
        return charge
    }

    public func capture(charge id: String, amountMinor: Int64, key: String) async throws -> Int64? {
        let fees = configuration.fees
        let outcome = try await request(.capture, key: key) { db in
            let charge = try Self.charge(db, id)
            guard charge.status == "requires_capture" else {
                throw RescindError.failedPrecondition(
                    "charge \(id) is \(charge.status), not awaiting capture", reason: "charge_\(charge.status)")
            }
            guard amountMinor > 0, amountMinor <= charge.amount else {
                throw RescindError.invalidArgument(
                    "cannot capture \(amountMinor) of \(charge.amount)", reason: "bad_amount")
            }
            if Self.testCards[charge.paymentMethod]?.behaviour == .declinesCaptures {
                throw RescindError.failedPrecondition(
                    "the issuer declined the capture: the authorization is no longer valid", reason: "capture_declined")
            }
            let fee = fees.fee(forCaptured: amountMinor)
            try db.execute(
                "UPDATE sim_charge SET status = 'succeeded', amount_captured = ?, fee = ? WHERE id = ?",
                [amountMinor, fee, id])
            return ProcessorOutcome(feeMinor: fee)
        }
        return outcome.feeMinor
    }

    public func void(charge id: String, key: String) async throws {
        _ = try await request(.void, key: key) { db in
            let charge = try Self.charge(db, id)
            guard charge.status == "requires_capture" else {
                throw RescindError.failedPrecondition(
                    "charge \(id) is \(charge.status) and cannot be cancelled", reason: "charge_\(charge.status)")
            }
            try db.execute("UPDATE sim_charge SET status = 'canceled' WHERE id = ?", [id])
            return ProcessorOutcome()
        }
    }

    public func authorizeMore(charge id: String, totalMinor: Int64, key: String) async throws {
        _ = try await request(.authorizeMore, key: key) { db in
            let charge = try Self.charge(db, id)
            guard charge.status == "requires_capture" else {
                throw RescindError.failedPrecondition(
                    "charge \(id) is \(charge.status): only an uncaptured charge can authorize more",
                    reason: "increment_unsupported")
            }
            guard totalMinor > charge.amount else {
                throw RescindError.invalidArgument("the new total must be above \(charge.amount)", reason: "bad_amount")
            }
            if let card = Self.testCards[charge.paymentMethod] { try Self.check(card, total: totalMinor) }
            try db.execute("UPDATE sim_charge SET amount = ? WHERE id = ?", [totalMinor, id])
            return ProcessorOutcome()
        }
    }

    public func refund(charge id: String, amountMinor: Int64, key: String) async throws -> String {
        let outcome = try await request(.refund, key: key) { db in
            let charge = try Self.charge(db, id)
            if Self.testCards[charge.paymentMethod]?.behaviour == .declinesRefunds {
                throw RescindError.failedPrecondition("the processor declined the refund", reason: "refund_declined")
            }
            guard charge.status == "succeeded", amountMinor > 0,
                amountMinor <= charge.amountCaptured - charge.amountRefunded
            else {
                throw RescindError.failedPrecondition(
                    "charge \(id) has \(charge.amountCaptured - charge.amountRefunded) to refund, not \(amountMinor)",
                    reason: "refund_exceeds_capture")
            }
            let refundID = "re_sim_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(24).lowercased())"
            try db.execute(
                "INSERT INTO sim_refund (id, charge_id, amount, created_at) VALUES (?, ?, ?, ?)",
                [refundID, id, amountMinor, Date()])
            try db.execute(
                "UPDATE sim_charge SET amount_refunded = amount_refunded + ? WHERE id = ?",
                [amountMinor, id])
            return ProcessorOutcome(refundID: refundID)
        }
        guard let refundID = outcome.refundID else { throw RescindError.internalError("a refund without id") }
        return refundID
    }

    public func lookup(_ call: ProcessorCall) async throws -> ProcessorOutcome? {
        _ = try await arrive()
        return try await database.read { db in try Self.firstOutcome(db, key: call.key) }
    }

    /// What the first request under a key did.
    private static func firstOutcome(_ db: any SQLTransaction, key: String) throws -> ProcessorOutcome? {
        try db.scalar(Data.self, "SELECT outcome FROM sim_request WHERE key = ? ORDER BY id LIMIT 1", [key])
            .map { try WireCodec().decoder.decode(ProcessorOutcome.self, from: $0) }
    }

    public func charges(since: Date?) async throws -> [ProcessorChargeState] {
        try await database.read { db in
            try Self.charges(db).filter { $0.createdAt >= since ?? .distantPast }.map(\.state)
        }
    }

    public func charge(_ id: String) async throws -> ProcessorChargeState? {
        try await database.read { db in try Self.chargeRows(db, id: id).first?.state }
    }

    // MARK: What the processor holds

    /// A charge as the processor keeps it.
    public struct Charge: Sendable, Hashable {
        public var id: String
        public var paymentMethod: String
        public var amount: Int64
        public var amountCaptured: Int64
        public var amountRefunded: Int64
        public var fee: Int64
        /// `requires_capture`, `succeeded` or `canceled`, as Stripe names a PaymentIntent's.
        public var status: String
        public var orderID: String
        /// How many refund objects it has, and what they add up to (`amountRefunded`, unless its records disagree).
        public var refunds: Int
        public var refundTotal: Int64
        public var createdAt: Date

        var state: ProcessorChargeState {
            ProcessorChargeState(
                id: id, orderID: UUID(uuidString: orderID), key: nil,
                status: ProcessorChargeState.status(ofIntent: status),
                amountMinor: amount, capturedMinor: amountCaptured, refundedMinor: refundTotal, createdAt: createdAt)
        }
    }

    /// Every charge the processor made, oldest first: what a reconciliation compares Payments' records with.
    /// - Throws: database errors.
    public func charges() async throws -> [Charge] {
        try await database.read(Self.charges)
    }

    /// Every charge in a simulator's database, oldest first (for a reader of the database, such as a test's).
    /// - Throws: database errors.
    public static func charges(_ db: any SQLTransaction) throws -> [Charge] {
        try chargeRows(db, id: nil)
    }

    private static func chargeRows(_ db: any SQLTransaction, id: String?) throws -> [Charge] {
        try db.query(
            """
            SELECT c.*, (SELECT COUNT(*) FROM sim_refund r WHERE r.charge_id = c.id) AS refunds,
                (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM sim_refund r WHERE r.charge_id = c.id)
                    AS refund_total
            FROM sim_charge c
            """ + (id == nil ? "" : " WHERE c.id = ?") + " ORDER BY created_at, id", id.map { [$0] } ?? []
        ).map(charge)
    }

    private static func charge(_ row: SQLRow) throws -> Charge {
        Charge(
            id: try row["id"], paymentMethod: try row["payment_method"], amount: try row["amount"],
            amountCaptured: try row["amount_captured"], amountRefunded: try row["amount_refunded"], fee: try row["fee"],
            status: try row["status"], orderID: try row["order_id"], refunds: try row["refunds"],
            refundTotal: try row["refund_total"], createdAt: try row["created_at"])
    }

    private static func charge(_ db: any SQLTransaction, _ id: String) throws -> Charge {
        guard let charge = try chargeRows(db, id: id).first else {
            throw RescindError.notFound("the processor has no charge \(id)", reason: "unknown_charge")
        }
        return charge
    }

    /// - Throws: `card_declined` for the declining card, and for the limited card above its limit.
    private static func check(_ card: TestCard, total: Int64) throws {
        switch card.behaviour {
        case .declines:
            throw RescindError.failedPrecondition("the card was declined", reason: "card_declined")
        case .limitedFunds where total > limitedFundsLimit:
            throw RescindError.failedPrecondition(
                "the card was declined: insufficient funds for \(total)", reason: "card_declined")
        default:
            return
        }
    }

    /// The processor's name for a card: an HMAC of its number (the same card, the same fingerprint).
    static func fingerprint(_ number: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data(number.utf8), using: SymmetricKey(data: fingerprintKey))
        return "fp_" + code.prefix(10).map { String(format: "%02x", $0) }.joined()
    }
}
