import Logging
import RescindAPI
import RescindCBOR
import RescindWire

import struct Foundation.Data
import struct Foundation.Date

/// Something that can call a daemon's methods: a TLS `RPCClient`, or an `InProcessCaller` in tests.
public protocol RPCCaller: Sendable {
    /// Calls a method and waits for its answer.
    /// - Throws: `RescindError`.
    func call<Request, Response>(
        _ method: Method<Request, Response>,
        _ request: Request,
        idempotencyKey: String?,
        timeout: Duration?
    ) async throws -> Response
}

extension RPCClient: RPCCaller {}

/// Calls a router directly, as a given identity, through the same encoding, authorisation and
/// idempotency path as the network; for component tests and for wiring services in one process.
public struct InProcessCaller: RPCCaller {
    public var router: RPCRouter
    public var peer: Identity
    public var logger: Logger

    public init(
        router: RPCRouter, peer: Identity,
        logger: Logger = Logger(label: "rescind.in-process", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.router = router
        self.peer = peer
        self.logger = logger
    }

    public func call<Request, Response>(
        _ method: Method<Request, Response>,
        _ request: Request,
        idempotencyKey: String?,
        timeout: Duration?
    ) async throws -> Response {
        let codec = WireCodec()
        let deadline = Date().addingTimeInterval((timeout ?? .seconds(10)).seconds)
        let envelope = RequestEnvelope(
            method: method.name,
            deadlineMillis: RequestEnvelope.millis(deadline),
            idempotencyKey: idempotencyKey,
            payload: Data(try codec.encoder.encode(request))
        )
        let body = try await router.dispatch(envelope, peer: peer, logger: logger)
        return try codec.decode(Response.self, from: body)
    }
}
