import Foundation
import NIOSSL
import RescindAPI
import RescindPKI
import RescindTransport
import RescindWire
import Testing

/// Who the server lets in: only peers with a certificate of the suite's CA.
@Suite("TLS: the server admits only certificates of its CA")
struct TLSTests {
    /// Sends a valid hello and expects the connection to end with no frame at all (no hello, no error frame).
    static func expectRefused(port: Int, context: NIOSSLContext) async throws {
        try await RawPeer.with(port: port, context: context) { peer in
            // In TLS 1.3 the client finishes its handshake before the server has checked the client's certificate,
            // so this write may go out, or may find the connection already closed by the server's alert.
            try? await peer.send(.hello, correlationID: 0, ClientHello(agent: "refused-peer"))
            await peer.expectClosed()
        }
    }

    /// An `RPCClient` presenting `tls` cannot call the server: its call fails with `unavailable`.
    static func expectCallFails(
        pki: TestPKI, server: RunningServer, tls: TLSFiles, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let client = try makeClient(pki: pki, endpoint: server.endpoint, tls: tls)
        let error = await rescindError(sourceLocation: sourceLocation) {
            _ = try await within(.seconds(3)) {
                try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 1), timeout: .seconds(1))
            }
        }
        #expect(error?.code == .unavailable, sourceLocation: sourceLocation)
        await client.shutdown()
    }

    /// A normal client can still call the server.
    static func expectServing(pki: TestPKI, server: RunningServer, sourceLocation: SourceLocation = #_sourceLocation)
        async throws
    {
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        let reply = await Result {
            try await within(.seconds(5)) {
                try await client.call(
                    TestMethods.echo, EchoRequest(text: "good client", number: 7), timeout: .seconds(3))
            }
        }
        await client.shutdown()
        let echo = try #require(
            try? reply.get(), "the server stopped serving: \(reply)", sourceLocation: sourceLocation)
        #expect(echo.text == "good client", sourceLocation: sourceLocation)
        #expect(echo.peer == "operator", sourceLocation: sourceLocation)
    }

    @Test("a client with no certificate gets no answer and the connection is closed; good clients are still served")
    func clientWithoutCertificate() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        try await Self.expectRefused(port: server.port, context: try pki.anonymousClientContext())
        try await Self.expectServing(pki: pki, server: server)
        await server.stop()
    }

    @Test("a client whose certificate comes from another CA is refused, even with an allowed name")
    func clientFromAnotherCA() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let impostorCA = try CertificateAuthority.create()  // same default CA name, different key
        // The impostor trusts the real CA, so it gets as far as presenting its own certificate.
        let impostor = try pki.files(for: "operator", issuedBy: impostorCA)

        try await Self.expectRefused(port: server.port, context: try impostor.makeClientContext())

        // An RPCClient with that certificate cannot call anything either.
        try await Self.expectCallFails(pki: pki, server: server, tls: impostor)

        try await Self.expectServing(pki: pki, server: server)
        await server.stop()
    }

    @Test("a client refuses a server whose certificate comes from a CA it does not trust")
    func serverFromAnotherCA() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        // The client's certificate is good for the server, but the client trusts only another CA.
        let otherCA = try CertificateAuthority.create()
        let trustsOther = try pki.files(for: "operator")
        let otherRoot = try pki.write(otherCA.certificatePEM, to: "other-ca.pem")
        let tls = TLSFiles(
            caCertificatePath: otherRoot,
            certificatePath: trustsOther.certificatePath,
            privateKeyPath: trustsOther.privateKeyPath
        )
        try await Self.expectCallFails(pki: pki, server: server, tls: tls)
        try await Self.expectServing(pki: pki, server: server)
        await server.stop()
    }

    @Test("a client limited to TLS 1.2 is refused")
    func tls12Refused() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let files = try pki.files(for: "operator")
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(files.caCertificatePath))
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(files.certificatePath).map {
            .certificate($0)
        }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: files.privateKeyPath, format: .pem))
        configuration.applicationProtocols = [TransportConstants.alpn]
        try await Self.expectRefused(port: server.port, context: try NIOSSLContext(configuration: configuration))
        try await Self.expectServing(pki: pki, server: server)
        await server.stop()
    }

    @Test("a client whose certificate has expired is refused")
    func expiredClientCertificate() async throws {
        // A CA made two hours ago, so it can issue a certificate that was valid for a minute an hour ago.
        let pki = try TestPKI(authority: try CertificateAuthority.create(now: Date().addingTimeInterval(-7200)))
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let issued = try pki.authority.issue(
            name: "operator", hosts: [], validity: .seconds(60), now: Date().addingTimeInterval(-3600)
        )
        let expired = TLSFiles(
            caCertificatePath: pki.caCertificatePath,
            certificatePath: try pki.write(issued.certificatePEM, to: "expired.pem"),
            privateKeyPath: try pki.write(issued.privateKeyPEM, to: "expired-key.pem")
        )
        try await Self.expectRefused(port: server.port, context: try expired.makeClientContext())
        try await Self.expectServing(pki: pki, server: server)
        await server.stop()
    }

    @Test("TLS material that cannot be loaded is a tls_configuration error, not a crash")
    func missingFiles() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let missing = TLSFiles(
            caCertificatePath: pki.caCertificatePath,
            certificatePath: pki.directory.appendingPathComponent("nope.pem").path,
            privateKeyPath: pki.directory.appendingPathComponent("nope-key.pem").path
        )
        #expect(throws: TransportError.self) { try missing.makeClientContext() }
        #expect(throws: TransportError.self) { try missing.makeServerContext() }
        await #expect(throws: TransportError.self) {
            _ = try await RPCServer.bind(
                configuration: .init(host: "127.0.0.1", port: 0),
                identity: .orders,
                tls: missing,
                router: RPCRouter(),
                logger: quietLogger
            )
        }
        #expect(throws: TransportError.self) {
            _ = try RPCClient(
                configuration: .init(endpoint: Endpoint(host: "127.0.0.1", port: 1)),
                tls: missing,
                logger: quietLogger
            )
        }
    }

    @Test("binding a port that is already in use is a bind error")
    func portInUse() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let error = await #expect(throws: TransportError.self) {
            _ = try await RPCServer.bind(
                configuration: .init(host: "127.0.0.1", port: server.port),
                identity: .orders,
                tls: try pki.files(for: "orders"),
                router: RPCRouter(),
                logger: quietLogger
            )
        }
        #expect(error?.code == .bind)
        await server.stop()
    }

    @Test(
        "a client offering another application protocol (ALPN) still completes the handshake (PROTOCOL.md section 2)",
        arguments: [["h2"], [String]()]
    )
    func otherApplicationProtocol(offered: [String]) async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let files = try pki.files(for: "operator")
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(files.caCertificatePath))
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(files.certificatePath).map {
            .certificate($0)
        }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: files.privateKeyPath, format: .pem))
        configuration.applicationProtocols = offered
        // "This build offers it on both sides but does not refuse a peer that offers none or another one."
        try await RawPeer.with(port: server.port, context: try NIOSSLContext(configuration: configuration)) { peer in
            let hello = try await peer.handshake()
            #expect(hello.server == "orders")
        }
        await server.stop()
    }
}
