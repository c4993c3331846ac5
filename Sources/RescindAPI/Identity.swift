/// Who a peer is, read from the common name of its TLS certificate, never from a payload.
public struct Identity: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static let orders = Identity("orders")
    public static let payments = Identity("payments")
    public static let inventory = Identity("inventory")
    /// A person or script operating the suite through `rescindctl`.
    public static let `operator` = Identity("operator")

    /// The identities of the three daemons.
    public static let daemons: [Identity] = [.orders, .payments, .inventory]

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A method of a daemon: its name on the wire, its request and response types, and who may call it.
public struct Method<Request: Codable & Sendable, Response: Codable & Sendable>: Sendable {
    /// The name in the request envelope, `service.verb`.
    public let name: String
    /// The identities allowed to call it; anyone else gets `permission_denied`.
    public let callers: Set<Identity>
    /// Whether a request without an idempotency key is refused with `invalid_argument`.
    public let requiresIdempotencyKey: Bool

    public init(_ name: String, callers: Set<Identity>, requiresIdempotencyKey: Bool = false) {
        self.name = name
        self.callers = callers
        self.requiresIdempotencyKey = requiresIdempotencyKey
    }
}

/// An empty request or response body (encoded as an empty CBOR map).
public struct Empty: Codable, Sendable, Hashable {
    public init() {}
}

/// What every daemon answers to `health`.
public struct HealthStatus: Codable, Sendable, Hashable {
    public var service: String
    public var status: String
    public var version: String
    public var pid: Int32
    public var uptimeSeconds: Int64

    public init(service: String, status: String, version: String, pid: Int32, uptimeSeconds: Int64) {
        self.service = service
        self.status = status
        self.version = version
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
    }

    enum CodingKeys: String, CodingKey {
        case service, status, version, pid
        case uptimeSeconds = "uptime_seconds"
    }
}

public enum CommonMethods {
    /// Liveness and identity of a daemon; every identity of the suite may call it.
    public static let health = Method<Empty, HealthStatus>(
        "health", callers: [.orders, .payments, .inventory, .operator]
    )
}

/// The version of the suite's software, reported by `health`.
public let rescindVersion = "0.1.0"
