import RescindWire

/// Who a peer is, read from the common name of its TLS certificate, never from a payload.
public struct Identity: ExtensibleValue {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let orders = Identity("orders")
    public static let payments = Identity("payments")
    public static let inventory = Identity("inventory")
    /// A person or script operating the suite through `rescindctl`.
    public static let `operator` = Identity("operator")
    /// The customer-facing storefront: it may call only customer methods, each with the order's customer token.
    public static let storefront = Identity("storefront")

    /// The identities of the three daemons.
    public static let daemons: [Identity] = [.orders, .payments, .inventory]

    public static let known: [Identity] = daemons + [.operator, .storefront]
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
    /// Sagas that need attention, on a daemon that runs sagas (Orders); absent elsewhere.
    public var sagas: SagaHealth?
    /// The processor's events waiting for a person, on Payments; absent elsewhere.
    public var processorEvents: ProcessorEventHealth?

    public init(
        service: String, status: String, version: String, pid: Int32, uptimeSeconds: Int64, sagas: SagaHealth? = nil,
        processorEvents: ProcessorEventHealth? = nil
    ) {
        self.service = service
        self.status = status
        self.version = version
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
        self.sagas = sagas
        self.processorEvents = processorEvents
    }

    enum CodingKeys: String, CodingKey {
        case service, status, version, pid, sagas
        case uptimeSeconds = "uptime_seconds"
        case processorEvents = "processor_events"
    }
}

/// The sagas of a daemon that need a person or are taking too long.
public struct SagaHealth: Codable, Sendable, Hashable {
    /// Sagas in state `failed`: each needs `sagas.retry` or `sagas.settle`.
    public var failed: Int
    /// Sagas still `running` or `compensating` longer than `stuckAfterSeconds` after they began.
    public var stuck: Int
    /// The threshold (`sagas.stuck_after_seconds` in the Orders configuration).
    public var stuckAfterSeconds: Int64

    public init(failed: Int, stuck: Int, stuckAfterSeconds: Int64) {
        self.failed = failed
        self.stuck = stuck
        self.stuckAfterSeconds = stuckAfterSeconds
    }

    enum CodingKeys: String, CodingKey {
        case failed, stuck
        case stuckAfterSeconds = "stuck_after_seconds"
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
