import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RescindAPI
import RescindPKI
import RescindWire
import Synchronization

import struct Foundation.Data

/// A TLS server of the Rescind protocol: many connections, many requests in flight on each, answered out
/// of order by correlation id.
public final class RPCServer: Sendable {
    /// Limits and timeouts of a server; every field has a default fit for a daemon.
    public struct Configuration: Sendable, Codable, Hashable {
        public var host: String
        public var port: Int
        /// Largest accepted value of a frame's length field (default 1 MiB).
        public var maxFrameLength: Int
        /// Most requests a connection may have unanswered; more get `resource_exhausted`.
        public var maxInFlightPerConnection: Int
        /// Seconds a new connection has to complete TLS and send its hello frame.
        public var handshakeTimeoutSeconds: Double
        /// Seconds a connection may stay open with no request in flight and no frame read; then the server
        /// sends `unavailable`/`idle_timeout` and closes it (a client reconnects on its next call).
        public var idleTimeoutSeconds: Double

        public init(
            host: String = "127.0.0.1",
            port: Int = 0,
            maxFrameLength: Int = Frame.defaultMaxLength,
            maxInFlightPerConnection: Int = 256,
            handshakeTimeoutSeconds: Double = 10,
            idleTimeoutSeconds: Double = 300
        ) {
            self.host = host
            self.port = port
            self.maxFrameLength = maxFrameLength
            self.maxInFlightPerConnection = maxInFlightPerConnection
            self.handshakeTimeoutSeconds = handshakeTimeoutSeconds
            self.idleTimeoutSeconds = idleTimeoutSeconds
        }

        /// Reads a configuration; absent fields take their defaults.
        /// - Throws: `DecodingError.dataCorrupted` naming the field for a value out of its range (the port
        ///   0...65535, the frame limit 12...2³²−1, the in-flight limit 1...1 000 000, a timeout above 0 and
        ///   at most a year), so that a configuration file cannot make the daemon trap later.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Configuration()
            func value<T: Decodable & Comparable>(
                _ key: CodingKeys, _ fallback: T, in range: ClosedRange<T>, _ rule: String
            ) throws -> T {
                let value = try c.decodeIfPresent(T.self, forKey: key) ?? fallback
                guard range.contains(value) else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be \(rule)")
                }
                return value
            }
            let year = 365.0 * 86_400
            host = try c.decodeIfPresent(String.self, forKey: .host) ?? defaults.host
            port = try value(.port, defaults.port, in: 0...65_535, "a TCP port, 0 to 65535")
            maxFrameLength = try value(
                .maxFrameLength, defaults.maxFrameLength, in: Frame.headerLength...Int(UInt32.max),
                "12 to 4294967295 bytes")
            maxInFlightPerConnection = try value(
                .maxInFlightPerConnection, defaults.maxInFlightPerConnection, in: 1...1_000_000, "1 to 1000000")
            handshakeTimeoutSeconds = try value(
                .handshakeTimeoutSeconds, defaults.handshakeTimeoutSeconds, in: 0.001...year,
                "0.001 to 31536000 seconds")
            idleTimeoutSeconds = try value(
                .idleTimeoutSeconds, defaults.idleTimeoutSeconds, in: 0.001...year, "0.001 to 31536000 seconds")
        }

        enum CodingKeys: String, CodingKey {
            case host, port
            case maxFrameLength = "max_frame_length"
            case maxInFlightPerConnection = "max_in_flight_per_connection"
            case handshakeTimeoutSeconds = "handshake_timeout_seconds"
            case idleTimeoutSeconds = "idle_timeout_seconds"
        }
    }

    /// The identity this server presents (its certificate's common name).
    public let identity: Identity
    public let configuration: Configuration
    private let router: RPCRouter
    private let logger: Logger
    private let serverChannel: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>
    private let connectionCounter = Atomic<UInt64>(0)
    private let connections = Mutex<Connections>(Connections())

    private struct Connections {
        var open: [UInt64: (channel: any Channel, inFlight: InFlightRequests)] = [:]
        var shuttingDown = false
    }

    /// The port the server listens on (useful when configured with port 0).
    public var port: Int { serverChannel.channel.localAddress?.port ?? configuration.port }

    /// Binds the listening socket. Call `serve()` to accept connections.
    /// - Throws: `TransportError` if TLS material cannot be loaded or the address cannot be bound.
    public static func bind(
        configuration: Configuration,
        identity: Identity,
        tls: TLSFiles,
        router: RPCRouter,
        logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RPCServer {
        let sslContext = try tls.makeServerContext()
        let maxFrameLength = configuration.maxFrameLength
        let channel: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 256)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.host, port: configuration.port) { child in
                    child.eventLoop.makeCompletedFuture {
                        let sync = child.pipeline.syncOperations
                        try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                        try sync.addHandler(FlushCoalescer())
                        try sync.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: maxFrameLength)))
                        try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                        return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: child)
                    }
                }
        } catch {
            throw TransportError(.bind, "cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        return RPCServer(
            identity: identity,
            configuration: configuration,
            router: router,
            logger: logger,
            serverChannel: channel
        )
    }

    private init(
        identity: Identity,
        configuration: Configuration,
        router: RPCRouter,
        logger: Logger,
        serverChannel: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>
    ) {
        self.identity = identity
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.serverChannel = serverChannel
    }

    /// Accepts and serves connections until the task is cancelled, then closes the listener.
    public func serve() async throws {
        logger.info("listening", metadata: ["port": "\(port)", "identity": "\(identity)"])
        try await withThrowingDiscardingTaskGroup { group in
            try await serverChannel.executeThenClose { inbound in
                for try await connection in inbound {
                    // The connection's requests run on its event loop (EventLoopTaskExecutor says why).
                    group.addTask(executorPreference: EventLoopTaskExecutor(connection.channel.eventLoop)) {
                        await self.handle(connection)
                    }
                }
            }
        }
    }

    /// Closes the listener and every connection at once; `serve()` then returns.
    public func close() async {
        await shutdownGracefully(drainTimeout: .zero)
    }

    /// Stops accepting connections, lets the requests in flight finish (for at most `drainTimeout`), then
    /// closes every connection; `serve()` then returns.
    public func shutdownGracefully(drainTimeout: Duration = .seconds(10)) async {
        connections.withLock { $0.shuttingDown = true }
        try? await serverChannel.channel.close()
        let deadline = ContinuousClock.now + drainTimeout
        while ContinuousClock.now < deadline,
            !connections.withLock({ $0.open.values.allSatisfy { $0.inFlight.isEmpty } })
        {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let open = connections.withLock { Array($0.open.values) }
        for connection in open { connection.channel.close(promise: nil) }
        logger.info("stopped serving", metadata: ["connections_closed": "\(open.count)"])
    }

    private func handle(_ connection: NIOAsyncChannel<Frame, Frame>) async {
        let connectionID = connectionCounter.add(1, ordering: .relaxed).newValue
        var logger = self.logger
        logger[metadataKey: "connection"] = "\(connectionID)"
        if let remote = connection.channel.remoteAddress { logger[metadataKey: "remote"] = "\(remote)" }
        let channel = connection.channel
        let handshakeDone = Atomic<Bool>(false)
        // A peer that opens TLS and then says nothing must not hold a connection for ever.
        let timeout = channel.eventLoop.scheduleTask(
            in: .milliseconds(Int64(configuration.handshakeTimeoutSeconds * 1000))
        ) {
            if !handshakeDone.load(ordering: .relaxed) {
                channel.close(promise: nil)
            }
        }
        defer { timeout.cancel() }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                let peer = try await self.handshake(&frames, outbound: outbound, channel: channel, logger: logger) {
                    // The first frame arrived in time: the handshake timeout no longer applies.
                    handshakeDone.store(true, ordering: .relaxed)
                    timeout.cancel()
                }
                guard let peer else { return }
                logger[metadataKey: "peer"] = "\(peer)"
                logger.debug("connection ready")
                let inFlight = InFlightRequests()
                let accepted = self.connections.withLock { connections in
                    guard !connections.shuttingDown else { return false }
                    connections.open[connectionID] = (channel, inFlight)
                    return true
                }
                guard accepted else { return }
                defer { self.connections.withLock { _ = $0.open.removeValue(forKey: connectionID) } }
                let watchdogLogger = logger
                let watchdog = Task {
                    await self.closeWhenIdle(
                        channel: channel, outbound: outbound, inFlight: inFlight, logger: watchdogLogger)
                }
                defer { watchdog.cancel() }
                try await self.serveRequests(
                    &frames, outbound: outbound, inFlight: inFlight, peer: peer, logger: logger)
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Closes the connection once it has had no request in flight and no frame for `idleTimeoutSeconds`,
    /// with the connection error `unavailable`/`idle_timeout`, so that idle peers do not hold it for ever.
    /// Checked four times per timeout, so the connection closes between one and 1.25 timeouts of idleness.
    private func closeWhenIdle(
        channel: any Channel,
        outbound: NIOAsyncChannelOutboundWriter<Frame>,
        inFlight: InFlightRequests,
        logger: Logger
    ) async {
        let timeout = Duration.milliseconds(Int64(configuration.idleTimeoutSeconds * 1000))
        guard timeout > .zero else { return }
        while true {
            do {
                try await Task.sleep(for: timeout / 4)
            } catch {
                return
            }
            guard inFlight.isIdle(for: timeout) else { continue }
            logger.debug("closing an idle connection")
            let error = RescindError(
                .unavailable, "closing a connection idle for \(configuration.idleTimeoutSeconds) s",
                reason: "idle_timeout")
            try? await outbound.write(errorFrame(error, correlationID: 0))
            try? await channel.close()
            return
        }
    }

    /// Reads the client's hello, checks its version, answers with ours. Returns nil if the connection must close.
    private func handshake(
        _ frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<Frame>,
        channel: any Channel,
        logger: Logger,
        firstFrameArrived: () -> Void
    ) async throws -> Identity? {
        let first: Frame?
        do {
            first = try await frames.next()
            firstFrameArrived()
        } catch let error as FrameError {
            try? await outbound.write(errorFrame(error.rescindError, correlationID: 0))
            return nil
        }
        guard let first else { return nil }
        guard first.version == Frame.currentVersion else {
            try await outbound.write(errorFrame(unsupportedVersion(frameVersion: first.version), correlationID: 0))
            return nil
        }
        guard first.kind == .hello, first.correlationID == 0, first.flags == 0 else {
            let error = RescindError(
                .malformed, "the first frame must be a hello with correlation id 0 and flags 0",
                reason: "expected_hello")
            try await outbound.write(errorFrame(error, correlationID: 0))
            return nil
        }
        let hello: ClientHello
        do {
            hello = try WireCodec().decode(ClientHello.self, from: first.body)
        } catch {
            let error = RescindError(.malformed, "cannot read the hello frame: \(error)", reason: "bad_hello")
            try await outbound.write(errorFrame(error, correlationID: 0))
            return nil
        }
        guard let version = ProtocolVersion.supported.first(where: hello.versions.contains) else {
            let error = RescindError(
                .unsupportedVersion,
                "no common protocol version: client speaks \(hello.versions), server speaks \(ProtocolVersion.supported)",
                retryable: false
            )
            try await outbound.write(errorFrame(error, correlationID: 0))
            return nil
        }
        guard let peer = try? await Self.peerIdentity(of: channel) else {
            let error = RescindError(
                .permissionDenied, "the client certificate has no single common name to identify it",
                reason: "no_identity"
            )
            try await outbound.write(errorFrame(error, correlationID: 0))
            return nil
        }
        let reply = ServerHello(
            version: version,
            server: identity.rawValue,
            maxInFlight: UInt32(clamping: configuration.maxInFlightPerConnection)
        )
        try await outbound.write(Frame(kind: .hello, correlationID: 0, body: try WireCodec().encode(reply)))
        logger.debug("hello", metadata: ["agent": "\(hello.agent)", "version": "\(version)"])
        return peer
    }

    /// Reads the identity of a TLS peer from the common name of its validated certificate.
    static func peerIdentity(of channel: any Channel) async throws -> Identity? {
        guard let certificate = try await channel.nioSSL_peerCertificate().get() else { return nil }
        let name = try CertificateIdentity.commonName(fromDER: try certificate.toDERBytes())
        return Identity(name)
    }

    private func serveRequests(
        _ frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<Frame>,
        inFlight: InFlightRequests,
        peer: Identity,
        logger: Logger
    ) async throws {
        let maxInFlight = configuration.maxInFlightPerConnection
        try await withThrowingDiscardingTaskGroup { group in
            while true {
                let frame: Frame
                do {
                    guard let next = try await frames.next() else { return }
                    frame = next
                } catch let error as FrameError {
                    logger.notice("closing connection after a bad frame", metadata: ["error": "\(error)"])
                    try? await outbound.write(errorFrame(error.rescindError, correlationID: 0))
                    return
                }
                // A frame this version cannot interpret, or one that breaks the request/answer pairing, ends
                // the connection: after it the two sides no longer agree on what is in flight.
                if let fatal = connectionError(for: frame) {
                    logger.notice("closing connection", metadata: ["error": "\(fatal)"])
                    try? await outbound.write(errorFrame(fatal, correlationID: 0))
                    return
                }
                switch inFlight.admit(frame.correlationID, limit: maxInFlight) {
                case .admitted:
                    break
                case .duplicate:
                    let error = RescindError(
                        .malformed, "correlation id \(frame.correlationID) is already in flight",
                        reason: "duplicate_correlation_id"
                    )
                    logger.notice("closing connection", metadata: ["error": "\(error)"])
                    try? await outbound.write(errorFrame(error, correlationID: 0))
                    return
                case .full:
                    let error = RescindError(
                        .resourceExhausted, "more than \(maxInFlight) requests in flight on one connection",
                        reason: "too_many_in_flight"
                    )
                    try await outbound.write(errorFrame(error, correlationID: frame.correlationID))
                    continue
                }
                group.addTask {
                    let reply = await self.answer(frame, peer: peer, logger: logger)
                    inFlight.answered(frame.correlationID)
                    try? await outbound.write(reply)
                    inFlight.written()
                }
                await inFlight.waitForRoom(limit: maxInFlight)
            }
        }
    }

    /// An error that ends the connection: a frame this version cannot interpret.
    private func connectionError(for frame: Frame) -> RescindError? {
        if frame.version != Frame.currentVersion { return unsupportedVersion(frameVersion: frame.version) }
        if !frame.kind.isKnown {
            return RescindError(.malformed, "unknown frame kind \(frame.kind.rawValue)", reason: "unknown_frame_kind")
        }
        if frame.flags != 0 {
            return RescindError(.malformed, "reserved flags must be 0", reason: "bad_flags")
        }
        if frame.kind != .request {
            return RescindError(
                .malformed, "a client may not send \(frame.kind) frames after hello", reason: "unexpected_frame"
            )
        }
        if frame.correlationID == 0 {
            return RescindError(
                .malformed, "a request needs a correlation id other than 0", reason: "missing_correlation_id"
            )
        }
        return nil
    }

    private func unsupportedVersion(frameVersion: UInt8) -> RescindError {
        RescindError(
            .unsupportedVersion,
            "frame version \(frameVersion) is not supported; this server speaks \(Frame.currentVersion)",
            retryable: false
        )
    }

    private func answer(_ frame: Frame, peer: Identity, logger: Logger) async -> Frame {
        var logger = logger
        logger[metadataKey: "correlation_id"] = "\(frame.correlationID)"
        do {
            let envelope: RequestEnvelope
            do {
                envelope = try WireCodec().decode(RequestEnvelope.self, from: frame.body)
            } catch {
                throw RescindError.invalidArgument("cannot read the request envelope: \(error)", reason: "bad_envelope")
            }
            let body = try await router.dispatch(envelope, peer: peer, logger: logger)
            guard body.readableBytes + Frame.headerLength <= configuration.maxFrameLength else {
                throw RescindError(
                    .resourceExhausted,
                    "the answer of \(envelope.method) is \(body.readableBytes) bytes, above the frame limit; ask for less",
                    reason: "response_too_large", retryable: false
                )
            }
            return Frame(kind: .response, correlationID: frame.correlationID, body: body)
        } catch let error as RescindError {
            if error.code == .internal || error.code == .permissionDenied {
                logger.warning("request failed", metadata: ["error": "\(error)"])
            } else {
                logger.debug("request failed", metadata: ["error": "\(error)"])
            }
            return errorFrame(error, correlationID: frame.correlationID)
        } catch {
            logger.error("request failed unexpectedly", metadata: ["error": "\(error)"])
            return errorFrame(RescindError.internalError("unexpected failure"), correlationID: frame.correlationID)
        }
    }
}

/// An error frame for a correlation id (0 for the connection).
func errorFrame(_ error: RescindError, correlationID: UInt64) -> Frame {
    // Encoding a RescindError cannot fail: it holds strings and a bool only.
    let body = (try? WireCodec().encode(error)) ?? ByteBuffer()
    return Frame(kind: .error, correlationID: correlationID, body: body)
}

/// The correlation ids a connection has in flight, shared by the tasks answering them.
final class InFlightRequests: Sendable {
    enum Admission {
        case admitted, duplicate, full
    }

    private struct State {
        /// Requests not answered yet: their ids may not be reused.
        var ids: Set<UInt64> = []
        /// When a request last arrived or an answer was last handed to the channel.
        var lastActivity = ContinuousClock.now
        /// Answers made but not yet handed to the channel (a peer that does not read holds them here).
        var unwritten = 0
        /// The read loop, waiting for unwritten answers to drain.
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Admits a request if fewer than `limit` are unanswered.
    func admit(_ id: UInt64, limit: Int) -> Admission {
        state.withLock { state in
            state.lastActivity = .now
            if state.ids.contains(id) { return .duplicate }
            if state.ids.count >= limit { return .full }
            state.ids.insert(id)
            return .admitted
        }
    }

    /// Waits while answers not yet written, with the requests still running, reach `limit`, so a peer that
    /// does not read its answers stops being read instead of piling answers up in memory. (Requests still
    /// running alone never block the read loop: the next one is refused with `too_many_in_flight`.)
    func waitForRoom(limit: Int) async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                guard state.unwritten > 0, state.ids.count + state.unwritten >= limit else { return true }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// The request has its answer: its id is free again, its answer is about to be written.
    func answered(_ id: UInt64) {
        state.withLock { state in
            if state.ids.remove(id) != nil { state.unwritten += 1 }
        }
    }

    /// An answer was handed to the channel.
    func written() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.unwritten = max(0, state.unwritten - 1)
            state.lastActivity = .now
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    var isEmpty: Bool { state.withLock { $0.ids.isEmpty && $0.unwritten == 0 } }

    /// Whether nothing is in flight and nothing has happened for `timeout`.
    func isIdle(for timeout: Duration) -> Bool {
        state.withLock { $0.ids.isEmpty && $0.unwritten == 0 && ContinuousClock.now - $0.lastActivity >= timeout }
    }
}
