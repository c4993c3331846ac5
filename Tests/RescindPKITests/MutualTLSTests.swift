import NIOCore
import NIOPosix
import NIOSSL
import RescindPKI
import Testing

/// Proves that certificates from ``CertificateAuthority`` work for mutual TLS 1.3 with BoringSSL
/// (swift-nio-ssl) over loopback, and that the peer's identity can be read on both sides.
@Suite("Mutual TLS 1.3 with BoringSSL")
struct MutualTLSTests {
    @Test("mutual TLS 1.3 handshake; each side reads the other's identity (client checks the DNS SAN localhost)")
    func mutualHandshakeWithDNSName() async throws {
        try await self.mutualHandshake(serverHostname: "localhost")
    }

    @Test(
        "mutual TLS 1.3 handshake; with no hostname the client checks the IP SAN 127.0.0.1 against the socket address")
    func mutualHandshakeWithIPAddress() async throws {
        try await self.mutualHandshake(serverHostname: nil)
    }

    func mutualHandshake(serverHostname: String?) async throws {
        let authority = try CertificateAuthority.create()
        let server = try authority.issue(name: "orders", hosts: ["localhost", "127.0.0.1", "::1"])
        let client = try authority.issue(name: "operator", hosts: [])

        let outcome = try await TLSLoopback.run(
            server: TLSLoopback.serverConfiguration(identity: server, trusting: authority),
            client: TLSLoopback.clientConfiguration(identity: client, trusting: authority),
            serverHostname: serverHostname
        )

        // The server authorised the client as "operator" (from its verified certificate).
        let serverView = try outcome.server.get()
        #expect(serverView.peerIdentity == "operator")
        #expect(serverView.tlsVersion == .tlsv13)
        #expect(serverView.peerCertificateDER == (try TLSLoopback.der(ofPEM: client.certificatePEM)))
        // Without a custom verification callback NIOSSL keeps no validated chain: use nioSSL_peerCertificate().
        #expect(serverView.validatedChainLength == nil)

        // The client saw the server's identity "orders", and then the server's greeting.
        let clientView = try outcome.clientHandshake.get()
        #expect(clientView.peerIdentity == "orders")
        #expect(clientView.tlsVersion == .tlsv13)
        #expect(try outcome.clientGreeting.get() == "hello operator")
        // Reading the peer certificate from outside the pipeline, through the Channel API, gives the same.
        #expect(outcome.clientPeerIdentityViaChannel == "orders")
    }

    @Test("a client without a certificate is refused by the server")
    func clientWithoutCertificateIsRefused() async throws {
        let authority = try CertificateAuthority.create()
        let server = try authority.issue(name: "orders", hosts: ["localhost"])

        let outcome = try await TLSLoopback.run(
            server: TLSLoopback.serverConfiguration(identity: server, trusting: authority),
            client: TLSLoopback.clientConfiguration(identity: nil, trusting: authority),
            serverHostname: "localhost"
        )
        try Self.expectRefusedByServer(outcome)
    }

    @Test("a client with a certificate from another CA (even one with the same name) is refused by the server")
    func clientFromAnotherCAIsRefused() async throws {
        let authority = try CertificateAuthority.create()
        let impostorAuthority = try CertificateAuthority.create()  // same default CA name, different key
        let server = try authority.issue(name: "orders", hosts: ["localhost"])
        let impostor = try impostorAuthority.issue(name: "operator", hosts: [])

        let outcome = try await TLSLoopback.run(
            server: TLSLoopback.serverConfiguration(identity: server, trusting: authority),
            // The impostor trusts the real CA, so it gets as far as presenting its certificate.
            client: TLSLoopback.clientConfiguration(identity: impostor, trusting: authority),
            serverHostname: "localhost"
        )
        try Self.expectRefusedByServer(outcome)
    }

    @Test("a client refuses a server whose certificate comes from another CA")
    func serverFromAnotherCAIsRefused() async throws {
        let authority = try CertificateAuthority.create()
        let impostorAuthority = try CertificateAuthority.create()
        let impostor = try impostorAuthority.issue(name: "orders", hosts: ["localhost", "127.0.0.1"])
        let client = try authority.issue(name: "operator", hosts: [])

        let outcome = try await TLSLoopback.run(
            server: TLSLoopback.serverConfiguration(identity: impostor, trusting: authority),
            client: TLSLoopback.clientConfiguration(identity: client, trusting: authority),
            serverHostname: "localhost"
        )
        #expect(throws: NIOSSLError.self) { try outcome.clientHandshake.get() }
        #expect(throws: (any Error).self) { try outcome.server.get() }
        #expect(throws: (any Error).self) { try outcome.clientGreeting.get() }
    }

    @Test("a client refuses a server certificate that does not name the host it dialled")
    func hostnameMismatchIsRefused() async throws {
        let authority = try CertificateAuthority.create()
        let server = try authority.issue(name: "orders", hosts: ["orders.internal"])  // no localhost, no 127.0.0.1
        let client = try authority.issue(name: "operator", hosts: [])

        let outcome = try await TLSLoopback.run(
            server: TLSLoopback.serverConfiguration(identity: server, trusting: authority),
            client: TLSLoopback.clientConfiguration(identity: client, trusting: authority),
            serverHostname: "localhost"
        )
        #expect(throws: NIOSSLExtraError.self) { try outcome.clientHandshake.get() }
        #expect(throws: (any Error).self) { try outcome.clientGreeting.get() }
    }

    /// The server must fail the handshake and never see an identity; the client must never get the greeting.
    ///
    /// In TLS 1.3 the client's handshake completes *before* the server has checked the client's
    /// certificate, so the client learns of the refusal only from the alert that follows (as an error
    /// on its next read), never from the handshake itself.
    static func expectRefusedByServer(_ outcome: TLSLoopback.Outcome) throws {
        let serverError = #expect(throws: NIOSSLError.self) { try outcome.server.get() }
        if let serverError {
            guard case .handshakeFailed = serverError else {
                Issue.record("expected NIOSSLError.handshakeFailed on the server, got \(serverError)")
                return
            }
        }
        #expect(throws: (any Error).self) { try outcome.clientGreeting.get() }
    }
}

// MARK: - A loopback server and client

/// What one side learnt about its peer once the TLS handshake completed.
struct PeerView: Sendable {
    /// ``CertificateIdentity/commonName(fromDER:)`` of the peer's certificate.
    var peerIdentity: String
    /// The DER of the peer's leaf certificate.
    var peerCertificateDER: [UInt8]
    /// The negotiated TLS version.
    var tlsVersion: TLSVersion?
    /// The length of `nioSSL_peerValidatedCertificateChain()`, nil when NIOSSL has none.
    var validatedChainLength: Int?

    /// Reads the peer's identity from a pipeline whose NIOSSLHandler has completed its handshake.
    ///
    /// This is the API for a transport: `nioSSL_peerCertificate()` is the leaf certificate that
    /// BoringSSL verified against the trust roots (the handshake fails otherwise), and `toDERBytes()`
    /// gives its DER.
    static func read(from pipeline: ChannelPipeline.SynchronousOperations) throws -> PeerView {
        guard let certificate = try pipeline.nioSSL_peerCertificate() else {
            throw TLSLoopback.Failure("the peer presented no certificate")
        }
        let der = try certificate.toDERBytes()
        return PeerView(
            peerIdentity: try CertificateIdentity.commonName(fromDER: der),
            peerCertificateDER: der,
            tlsVersion: try pipeline.nioSSL_tlsVersion(),
            validatedChainLength: try pipeline.nioSSL_peerValidatedCertificateChain()?.count
        )
    }
}

/// On the server: on the first bytes from the client, read the client's identity and greet it by name.
///
/// NIOSSLHandler passes application data on only once the handshake has completed (and with it the
/// verification of the client's certificate), so the first `channelRead` is a point where the peer
/// certificate is known. (`TLSUserEvent.handshakeCompleted` marks the same point, but it is declared in
/// NIOTLS, which is not a dependency of this target.)
final class ServerIdentityHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let result: EventLoopPromise<PeerView>
    private var identified = false

    init(result: EventLoopPromise<PeerView>) {
        self.result = result
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.identified else { return }
        self.identified = true
        do {
            let view = try PeerView.read(from: context.pipeline.syncOperations)
            self.result.succeed(view)
            let greeting = context.channel.allocator.buffer(string: "hello \(view.peerIdentity)\n")
            context.writeAndFlush(self.wrapOutboundOut(greeting), promise: nil)
        } catch {
            self.result.fail(error)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.result.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.result.fail(TLSLoopback.Failure("the connection closed before the client was identified"))
        context.fireChannelInactive()
    }
}

/// On the client: send a request line at once (NIOSSLHandler holds it until the handshake is done);
/// on the first bytes back, read the server's identity; then wait for the whole greeting line.
final class ClientIdentityHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let handshake: EventLoopPromise<PeerView>
    private let greeting: EventLoopPromise<String>
    private var received: ByteBuffer?

    init(handshake: EventLoopPromise<PeerView>, greeting: EventLoopPromise<String>) {
        self.handshake = handshake
        self.greeting = greeting
    }

    func channelActive(context: ChannelHandlerContext) {
        let request = context.channel.allocator.buffer(string: "hello\n")
        context.writeAndFlush(self.wrapOutboundOut(request), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        if self.received == nil {
            do {
                self.handshake.succeed(try PeerView.read(from: context.pipeline.syncOperations))
            } catch {
                self.handshake.fail(error)
                self.greeting.fail(error)
                context.close(promise: nil)
                return
            }
            self.received = buffer
        } else {
            self.received?.writeBuffer(&buffer)
        }
        if let view = self.received?.readableBytesView, let newline = view.firstIndex(of: UInt8(ascii: "\n")) {
            self.greeting.succeed(String(decoding: view[view.startIndex..<newline], as: UTF8.self))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.handshake.fail(error)
        self.greeting.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let closed = TLSLoopback.Failure("the connection closed")
        self.handshake.fail(closed)
        self.greeting.fail(closed)
        context.fireChannelInactive()
    }
}

/// Runs one TLS connection between a NIO server and a NIO client on 127.0.0.1 and reports what each side saw.
enum TLSLoopback {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    struct Outcome: Sendable {
        /// What the server learnt about the client, or why its handshake failed.
        var server: Result<PeerView, any Error>
        /// What the client learnt about the server (read on the first bytes from it), or why it learnt nothing.
        var clientHandshake: Result<PeerView, any Error>
        /// The greeting the server sent after accepting the client, or why none arrived.
        var clientGreeting: Result<String, any Error>
        /// The server's identity read through `Channel.nioSSL_peerCertificate()` after the handshake.
        var clientPeerIdentityViaChannel: String?
    }

    /// A TLS 1.3-only server that requires a client certificate issued by `authority`.
    static func serverConfiguration(identity: IssuedCertificate, trusting authority: CertificateAuthority) throws
        -> TLSConfiguration
    {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [
                .certificate(try NIOSSLCertificate(bytes: Array(identity.certificatePEM.utf8), format: .pem))
            ],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv13
        // Verify the client's chain against the trust roots and require a certificate (BoringSSL's
        // SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT), with no hostname check.
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([
            try NIOSSLCertificate(bytes: Array(authority.certificatePEM.utf8), format: .pem)
        ])
        return configuration
    }

    /// A TLS 1.3-only client that trusts only `authority` and, if `identity` is given, presents it.
    static func clientConfiguration(identity: IssuedCertificate?, trusting authority: CertificateAuthority) throws
        -> TLSConfiguration
    {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates([
            try NIOSSLCertificate(bytes: Array(authority.certificatePEM.utf8), format: .pem)
        ])
        if let identity {
            configuration.certificateChain = [
                .certificate(try NIOSSLCertificate(bytes: Array(identity.certificatePEM.utf8), format: .pem))
            ]
            configuration.privateKey = .privateKey(
                try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem)
            )
        }
        return configuration
    }

    static func der(ofPEM pem: String) throws -> [UInt8] {
        try NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem).toDERBytes()
    }

    static func run(
        server serverConfiguration: TLSConfiguration,
        client clientConfiguration: TLSConfiguration,
        serverHostname: String?
    ) async throws -> Outcome {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let outcome = try await self.run(
                group: group,
                server: serverConfiguration,
                client: clientConfiguration,
                serverHostname: serverHostname
            )
            try await group.shutdownGracefully()
            return outcome
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func run(
        group: MultiThreadedEventLoopGroup,
        server serverConfiguration: TLSConfiguration,
        client clientConfiguration: TLSConfiguration,
        serverHostname: String?
    ) async throws -> Outcome {
        let serverContext = try NIOSSLContext(configuration: serverConfiguration)
        let clientContext = try NIOSSLContext(configuration: clientConfiguration)
        let loop = group.next()
        let serverResult = loop.makePromise(of: PeerView.self)
        let clientHandshake = loop.makePromise(of: PeerView.self)
        let clientGreeting = loop.makePromise(of: String.self)

        // Never wait forever: fail whatever is still pending after 10 seconds.
        let timeout = loop.scheduleTask(in: .seconds(10)) {
            let failure = Failure("timed out")
            serverResult.fail(failure)
            clientHandshake.fail(failure)
            clientGreeting.fail(failure)
        }

        let serverChannel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext))
                    try channel.pipeline.syncOperations.addHandler(ServerIdentityHandler(result: serverResult))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()

        do {
            guard let address = serverChannel.localAddress else {
                throw Failure("the server has no local address")
            }
            let clientChannel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: clientContext, serverHostname: serverHostname)
                        )
                        try channel.pipeline.syncOperations.addHandler(
                            ClientIdentityHandler(handshake: clientHandshake, greeting: clientGreeting)
                        )
                    }
                }
                .connect(to: address)
                .get()

            let serverOutcome = await Result(awaiting: { try await serverResult.futureResult.get() })
            let handshakeOutcome = await Result(awaiting: { try await clientHandshake.futureResult.get() })
            let greetingOutcome = await Result(awaiting: { try await clientGreeting.futureResult.get() })

            // The Channel-level API, usable from outside the pipeline once the handshake is done.
            var identityViaChannel: String?
            if case .success = handshakeOutcome, clientChannel.isActive,
                let certificate = try? await clientChannel.nioSSL_peerCertificate().get()
            {
                identityViaChannel = try? CertificateIdentity.commonName(fromDER: certificate.toDERBytes())
            }

            timeout.cancel()
            try? await clientChannel.close()
            try await serverChannel.close()

            let outcome = Outcome(
                server: serverOutcome,
                clientHandshake: handshakeOutcome,
                clientGreeting: greetingOutcome,
                clientPeerIdentityViaChannel: identityViaChannel
            )
            print(
                "TLS loopback (serverHostname: \(serverHostname ?? "nil")): "
                    + "server saw \(outcome.server.map(\.peerIdentity)); "
                    + "client saw \(outcome.clientHandshake.map(\.peerIdentity)); "
                    + "client greeting \(outcome.clientGreeting)"
            )
            return outcome
        } catch {
            try? await serverChannel.close()
            throw error
        }
    }
}

extension Result where Failure == any Error {
    init(awaiting body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
