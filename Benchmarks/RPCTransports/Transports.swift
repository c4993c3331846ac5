// The three ways of making one call that the RPC benchmarks compare, each a server and a client over mutual
// TLS 1.3 on loopback, carrying the same bytes: an `orders.cancel` request (the CBOR of
// `Fixtures.cancelOrderRequest`) and its answer (the CBOR of `Fixtures.cancelAccepted`).
//
// - rescind: the daemons' own `RPCServer` and `RPCClient` (envelope, router, codec, multiplexing by
//   correlation id, deadlines), with a handler that answers at once.
// - grpc: grpc-swift-2 unary calls over its NIO HTTP/2 transport, the same messages coded by the same CBOR
//   codec through a `MessageSerializer`/`MessageDeserializer` (no protobuf).
// - echo: the floor. NIO, TLS and the Rescind framing only: the server answers each request frame with the
//   answer's frame bytes made once, the client matches answers to calls in order. No envelope, no router,
//   no codec, no deadlines.

import Fixtures
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RescindAPI
import RescindPKI
import RescindTransport
import RescindCBOR
import RescindWire

/// Which implementation a benchmark calls through.
public enum Transport: String, CaseIterable, Sendable {
    case rescind, grpc, echo
}

/// One connection's way of making the call.
public protocol BenchClient: Sendable {
    /// Makes one call and checks its answer.
    func call() async throws
}

/// A running server and `connections` clients of it, each its own connection.
public struct BenchSetup: Sendable {
    public var transport: Transport
    public var clients: [any BenchClient]
    let stop: @Sendable () async -> Void

    /// Starts a server of `transport` on loopback and opens `connections` connections to it (each has made
    /// one call when this returns).
    public static func start(_ transport: Transport, connections: Int, pki: BenchPKI) async throws -> BenchSetup {
        let setup: BenchSetup
        switch transport {
        case .rescind: setup = try await RescindBench.start(connections: connections, pki: pki)
        case .grpc: setup = try await GRPCBench.start(connections: connections, pki: pki)
        case .echo: setup = try await EchoBench.start(connections: connections, pki: pki)
        }
        for client in setup.clients { try await client.call() }
        return setup
    }

    /// Closes the connections and the server.
    public func shutdown() async { await stop() }
}

/// The answer every server gives, and its check.
enum Answer {
    static let value = Fixtures.cancelAccepted
    static func check(_ answer: CancelAccepted) throws {
        guard answer.sagaID == value.sagaID else { throw BenchError("wrong answer: \(answer.sagaID)") }
    }
}

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

let quietLogger = Logger(label: "rescind.rpc-bench", factory: { _ in SwiftLogNoOpLogHandler() })

// MARK: - Certificates

/// A CA and the PEM files of a server (`orders`) and a client (`operator`) in a temporary directory, written
/// by `PKIDirectory` as `rescindctl certs` writes them; every transport uses the same files.
public struct BenchPKI: Sendable {
    public let directory: URL
    public let server: TLSFiles
    public let client: TLSFiles

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rescind-rpc-bench-\(UUID().uuidString.prefix(8))")
        let pki = PKIDirectory(url: directory)
        _ = try pki.initialize()
        func files(_ name: Identity) throws -> TLSFiles {
            try pki.issue(name: name.rawValue, hosts: ["127.0.0.1", "localhost"])
            return TLSFiles(
                caCertificatePath: pki.caCertificatePath, certificatePath: pki.certificatePath(for: name.rawValue),
                privateKeyPath: pki.privateKeyPath(for: name.rawValue))
        }
        server = try files(.orders)
        client = try files(.operator)
    }

    public func remove() { try? FileManager.default.removeItem(at: directory) }
}

// MARK: - Rescind

enum RescindBench {
    struct Client: BenchClient {
        let client: RPCClient
        func call() async throws {
            try Answer.check(try await client.call(OrdersMethods.cancel, Fixtures.cancelOrderRequest))
        }
    }

    static func start(connections: Int, pki: BenchPKI) async throws -> BenchSetup {
        var router = RPCRouter()
        router.register(OrdersMethods.cancel) { _, _ in Answer.value }
        let server = try await RPCServer.bind(
            configuration: .init(), identity: .orders, tls: pki.server, router: router, logger: quietLogger)
        let serving = Task { try await server.serve() }
        let clients = try (0..<connections).map { _ in
            try RPCClient(
                configuration: .init(
                    endpoint: Endpoint(host: "127.0.0.1", port: server.port), expectedServer: .orders),
                tls: pki.client, logger: quietLogger)
        }
        return BenchSetup(transport: .rescind, clients: clients.map(Client.init)) {
            for client in clients { await client.shutdown() }
            serving.cancel()
            _ = try? await serving.value
        }
    }
}

// MARK: - gRPC

/// A message written by the Rescind codec, for grpc-swift.
struct CBORSerializer<Message: Encodable & Sendable>: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: Message) throws -> Bytes {
        Bytes(try CBOREncoder().encode(message))
    }
}

/// A message read by the Rescind codec (the same validating decoder the daemons use), for grpc-swift.
struct CBORDeserializer<Message: Decodable & Sendable>: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        try serializedMessageBytes.withUnsafeBytes { try CBORDecoder().decode(Message.self, from: $0) }
    }
}

enum GRPCBench {
    static let method = MethodDescriptor(fullyQualifiedService: "rescind.Orders", method: "Cancel")

    struct Client: BenchClient {
        let client: GRPCClient<HTTP2ClientTransport.Posix>
        func call() async throws {
            let answer = try await client.unary(
                request: ClientRequest(message: Fixtures.cancelOrderRequest), descriptor: GRPCBench.method,
                serializer: CBORSerializer<CancelOrderRequest>(), deserializer: CBORDeserializer<CancelAccepted>(),
                options: .defaults
            ) { response in try response.message }
            try Answer.check(answer)
        }
    }

    static func start(connections: Int, pki: BenchPKI) async throws -> BenchSetup {
        func chain(_ files: TLSFiles) -> [TLSConfig.CertificateSource] {
            [.file(path: files.certificatePath, format: .pem)]
        }
        let roots = TLSConfig.TrustRootsSource.certificates([.file(path: pki.server.caCertificatePath, format: .pem)])
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: 0),
            transportSecurity: .mTLS(
                certificateChain: chain(pki.server),
                privateKey: .file(path: pki.server.privateKeyPath, format: .pem)
            ) { $0.trustRoots = roots })
        var router = GRPCCore.RPCRouter<HTTP2ServerTransport.Posix>()
        router.registerHandler(
            forMethod: method, deserializer: CBORDeserializer<CancelOrderRequest>(),
            serializer: CBORSerializer<CancelAccepted>()
        ) { request, _ in
            _ = try await ServerRequest(stream: request)
            return StreamingServerResponse(single: ServerResponse(message: Answer.value))
        }
        let server = GRPCServer(transport: transport, router: router)
        let serving = Task { try await server.serve() }
        guard let port = try await transport.listeningAddress.ipv4?.port else {
            throw BenchError("the gRPC server has no IPv4 address")
        }
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        var running: [Task<Void, any Error>] = []
        for _ in 0..<connections {
            let client = GRPCClient(
                transport: try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: "127.0.0.1", port: port),
                    transportSecurity: .mTLS(
                        certificateChain: chain(pki.client),
                        privateKey: .file(path: pki.client.privateKeyPath, format: .pem)
                    ) { $0.trustRoots = roots }))
            clients.append(client)
            running.append(Task { try await client.runConnections() })
        }
        return BenchSetup(transport: .grpc, clients: clients.map(Client.init)) { [clients, running] in
            for client in clients { client.beginGracefulShutdown() }
            for task in running { _ = try? await task.value }
            server.beginGracefulShutdown()
            _ = try? await serving.value
        }
    }
}

// MARK: - Echo, the floor

enum EchoBench {
    /// The frame bodies both sides write, made once: the request a Rescind client writes for the call, and
    /// the response a Rescind server writes for its answer.
    struct Bodies: Sendable {
        var request: ByteBuffer
        var response: ByteBuffer

        init() throws {
            let codec = WireCodec()
            request = try codec.encode(
                RequestEnvelope(
                    method: OrdersMethods.cancel.name, deadlineMillis: RequestEnvelope.millis(Date()),
                    payload: Data(try codec.encoder.encode(Fixtures.cancelOrderRequest))))
            response = try codec.encode(Answer.value)
        }
    }

    /// Answers every frame with the response frame, at once.
    final class ServerHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = Frame
        typealias OutboundOut = Frame
        let responseBody: ByteBuffer
        init(responseBody: ByteBuffer) { self.responseBody = responseBody }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let request = unwrapInboundIn(data)
            context.write(
                wrapOutboundOut(Frame(kind: .response, correlationID: request.correlationID, body: responseBody)),
                promise: nil)
        }
        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    }

    struct Call: Sendable {
        var frame: Frame
        var answer: EventLoopPromise<Frame>
    }

    /// Writes calls and completes them with the answers, which come in the order the calls went.
    final class ClientHandler: ChannelDuplexHandler {
        typealias InboundIn = Frame
        typealias OutboundIn = Call
        typealias OutboundOut = Frame
        private var waiting = CircularBuffer<EventLoopPromise<Frame>>()

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            let call = unwrapOutboundIn(data)
            waiting.append(call.answer)
            context.write(wrapOutboundOut(call.frame), promise: promise)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            waiting.popFirst()?.succeed(unwrapInboundIn(data))
        }
        func channelInactive(context: ChannelHandlerContext) {
            while let answer = waiting.popFirst() { answer.fail(BenchError("the echo connection closed")) }
        }
    }

    struct Client: BenchClient {
        let channel: any Channel
        let bodies: Bodies
        func call() async throws {
            let answer = channel.eventLoop.makePromise(of: Frame.self)
            channel.writeAndFlush(
                Call(frame: Frame(kind: .request, correlationID: 1, body: bodies.request), answer: answer)
            )
            .cascadeFailure(to: answer)
            let frame = try await answer.futureResult.get()
            guard frame.body.readableBytes == bodies.response.readableBytes else { throw BenchError("wrong echo") }
        }
    }

    static func start(connections: Int, pki: BenchPKI) async throws -> BenchSetup {
        let bodies = try Bodies()
        let serverContext = try pki.server.makeServerContext()
        let clientContext = try pki.client.makeClientContext()
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    let sync = child.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: serverContext))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: Frame.defaultMaxLength)))
                    try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                    try sync.addHandler(ServerHandler(responseBody: bodies.response))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = server.localAddress?.port ?? 0
        var channels: [any Channel] = []
        for _ in 0..<connections {
            channels.append(
                try await ClientBootstrap(group: group)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let sync = channel.pipeline.syncOperations
                            try sync.addHandler(NIOSSLClientHandler(context: clientContext, serverHostname: nil))
                            try sync.addHandler(
                                ByteToMessageHandler(FrameDecoder(maxFrameLength: Frame.defaultMaxLength)))
                            try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                            try sync.addHandler(ClientHandler())
                        }
                    }
                    .connect(host: "127.0.0.1", port: port).get())
        }
        return BenchSetup(transport: .echo, clients: channels.map { Client(channel: $0, bodies: bodies) }) {
            [channels] in
            for channel in channels { try? await channel.close() }
            try? await server.close()
        }
    }
}
