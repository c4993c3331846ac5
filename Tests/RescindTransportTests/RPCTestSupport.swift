import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RescindAPI
import RescindCBOR
import RescindPKI
import RescindTransport
import RescindWire
import Synchronization
import Testing

// MARK: - Logging

/// Tests keep the transport's logs quiet.
let quietLogger = Logger(label: "rescind.transport-tests", factory: { _ in SilentLogHandler() })

/// Prints nothing but keeps metadata, which handlers read back (the `connection` of `EchoResponse`);
/// `SwiftLogNoOpLogHandler` drops it.
struct SilentLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .critical

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {}
}

// MARK: - Certificates

/// A throwaway PKI: a CA made in memory, and PEM files in a fresh temporary directory for `TLSFiles`.
struct TestPKI: Sendable {
    let directory: URL
    let authority: CertificateAuthority

    init(authority: CertificateAuthority? = nil) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("rescind-transport-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.authority = try authority ?? CertificateAuthority.create()
        try write(self.authority.certificatePEM, to: "ca.pem")
    }

    var caCertificatePath: String { directory.appendingPathComponent("ca.pem").path }

    /// Issues a certificate for `name` (by this CA, or by `issuer`) and returns the files of a peer that
    /// presents it and trusts this PKI's CA.
    func files(
        for name: String,
        hosts: [String] = ["127.0.0.1", "localhost"],
        issuedBy issuer: CertificateAuthority? = nil
    ) throws -> TLSFiles {
        let issued = try (issuer ?? authority).issue(name: name, hosts: hosts)
        let tag = UUID().uuidString.prefix(8)
        let certificate = try write(issued.certificatePEM, to: "\(name)-\(tag).pem")
        let key = try write(issued.privateKeyPEM, to: "\(name)-\(tag)-key.pem")
        return TLSFiles(caCertificatePath: caCertificatePath, certificatePath: certificate, privateKeyPath: key)
    }

    /// A client TLS context that trusts this CA but presents no certificate.
    func anonymousClientContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caCertificatePath))
        configuration.applicationProtocols = [TransportConstants.alpn]
        return try NIOSSLContext(configuration: configuration)
    }

    @discardableResult
    func write(_ text: String, to file: String) throws -> String {
        let url = directory.appendingPathComponent(file)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}

// MARK: - Test methods

struct EchoRequest: Codable, Sendable, Hashable {
    var text: String
    var number: Int
}

struct EchoResponse: Codable, Sendable, Hashable {
    var text: String
    var number: Int
    /// Who the server says called, from the caller's certificate.
    var peer: String
    var idempotencyKey: String?
    /// The server's connection number for the call (from the request logger's metadata).
    var connection: String
}

struct SleepRequest: Codable, Sendable, Hashable {
    var number: Int
    var milliseconds: Int
}

struct SleepResponse: Codable, Sendable, Hashable {
    var number: Int
}

/// The error a handler throws when asked to.
struct FailRequest: Codable, Sendable, Hashable {
    var code: String
    var message: String
    var reason: String?
    var retryable: Bool
    /// Throw a plain Swift error instead of a `RescindError`.
    var plainError: Bool = false
}

struct BlobRequest: Codable, Sendable, Hashable {
    var size: Int
}

struct BlobResponse: Codable, Sendable, Hashable {
    var blob: Data
}

/// A request shape the echo method cannot read.
struct WrongShapeRequest: Codable, Sendable, Hashable {
    var unrelated: Bool
}

struct PlainFailure: Error {}

enum TestMethods {
    static let echo = Method<EchoRequest, EchoResponse>("test.echo", callers: [.operator, .orders])
    static let sleep = Method<SleepRequest, SleepResponse>("test.sleep", callers: [.operator])
    static let fail = Method<FailRequest, Empty>("test.fail", callers: [.operator])
    static let blob = Method<BlobRequest, BlobResponse>("test.blob", callers: [.operator])
    /// Only the payments daemon may call it.
    static let paymentsOnly = Method<EchoRequest, EchoResponse>("test.payments_only", callers: [.payments])
    static let keyed = Method<EchoRequest, EchoResponse>(
        "test.keyed", callers: [.operator], requiresIdempotencyKey: true
    )
    /// Registered nowhere.
    static let missing = Method<Empty, Empty>("test.missing", callers: [.operator])
    /// The echo method's name with a request the echo handler cannot decode.
    static let echoWrongShape = Method<WrongShapeRequest, EchoResponse>("test.echo", callers: [.operator])

    static func echoHandler(_ request: EchoRequest, _ context: RequestContext) async throws -> EchoResponse {
        let connection: String
        if case .string(let value)? = context.logger[metadataKey: "connection"] {
            connection = value
        } else if let value = context.logger[metadataKey: "connection"] {
            connection = "\(value)"
        } else {
            connection = "?"
        }
        return EchoResponse(
            text: request.text,
            number: request.number,
            peer: context.peer.rawValue,
            idempotencyKey: context.idempotencyKey,
            connection: connection
        )
    }

    static func router() -> RPCRouter {
        var router = RPCRouter()
        router.register(echo, handler: echoHandler)
        router.register(paymentsOnly, handler: echoHandler)
        router.register(keyed, handler: echoHandler)
        router.register(sleep) { request, _ in
            try await Task.sleep(for: .milliseconds(request.milliseconds))
            return SleepResponse(number: request.number)
        }
        router.register(fail) { request, _ in
            if request.plainError { throw PlainFailure() }
            throw RescindError(
                RescindError.Code(request.code),
                request.message,
                reason: request.reason,
                retryable: request.retryable
            )
        }
        router.register(blob) { request, _ in
            BlobResponse(blob: Data(repeating: 0x61, count: request.size))
        }
        return router
    }
}

/// Counts the sleep requests a server runs at once (its router also answers echo).
final class Gauge: Sendable {
    private let state = Mutex((running: 0, highest: 0))

    var highest: Int { state.withLock { $0.highest } }
    var running: Int { state.withLock { $0.running } }

    func router() -> RPCRouter {
        var router = RPCRouter()
        router.register(TestMethods.echo, handler: TestMethods.echoHandler)
        router.register(TestMethods.sleep) { request, _ in
            self.state.withLock {
                $0.running += 1
                $0.highest = max($0.highest, $0.running)
            }
            defer { self.state.withLock { $0.running -= 1 } }
            try await Task.sleep(for: .milliseconds(request.milliseconds))
            return SleepResponse(number: request.number)
        }
        return router
    }

    func waitUntilRunning(_ count: Int) async throws {
        for _ in 0..<500 where running < count {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(running >= count)
    }
}

// MARK: - A running server

/// An `RPCServer` bound on 127.0.0.1 and serving in a task.
struct RunningServer: Sendable {
    let server: RPCServer
    let task: Task<Void, any Error>

    var port: Int { server.port }
    var endpoint: Endpoint { Endpoint(host: "127.0.0.1", port: server.port) }

    static func start(
        pki: TestPKI,
        identity: Identity = .orders,
        configuration: RPCServer.Configuration = .init(host: "127.0.0.1", port: 0),
        router: RPCRouter = TestMethods.router()
    ) async throws -> RunningServer {
        let server = try await RPCServer.bind(
            configuration: configuration,
            identity: identity,
            tls: try pki.files(for: identity.rawValue),
            router: router,
            logger: quietLogger
        )
        let task = Task { try await server.serve() }
        return RunningServer(server: server, task: task)
    }

    /// Closes the listener, ends every connection (by cancelling `serve()`) and waits for it to return.
    func stop() async {
        await server.close()
        task.cancel()
        _ = await task.result
    }
}

/// Makes a client of `server` presenting a certificate for `identity`.
func makeClient(
    pki: TestPKI,
    endpoint: Endpoint,
    identity: Identity = .operator,
    expectedServer: Identity? = nil,
    defaultTimeout: Duration = .seconds(10),
    maxFrameLength: Int = Frame.defaultMaxLength,
    tls: TLSFiles? = nil,
    answerGrace: Duration = .seconds(10)
) throws -> RPCClient {
    try RPCClient(
        configuration: .init(
            endpoint: endpoint,
            expectedServer: expectedServer,
            defaultTimeout: defaultTimeout,
            initialBackoff: .milliseconds(20),
            maxBackoff: .milliseconds(200),
            maxFrameLength: maxFrameLength,
            agent: "rescind-transport-tests",
            answerGrace: answerGrace
        ),
        tls: tls ?? pki.files(for: identity.rawValue),
        logger: quietLogger
    )
}

// MARK: - Errors and time limits

/// Runs `body` and returns the `RescindError` it throws; records an issue if it succeeds or throws something else.
func rescindError(
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> RescindError? {
    do {
        try await body()
        Issue.record("expected a RescindError, but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RescindError {
        return error
    } catch {
        Issue.record("expected a RescindError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var limit: Duration
    var description: String { "no result within \(limit)" }
}

/// Runs `body` in a new task and returns its result, or throws `TimedOut` after `limit` even if `body` ignores
/// cancellation, so that a hang is a test failure and not a stuck test run.
func within<T: Sendable>(
    _ limit: Duration,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let once = Once()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let work = Task {
            let result = await Result { try await body() }
            if once.claim() { continuation.resume(with: result) }
        }
        Task {
            try? await Task.sleep(for: limit)
            if once.claim() {
                work.cancel()
                continuation.resume(throwing: TimedOut(limit: limit))
            }
        }
    }
}

/// Collects values from concurrent tasks, in the order they arrive.
final class Recorder<Value: Sendable>: Sendable {
    private let storage = Mutex<[Value]>([])

    func append(_ value: Value) {
        storage.withLock { $0.append(value) }
    }

    var values: [Value] { storage.withLock { $0 } }
}

/// Lets exactly one of several racing parties win.
final class Once: Sendable {
    private let claimed = Atomic<Bool>(false)

    func claim() -> Bool {
        claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }

    var isClaimed: Bool { claimed.load(ordering: .acquiring) }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

// MARK: - A raw TLS peer speaking hand-made frames

/// What a raw peer observed when it stopped reading.
enum ReadOutcome: Sendable, CustomStringConvertible {
    case frame(Frame)
    /// The server ended the connection (an orderly end of stream, or a TLS/socket error after it).
    case closed(String)
    /// Nothing happened before the peer's watchdog closed the connection.
    case watchdogFired

    var description: String {
        switch self {
        case .frame(let frame): "frame \(frame.kind) id \(frame.correlationID)"
        case .closed(let how): "closed (\(how))"
        case .watchdogFired: "watchdog fired"
        }
    }

    var frame: Frame? {
        if case .frame(let frame) = self { return frame }
        return nil
    }
}

/// A TLS client with the frame decoder inbound and raw bytes outbound, so tests can send anything.
///
/// A watchdog closes the connection after a few seconds, so a read never hangs a test.
final class RawPeer {
    let channel: any Channel
    private var frames: NIOAsyncChannelInboundStream<Frame>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let watchdogFired: Once

    private init(
        channel: any Channel,
        frames: NIOAsyncChannelInboundStream<Frame>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        watchdogFired: Once
    ) {
        self.channel = channel
        self.frames = frames
        self.outbound = outbound
        self.watchdogFired = watchdogFired
    }

    /// Connects to `port`, runs `body` with the peer, then closes the connection.
    static func with<R>(
        port: Int,
        context: NIOSSLContext,
        watchdog: TimeAmount = .seconds(5),
        _ body: (RawPeer) async throws -> R
    ) async throws -> R {
        let asyncChannel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder()))
                    return try NIOAsyncChannel<Frame, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let channel = asyncChannel.channel
        let fired = Once()
        let scheduled = channel.eventLoop.scheduleTask(in: watchdog) {
            if fired.claim() { channel.close(promise: nil) }
        }
        defer { scheduled.cancel() }
        return try await asyncChannel.executeThenClose { inbound, outbound in
            let peer = RawPeer(
                channel: channel,
                frames: inbound.makeAsyncIterator(),
                outbound: outbound,
                watchdogFired: fired
            )
            return try await body(peer)
        }
    }

    func send(bytes: ByteBuffer) async throws {
        try await outbound.write(bytes)
    }

    func send(_ frame: Frame) async throws {
        var buffer = ByteBuffer()
        frame.write(to: &buffer)
        try await send(bytes: buffer)
    }

    func send<T: Encodable>(
        _ kind: FrameKind,
        correlationID: UInt64,
        _ value: T,
        version: UInt8 = Frame.currentVersion,
        flags: UInt16 = 0
    ) async throws {
        let body = try WireCodec().encode(value)
        try await send(Frame(kind: kind, correlationID: correlationID, body: body, version: version, flags: flags))
    }

    /// The next frame, or how the connection ended.
    func read() async -> ReadOutcome {
        do {
            if let frame = try await frames.next() { return .frame(frame) }
            return watchdogFired.isClaimed ? .watchdogFired : .closed("end of stream")
        } catch {
            return watchdogFired.isClaimed ? .watchdogFired : .closed("\(error)")
        }
    }

    /// Reads a frame, recording an issue if the connection ended instead.
    func readFrame(sourceLocation: SourceLocation = #_sourceLocation) async throws -> Frame {
        let outcome = await read()
        return try #require(outcome.frame, "expected a frame, got \(outcome)", sourceLocation: sourceLocation)
    }

    /// Reads an error frame and decodes its body.
    func readError(sourceLocation: SourceLocation = #_sourceLocation) async throws -> (UInt64, RescindError) {
        let frame = try await readFrame(sourceLocation: sourceLocation)
        #expect(frame.kind == .error, "expected an error frame, got \(frame.kind)", sourceLocation: sourceLocation)
        return (frame.correlationID, try WireCodec().decode(RescindError.self, from: frame.body))
    }

    /// Reads a connection error (an error frame with correlation id 0), checks its code and, where given, its
    /// reason and retryable flag, then expects the server to close the connection.
    func expectConnectionError(
        _ code: RescindError.Code,
        reason: String? = nil,
        retryable: Bool? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let (id, error) = try await readError(sourceLocation: sourceLocation)
        #expect(id == 0, sourceLocation: sourceLocation)
        #expect(error.code == code, sourceLocation: sourceLocation)
        if let reason { #expect(error.reason == reason, sourceLocation: sourceLocation) }
        if let retryable { #expect(error.retryable == retryable, sourceLocation: sourceLocation) }
        await expectClosed(sourceLocation: sourceLocation)
    }

    /// Expects the server to close the connection with no further frame.
    func expectClosed(sourceLocation: SourceLocation = #_sourceLocation) async {
        let outcome = await read()
        switch outcome {
        case .closed:
            break
        case .frame, .watchdogFired:
            Issue.record("expected the server to close the connection, got \(outcome)", sourceLocation: sourceLocation)
        }
    }

    /// Sends a valid hello and expects the server's hello back.
    @discardableResult
    func handshake(sourceLocation: SourceLocation = #_sourceLocation) async throws -> ServerHello {
        try await send(.hello, correlationID: 0, ClientHello(agent: "raw-peer"))
        let frame = try await readFrame(sourceLocation: sourceLocation)
        try #require(frame.kind == .hello, "expected hello, got \(frame)", sourceLocation: sourceLocation)
        #expect(frame.correlationID == 0, sourceLocation: sourceLocation)
        return try WireCodec().decode(ServerHello.self, from: frame.body)
    }

    /// A request envelope for `method` with a deadline `timeout` from now.
    static func envelope<T: Encodable>(
        _ method: String,
        _ request: T,
        timeout: Duration = .seconds(5),
        idempotencyKey: String? = nil
    ) throws -> RequestEnvelope {
        let deadline = Date().addingTimeInterval(timeout.seconds)
        return RequestEnvelope(
            method: method,
            deadlineMillis: UInt64(deadline.timeIntervalSince1970 * 1000),
            idempotencyKey: idempotencyKey,
            payload: Data(try WireCodec().encoder.encode(request))
        )
    }
}

// MARK: - A plain TCP peer (no TLS)

/// What a plain TCP peer saw before its connection ended.
struct PlainOutcome: Sendable, CustomStringConvertible {
    /// The bytes the server sent (at most `PlainPeer.maxKept`).
    var received: [UInt8]
    /// The server ended the connection (end of stream or a socket error); false if the peer's watchdog did.
    var closedByServer: Bool
    /// From the moment the peer started to connect to the end of the connection.
    var elapsed: Duration
    /// When the connection ended.
    var ended: ContinuousClock.Instant

    var description: String {
        "\(closedByServer ? "closed by the server" : "watchdog fired") after \(elapsed), "
            + "received \(received.count) bytes \(received.prefix(16).map { String($0, radix: 16) })"
    }
}

/// A TCP client with no TLS handler at all, for peers that never start (or never finish) a TLS handshake.
enum PlainPeer {
    static let maxKept = 64 * 1024

    /// Connects to `port` in clear text, writes `bytes` (if any), then reads until the server ends the connection
    /// or `watchdog` passes, and closes its side.
    static func exchange(port: Int, sending bytes: [UInt8] = [], watchdog: TimeAmount) async throws -> PlainOutcome {
        // Taken before connecting, so that `elapsed` is never shorter than the server's view of the connection.
        let start = ContinuousClock.now
        let asyncChannel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let channel = asyncChannel.channel
        let fired = Once()
        let scheduled = channel.eventLoop.scheduleTask(in: watchdog) {
            if fired.claim() { channel.close(promise: nil) }
        }
        defer { scheduled.cancel() }
        return try await asyncChannel.executeThenClose { inbound, outbound in
            if !bytes.isEmpty { try? await outbound.write(ByteBuffer(bytes: bytes)) }
            var received: [UInt8] = []
            do {
                for try await chunk in inbound where received.count < maxKept {
                    received += chunk.readableBytesView.prefix(maxKept - received.count)
                }
            } catch {
                // A reset or a read error after the server closed: the connection ended all the same.
            }
            let ended = ContinuousClock.now
            return PlainOutcome(
                received: received, closedByServer: !fired.isClaimed, elapsed: ended - start, ended: ended)
        }
    }
}

/// A server with a small frame limit and configurable limits, and the TLS context of a raw peer that sends
/// hand-made frames to it (the hostile-peer suites).
struct HostileFixture {
    /// The default frame limit: small, so that a test can cross it cheaply.
    static let maxFrameLength = 4096

    let pki: TestPKI
    let server: RunningServer
    let peerContext: NIOSSLContext

    static func start(
        maxFrameLength: Int = HostileFixture.maxFrameLength,
        maxInFlight: Int = 16,
        handshakeTimeoutSeconds: Double = 10,
        idleTimeoutSeconds: Double = 300,
        router: RPCRouter = TestMethods.router()
    ) async throws -> HostileFixture {
        let pki = try TestPKI()
        let server = try await RunningServer.start(
            pki: pki,
            configuration: .init(
                host: "127.0.0.1",
                port: 0,
                maxFrameLength: maxFrameLength,
                maxInFlightPerConnection: maxInFlight,
                handshakeTimeoutSeconds: handshakeTimeoutSeconds,
                idleTimeoutSeconds: idleTimeoutSeconds
            ),
            router: router
        )
        return HostileFixture(pki: pki, server: server, peerContext: try pki.files(for: "operator").makeClientContext())
    }

    func withPeer<R>(watchdog: TimeAmount = .seconds(5), _ body: (RawPeer) async throws -> R) async throws -> R {
        try await RawPeer.with(port: server.port, context: peerContext, watchdog: watchdog, body)
    }

    /// Checks that a normal client is still served, then stops everything.
    func finish(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await TLSTests.expectServing(pki: pki, server: server, sourceLocation: sourceLocation)
        await server.stop()
        pki.remove()
    }
}
