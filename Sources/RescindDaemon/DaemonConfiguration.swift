import Foundation
import RescindStorage
import RescindTransport

/// What every daemon's configuration file holds. A daemon's own section (peers, processor, saga policy)
/// lives in the same JSON file and is read by its executable.
public struct DaemonConfiguration: Codable, Sendable, Hashable {
    /// The identity the daemon's certificate carries: `orders`, `payments` or `inventory`.
    public var identity: String
    public var listen: RPCServer.Configuration
    public var tls: TLSFiles
    /// Where the daemon keeps its data: the path of its SQLite file, or `postgres://USER@HOST:PORT/DATABASE` for
    /// a PostgreSQL database its replicas share (the password from the URL, or `RESCIND_DATABASE_PASSWORD`).
    public var database: String
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`.
    public var logLevel: String
    /// This replica's name among the daemon's replicas on one database, the same across its restarts (its
    /// leases are taken back at once when it starts again); `HOST:PORT` of its listener when absent.
    public var replica: String?

    public init(
        identity: String, listen: RPCServer.Configuration, tls: TLSFiles, database: String,
        logLevel: String = "info"
    ) {
        self.identity = identity
        self.listen = listen
        self.tls = tls
        self.database = database
        self.logLevel = logLevel
    }

    /// `database` read: a SQLite file or a PostgreSQL database.
    /// - Throws: `ConfigurationError` for a PostgreSQL URL that is not one.
    public var storage: StorageLocation {
        get throws {
            guard database.hasPrefix("postgres://") || database.hasPrefix("postgresql://") else {
                return .sqlite(path: database)
            }
            do {
                var location = try PostgresDatabase.Location(url: database)
                if location.password == nil {
                    location.password = ProcessInfo.processInfo.environment["RESCIND_DATABASE_PASSWORD"]
                }
                return .postgres(location)
            } catch {
                throw ConfigurationError(message: "database: \(error)")
            }
        }
    }

    /// This run of this replica, as a holder of leases.
    public var leaseHolder: LeaseHolder {
        LeaseHolder(replica: replica ?? "\(ProcessInfo.processInfo.hostName):\(listen.port)")
    }

    enum CodingKeys: String, CodingKey {
        case identity, listen, tls, database, replica
        case logLevel = "log_level"
    }

    /// Reads a configuration; `listen` fields and `log_level` are optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        identity = try c.decode(String.self, forKey: .identity)
        listen = try c.decode(RPCServer.Configuration.self, forKey: .listen)
        tls = try c.decode(TLSFiles.self, forKey: .tls)
        database = try c.decode(String.self, forKey: .database)
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? "info"
        replica = try c.decodeIfPresent(String.self, forKey: .replica)
        if let replica, replica.isEmpty || replica.contains("/") {
            throw DecodingError.dataCorruptedError(
                forKey: .replica, in: c, debugDescription: "replica must be a name without /")
        }
    }

    /// Reads a JSON configuration file.
    /// - Throws: `ConfigurationError` naming the file and what is wrong.
    public static func load<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError(message: "cannot read configuration \(path): \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ConfigurationError(
                message: "configuration \(path): missing \(Self.path(context.codingPath + [key]))"
            )
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
            let DecodingError.dataCorrupted(context)
        {
            throw ConfigurationError(
                message:
                    "configuration \(path): bad value at \(Self.path(context.codingPath)): \(context.debugDescription)"
            )
        } catch {
            throw ConfigurationError(message: "configuration \(path): \(error)")
        }
    }

    /// Writes a configuration as pretty, key-sorted JSON.
    /// - Throws: encoding or file errors.
    public static func write<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
}

/// A configuration file that cannot be used.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
