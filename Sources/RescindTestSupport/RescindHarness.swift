import Foundation
import GRDB
import Logging
import RescindAPI
import RescindPayments
import RescindStorage
import RescindSuite
import RescindTransport
import RescindWire

/// Starts the real daemons (real executables, TLS, SQLite files) in a fresh directory for a test, gives
/// operator clients to them, and injects real faults: kill -9, SIGSTOP and SIGCONT, SIGTERM, restart, a
/// crash at a chosen saga step; a `FaultProxy` on each of Orders' links that delays, drops, holds, resets
/// or loses answers; the processor's fault modes. `check()` runs the `InvariantChecker` on the databases.
///
/// The daemon executables must be built (`swift build`); they are found beside the test binary, or in
/// `RESCIND_BIN_DIR`.
public final class RescindHarness: Sendable {
    /// How to set the suite up.
    public struct Options: Sendable {
        /// Put a `FaultProxy` between Orders and each participant.
        public var proxies = true
        /// Let `setProcessorFaults` switch the simulated processor's fault mode.
        public var processorFaults = true
        /// Orders' saga settings (`sagas.*` of its configuration), quicker than production's by default so
        /// that a test sees retries and give-ups in seconds.
        public var sagas: [String: Double] = [
            "max_attempts": 8, "initial_retry_delay_seconds": 0.05, "max_retry_delay_seconds": 0.4,
            "call_timeout_seconds": 2, "poll_interval_seconds": 0.05, "lease_seconds": 2,
        ]
        public var logLevel = "debug"
        /// Orders' `store.capture`, if a test sets it (`at_fulfilment`, `when_window_closes`).
        public var capture: String?
        /// Orders' other store settings, in seconds (e.g. `cancellation_window_seconds`).
        public var storeSeconds: [String: Double] = [:]
        /// Orders' other store settings, as JSON values (text, numbers, lists of text).
        public var store: [String: any Sendable] = [:]
        /// Keys of the storefront's configuration (`rate_limit`, `default_language`, ...).
        public var storefront: [String: any Sendable] = [:]
        /// Orders' `notifications` section (`webhook`, `file`, `max_backoff_seconds`).
        public var notifications: [String: any Sendable] = [:]
        /// A Stripe API (a localstripe server's) for Payments instead of the simulator; `processorFaults` is then
        /// off. The key is a test key written to a file of the suite.
        public var stripeAPIBase: String?
        /// How long Payments waits for one answer of the Stripe API (its default: 20 s).
        public var stripeTimeoutSeconds: Double?
        /// Top-level keys of Payments' configuration (its `mail`, say), written last.
        public var payments: [String: any Sendable] = [:]
        /// Keep each daemon's data in a fresh PostgreSQL database on this server (and the simulated processor's in
        /// `DATABASE_processor`) instead of SQLite files.
        public var postgres: PostgresServer?
        /// A folder of database files (`orders.sqlite`, `payments.sqlite`, `payments-processor.sqlite`,
        /// `inventory.sqlite`, as `snapshotDatabases(to:)` writes them) that the daemons start from instead of
        /// empty ones: databases written by an earlier release, say.
        public var databases: URL?
        /// Replicas of each of the three daemons (`NAME`, `NAME-2`, ...), sharing its database: more than one
        /// needs `postgres`. With proxies, each participant replica has its own.
        public var replicas = 1

        public init() {}
    }

    /// Where the daemons keep their data.
    public enum Backend: String, Sendable, CustomStringConvertible {
        /// A SQLite file each (the embedded default).
        case sqlite
        /// A database each on the test's PostgreSQL server (`PostgresServer.shared()`).
        case postgres

        public var description: String { rawValue }
    }

    public let suite: LocalSuite
    public let connection: SuiteConnection
    /// The proxies on Orders' links to Inventory and Payments, if the options asked for them.
    public let proxies: [Identity: FaultProxy]
    public var directory: URL { suite.layout.directory }
    /// Where Payments takes the processor's events, with a Stripe API (`Options.stripeAPIBase`).
    public let stripeWebhook: LocalSuite.StripeWebhook?
    /// The Stripe API Payments uses (`Options.stripeAPIBase`), as a test reads it (not through the proxy).
    public let stripeAPIBase: String?
    /// With a Stripe API and proxies: the proxy on Payments' HTTP link to it.
    public let processorProxy: FaultProxy?
    /// With `Options.postgres`: each daemon's database, and the server.
    public let postgresDatabases: [Identity: PostgresDatabase.Location]
    public let postgresServer: PostgresServer?

    private init(
        suite: LocalSuite, connection: SuiteConnection, proxies: [Identity: FaultProxy],
        stripe: (api: String, webhook: LocalSuite.StripeWebhook, proxy: FaultProxy?)?,
        postgres: [Identity: PostgresDatabase.Location], postgresServer: PostgresServer?
    ) {
        self.postgresDatabases = postgres
        self.postgresServer = postgresServer
        self.suite = suite
        self.connection = connection
        self.proxies = proxies
        self.stripeWebhook = stripe?.webhook
        self.stripeAPIBase = stripe?.api
        self.processorProxy = stripe?.proxy
    }

    /// Creates a suite in a new temporary directory (or `directory`) and starts it.
    /// - Throws: `SuiteError` if a daemon does not start (its log tail is in the message).
    public static func start(
        binDirectory: URL? = nil, directory: URL? = nil, options: Options = .init(),
        environment: [Identity: [String: String]] = [:]
    ) async throws -> RescindHarness {
        let directory =
            directory
            ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("rescind-harness-\(UUID().uuidString.prefix(8))")
        var suite = LocalSuite(layout: SuiteLayout(directory: directory), binDirectory: binDirectory)
        suite.logLevel = options.logLevel
        try suite.prepare()
        if let folder = options.databases {
            for (name, target) in databaseFiles(suite.layout) {
                try FileManager.default.createDirectory(
                    at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: folder.appendingPathComponent(name), to: target)
            }
        }
        var postgres: [Identity: PostgresDatabase.Location] = [:]
        if let server = options.postgres {
            for daemon in [Identity.orders, .payments, .inventory] {
                let location = try await server.freshDatabase()
                if daemon == .payments { try await server.createDatabase(location.database + "_processor") }
                try suite.patchConfiguration(daemon, ["database": location.url])
                postgres[daemon] = location
            }
        }
        // Before any other change: each change of a daemon's configuration goes to all its replicas.
        try suite.replicate(options.replicas)
        var proxies: [Identity: FaultProxy] = [:]
        if options.proxies {
            var peers: [String: Any] = [:]
            for peer in [Identity.inventory, .payments] {
                var endpoints: [[String: Any]] = []
                for process in suite.processes(peer) {
                    let target = try suite.endpoint(process)
                    let proxy = try await FaultProxy.start(
                        name: process.rawValue, to: target.host, port: target.port)
                    proxies[process] = proxy
                    endpoints.append(["host": "127.0.0.1", "port": proxy.port])
                }
                peers[peer.rawValue] = endpoints.count == 1 ? endpoints[0] : endpoints
            }
            try suite.patchConfiguration(.orders, ["peers": peers])
        }
        try suite.patchConfiguration(.orders, ["sagas": options.sagas])
        if options.capture != nil || !options.storeSeconds.isEmpty || !options.store.isEmpty {
            var store: [String: Any] = options.storeSeconds
            store.merge(options.store) { _, new in new }
            store["capture"] = options.capture
            try suite.patchStore(store)
        }
        if !options.notifications.isEmpty {
            try suite.patchConfiguration(.orders, ["notifications": options.notifications])
        }
        if !options.storefront.isEmpty {
            try suite.patchConfiguration(.storefront, options.storefront)
        }
        var stripe: (api: String, webhook: LocalSuite.StripeWebhook, proxy: FaultProxy?)?
        if let apiBase = options.stripeAPIBase {
            let keyFile = directory.appendingPathComponent("config/stripe-secret-key")
            try Data("sk_test_rescind_harness\n".utf8).write(to: keyFile)
            // With proxies, Payments reaches the processor through one too: its HTTP link can be cut.
            var proxy: FaultProxy?
            var reached = apiBase
            if options.proxies, let url = URL(string: apiBase), let host = url.host, let port = url.port {
                let started = try await FaultProxy.start(name: "processor", to: host, port: port)
                proxy = started
                reached = "http://127.0.0.1:\(started.port)"
            }
            let webhook = try suite.useStripe(
                apiBase: reached, secretKeyFile: keyFile.path, timeoutSeconds: options.stripeTimeoutSeconds)
            stripe = (apiBase, webhook, proxy)
        } else if options.processorFaults {
            try suite.patchConfiguration(
                .payments, ["processor": ["fee_basis_points": 290, "fixed_fee": 30, "fault_injection": true]])
        }
        // Last: a test's own keys win (a `processor` section of its own, say).
        if !options.payments.isEmpty {
            try suite.patchConfiguration(.payments, options.payments)
        }
        do {
            let (manifest, _) = try await suite.up(environment: environment)
            return RescindHarness(
                suite: suite, connection: try SuiteConnection(manifest: manifest), proxies: proxies, stripe: stripe,
                postgres: postgres, postgresServer: options.postgres)
        } catch {
            for proxy in proxies.values { await proxy.shutdown() }
            await stripe?.proxy?.shutdown()
            throw error
        }
    }

    /// The proxy on Orders' link to `peer` (a participant, or one replica of it: `payments-2`).
    /// - Throws: if the harness was started without proxies.
    public func proxy(_ peer: Identity) throws -> FaultProxy {
        guard let proxy = proxies[peer] else { throw SuiteError("no fault proxy in front of \(peer)") }
        return proxy
    }

    public var orders: RPCClientGroup { connection.orders }
    public var payments: RPCClientGroup { connection.payments }
    public var inventory: RPCClientGroup { connection.inventory }

    /// Kills a daemon with SIGKILL, as a crash or power cut would.
    public func crash(_ daemon: Identity) async {
        if let pid = suite.runningPID(daemon) { await DaemonProcess.crash(pid) }
    }

    /// Stops a daemon where it is (SIGSTOP): its sockets stay open and nothing answers.
    public func pause(_ daemon: Identity) {
        if let pid = suite.runningPID(daemon) { DaemonProcess.pause(pid) }
    }

    /// Lets a paused daemon go on (SIGCONT).
    public func resume(_ daemon: Identity) {
        if let pid = suite.runningPID(daemon) { DaemonProcess.resume(pid) }
    }

    /// Sends SIGTERM and waits for the daemon to drain and exit.
    /// - Returns: whether it exited by itself within `timeout` (else it was killed).
    @discardableResult
    public func terminate(_ daemon: Identity, timeout: Duration = .seconds(20)) async -> Bool {
        guard let pid = suite.runningPID(daemon) else { return true }
        return await DaemonProcess.stop(pid, timeout: timeout)
    }

    /// Waits until a daemon is no longer running (it crashed at a crash point, say).
    /// - Returns: whether it is gone.
    public func waitForExit(_ daemon: Identity, timeout: Duration = .seconds(30)) async -> Bool {
        let pidFile = suite.layout.pidFile(daemon)
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return true }
        return await DaemonProcess.waitForExit(pid, timeout: timeout)
    }

    /// An operator client of `peer` that goes through its fault proxy, as Orders' calls do.
    /// - Throws: if there is no proxy, or the TLS files cannot be loaded.
    public func clientThroughProxy(_ peer: Identity) throws -> RPCClient {
        try RPCClient(
            configuration: .init(
                endpoint: Endpoint(host: "127.0.0.1", port: try proxy(peer).port), expectedServer: peer,
                initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(50), agent: "rescind-harness"),
            tls: suite.layout.tls(for: .operator),
            logger: Logger(label: "rescind.harness", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// An operator client of one process: a daemon, or one replica of it (`orders-2`), and no other.
    /// - Throws: if its configuration or the TLS files cannot be read.
    public func client(_ process: Identity) throws -> RPCClient {
        try RPCClient(
            configuration: .init(endpoint: try suite.endpoint(process), agent: "rescind-harness"),
            tls: suite.layout.tls(for: .operator),
            logger: Logger(label: "rescind.harness", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// Waits until the outbox relay has delivered every customer notification queued so far.
    /// - Throws: `deadline_exceeded` if some are still queued after `timeout`.
    public func waitUntilNotified(timeout: Duration = .seconds(30)) async throws {
        try await waitUntil("every notification delivered", timeout: timeout) {
            let queue = try DatabaseQueue(path: database(.orders).path)
            defer { try? queue.close() }
            return try await queue.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL") ?? 0
            } == 0
        }
    }

    /// Waits for a state no method announces (a saga appearing, the outbox draining): checks `condition` until
    /// it holds. The one place the harness looks again after a pause.
    /// - Throws: `deadline_exceeded` naming `what` after `timeout`.
    public func waitUntil(
        _ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool
    ) async throws {
        try await RescindTestSupport.waitUntil(what, timeout: timeout, condition)
    }

    /// The storefront's address, `http://127.0.0.1:PORT`.
    /// - Throws: if the suite's manifest cannot be read.
    public func storefrontURL() throws -> URL {
        guard let text = try SuiteManifest.load(suite.layout).storefrontURL, let url = URL(string: text) else {
            throw SuiteError("the suite runs no storefront")
        }
        return url
    }

    /// A client of Orders that presents the storefront's certificate, as the storefront daemon does.
    /// - Throws: if the TLS files cannot be loaded.
    public func storefrontClient() throws -> RPCClient {
        try RPCClient(
            configuration: .init(
                endpoint: try suite.endpoint(.orders), expectedServer: .orders, agent: "rescind-harness-storefront"),
            tls: suite.layout.tls(for: .storefront),
            logger: Logger(label: "rescind.harness", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// The SQLite file of a daemon.
    public func database(_ daemon: Identity) -> URL { suite.layout.database(daemon) }

    /// Copies every database of the suite, each checkpointed into one file, into `folder` (created if need be), as
    /// `Options.databases` reads them. The daemons must be stopped (or dead).
    /// - Throws: database and file errors.
    public func snapshotDatabases(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, source) in Self.databaseFiles(suite.layout) {
            let queue = try DatabaseQueue(path: source.path)
            _ = try queue.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
            try queue.close()
            let target = folder.appendingPathComponent(name)
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.copyItem(at: source, to: target)
        }
    }

    /// The suite's database files, by the name a snapshot gives them.
    private static func databaseFiles(_ layout: SuiteLayout) -> [(String, URL)] {
        let payments = layout.database(.payments)
        return [
            ("orders.sqlite", layout.database(.orders)), ("payments.sqlite", payments),
            (
                "payments-processor.sqlite",
                URL(fileURLWithPath: SimulatedProcessor.databasePath(besidePayments: payments.path))
            ),
            ("inventory.sqlite", layout.database(.inventory)),
        ]
    }

    /// The charges the simulated processor holds for an order (read from its database file).
    /// - Throws: database errors.
    public func processorCharges(of orderID: UUID) throws -> [SimulatedProcessor.Charge] {
        var configuration = Configuration()
        configuration.readonly = true
        let path = SimulatedProcessor.databasePath(besidePayments: database(.payments).path)
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in try SimulatedProcessor.charges(SQLiteTransaction(db)) }
            .filter { $0.orderID == orderID.uuidString }
    }

    public func isRunning(_ daemon: Identity) -> Bool { suite.runningPID(daemon) != nil }

    /// Starts any daemon that is not running (after `crash`) and waits until it serves.
    /// - Parameter environment: variables for the daemons started now (`RESCIND_CRASH_POINT`).
    /// - Throws: `SuiteError`.
    public func restart(environment: [Identity: [String: String]] = [:]) async throws {
        try await suite.up(environment: environment)
    }

    /// Switches the simulated processor's fault mode.
    /// - Throws: `RescindError`.
    public func setProcessorFaults(_ faults: ProcessorFaults) async throws {
        _ = try await payments.call(PaymentsMethods.setProcessorFaults, faults)
    }

    /// The lines of a daemon's log.
    public func log(_ daemon: Identity) -> [String] {
        guard let text = try? String(contentsOf: suite.layout.log(daemon), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    /// Runs the invariant checker on the suite's databases.
    /// - Throws: if a database cannot be read.
    public func check(_ expectations: InvariantChecker.Expectations = .init()) throws -> InvariantChecker.Report {
        try InvariantChecker(layout: suite.layout).check(expectations)
    }

    /// Runs the invariant checker on the suite's databases and the processor's objects: the Stripe-compatible
    /// server's when the suite uses one (`Options.stripeAPIBase`), else the simulator's.
    /// - Throws: if a database or the server cannot be read.
    public func checkWithProcessor(_ expectations: InvariantChecker.Expectations = .init()) async throws
        -> InvariantChecker.Report
    {
        if !postgresDatabases.isEmpty {
            return try await InvariantChecker.check(
                postgres: postgresDatabases, expectations: expectations, stripeAPIBase: stripeAPIBase)
        }
        return try await InvariantChecker(layout: suite.layout).check(expectations, stripeAPIBase: stripeAPIBase)
    }

    /// Waits until no saga is running or compensating.
    /// - Throws: `deadline_exceeded` with the sagas still going after `timeout`.
    public func waitUntilQuiet(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let running = try await orders.call(OrdersMethods.listSagas, ListSagasRequest(state: .running))
            let compensating = try await orders.call(
                OrdersMethods.listSagas, ListSagasRequest(state: .compensating))
            let going = running.sagas + compensating.sagas
            if going.isEmpty { return }
            guard ContinuousClock.now < deadline else {
                throw RescindError(
                    .deadlineExceeded, "\(going.count) sagas still going after \(timeout): \(going.map(\.id))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops every daemon and proxy; with `removeFiles`, deletes the directory too.
    public func stop(removeFiles: Bool = true) async {
        await connection.shutdown()
        for daemon in [Identity.orders, .payments, .inventory].flatMap(suite.processes) { resume(daemon) }
        _ = await suite.down(timeout: .seconds(5))
        for proxy in proxies.values { await proxy.shutdown() }
        await processorProxy?.shutdown()
        if removeFiles { try? FileManager.default.removeItem(at: directory) }
    }

    /// Runs `body` against a fresh suite with its data on `backend` and `replicas` of each daemon, and stops it
    /// afterwards, whatever happens.
    public static func withSuite<T: Sendable>(
        backend: Backend, replicas: Int = 1, options: Options = .init(),
        environment: [Identity: [String: String]] = [:], _ body: (RescindHarness) async throws -> T
    ) async throws -> T {
        var options = options
        options.replicas = replicas
        if backend == .postgres { options.postgres = try await PostgresServer.shared() }
        return try await withSuite(options: options, environment: environment, body)
    }

    /// Runs `body` against a fresh suite and stops it afterwards, whatever happens.
    public static func withSuite<T: Sendable>(
        options: Options = .init(), environment: [Identity: [String: String]] = [:],
        _ body: (RescindHarness) async throws -> T
    ) async throws -> T {
        let harness = try await start(options: options, environment: environment)
        do {
            let result = try await body(harness)
            await harness.stop()
            return result
        } catch {
            await harness.stop(removeFiles: false)
            throw error
        }
    }

    /// Waits until a saga is terminal.
    /// - Throws: `RescindError` `deadline_exceeded` after `timeout`.
    public func waitForSaga(_ id: UUID, timeout: Duration = .seconds(60)) async throws -> Saga {
        // Orders answers `sagas.wait` when the saga ends: no polling.
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = Int64((deadline - ContinuousClock.now).seconds * 1_000)
            let saga = try await orders.call(
                OrdersMethods.waitSaga,
                WaitSagaRequest(sagaID: id, timeoutMillis: min(max(left, 1), WaitSagaRequest.maxTimeoutMillis)),
                timeout: .seconds(70))
            if saga.state.isTerminal { return saga }
            guard ContinuousClock.now < deadline else {
                throw RescindError(.deadlineExceeded, "saga \(id) not terminal after \(timeout): \(saga.state)")
            }
        }
    }

    /// Polls a saga until `condition` holds: an event in its step log, say. (The daemon runs in another
    /// process and tells no one of a step; this is a condition polled with a deadline.)
    /// - Parameter description: what is awaited, for the error.
    /// - Throws: `RescindError` `deadline_exceeded` after `timeout`.
    public func waitForSaga(
        _ id: UUID, timeout: Duration = .seconds(60), until description: String,
        _ condition: (Saga) -> Bool
    ) async throws -> Saga {
        let deadline = ContinuousClock.now + timeout
        while true {
            let saga = try await orders.call(OrdersMethods.getSaga, SagaRequest(sagaID: id))
            if condition(saga) { return saga }
            guard ContinuousClock.now < deadline else {
                throw RescindError(.deadlineExceeded, "saga \(id) not \(description) after \(timeout): \(saga.state)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The stock level of a SKU at a location.
    public func stock(_ sku: String, at location: String) async throws -> StockLevel? {
        let report = try await inventory.call(
            InventoryMethods.listStock, ListStockRequest(sku: sku, location: location))
        return report.levels.first
    }
}

/// Waits for a state that another process reaches at a time of its own and announces to no one (a daemon's
/// sweeper, a test server's folder): checks `condition` until it holds. The one loop of the harness and its test
/// peers that looks again after a pause.
/// - Throws: `deadline_exceeded` naming `what` after `timeout`.
public func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool)
    async throws
{
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            throw RescindError(.deadlineExceeded, "not \(what) after \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}
