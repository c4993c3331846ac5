import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import RescindAPI
import RescindTransport
import RescindWire
import Testing

/// The `RPCClient`: deadlines, reconnection, server identity, failures of the connection.
@Suite("RPC client: deadlines, reconnection and server identity")
struct RPCClientTests {
    @Test("a call to a handler slower than its timeout fails with deadline_exceeded on time; the client stays usable")
    func deadlineExceeded() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        _ = try await client.call(TestMethods.echo, EchoRequest(text: "connect", number: 0))

        let start = ContinuousClock.now
        let error = await rescindError {
            _ = try await client.call(
                TestMethods.sleep, SleepRequest(number: 1, milliseconds: 4_000), timeout: .milliseconds(100)
            )
        }
        let elapsed = ContinuousClock.now - start
        #expect(error?.code == .deadlineExceeded)
        #expect(error?.retryable == true)
        #expect(elapsed >= .milliseconds(90))
        // Far below the handler's 4 s: the call did not wait for the answer (bounds stay loose on a busy machine).
        #expect(elapsed < .milliseconds(3_000), "the call waited \(elapsed) for an answer past its deadline")

        // The late answer arrives on the same connection and must not be taken for another call's answer.
        let next = try await client.call(TestMethods.sleep, SleepRequest(number: 2, milliseconds: 900))
        #expect(next.number == 2)
        let echo = try await client.call(TestMethods.echo, EchoRequest(text: "after", number: 3))
        #expect(echo.text == "after")
        #expect(echo.number == 3)

        await client.shutdown()
        await server.stop()
    }

    @Test("a request that reaches the server after its deadline is refused with deadline_exceeded")
    func requestArrivingAfterDeadline() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        try await RawPeer.with(port: server.port, context: try pki.files(for: "operator").makeClientContext()) { peer in
            try await peer.handshake()
            var envelope = try RawPeer.envelope("test.echo", EchoRequest(text: "late", number: 1))
            envelope.deadlineMillis = UInt64((Date().timeIntervalSince1970 - 1) * 1000)
            try await peer.send(.request, correlationID: 11, envelope)
            let (id, error) = try await peer.readError()
            #expect(id == 11)
            #expect(error.code == .deadlineExceeded)
        }
        await server.stop()
    }

    @Test("calls made together before any connection exists share one connection")
    func concurrentFirstCallsShareOneConnection() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        let replies = try await withThrowingTaskGroup(of: EchoResponse.self) { group in
            for number in 0..<20 {
                group.addTask {
                    try await client.call(TestMethods.echo, EchoRequest(text: "\(number)", number: number))
                }
            }
            var replies: [EchoResponse] = []
            for try await reply in group { replies.append(reply) }
            return replies
        }
        #expect(replies.count == 20)
        #expect(Set(replies.map(\.number)) == Set(0..<20))
        #expect(replies.allSatisfy { $0.text == "\($0.number)" })
        #expect(Set(replies.map(\.connection)).count == 1, "connections: \(Set(replies.map(\.connection)))")
        await client.shutdown()
        await server.stop()
    }

    @Test("calling a server that is not running fails at once with unavailable, retryable")
    func stoppedServerIsUnavailable() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let endpoint = server.endpoint
        await server.stop()

        let client = try makeClient(pki: pki, endpoint: endpoint)
        let start = ContinuousClock.now
        let error = await rescindError {
            _ = try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 1), timeout: .seconds(12))
        }
        #expect(error?.code == .unavailable)
        #expect(error?.retryable == true)
        #expect(ContinuousClock.now - start < .seconds(6), "a refused connection should not wait out the deadline")
        await client.shutdown()
    }

    @Test("when the server stops, a connected client's next call fails with unavailable, retryable")
    func serverStopsUnderAConnectedClient() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        _ = try await client.call(TestMethods.echo, EchoRequest(text: "connect", number: 0))
        await server.stop()

        let error = await rescindError {
            _ = try await within(.seconds(5)) {
                try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 1), timeout: .seconds(2))
            }
        }
        #expect(error?.code == .unavailable)
        #expect(error?.retryable == true)
        await client.shutdown()
    }

    @Test("a call in flight when the server shuts down fails with unavailable, retryable")
    func callInFlightDuringShutdown() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let gauge = Gauge()
        let server = try await RunningServer.start(pki: pki, router: gauge.router())
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        _ = try await client.call(TestMethods.echo, EchoRequest(text: "connect", number: 0))

        let pending = Task {
            try await client.call(TestMethods.sleep, SleepRequest(number: 1, milliseconds: 3_000))
        }
        try await gauge.waitUntilRunning(1)  // in flight: its handler runs
        await server.stop()

        let error = await rescindError { _ = try await within(.seconds(5)) { try await pending.value } }
        #expect(error?.code == .unavailable, "got \(String(describing: error))")
        #expect(error?.retryable == true)
        await client.shutdown()
    }

    @Test("the client reconnects to a new server on the same port after the old one stopped")
    func reconnectsAfterServerRestart() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let first = try await RunningServer.start(pki: pki)
        let port = first.port
        let client = try makeClient(pki: pki, endpoint: first.endpoint)
        let before = try await client.call(TestMethods.echo, EchoRequest(text: "before", number: 1))
        #expect(before.text == "before")
        await first.stop()

        // Other tests running in parallel may briefly hold the freed port (as a client's ephemeral port).
        var bound: RunningServer?
        for _ in 0..<100 where bound == nil {
            bound = try? await RunningServer.start(pki: pki, configuration: .init(host: "127.0.0.1", port: port))
            if bound == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let second = try #require(bound, "port \(port) stayed in use")
        #expect(second.port == port)

        // A call may still see the old connection die; within a few attempts one must succeed.
        var reply: EchoResponse?
        var failures: [RescindError] = []
        for attempt in 0..<20 where reply == nil {
            do {
                reply = try await within(.seconds(5)) {
                    try await client.call(TestMethods.echo, EchoRequest(text: "after", number: attempt))
                }
            } catch let error as RescindError {
                #expect(error.code == .unavailable)
                #expect(error.retryable)
                failures.append(error)
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let after = try #require(reply, "no call succeeded; failures: \(failures)")
        #expect(after.text == "after")
        #expect(failures.count <= 2, "failures: \(failures)")

        await client.shutdown()
        await second.stop()
    }

    @Test("a client that expects another server identity refuses the connection with wrong_server_identity")
    func expectedServerMismatch() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki, identity: .orders)
        let client = try makeClient(pki: pki, endpoint: server.endpoint, expectedServer: .payments)
        let error = await rescindError {
            _ = try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 1))
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.reason == "wrong_server_identity")
        #expect(error?.retryable == false)
        #expect(error?.message.contains("orders") == true)

        // Trying again (after the client's own backoff) does not slip through.
        let again = await rescindError {
            _ = try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 2))
        }
        #expect(again?.reason == "wrong_server_identity")

        // Expecting the right identity works.
        let good = try makeClient(pki: pki, endpoint: server.endpoint, expectedServer: .orders)
        let reply = try await good.call(TestMethods.echo, EchoRequest(text: "ok", number: 3))
        #expect(reply.text == "ok")

        await client.shutdown()
        await good.shutdown()
        await server.stop()
    }

    @Test("after shutdown, calls fail with unavailable and are not retryable")
    func shutdownClient() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        _ = try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 1))
        await client.shutdown()
        let error = await rescindError {
            _ = try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 2))
        }
        #expect(error?.code == .unavailable)
        #expect(error?.retryable == false)
        await server.stop()
    }

    @Test("a response larger than the client's maximum frame fails the call with malformed; the client recovers")
    func responseAboveClientMaximum() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint, maxFrameLength: 2048)
        let small = try await client.call(TestMethods.blob, BlobRequest(size: 100))
        #expect(small.blob.count == 100)

        let error = await rescindError {
            _ = try await within(.seconds(5)) { try await client.call(TestMethods.blob, BlobRequest(size: 10_000)) }
        }
        #expect(error?.code == .malformed)
        #expect(error?.reason == "frame_too_large")

        // The connection was dropped; the next call makes a new one.
        var recovered: BlobResponse?
        for _ in 0..<10 where recovered == nil {
            recovered = try? await within(.seconds(5)) {
                try await client.call(TestMethods.blob, BlobRequest(size: 10))
            }
            if recovered == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(recovered?.blob.count == 10)
        await client.shutdown()
        await server.stop()
    }

    @Test("inside the reconnection backoff, a call whose deadline ends first fails at once without dialling")
    func backoffShorterThanDeadline() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let endpoint = server.endpoint
        await server.stop()

        let client = try RPCClient(
            configuration: .init(endpoint: endpoint, initialBackoff: .seconds(30), maxBackoff: .seconds(30)),
            tls: try pki.files(for: "operator"),
            logger: quietLogger
        )
        let first = await rescindError {
            _ = try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 1))
        }
        #expect(first?.code == .unavailable)

        let start = ContinuousClock.now
        let second = await rescindError {
            _ = try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 2), timeout: .seconds(6))
        }
        #expect(second?.code == .unavailable)
        #expect(second?.retryable == true)
        #expect(ContinuousClock.now - start < .seconds(3), "the call waited instead of failing inside the backoff")
        await client.shutdown()
    }

    @Test("a server that closes the connection right after its hello: every call fails by its deadline, none hangs")
    func serverClosingAfterHello() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let context = try pki.files(for: "orders").makeServerContext()
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: context))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                    try sync.addHandler(HelloThenCloseHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let port = try #require(listener.localAddress?.port)

        // Each call gets a fresh connection whose hello succeeds and which the server then closes. Whether the
        // request is written before or after the client has torn the connection down is a race; either way the call
        // must end with unavailable (or deadline_exceeded) within its 500 ms deadline.
        for attempt in 0..<20 {
            let client = try makeClient(pki: pki, endpoint: Endpoint(host: "127.0.0.1", port: port))
            let outcome = await Result {
                try await within(.seconds(2)) {
                    try await client.call(
                        TestMethods.echo, EchoRequest(text: "x", number: attempt), timeout: .milliseconds(500)
                    )
                }
            }
            await client.shutdown()
            switch outcome {
            case .success:
                Issue.record("attempt \(attempt): a call succeeded against a server that answers nothing")
            case .failure(let error as RescindError):
                #expect(error.code == .unavailable || error.code == .deadlineExceeded, "attempt \(attempt): \(error)")
            case .failure(let error):
                Issue.record("attempt \(attempt): the call did not return: \(error)")
            }
        }
        try await listener.close()
    }

    @Test("a server that accepts the socket but never speaks does not hold a call past its deadline")
    func silentServer() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        // A plain TCP listener: no TLS, no hello, nothing.
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let port = try #require(listener.localAddress?.port)
        let client = try makeClient(pki: pki, endpoint: Endpoint(host: "127.0.0.1", port: port))

        let start = ContinuousClock.now
        let error = await rescindError {
            _ = try await within(.seconds(5)) {
                try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 1), timeout: .milliseconds(300))
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(error?.code == .unavailable || error?.code == .deadlineExceeded, "got \(String(describing: error))")
        #expect(error?.retryable == true)
        #expect(elapsed < .seconds(4), "took \(elapsed)")

        await client.shutdown()
        try await listener.close()
    }
}

/// A fake server: answers the client's hello, then closes the connection at once.
final class HelloThenCloseHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let hello = ServerHello(version: ProtocolVersion.current, server: "orders", maxInFlight: 8)
        guard frame.kind == .hello, let body = try? WireCodec().encode(hello) else {
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(Frame(kind: .hello, correlationID: 0, body: body)), promise: nil)
        context.close(promise: nil)
    }
}
