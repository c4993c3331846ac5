import ArgumentParser
import Foundation
import RescindAPI
import RescindStorage
import RescindSuite
import RescindTestSupport

struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a suite under load while killing, pausing and cutting it; then check every invariant.",
        discussion: """
            Starts a fresh suite in --dir (with a fault proxy on each of Orders' links and the processor's fault \
            modes on), places, cancels (with and without refund and restock, declined refunds, a deactivated \
            location), fulfils and double-cancels from several clients while killing, pausing and restarting \
            daemons, cutting links and making the processor fail. Then it heals everything, waits for every saga \
            to end, reads the three databases and the processor's records (the simulator's, or with \
            --stripe-api-base a localstripe's PaymentIntents), and asks Payments to reconcile with the processor. \
            Exits 1 on any violation, difference or saga left open.
            """
    )

    @Option(help: "A new directory for the suite; kept afterwards, with its logs and databases.")
    var dir: String
    @Option(help: "How long to inject faults: 90s, 10m, 1h.")
    var duration: String = "60s"
    @Option(help: "Seeds the choice of operations and faults.")
    var seed: UInt64 = 1
    @Option(help: "Clients placing and cancelling at once.")
    var workers = 8
    @Option(
        help:
            "A Stripe-compatible server (a localstripe's address, started for this run: every intent on it is counted) for Payments instead of the simulator: the processor's faults are then cuts of Payments' HTTP link to it, and the check reads its objects."
    )
    var stripeApiBase: String?
    @Option(
        help: """
            Where the daemons keep their data: sqlite (a file each) or postgres (a PostgreSQL server the run starts \
            from Debian's binaries, killed and restarted once half-way).
            """)
    var backend = "sqlite"
    @Option(help: "Replicas of each daemon, sharing its database (postgres only); faults strike one replica at a time.")
    var replicas = 1
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard let backend = RescindHarness.Backend(rawValue: backend) else {
            throw ValidationError("--backend is sqlite or postgres")
        }
        guard (1...9).contains(replicas) else { throw ValidationError("--replicas is 1 to 9") }
        if replicas > 1, backend != .postgres {
            throw ValidationError("replicas share one database: --replicas needs --backend postgres")
        }
    }

    func run() async throws {
        guard let length = Self.parse(duration) else {
            throw ValidationError("--duration is a number followed by s, m or h, e.g. 90s or 10m")
        }
        let directory = URL(fileURLWithPath: dir)
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("suite.json").path) {
            throw ValidationError("\(dir) already holds a suite; chaos starts from a new directory")
        }
        var configuration = ChaosRun.Configuration(directory: directory, duration: length, seed: seed)
        configuration.workers = workers
        configuration.stripeAPIBase = stripeApiBase
        configuration.backend = RescindHarness.Backend(rawValue: backend) ?? .sqlite
        configuration.replicas = replicas
        output.progress(
            "chaos: seed \(seed), \(duration) of faults, \(workers) clients, \(backend), \(replicas) replica(s) each, "
                + "suite in \(dir)")
        let summary = try await ChaosRun(configuration).run(progress: output.progress)
        try output.emit(summary, text: Self.render)
        if !summary.passed { throw ExitCode(1) }
    }

    static func parse(_ text: String) -> Duration? {
        guard let unit = text.last, let value = Double(text.dropLast()), value > 0 else { return nil }
        switch unit {
        case "s": return .seconds(value)
        case "m": return .seconds(value * 60)
        case "h": return .seconds(value * 3600)
        default: return nil
        }
    }

    static func render(_ summary: ChaosRun.Summary) -> String {
        func rows(_ counts: [String: Int]) -> [String] {
            counts.sorted { $0.key < $1.key }.map { "  \(Render.pad(String($0.value), 7)) \($0.key)" }
        }
        var lines = ["chaos run, seed \(summary.seed), \(Int(summary.seconds)) s"]
        lines += ["operations:"] + rows(summary.operations)
        lines += ["sagas by outcome (\(summary.cancellations) cancellations):"] + rows(summary.sagas)
        lines += ["faults injected (\(summary.faultCount)):"] + rows(summary.faults)
        if !summary.operationErrors.isEmpty {
            lines += ["errors operations met during faults (expected):"] + rows(summary.operationErrors)
        }
        lines.append("sagas left open: \(summary.sagasLeftOpen)")
        if summary.violations.isEmpty {
            lines.append("violations: none")
        } else {
            lines.append("violations (\(summary.violations.count)):")
            lines += summary.violations.map { "  \($0)" }
        }
        lines.append(summary.passed ? "PASSED" : "FAILED")
        return lines.joined(separator: "\n")
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read a suite's three databases and report every broken invariant, with its rows.",
        discussion: """
            Money refunded at most once and never above what was captured; every order's status agreeing with \
            its payment and its stock; stock conserved by the ledger; nothing negative; and, unless \
            --allow-running, no saga still running or failed. Read-only: safe while the daemons run. Exits 1 \
            on any violation. The databases are the suite's SQLite files, or the PostgreSQL databases its \
            configurations name, or, with --postgres postgres://USER@HOST:PORT/BASE, BASE_orders, \
            BASE_payments and BASE_inventory on that server (and the simulator's BASE_payments_processor).
            """
    )

    @Option(help: "The suite's directory (default: $RESCIND_DIR).")
    var dir: String?
    @Flag(help: "Do not count sagas still running or compensating, nor failed ones, as violations.")
    var allowRunning = false
    @Option(help: "A PostgreSQL server and base name: check BASE_orders, BASE_payments and BASE_inventory there.")
    var postgres: String?
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let expectations = InvariantChecker.Expectations(quiet: !allowRunning, noneFailed: !allowRunning)
        let report: InvariantChecker.Report
        if let postgres {
            let base = try PostgresDatabase.Location(url: postgres)
            report = try await InvariantChecker.check(
                postgres: [
                    .orders: base.database(base.database + "_orders"),
                    .payments: base.database(base.database + "_payments"),
                    .inventory: base.database(base.database + "_inventory"),
                ], expectations: expectations)
        } else {
            guard let dir = dir ?? ProcessInfo.processInfo.environment["RESCIND_DIR"] else {
                throw ValidationError("say where the suite lives: --dir DIR or RESCIND_DIR, or --postgres URL")
            }
            let layout = SuiteLayout(path: dir)
            if let databases = try Self.postgresDatabases(layout) {
                report = try await InvariantChecker.check(postgres: databases, expectations: expectations)
            } else {
                report = try InvariantChecker(layout: layout).check(expectations)
            }
        }
        try output.emit(report) { report in
            var lines = [
                "checked \(report.orders) orders, \(report.payments) payments, \(report.stockRows) stock rows, "
                    + "\(report.sagas.values.reduce(0, +)) sagas"
            ]
            lines += report.violations.isEmpty ? ["violations: none"] : report.violations.map { "\($0)" }
            return lines.joined(separator: "\n")
        }
        if !report.isClean { throw ExitCode(1) }
    }

    /// The PostgreSQL databases a suite's configurations name (each daemon's `database`), if they name them.
    static func postgresDatabases(_ layout: SuiteLayout) throws -> [Identity: PostgresDatabase.Location]? {
        var databases: [Identity: PostgresDatabase.Location] = [:]
        for daemon in [Identity.orders, .payments, .inventory] {
            guard let data = try? Data(contentsOf: layout.config(daemon)),
                let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let database = object["database"] as? String,
                database.hasPrefix("postgres://") || database.hasPrefix("postgresql://")
            else { continue }
            databases[daemon] = try PostgresDatabase.Location(url: database)
        }
        return databases.isEmpty ? nil : databases
    }
}
