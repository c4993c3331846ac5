import Foundation
import Logging
import RescindStorage
import RescindSuite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A PostgreSQL server of Debian's `postgresql` package, in a directory of its own, for the tests, the harness and
/// the chaos run: `initdb`, then `postgres` on a free loopback port, trusting local connections from `rescind`.
/// Run as the `postgres` user (`setpriv`, which execs: the process is the server) when the tests run as root,
/// since PostgreSQL refuses root. The shared server of a test process is stopped when the process exits; one that
/// crashes leaves it running.
public final class PostgresServer: Sendable {
    public let directory: URL
    public let port: Int
    public let user = "rescind"
    private let binaries: URL
    private let process: ProcessBox

    /// Whether Debian's PostgreSQL server is installed, or `RESCIND_REQUIRE_PEERS` is set (CI), so that a missing
    /// server fails the tests that need it instead of skipping them.
    public static var isAvailable: Bool {
        ProcessInfo.processInfo.environment["RESCIND_REQUIRE_PEERS"] != nil || binaryDirectory != nil
    }

    /// Where `initdb` and `postgres` are: the newest `/usr/lib/postgresql/N/bin`.
    static var binaryDirectory: URL? {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return versions.compactMap(Int.init).sorted().last.map {
            root.appendingPathComponent("\($0)/bin")
        }
    }

    private init(directory: URL, port: Int, binaries: URL) {
        self.directory = directory
        self.port = port
        self.binaries = binaries
        self.process = ProcessBox()
    }

    /// Makes a cluster in a new directory (or `directory`) and starts it.
    /// - Throws: `SuiteError` with the server's log if it does not start.
    public static func start(directory: URL? = nil) async throws -> PostgresServer {
        guard let binaries = binaryDirectory else {
            throw PeerError(message: "PostgreSQL is not installed (apt-get install postgresql)")
        }
        let directory =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "rescind-pg-\(UUID().uuidString.prefix(8))")
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            try FileManager.default.setAttributes([.ownerAccountName: "postgres"], ofItemAtPath: directory.path)
        }
        let server = PostgresServer(directory: directory, port: try DaemonProcess.freePort(), binaries: binaries)
        try server.runToEnd(
            "initdb", ["-D", data.path, "-U", "rescind", "-A", "trust", "--no-sync", "-E", "UTF8", "--no-locale"])
        try await server.startProcess()
        return server
    }

    /// One server for this test process, started when first asked for and stopped when the process exits; each
    /// test takes a database of its own (`freshDatabase`).
    /// - Throws: `PeerError` if PostgreSQL is missing or does not start.
    public static func shared() async throws -> PostgresServer {
        try await sharedServer.value
    }

    private static let sharedServer = Task<PostgresServer, any Error> {
        let server = try await PostgresServer.start()
        sharedDirectory.withLock { $0 = (server.directory, server.process) }
        atexit {
            PostgresServer.sharedDirectory.withLock { shared in
                shared?.1.signal(SIGQUIT, wait: false)
                if let directory = shared?.0 { try? FileManager.default.removeItem(at: directory) }
            }
        }
        return server
    }

    private static let sharedDirectory = Mutex<(URL, ProcessBox)?>(nil)

    /// A new, empty database on this server, named for no one else.
    /// - Throws: `SQLError`.
    public func freshDatabase() async throws -> PostgresDatabase.Location {
        try await createDatabase("t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))
    }

    /// `postgres://rescind@127.0.0.1:PORT/NAME`.
    public func location(_ database: String) -> PostgresDatabase.Location {
        PostgresDatabase.Location(host: "127.0.0.1", port: port, user: user, database: database)
    }

    /// Creates an empty database.
    /// - Throws: `SQLError`.
    @discardableResult
    public func createDatabase(_ name: String) async throws -> PostgresDatabase.Location {
        let admin = PostgresDatabase(location("postgres"), connections: 1, logger: Self.quiet)
        defer { Task { await admin.close() } }
        try await admin.runAlone("CREATE DATABASE \(name)")
        return location(name)
    }

    /// The server's process id (its postmaster; its backends are its children), while it runs.
    public var processID: Int32? { process.processID }

    /// Kills the server and every process of it (its backends, its writers) with SIGKILL at once, as a crash of
    /// its machine would: every connection to it breaks.
    public func crash() {
        process.killTree()
    }

    /// Starts the server again after `crash` or `stop`, on the same port and data.
    public func restart() async throws {
        try await startProcess()
    }

    /// Stops the server (a fast shutdown) and, with `removeFiles`, deletes its directory.
    public func stop(removeFiles: Bool = true) {
        signal(SIGINT)
        if removeFiles { try? FileManager.default.removeItem(at: directory) }
    }

    /// Signals the server and waits until it is gone.
    private func signal(_ signal: Int32) {
        process.signal(signal, wait: true)
    }

    private func startProcess() async throws {
        let data = directory.appendingPathComponent("data")
        let log = directory.appendingPathComponent("postgres.log")
        let arguments = [
            "-D", data.path, "-p", "\(port)", "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=\(directory.path)", "-c", "max_connections=300",
        ]
        var started = try launch("postgres", arguments, log: log)
        process.set(started)
        let probe = PostgresDatabase(location("postgres"), connections: 1, logger: Self.quiet)
        defer { Task { await probe.close() } }
        do {
            try await waitUntil("PostgreSQL accepting connections", timeout: .seconds(30)) {
                if (try? await probe.read({ tx in try tx.scalar(Int64.self, "SELECT 1") })) != nil { return true }
                if !started.isRunning {
                    // After a crash the old server's backends may hold its shared memory for a moment: start again.
                    started = try launch("postgres", arguments, log: log)
                    process.set(started)
                }
                return false
            }
        } catch {
            let tail = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw PeerError(message: "PostgreSQL did not start: \(error)\n\(tail.suffix(2000))")
        }
    }

    /// Runs one of the server's programs, as `postgres` under root (`setpriv` execs it: the process is the
    /// program).
    private func launch(_ program: String, _ arguments: [String], log: URL?) throws -> Process {
        let process = Process()
        let path = binaries.appendingPathComponent(program).path
        if getuid() == 0 {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", path] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
        }
        if let log {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            _ = try handle.seekToEnd()
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return process
    }

    private func runToEnd(_ program: String, _ arguments: [String]) throws {
        let process = try launch(program, arguments, log: directory.appendingPathComponent("\(program).log"))
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let log = (try? String(contentsOf: directory.appendingPathComponent("\(program).log"), encoding: .utf8))
            throw PeerError(message: "\(program) failed: \(log ?? "")")
        }
    }

    static let quiet = Logger(label: "rescind.test.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
}

/// The server's process, replaced on a restart.
final class ProcessBox: @unchecked Sendable {
    private let lock = NSLock()
    private var process: Process?

    func set(_ process: Process) {
        lock.withLock { self.process = process }
    }

    /// Kills the server and its children with SIGKILL (the children first found, so that none is left to init).
    func killTree() {
        guard let process = lock.withLock({ self.process }), process.isRunning else { return }
        let children = Self.children(of: process.processIdentifier)
        Glibc.kill(process.processIdentifier, SIGKILL)
        for child in children { Glibc.kill(child, SIGKILL) }
        process.waitUntilExit()
    }

    /// The server's process id (its postmaster), while it runs.
    var processID: Int32? {
        lock.withLock { self.process.flatMap { $0.isRunning ? $0.processIdentifier : nil } }
    }

    /// The processes whose parent is `pid` (from `/proc/PID/stat`: the parent is the field after the state).
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }

    /// Signals the server; with `wait`, waits until it has ended (never at exit: Foundation cannot wait then).
    func signal(_ signal: Int32, wait: Bool) {
        guard let process = lock.withLock({ self.process }), process.isRunning else { return }
        Glibc.kill(process.processIdentifier, signal)
        if wait { process.waitUntilExit() }
    }
}
