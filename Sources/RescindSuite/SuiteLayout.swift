import Foundation
import RescindAPI
import RescindTransport
import RescindWire

/// Where a local suite keeps its files under one directory.
///
/// ```
/// DIR/suite.json            endpoints, pids, certificate paths (written by `up`)
/// DIR/pki/                  ca.pem, ca-key.pem, NAME.pem, NAME-key.pem
/// DIR/config/NAME.json      each daemon's configuration
/// DIR/data/NAME.sqlite      each daemon's database
/// DIR/logs/NAME.log         each daemon's JSON log lines
/// DIR/run/NAME.pid          each daemon's process id
/// ```
///
/// A daemon's further replicas are processes of their own, named `NAME-2`, `NAME-3`, ... (`Identity.replica`):
/// their own configuration, log and pid, the daemon's certificate and database.
public struct SuiteLayout: Sendable, Hashable {
    public let directory: URL

    public init(directory: URL) {
        self.directory = directory.standardizedFileURL
    }

    public init(path: String) {
        self.init(directory: URL(fileURLWithPath: path))
    }

    public var manifest: URL { directory.appendingPathComponent("suite.json") }
    public var pki: URL { directory.appendingPathComponent("pki") }
    public func config(_ daemon: Identity) -> URL { directory.appendingPathComponent("config/\(daemon).json") }
    public func database(_ daemon: Identity) -> URL { directory.appendingPathComponent("data/\(daemon).sqlite") }
    public func log(_ daemon: Identity) -> URL { directory.appendingPathComponent("logs/\(daemon).log") }
    public func pidFile(_ daemon: Identity) -> URL { directory.appendingPathComponent("run/\(daemon).pid") }

    public func tls(for identity: Identity) -> TLSFiles {
        TLSFiles(
            caCertificatePath: pki.appendingPathComponent("ca.pem").path,
            certificatePath: pki.appendingPathComponent("\(identity).pem").path,
            privateKeyPath: pki.appendingPathComponent("\(identity)-key.pem").path
        )
    }

    /// Creates the subdirectories.
    /// - Throws: file-system errors.
    public func createDirectories() throws {
        for sub in ["pki", "config", "data", "logs", "run"] {
            try FileManager.default.createDirectory(
                at: directory.appendingPathComponent(sub), withIntermediateDirectories: true
            )
        }
    }
}

/// `suite.json`: what a client needs to reach a running local suite.
public struct SuiteManifest: Codable, Sendable, Hashable {
    /// One process: a daemon, or one of its replicas.
    public struct DaemonEntry: Codable, Sendable, Hashable {
        public var endpoint: Endpoint
        public var pid: Int32?
        public var config: String
        public var database: String
        public var log: String
        /// The daemon this process is a replica of (absent: the entry's own name).
        public var service: String?
    }

    public var directory: String
    public var caCertificate: String
    /// The operator identity's certificate and key, used by `rescindctl`.
    public var operatorTLS: TLSFiles
    public var daemons: [String: DaemonEntry]
    /// The storefront's address (`http://127.0.0.1:PORT`), when the suite runs one.
    public var storefrontURL: String?

    enum CodingKeys: String, CodingKey {
        case directory, daemons
        case storefrontURL = "storefront_url"
        case caCertificate = "ca_certificate"
        case operatorTLS = "operator_tls"
    }

    /// The endpoint of a daemon (its first replica).
    /// - Throws: `SuiteError` if the manifest does not list it.
    public func endpoint(_ daemon: Identity) throws -> Endpoint {
        guard let entry = daemons[daemon.rawValue] else {
            throw SuiteError("suite.json lists no \(daemon) daemon")
        }
        return entry.endpoint
    }

    /// The endpoints of every replica of a daemon, the first replica first.
    /// - Throws: `SuiteError` if the manifest lists none.
    public func endpoints(_ daemon: Identity) throws -> [Endpoint] {
        let replicas = daemons.filter { ($0.value.service ?? $0.key) == daemon.rawValue }
            .sorted { Identity.replicaNumber($0.key) < Identity.replicaNumber($1.key) }
        guard !replicas.isEmpty else { throw SuiteError("suite.json lists no \(daemon) daemon") }
        return replicas.map(\.value.endpoint)
    }

    /// Reads `DIR/suite.json`.
    /// - Throws: `SuiteError` if the suite was never started there.
    public static func load(_ layout: SuiteLayout) throws -> SuiteManifest {
        guard let data = try? Data(contentsOf: layout.manifest) else {
            throw SuiteError(
                "no suite at \(layout.directory.path): run `rescindctl up --dir \(layout.directory.path)` first")
        }
        do {
            return try JSONDecoder().decode(SuiteManifest.self, from: data)
        } catch {
            throw SuiteError("\(layout.manifest.path) is not a suite manifest: \(error)")
        }
    }
}

extension Identity {
    /// The process name of a daemon's `number`th replica: the daemon's own name for the first, `NAME-N` after.
    public func replica(_ number: Int) -> Identity {
        number <= 1 ? self : Identity("\(rawValue)-\(number)")
    }

    /// The daemon a process name is a replica of (`orders` for `orders-2`).
    public var service: Identity {
        let number = Self.replicaNumber(rawValue)
        return number == 1 ? self : Identity(String(rawValue.dropLast("-\(number)".count)))
    }

    /// The replica number a process name carries (1 for a daemon's own name).
    static func replicaNumber(_ name: String) -> Int {
        guard let dash = name.lastIndex(of: "-"), let number = Int(name[name.index(after: dash)...]) else { return 1 }
        return number
    }
}

/// A suite that cannot be set up, started, stopped or reached.
public struct SuiteError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
