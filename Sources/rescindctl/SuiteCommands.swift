import ArgumentParser
import Foundation
import Logging
import RescindAPI
import RescindPKI
import RescindStorage
import RescindSuite
import RescindTransport
import RescindWire

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the local suite (creating it on first run) and wait until all three daemons are serving."
    )

    @Option(help: "The suite's directory (default: $RESCIND_DIR).")
    var dir: String?
    @Option(help: "Log level of new daemon configurations.")
    var logLevel = "info"
    @Option(
        help:
            "Set the store's capture timing in Orders' configuration: at_placement, at_fulfilment, when_window_closes.")
    var capture: String?
    @Option(help: "With --capture: the store's cancellation window in seconds.")
    var cancellationWindowSeconds: Double?
    @Option(
        name: .customLong("store"),
        help: ArgumentHelp(
            "Set a store setting in Orders' configuration (deploy/README.md), e.g. customer_cancel_approval=always; "
                + "the value is read as JSON when it is (numbers, true, [\"A\"]), as text otherwise. Repeatable.",
            valueName: "key=value"))
    var storeSettings: [String] = []
    @Option(help: "The processor Payments uses: simulator (the default) or stripe.")
    var processor: String?
    @Option(help: "With --processor stripe: Stripe's API (https://api.stripe.com) or a localstripe server's address.")
    var stripeApiBase = "https://api.stripe.com"
    @Option(
        help:
            "With --processor stripe: a file holding the secret key (sk_test_...); without it, Payments reads RESCIND_STRIPE_SECRET_KEY."
    )
    var stripeSecretKeyFile: String?
    @Option(
        help:
            "With --processor stripe: a file holding the webhook endpoint's signing secret (whsec_...); without it, the suite makes one."
    )
    var stripeWebhookSecretFile: String?
    @Option(
        help: """
            Keep the daemons' data in PostgreSQL: postgres://USER[:PASSWORD]@HOST[:PORT]/BASE. BASE_orders, \
            BASE_payments, BASE_inventory and BASE_payments_processor are made where missing.
            """)
    var postgres: String?
    @Option(
        help: """
            Run this many replicas of each daemon (NAME, NAME-2, ...), sharing its database: with --postgres (or a \
            suite already in PostgreSQL). Orders' peers and the storefront list every replica.
            """)
    var replicas = 1
    @OptionGroup var output: OutputOptions

    /// `--store` settings as the store section's keys and values.
    func storePatch() throws -> [String: Any] {
        var patch: [String: Any] = [:]
        for setting in storeSettings {
            guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                throw ValidationError("--store takes key=value, not \(setting)")
            }
            let value = String(setting[setting.index(after: equals)...])
            patch[String(setting[..<equals])] =
                (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])) ?? value
        }
        return patch
    }

    func validate() throws {
        _ = try storePatch()
        if let capture, !["at_placement", "at_fulfilment", "when_window_closes"].contains(capture) {
            throw ValidationError("--capture is at_placement, at_fulfilment or when_window_closes")
        }
        if cancellationWindowSeconds != nil, capture == nil {
            throw ValidationError("--cancellation-window-seconds goes with --capture")
        }
        if let processor, !["simulator", "stripe"].contains(processor) {
            throw ValidationError("--processor is simulator or stripe")
        }
        guard (1...9).contains(replicas) else { throw ValidationError("--replicas is 1 to 9") }
    }

    func run() async throws {
        guard let dir = dir ?? ProcessInfo.processInfo.environment["RESCIND_DIR"] else {
            throw ValidationError("say where the suite lives: --dir DIR or RESCIND_DIR")
        }
        var suite = LocalSuite(layout: SuiteLayout(path: dir))
        suite.logLevel = logLevel
        var store = try storePatch()
        if let capture {
            store["capture"] = capture
            store["cancellation_window_seconds"] = cancellationWindowSeconds
        }
        if !store.isEmpty {
            // Read when Orders next starts: a running Orders keeps its settings until `down` and `up`.
            try suite.prepare(progress: output.progress)
            try suite.patchStore(store)
        }
        if let postgres {
            // Read when each daemon next starts: a running one keeps its database until `down` and `up`.
            try suite.prepare(progress: output.progress)
            for (daemon, location) in try await Self.postgresDatabases(postgres, progress: output.progress) {
                try suite.patchConfiguration(daemon, ["database": location.url])
            }
        }
        if replicas > 1 {
            try suite.prepare(progress: output.progress)
            try suite.replicate(replicas)
        }
        if processor == "stripe" {
            // Read when Payments next starts, as the store settings are.
            try suite.prepare(progress: output.progress)
            let webhook = try suite.useStripe(
                apiBase: stripeApiBase,
                secretKeyFile: stripeSecretKeyFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
                webhookSecretFile: stripeWebhookSecretFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
            output.progress(
                "Payments takes Stripe's events at \(webhook.url) (signing secret in \(webhook.secretFile); "
                    + "with Stripe's CLI: stripe listen --forward-to \(webhook.url) --skip-verify)")
        }
        let (manifest, statuses) = try await suite.up(progress: output.progress)
        struct Result: Encodable {
            var manifest: String
            var daemons: [LocalSuite.DaemonStatus]
        }
        try output.emit(Result(manifest: SuiteLayout(path: dir).manifest.path, daemons: statuses)) { result in
            (result.daemons.map {
                "\(Render.pad($0.name, 10)) \(Render.pad($0.action, 16)) \($0.endpoint)  pid \($0.pid.map(String.init) ?? "-")"
            }
                + ["suite: \(result.manifest)", "next: rescindctl health --dir \(manifest.directory)"])
                .joined(separator: "\n")
        }
    }
}

extension Up {
    /// Each daemon's database on the PostgreSQL server `url` names (BASE_orders, BASE_payments, BASE_inventory),
    /// made where missing with the simulator's BASE_payments_processor.
    /// - Throws: `SQLError` if the server cannot be reached or a database cannot be made.
    static func postgresDatabases(_ url: String, progress: (String) -> Void) async throws
        -> [(Identity, PostgresDatabase.Location)]
    {
        let base = try PostgresDatabase.Location(url: url)
        let server = PostgresDatabase(
            base.database("postgres"), connections: 1,
            logger: Logger(label: "rescindctl", factory: { _ in SwiftLogNoOpLogHandler() }))
        defer { Task { await server.close() } }
        let daemons: [(Identity, String)] = [
            (.orders, base.database + "_orders"), (.payments, base.database + "_payments"),
            (.inventory, base.database + "_inventory"),
        ]
        for name in daemons.map(\.1) + [base.database + "_payments_processor"] {
            let exists = try await server.read { tx in
                try tx.scalar(Int64.self, "SELECT COUNT(*) FROM pg_database WHERE datname = ?", [name]) ?? 0
            }
            if exists == 0 {
                try await server.runAlone("CREATE DATABASE \"\(name)\"")
                progress("made database \(name) on \(base.host):\(base.port)")
            }
        }
        return daemons.map { ($0.0, base.database($0.1)) }
    }
}

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the local suite's daemons gracefully.")

    @Option(help: "The suite's directory (default: $RESCIND_DIR).")
    var dir: String?
    @Option(help: "Seconds to wait for a graceful exit before SIGKILL.")
    var timeout = 10
    @OptionGroup var output: OutputOptions

    func run() async throws {
        guard let dir = dir ?? ProcessInfo.processInfo.environment["RESCIND_DIR"] else {
            throw ValidationError("say where the suite lives: --dir DIR or RESCIND_DIR")
        }
        let statuses = await LocalSuite(layout: SuiteLayout(path: dir)).down(
            timeout: .seconds(timeout), progress: output.progress
        )
        try output.emit(statuses) { statuses in
            statuses.map { "\(Render.pad($0.name, 10)) \($0.action)" }.joined(separator: "\n")
        }
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask each daemon whether it is serving.")

    @OptionGroup var target: TargetOptions
    @OptionGroup var output: OutputOptions

    /// One replica of a daemon (every replica answers for itself).
    struct Row: Encodable {
        var daemon: String
        var endpoint: String
        var health: HealthStatus?
        var error: RescindError?
    }

    func run() async throws {
        let rows: [Row] = try await target.with { connection in
            var rows: [Row] = []
            for daemon in [Identity.orders, .payments, .inventory] {
                for (endpoint, result) in await connection.client(daemon).callEvery(
                    CommonMethods.health, Empty(), timeout: .seconds(5))
                {
                    switch result {
                    case .success(let health):
                        rows.append(Row(daemon: daemon.rawValue, endpoint: "\(endpoint)", health: health))
                    case .failure(let error):
                        rows.append(Row(daemon: daemon.rawValue, endpoint: "\(endpoint)", error: error))
                    }
                }
            }
            return rows
        }
        try output.emit(rows) { rows in
            rows.map { row in
                if let health = row.health {
                    var line =
                        "\(Render.pad(row.daemon, 10)) \(Render.pad(row.endpoint, 16)) \(health.status)  v\(health.version)  pid \(health.pid)  up \(health.uptimeSeconds)s"
                    if let sagas = health.sagas {
                        line +=
                            "  sagas: \(sagas.failed) failed, \(sagas.stuck) running over \(sagas.stuckAfterSeconds)s"
                        if sagas.failed + sagas.stuck > 0 { line += " (rescindctl sagas list --stuck)" }
                    }
                    if let events = health.processorEvents {
                        line += "  processor events: \(events.needsAttention) need a person of \(events.received)"
                        if events.needsAttention > 0 { line += " (rescindctl payments attention)" }
                    }
                    return line
                }
                return
                    "\(Render.pad(row.daemon, 10)) \(Render.pad(row.endpoint, 16)) DOWN  \(row.error.map { "\($0)" } ?? "")"
            }.joined(separator: "\n")
        }
        if rows.contains(where: { $0.health == nil }) { throw ExitCode(1) }
    }
}

struct Certs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A PKI for real hosts: a CA, then one certificate per daemon and operator.",
        subcommands: [Init.self, Issue.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a CA in DIR (kept if it exists).")

        @Option(help: "Directory for ca.pem and ca-key.pem.")
        var dir: String
        @Option(help: "The CA's common name.")
        var commonName = "Rescind CA"
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let pki = PKIDirectory(url: URL(fileURLWithPath: dir))
            _ = try pki.initialize(commonName: commonName)
            struct Result: Encodable { var caCertificate: String }
            try output.emit(Result(caCertificate: pki.caCertificatePath)) { "CA certificate: \($0.caCertificate)" }
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a certificate for an identity (orders, payments, inventory, operator)."
        )

        @Option(help: "Directory of the CA (from certs init).")
        var dir: String
        @Option(help: "The identity: its certificate's common name.")
        var name: String
        @Option(help: "A DNS name or IP address the daemon is reached at (repeatable).")
        var host: [String] = []
        @Flag(help: "Replace an existing certificate of that name.")
        var overwrite = false
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let pki = PKIDirectory(url: URL(fileURLWithPath: dir))
            _ = try pki.issue(name: name, hosts: host, overwrite: overwrite)
            struct Result: Encodable { var certificate: String; var privateKey: String }
            try output.emit(
                Result(certificate: pki.certificatePath(for: name), privateKey: pki.privateKeyPath(for: name))
            ) { "certificate: \($0.certificate)\nprivate key: \($0.privateKey)" }
        }
    }
}
