import Foundation
import RescindAPI
import RescindSuite
import RescindTransport
import RescindWire

/// Starts the real daemons (real executables, TLS, SQLite files) in a fresh directory for a test, gives
/// operator clients to them, and injects faults: crash a daemon, restart it.
///
/// The daemon executables must be built (`swift build`); they are found beside the test binary, or in
/// `RESCIND_BIN_DIR`.
public final class RescindHarness: Sendable {
    public let suite: LocalSuite
    public let connection: SuiteConnection
    public var directory: URL { suite.layout.directory }

    private init(suite: LocalSuite, connection: SuiteConnection) {
        self.suite = suite
        self.connection = connection
    }

    /// Creates a suite in a new temporary directory and starts it.
    /// - Throws: `SuiteError` if a daemon does not start (its log tail is in the message).
    public static func start(binDirectory: URL? = nil, logLevel: String = "debug") async throws -> RescindHarness {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("rescind-harness-\(UUID().uuidString.prefix(8))")
        var suite = LocalSuite(layout: SuiteLayout(directory: directory), binDirectory: binDirectory)
        suite.logLevel = logLevel
        let (manifest, _) = try await suite.up()
        return RescindHarness(suite: suite, connection: try SuiteConnection(manifest: manifest))
    }

    public var orders: RPCClient { connection.orders }
    public var payments: RPCClient { connection.payments }
    public var inventory: RPCClient { connection.inventory }

    /// Kills a daemon with SIGKILL, as a crash or power cut would.
    public func crash(_ daemon: Identity) async {
        if let pid = suite.runningPID(daemon) { await DaemonProcess.crash(pid) }
    }

    /// Starts any daemon that is not running (after `crash`) and waits until it serves.
    /// - Throws: `SuiteError`.
    public func restart() async throws {
        try await suite.up()
    }

    /// Stops every daemon; with `removeFiles`, deletes the directory too.
    public func stop(removeFiles: Bool = true) async {
        await connection.shutdown()
        _ = await suite.down(timeout: .seconds(5))
        if removeFiles { try? FileManager.default.removeItem(at: directory) }
    }

    /// Runs `body` against a fresh suite and stops it afterwards, whatever happens.
    public static func withSuite<T: Sendable>(_ body: (RescindHarness) async throws -> T) async throws -> T {
        let harness = try await start()
        do {
            let result = try await body(harness)
            await harness.stop()
            return result
        } catch {
            await harness.stop(removeFiles: false)
            throw error
        }
    }

    /// Polls a saga until it is terminal.
    /// - Throws: `RescindError` `deadline_exceeded` after `timeout`.
    public func waitForSaga(_ id: UUID, timeout: Duration = .seconds(60)) async throws -> Saga {
        try await waitForSaga(id, timeout: timeout, until: "terminal") { $0.state.isTerminal }
    }

    /// Polls a saga until `condition` holds: an event in its step log, say.
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
