import ArgumentParser
import Foundation
import RescindAPI
import RescindSuite
import RescindTransport
import RescindWire

/// `rescindctl`: runs and inspects a Rescind suite.
@main
struct Rescindctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescindctl",
        abstract: "Run and inspect Rescind: orders, payments, inventory and cancellation sagas.",
        discussion: """
            Commands find a local suite through --dir or RESCIND_DIR (its suite.json), or reach daemons anywhere
            with --orders/--payments/--inventory HOST:PORT and --ca/--cert/--key. Every command prints JSON
            with --json.
            """,
        subcommands: [
            Demo.self, Up.self, Down.self, Health.self, Certs.self, InventoryCommand.self, OrdersCommand.self,
            RequestsCommand.self, PaymentsCommand.self, SagasCommand.self, Check.self, Chaos.self, Bench.self,
        ]
    )
}

/// Where the suite is.
struct TargetOptions: ParsableArguments {
    @Option(name: .long, help: "The suite's directory (default: $RESCIND_DIR).")
    var dir: String?

    @Option(name: .long, help: "Orders daemon HOST:PORT, or its replicas HOST:PORT,HOST:PORT (instead of --dir).")
    var orders: String?
    @Option(name: .long, help: "Payments daemon HOST:PORT, or its replicas comma-separated (instead of --dir).")
    var payments: String?
    @Option(name: .long, help: "Inventory daemon HOST:PORT, or its replicas comma-separated (instead of --dir).")
    var inventory: String?
    @Option(name: .long, help: "CA certificate (PEM) with explicit endpoints.")
    var ca: String?
    @Option(name: .long, help: "Operator certificate (PEM) with explicit endpoints.")
    var cert: String?
    @Option(name: .long, help: "Operator private key (PEM) with explicit endpoints.")
    var key: String?

    var directory: String? { dir ?? ProcessInfo.processInfo.environment["RESCIND_DIR"] }

    func connect() throws -> SuiteConnection {
        if let orders, let payments, let inventory {
            guard let ca, let cert, let key else {
                throw ValidationError("explicit endpoints need --ca, --cert and --key")
            }
            func endpoints(_ text: String) throws -> [Endpoint] {
                let parts = text.split(separator: ",")
                let all = parts.compactMap { Endpoint(parsing: String($0)) }
                guard !all.isEmpty, all.count == parts.count else {
                    throw ValidationError("endpoints are HOST:PORT, several separated by commas")
                }
                return all
            }
            let (o, p, i) = (try endpoints(orders), try endpoints(payments), try endpoints(inventory))
            return try SuiteConnection(
                orders: o, payments: p, inventory: i,
                tls: TLSFiles(caCertificatePath: ca, certificatePath: cert, privateKeyPath: key)
            )
        }
        guard let directory else {
            throw ValidationError("say where the suite is: --dir DIR, RESCIND_DIR, or explicit endpoints")
        }
        return try SuiteConnection(manifest: try SuiteManifest.load(SuiteLayout(path: directory)))
    }

    /// Connects, runs `body`, and closes the connections whatever happens.
    func with<T: Sendable>(_ body: (SuiteConnection) async throws -> T) async throws -> T {
        let connection = try connect()
        do {
            let result = try await body(connection)
            await connection.shutdown()
            return result
        } catch {
            await connection.shutdown()
            throw error
        }
    }
}

/// Output format.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for scripts.")
    var json = false

    /// Prints a value as JSON, or as text through `text`.
    func emit<T: Encodable>(_ value: T, text: (T) -> String) throws {
        if json {
            printLine(try Output.json(value))
        } else {
            printLine(text(value))
        }
    }

    /// A line of progress on standard error (never mixed into JSON on standard output).
    func progress(_ line: String) {
        FileHandle.standardError.write(Data("\(line)\n".utf8))
    }
}

enum Output {
    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// Runs a command body; prints a `RescindError` as a person or a script wants it and exits non-zero.
func reportingErrors(_ output: OutputOptions, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as RescindError {
        if output.json {
            struct Failure: Encodable { var error: RescindError }
            printLine((try? Output.json(Failure(error: error))) ?? "{}")
        } else {
            var line = "error: \(error.code.rawValue)"
            if let reason = error.reason { line += " (\(reason))" }
            line += ": \(error.message)"
            if error.retryable { line += " [retryable]" }
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
        throw ExitCode(error.retryable ? 75 : 1)
    }
}

/// Writes a line to standard output unbuffered, so it stays in order with progress on standard error.
func printLine(_ text: String) {
    FileHandle.standardOutput.write(Data("\(text)\n".utf8))
}
