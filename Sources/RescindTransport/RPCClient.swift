import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RescindAPI
import RescindCBOR
import RescindWire

import struct Foundation.Data
import struct Foundation.Date

/// A client of one daemon: one long-lived TLS connection, many calls in flight on it, reconnecting with
/// backoff when it drops. Every call has a deadline; failures are `RescindError`s.
public actor RPCClient {
    /// How a client reaches and waits for a daemon.
    public struct Configuration: Sendable {
        public var endpoint: Endpoint
        /// The identity the server's certificate must carry; nil accepts any certificate of the suite's CA.
        public var expectedServer: Identity?
        /// Deadline of a call that names none.
        public var defaultTimeout: Duration
        /// Delay before the first reconnection attempt; doubles per failure up to `maxBackoff`.
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        public var maxFrameLength: Int
        /// Names the client software in the hello frame.
        public var agent: String
        /// How long after a request's deadline its late answer may still come. A server answers every
        /// request, so none by then means the connection is dead (a partition, a hung peer): it is closed, and
        /// the next call opens another.
        public var answerGrace: Duration
        /// How long a connect may take at most (the call's deadline when nil); a group of replicas sets 1 s, so
        /// that a dead host is passed over soon.
        public var connectTimeout: Duration?

        public init(
            endpoint: Endpoint,
            expectedServer: Identity? = nil,
            defaultTimeout: Duration = .seconds(10),
            initialBackoff: Duration = .milliseconds(50),
            maxBackoff: Duration = .seconds(5),
            maxFrameLength: Int = Frame.defaultMaxLength,
            agent: String = "rescind/\(rescindVersion)",
            answerGrace: Duration = .seconds(10),
            connectTimeout: Duration? = nil
        ) {
            self.answerGrace = answerGrace
            self.connectTimeout = connectTimeout
            self.endpoint = endpoint
            self.expectedServer = expectedServer
            self.defaultTimeout = defaultTimeout
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.maxFrameLength = maxFrameLength
            self.agent = agent
        }
    }

    private enum State {
        case idle
        case connecting(Task<any Channel, any Error>)
        case connected(any Channel)
        case shutDown
    }

    public nonisolated let configuration: Configuration
    private let sslContext: NIOSSLContext
    private let group: any EventLoopGroup
    private let logger: Logger
    private var state: State = .idle
    private var consecutiveFailures = 0
    private var nextAttempt: ContinuousClock.Instant = .now

    /// Creates a client; it connects on the first call.
    /// - Throws: `TransportError` if the TLS material cannot be loaded.
    public init(
        configuration: Configuration,
        tls: TLSFiles,
        logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.configuration = configuration
        self.sslContext = try tls.makeClientContext()
        self.group = group
        var logger = logger
        logger[metadataKey: "server"] = "\(configuration.endpoint)"
        self.logger = logger
    }

    /// Calls a method and waits for its answer.
    /// - Parameters:
    ///   - idempotencyKey: makes a repeat of this call return the first answer instead of acting twice.
    ///   - timeout: the call's deadline from now (default `configuration.defaultTimeout`).
    /// - Throws: `RescindError`: the callee's error, `unavailable` if it cannot be reached,
    ///   `deadline_exceeded` if it did not answer in time.
    public nonisolated func call<Request, Response>(
        _ method: Method<Request, Response>,
        _ request: Request,
        idempotencyKey: String? = nil,
        timeout: Duration? = nil
    ) async throws -> Response {
        do {
            return try await attempt(method, request, idempotencyKey: idempotencyKey, timeout: timeout)
        } catch let unsent as Unsent {
            throw unsent.error
        }
    }

    /// A call that failed before its request left: the server never saw it, so any replica may take it.
    struct Unsent: Error {
        var error: RescindError
    }

    /// `call`, telling a failure before the request left (`Unsent`) from one after.
    nonisolated func attempt<Request, Response>(
        _ method: Method<Request, Response>,
        _ request: Request,
        idempotencyKey: String?,
        timeout: Duration?
    ) async throws -> Response {
        let codec = WireCodec()
        let start = ContinuousClock.now
        let budget = timeout ?? configuration.defaultTimeout
        let deadline = start + budget
        let payload: [UInt8]
        do {
            payload = try codec.encoder.encode(request)
        } catch {
            throw RescindError.invalidArgument("cannot encode the request of \(method.name): \(error)")
        }
        let wallDeadline = Date().addingTimeInterval(budget.seconds)
        let envelope = RequestEnvelope(
            method: method.name,
            deadlineMillis: RequestEnvelope.millis(wallDeadline),
            idempotencyKey: idempotencyKey,
            payload: Data(payload)
        )
        let channel: any Channel
        do {
            channel = try await connection(before: deadline)
        } catch let error as RescindError {
            throw Unsent(error: error)
        }
        let frame = Frame(kind: .request, correlationID: 0, body: try codec.encode(envelope))
        let remaining = deadline - ContinuousClock.now
        let promise = channel.eventLoop.makePromise(of: Frame.self)
        let call = OutboundCall(
            frame: frame,
            response: promise,
            deadline: .now() + .nanoseconds(max(0, remaining.nanoseconds))
        )
        // A channel that closed under us drops the write before the handler sees it: fail the call then.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            promise.fail(
                Unsent(error: RescindError(.unavailable, "the connection closed before the request was sent: \(error)"))
            )
        }
        channel.writeAndFlush(call, promise: written)
        let reply = try await promise.futureResult.get()
        switch reply.kind {
        case .response:
            do {
                return try codec.decode(Response.self, from: reply.body)
            } catch {
                throw RescindError(.internal, "cannot read the response of \(method.name): \(error)", retryable: false)
            }
        case .error:
            throw (try? codec.decode(RescindError.self, from: reply.body))
                ?? RescindError(.internal, "unreadable error frame for \(method.name)")
        default:
            throw RescindError(.internal, "unexpected \(reply.kind) frame in answer to \(method.name)")
        }
    }

    /// Closes the connection; later calls fail with `unavailable`.
    public func shutdown() async {
        let previous = state
        state = .shutDown
        switch previous {
        case .connected(let channel):
            try? await channel.close()
        case .connecting(let task):
            if let channel = try? await task.value { try? await channel.close() }
        case .idle, .shutDown:
            break
        }
    }

    private func connection(before deadline: ContinuousClock.Instant) async throws -> any Channel {
        while true {
            switch state {
            case .connected(let channel):
                if channel.isActive { return channel }
                state = .idle
            case .connecting(let task):
                do {
                    return try await task.value
                } catch {
                    // The attempt's owner records the failure; report it to this caller too.
                    throw Self.unavailable(error, endpoint: configuration.endpoint)
                }
            case .shutDown:
                throw RescindError(.unavailable, "the client is shut down", retryable: false)
            case .idle:
                if nextAttempt > .now {
                    guard nextAttempt < deadline else {
                        throw RescindError(
                            .unavailable,
                            "\(configuration.endpoint) is unreachable; next attempt after the deadline"
                        )
                    }
                    try await Task.sleep(until: nextAttempt)
                    continue
                }
                let task = Task { try await self.connect(deadline: deadline) }
                state = .connecting(task)
                do {
                    let channel = try await task.value
                    if case .shutDown = state {
                        try? await channel.close()
                        throw RescindError(.unavailable, "the client is shut down", retryable: false)
                    }
                    state = .connected(channel)
                    consecutiveFailures = 0
                    channel.closeFuture.whenComplete { _ in
                        Task { await self.connectionClosed(channel) }
                    }
                    return channel
                } catch {
                    if case .connecting = state { state = .idle }
                    consecutiveFailures += 1
                    let exponent = min(consecutiveFailures - 1, 16)
                    let backoff = min(configuration.initialBackoff * (1 << exponent), configuration.maxBackoff)
                    nextAttempt = .now + backoff
                    logger.debug("connect failed", metadata: ["error": "\(error)", "backoff": "\(backoff)"])
                    if let rescindError = error as? RescindError, !rescindError.retryable { throw rescindError }
                    throw Self.unavailable(error, endpoint: configuration.endpoint)
                }
            }
        }
    }

    private func connectionClosed(_ channel: any Channel) {
        if case .connected(let current) = state, current === channel {
            state = .idle
        }
    }

    private static func unavailable(_ error: any Error, endpoint: Endpoint) -> RescindError {
        if let error = error as? RescindError, error.code == .unavailable { return error }
        return RescindError(.unavailable, "cannot reach \(endpoint): \(error)")
    }

    private func connect(deadline: ContinuousClock.Instant) async throws -> any Channel {
        let endpoint = configuration.endpoint
        let sslContext = self.sslContext
        let maxFrameLength = configuration.maxFrameLength
        let answerGrace = TimeAmount.nanoseconds(configuration.answerGrace.nanoseconds)
        let serverHostname = endpoint.hostIsIPAddress ? nil : endpoint.host
        let timeout = min(deadline - ContinuousClock.now, configuration.connectTimeout ?? .seconds(3_600))
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.nanoseconds(max(1, timeout.nanoseconds)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                    try sync.addHandler(FlushCoalescer())
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: maxFrameLength)))
                    try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                    try sync.addHandler(ClientConnectionHandler(answerGrace: answerGrace))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        do {
            let hello = ClientHello(versions: ProtocolVersion.supported, agent: configuration.agent)
            let promise = channel.eventLoop.makePromise(of: Frame.self)
            let frame = Frame(kind: .hello, correlationID: 0, body: try WireCodec().encode(hello))
            let remaining = deadline - ContinuousClock.now
            let helloTimeout = channel.eventLoop.scheduleTask(in: .nanoseconds(max(1, remaining.nanoseconds))) {
                promise.fail(RescindError(.deadlineExceeded, "no hello from \(endpoint) before the deadline"))
            }
            let written = channel.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { error in
                promise.fail(
                    RescindError(.unavailable, "the connection to \(endpoint) closed during the hello: \(error)"))
            }
            channel.writeAndFlush(
                OutboundCall(frame: frame, response: promise, deadline: .distantFuture), promise: written)
            let reply = try await promise.futureResult.get()
            helloTimeout.cancel()
            let serverHello = try WireCodec().decode(ServerHello.self, from: reply.body)
            guard ProtocolVersion.supported.contains(serverHello.version) else {
                throw RescindError(
                    .unsupportedVersion, "server chose version \(serverHello.version)", retryable: false
                )
            }
            if let expected = configuration.expectedServer {
                let actual = try await RPCServer.peerIdentity(of: channel)
                guard actual == expected else {
                    throw RescindError(
                        .permissionDenied,
                        "\(endpoint) presented identity \(actual?.rawValue ?? "none"), expected \(expected)",
                        reason: "wrong_server_identity"
                    )
                }
            }
            return channel
        } catch {
            try? await channel.close()
            throw error
        }
    }
}
