import Foundation
import Logging
import RescindAPI
import RescindDaemon
import RescindPKI
import RescindTransport
import RescindWire

/// A suite of the three daemons on this machine under one directory (with `replicate`, several replicas of each on
/// PostgreSQL): `rescindctl up`, `down`, and the test harness all go through it.
public struct LocalSuite: Sendable {
    /// The executables of the daemons, by identity.
    public static let executables: [Identity: String] = [
        .inventory: "rescind-inventory", .payments: "rescind-payments", .orders: "rescind-orders",
        .storefront: "rescind-storefront",
    ]
    /// Start order: Orders last, since it calls the other two.
    public static let startOrder: [Identity] = [.inventory, .payments, .orders]

    public let layout: SuiteLayout
    /// Where the daemon executables are.
    public let binDirectory: URL
    /// Log level written into new daemon configurations.
    public var logLevel = "info"

    public init(layout: SuiteLayout, binDirectory: URL? = nil) {
        self.layout = layout
        self.binDirectory =
            binDirectory
            ?? ProcessInfo.processInfo.environment["RESCIND_BIN_DIR"].map { URL(fileURLWithPath: $0) }
            ?? DaemonProcess.executableDirectory()
    }

    /// A line of progress for a person watching `up` or `down`.
    public typealias Progress = @Sendable (String) -> Void

    /// What `up` did for each daemon.
    public struct DaemonStatus: Codable, Sendable, Hashable {
        public var name: String
        public var endpoint: Endpoint
        public var pid: Int32?
        /// `started`, `already_running`, `stopped`, `not_running`.
        public var action: String
    }

    /// Creates the suite on first use (PKI, configurations), starts the daemons that are not running,
    /// waits until all three answer `health`, and writes `suite.json`.
    /// - Parameter environment: variables added to a daemon's environment when it is started now (a test's
    ///   crash point, say).
    /// - Throws: `SuiteError` naming what failed (and where its log is).
    @discardableResult
    public func up(progress: Progress = { _ in }, environment: [Identity: [String: String]] = [:]) async throws
        -> (SuiteManifest, [DaemonStatus])
    {
        try prepare(progress: progress)
        var statuses: [DaemonStatus] = []
        var entries: [String: SuiteManifest.DaemonEntry] = [:]
        for daemon in Self.startOrder.flatMap(processes) {
            let service = daemon.service
            let endpoint = try configuredEndpoint(daemon)
            var pid = runningPID(daemon)
            var action = "already_running"
            if pid == nil {
                let executable = binDirectory.appendingPathComponent(Self.executables[service] ?? "").path
                guard FileManager.default.isExecutableFile(atPath: executable) else {
                    throw SuiteError(
                        "\(executable) not found; build the suite first (`swift build`) or set RESCIND_BIN_DIR"
                    )
                }
                progress("starting \(daemon) on \(endpoint)")
                let started = try DaemonProcess.spawn(
                    executable: executable,
                    arguments: ["--config", layout.config(daemon).path],
                    logPath: layout.log(daemon).path,
                    environment: environment[daemon] ?? [:]
                )
                try "\(started)\n".write(to: layout.pidFile(daemon), atomically: true, encoding: .utf8)
                pid = started
                action = "started"
            }
            statuses.append(DaemonStatus(name: daemon.rawValue, endpoint: endpoint, pid: pid, action: action))
            entries[daemon.rawValue] = SuiteManifest.DaemonEntry(
                endpoint: endpoint, pid: pid, config: layout.config(daemon).path,
                database: databaseSetting(daemon), log: layout.log(daemon).path,
                service: service == daemon ? nil : service.rawValue
            )
        }
        // The storefront last: it calls Orders. It speaks HTTP, not the Rescind protocol.
        let storefront = try startStorefront(progress: progress, environment: environment[.storefront] ?? [:])
        statuses.append(storefront)
        let manifest = SuiteManifest(
            directory: layout.directory.path,
            caCertificate: layout.tls(for: .operator).caCertificatePath,
            operatorTLS: layout.tls(for: .operator),
            daemons: entries,
            storefrontURL: "http://\(storefront.endpoint.host):\(storefront.endpoint.port)"
        )
        try DaemonConfiguration.write(manifest, to: layout.manifest.path)
        for status in statuses where status.name != Identity.storefront.rawValue {
            let daemon = Identity(status.name)
            try await waitForHealth(daemon, endpoint: status.endpoint, pid: status.pid)
            progress("\(daemon) is serving (pid \(status.pid.map(String.init) ?? "?"))")
        }
        try await waitForListening(.storefront, storefront.endpoint, pid: storefront.pid)
        progress(
            "storefront is serving on \(manifest.storefrontURL ?? "") (pid \(storefront.pid.map(String.init) ?? "?"))"
        )
        return (manifest, statuses)
    }

    /// Starts the storefront unless it is running.
    private func startStorefront(progress: Progress, environment: [String: String]) throws -> DaemonStatus {
        let configuration = try DaemonConfiguration.load(
            StorefrontListen.self, from: layout.config(.storefront).path)
        let endpoint = Endpoint(host: configuration.listen.host, port: configuration.listen.port)
        if let pid = runningPID(.storefront) {
            return DaemonStatus(name: "storefront", endpoint: endpoint, pid: pid, action: "already_running")
        }
        let executable = binDirectory.appendingPathComponent(Self.executables[.storefront] ?? "").path
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw SuiteError("\(executable) not found; build the suite first (`swift build`) or set RESCIND_BIN_DIR")
        }
        progress("starting storefront on http://\(endpoint)")
        let pid = try DaemonProcess.spawn(
            executable: executable, arguments: ["--config", layout.config(.storefront).path],
            logPath: layout.log(.storefront).path, environment: environment)
        try "\(pid)\n".write(to: layout.pidFile(.storefront), atomically: true, encoding: .utf8)
        return DaemonStatus(name: "storefront", endpoint: endpoint, pid: pid, action: "started")
    }

    /// The part of the storefront's configuration the suite reads.
    private struct StorefrontListen: Decodable {
        struct Listen: Decodable {
            var host: String
            var port: Int
        }

        var listen: Listen
    }

    /// Stops every daemon of the suite gracefully (SIGTERM, then SIGKILL after `timeout`).
    /// - Returns: what happened to each.
    public func down(timeout: Duration = .seconds(10), progress: Progress = { _ in }) async -> [DaemonStatus] {
        var statuses: [DaemonStatus] = []
        for daemon in [Identity.storefront] + Self.startOrder.reversed().flatMap({ processes($0).reversed() }) {
            let endpoint =
                (try? DaemonConfiguration.load(StorefrontListen.self, from: layout.config(daemon).path)).map {
                    Endpoint(host: $0.listen.host, port: $0.listen.port)
                } ?? Endpoint(host: "127.0.0.1", port: 0)
            guard let pid = runningPID(daemon) else {
                statuses.append(
                    DaemonStatus(name: daemon.rawValue, endpoint: endpoint, pid: nil, action: "not_running"))
                continue
            }
            progress("stopping \(daemon) (pid \(pid))")
            let graceful = await DaemonProcess.stop(pid, timeout: timeout)
            try? FileManager.default.removeItem(at: layout.pidFile(daemon))
            statuses.append(
                DaemonStatus(
                    name: daemon.rawValue, endpoint: endpoint, pid: pid, action: graceful ? "stopped" : "killed")
            )
        }
        return statuses
    }

    /// The pid of a daemon of this suite if it is running.
    public func runningPID(_ daemon: Identity) -> Int32? {
        guard let text = try? String(contentsOf: layout.pidFile(daemon), encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            DaemonProcess.isRescindDaemon(pid)
        else { return nil }
        return pid
    }

    private func configuredEndpoint(_ daemon: Identity) throws -> Endpoint {
        let configuration = try DaemonConfiguration.load(DaemonConfiguration.self, from: layout.config(daemon).path)
        return Endpoint(host: configuration.listen.host, port: configuration.listen.port)
    }

    /// Changes top-level keys of a daemon's configuration file (a test routing Orders' peers through fault
    /// proxies, say), and of its replicas' (`NAME-N` names one replica only); the daemon reads it when it next
    /// starts.
    /// - Throws: `SuiteError` if the file cannot be read or written.
    public func patchConfiguration(_ daemon: Identity, _ patch: [String: Any]) throws {
        for process in processes(daemon) { try patchFile(process, patch) }
    }

    /// The processes of a daemon: its first replica (the daemon's own name), then `NAME-2`, ... as far as their
    /// configurations go. A replica's name is just itself.
    public func processes(_ daemon: Identity) -> [Identity] {
        var all = [daemon]
        guard Identity.replicaNumber(daemon.rawValue) == 1 else { return all }
        while FileManager.default.fileExists(atPath: layout.config(daemon.replica(all.count + 1)).path) {
            all.append(daemon.replica(all.count + 1))
        }
        return all
    }

    /// Makes each of the three daemons `count` replicas (after `prepare`): a configuration per further replica,
    /// the first's with a port of its own and its name (`replica`); Orders' `peers` and the storefront's `orders`
    /// list every replica. The replicas share each daemon's database, so it must be PostgreSQL's.
    /// - Throws: `SuiteError` for a SQLite database, or if a file cannot be read or written.
    public func replicate(_ count: Int) throws {
        guard count > 1 else { return }
        for daemon in Self.startOrder {
            guard databaseSetting(daemon).hasPrefix("postgres") else {
                throw SuiteError("replicas share one database: keep \(daemon)'s in PostgreSQL (--postgres URL)")
            }
            let base = try JSONSerialization.jsonObject(with: Data(contentsOf: layout.config(daemon)))
            for number in 2...count
            where !FileManager.default.fileExists(atPath: layout.config(daemon.replica(number)).path) {
                guard var object = base as? [String: Any] else {
                    throw SuiteError("\(daemon)'s configuration is not an object")
                }
                object["listen"] = ["host": "127.0.0.1", "port": try DaemonProcess.freePort()]
                object["replica"] = daemon.replica(number).rawValue
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                try data.write(to: layout.config(daemon.replica(number)), options: .atomic)
            }
        }
        func endpoints(_ daemon: Identity) throws -> [[String: Any]] {
            try processes(daemon).map { process in
                let endpoint = try configuredEndpoint(process)
                return ["host": endpoint.host, "port": endpoint.port]
            }
        }
        try patchConfiguration(
            .orders, ["peers": ["inventory": try endpoints(.inventory), "payments": try endpoints(.payments)]])
        try patchFile(.storefront, ["orders": try endpoints(.orders)])
    }

    /// A process's `database` setting: a SQLite path or a PostgreSQL URL.
    private func databaseSetting(_ process: Identity) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: layout.config(process))) as? [String: Any]
        return object?["database"] as? String ?? layout.database(process).path
    }

    /// Changes top-level keys of one process's configuration file.
    private func patchFile(_ process: Identity, _ patch: [String: Any]) throws {
        let url = layout.config(process)
        do {
            var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
            object.merge(patch) { _, new in new }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: url, options: .atomic)
        } catch {
            throw SuiteError("cannot change \(url.path): \(error)")
        }
    }

    /// Points Payments at a Stripe API (Stripe's, or a localstripe server's) instead of the simulator. The secret key
    /// is read by Payments from `secretKeyFile`, or from `RESCIND_STRIPE_SECRET_KEY` in its environment; it is never
    /// written to the configuration nor to `suite.json`.
    ///
    /// Payments also takes Stripe's events on an HTTPS endpoint of its own (its certificate of the suite's PKI):
    /// `webhookSecretFile` holds the endpoint's signing secret (Stripe's `whsec_...`); without one, the suite makes
    /// one (`config/stripe-webhook-secret`), for a server such as localstripe that is told the secret.
    /// - Returns: where the events go and the secret's file.
    /// - Throws: `SuiteError` if the configuration cannot be changed.
    @discardableResult
    public func useStripe(
        apiBase: String, secretKeyFile: String?, webhookSecretFile: String? = nil, timeoutSeconds: Double? = nil
    ) throws -> StripeWebhook {
        let secretFile = try webhookSecretFile ?? makeWebhookSecret()
        var first: Int?
        // Each replica takes the events on a port of its own (a proxy in front of them gives Stripe one URL).
        for process in processes(.payments) {
            let port = try DaemonProcess.freePort()
            first = first ?? port
            var processor: [String: Any] = [
                "kind": "stripe", "api_base": apiBase, "fee_basis_points": 290, "fixed_fee": 30,
                "webhooks": [
                    "listen": ["host": "127.0.0.1", "port": port], "signing_secret_file": secretFile,
                ] as [String: Any],
            ]
            processor["secret_key_file"] = secretKeyFile
            processor["timeout_seconds"] = timeoutSeconds
            try patchFile(process, ["processor": processor])
        }
        return StripeWebhook(url: "https://127.0.0.1:\(first ?? 0)/webhooks/stripe", secretFile: secretFile)
    }

    /// The suite's own webhook signing secret (`config/stripe-webhook-secret`, made once, readable by its owner).
    private func makeWebhookSecret() throws -> String {
        let file = layout.directory.appendingPathComponent("config/stripe-webhook-secret")
        guard !FileManager.default.fileExists(atPath: file.path) else { return file.path }
        do {
            var generator = SystemRandomNumberGenerator()
            let random = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }
            try Data("whsec_\(random.joined())\n".utf8).write(to: file, options: .atomic)
            chmod(file.path, 0o600)
        } catch {
            throw SuiteError("cannot write \(file.path): \(error)")
        }
        return file.path
    }

    /// Where Payments takes the processor's events.
    public struct StripeWebhook: Codable, Sendable {
        public var url: String
        public var secretFile: String

        enum CodingKeys: String, CodingKey {
            case url
            case secretFile = "secret_file"
        }
    }

    /// Changes keys of Orders' `store` section, keeping the others (the storefront's address, say).
    /// - Throws: `SuiteError` if the file cannot be read or written.
    public func patchStore(_ patch: [String: Any]) throws {
        let url = layout.config(.orders)
        let object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: url))) as? [String: Any] ?? [:]
        var store = object["store"] as? [String: Any] ?? [:]
        store.merge(patch) { _, new in new }
        try patchConfiguration(.orders, ["store": store])
    }

    /// The endpoint a daemon's configuration says it listens on.
    /// - Throws: `SuiteError` if its configuration cannot be read.
    public func endpoint(_ daemon: Identity) throws -> Endpoint {
        do {
            return try configuredEndpoint(daemon)
        } catch {
            throw SuiteError("cannot read \(layout.config(daemon).path): \(error)")
        }
    }

    /// First run: directories, a development PKI and a configuration per daemon with free ports. `up` does it
    /// too; call it first to change the configurations before anything starts.
    public func prepare(progress: Progress = { _ in }) throws {
        try layout.createDirectories()
        let pki = PKIDirectory(url: layout.pki)
        if !FileManager.default.fileExists(atPath: pki.caCertificatePath) {
            progress("creating a development PKI in \(layout.pki.path)")
        }
        _ = try pki.initialize(commonName: "Rescind Development CA")
        for identity in Self.startOrder + [.operator, .storefront]
        where !FileManager.default.fileExists(atPath: pki.certificatePath(for: identity.rawValue)) {
            _ = try pki.issue(name: identity.rawValue, hosts: ["localhost", "127.0.0.1"])
        }
        var ports: [Identity: Int] = [:]
        for daemon in Self.startOrder + [.storefront] {
            if let existing = try? DaemonConfiguration.load(StorefrontListen.self, from: layout.config(daemon).path) {
                ports[daemon] = existing.listen.port
            } else {
                ports[daemon] = try DaemonProcess.freePort()
            }
        }
        for daemon in Self.startOrder where !FileManager.default.fileExists(atPath: layout.config(daemon).path) {
            progress("writing \(layout.config(daemon).path)")
            let common = DaemonConfiguration(
                identity: daemon.rawValue,
                listen: RPCServer.Configuration(host: "127.0.0.1", port: ports[daemon] ?? 0),
                tls: layout.tls(for: daemon),
                database: layout.database(daemon).path,
                logLevel: logLevel
            )
            var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(common)) as? [String: Any] ?? [:]
            if daemon == .orders {
                object["peers"] = [
                    "inventory": ["host": "127.0.0.1", "port": ports[.inventory] ?? 0],
                    "payments": ["host": "127.0.0.1", "port": ports[.payments] ?? 0],
                ]
            }
            if daemon == .payments {
                object["processor"] = ["fee_basis_points": 290, "fixed_fee": 30]
            }
            if daemon == .orders {
                // Order-status links point at this suite's storefront.
                object["store"] = ["storefront_url": "http://127.0.0.1:\(ports[.storefront] ?? 0)"]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: layout.config(daemon), options: .atomic)
        }
        if !FileManager.default.fileExists(atPath: layout.config(.storefront).path) {
            progress("writing \(layout.config(.storefront).path)")
            let storefront: [String: Any] = [
                "identity": "storefront", "log_level": logLevel,
                "listen": ["host": "127.0.0.1", "port": ports[.storefront] ?? 0],
                "orders": ["host": "127.0.0.1", "port": ports[.orders] ?? 0],
                "tls": try JSONSerialization.jsonObject(with: JSONEncoder().encode(layout.tls(for: .storefront))),
                "store_name": "Rescind demo store",
            ]
            let data = try JSONSerialization.data(withJSONObject: storefront, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: layout.config(.storefront), options: .atomic)
        }
    }

    /// Waits until something accepts connections on `endpoint` (a daemon that speaks HTTP).
    private func waitForListening(_ daemon: Identity, _ endpoint: Endpoint, pid: Int32?) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let pid, !DaemonProcess.isAlive(pid) {
                throw SuiteError("\(daemon) exited during start-up; see \(layout.log(daemon).path)\(logTail(daemon))")
            }
            if await DaemonProcess.accepts(endpoint) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw SuiteError("\(daemon) did not listen on \(endpoint) within 30 s; see \(layout.log(daemon).path)")
    }

    /// Waits until one process (a daemon or one of its replicas) answers `health`.
    private func waitForHealth(_ daemon: Identity, endpoint: Endpoint, pid: Int32?) async throws {
        let client = try RPCClient(
            configuration: .init(endpoint: endpoint, agent: "rescindctl/\(rescindVersion)"),
            tls: layout.tls(for: .operator),
            logger: Logger(label: "rescind.client", factory: { _ in SwiftLogNoOpLogHandler() }))
        defer { Task { await client.shutdown() } }
        let deadline = ContinuousClock.now + .seconds(30)
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            if let pid, !DaemonProcess.isAlive(pid) {
                throw SuiteError("\(daemon) exited during start-up; see \(layout.log(daemon).path)\(logTail(daemon))")
            }
            do {
                _ = try await client.call(CommonMethods.health, Empty(), idempotencyKey: nil, timeout: .seconds(2))
                return
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw SuiteError(
            "\(daemon) did not answer health within 30 s (\(lastError.map { "\($0)" } ?? "")); see \(layout.log(daemon).path)"
        )
    }

    private func logTail(_ daemon: Identity) -> String {
        guard let text = try? String(contentsOf: layout.log(daemon), encoding: .utf8) else { return "" }
        let lines = text.split(separator: "\n").suffix(5)
        return lines.isEmpty ? "" : ":\n" + lines.joined(separator: "\n")
    }
}
