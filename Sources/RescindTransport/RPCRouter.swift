import Logging
import NIOCore
import RescindAPI
import RescindWire

import struct Foundation.Date

/// What a handler knows about the request beyond its body.
public struct RequestContext: Sendable {
    /// The caller, from its certificate.
    public var peer: Identity
    public var method: String
    public var idempotencyKey: String?
    public var deadline: Date
    /// The request body exactly as received, for idempotency fingerprints.
    public var rawPayload: [UInt8]
    /// Carries peer, connection and request metadata.
    public var logger: Logger

    public init(
        peer: Identity, method: String, idempotencyKey: String?, deadline: Date, rawPayload: [UInt8],
        logger: Logger
    ) {
        self.peer = peer
        self.method = method
        self.idempotencyKey = idempotencyKey
        self.deadline = deadline
        self.rawPayload = rawPayload
        self.logger = logger
    }
}

/// Maps method names to handlers and enforces who may call what.
public struct RPCRouter: Sendable {
    typealias Handler = @Sendable ([UInt8], RequestContext) async throws -> ByteBuffer

    struct Route: Sendable {
        var callers: Set<Identity>
        var requiresIdempotencyKey: Bool
        var handler: Handler
    }

    private var routes: [String: Route] = [:]

    public init() {}

    /// The names of every registered method.
    public var methodNames: [String] { routes.keys.sorted() }

    /// Registers the handler of a method. A later registration of the same name replaces the earlier one.
    public mutating func register<Request, Response>(
        _ method: Method<Request, Response>,
        handler: @escaping @Sendable (Request, RequestContext) async throws -> Response
    ) {
        routes[method.name] = Route(
            callers: method.callers,
            requiresIdempotencyKey: method.requiresIdempotencyKey
        ) { payload, context in
            let codec = WireCodec()
            let request = try codec.decodeRequest(Request.self, from: payload)
            let response = try await handler(request, context)
            do {
                return try codec.encode(response)
            } catch {
                throw RescindError.internalError("cannot encode the response of \(method.name)")
            }
        }
    }

    /// Runs the method named in the envelope for a peer, returning the encoded response.
    /// - Throws: `RescindError` for an unknown method, a caller without permission, a missing idempotency
    ///   key, a passed deadline, or whatever the handler throws; any other error becomes `internal`.
    public func dispatch(_ envelope: RequestEnvelope, peer: Identity, logger: Logger) async throws -> ByteBuffer {
        guard let route = routes[envelope.method] else {
            throw RescindError(.unimplemented, "no method named \(envelope.method)", reason: "unknown_method")
        }
        guard route.callers.contains(peer) else {
            throw RescindError(
                .permissionDenied,
                "\(peer) may not call \(envelope.method)",
                reason: "identity_not_allowed"
            )
        }
        // An empty key is no key.
        var envelope = envelope
        if envelope.idempotencyKey?.isEmpty == true { envelope.idempotencyKey = nil }
        if route.requiresIdempotencyKey, envelope.idempotencyKey == nil {
            throw RescindError.invalidArgument(
                "\(envelope.method) requires an idempotency key",
                reason: "missing_idempotency_key"
            )
        }
        if let key = envelope.idempotencyKey, key.utf8.count > 255 {
            throw RescindError.invalidArgument("idempotency key longer than 255 bytes", reason: "bad_idempotency_key")
        }
        let deadline = Date(timeIntervalSince1970: Double(envelope.deadlineMillis) / 1000)
        guard deadline > Date() else {
            throw RescindError(.deadlineExceeded, "the request arrived after its deadline")
        }
        var logger = logger
        logger[metadataKey: "method"] = "\(envelope.method)"
        if let key = envelope.idempotencyKey { logger[metadataKey: "idempotency_key"] = "\(key)" }
        let context = RequestContext(
            peer: peer,
            method: envelope.method,
            idempotencyKey: envelope.idempotencyKey,
            deadline: deadline,
            rawPayload: Array(envelope.payload),
            logger: logger
        )
        do {
            return try await route.handler(context.rawPayload, context)
        } catch let error as RescindError {
            throw error
        } catch {
            logger.error("handler failed", metadata: ["error": "\(error)"])
            throw RescindError.internalError("\(envelope.method) failed unexpectedly")
        }
    }
}
