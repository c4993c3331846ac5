import Foundation
import RescindAPI
import RescindTransport
import RescindWire
import Testing

/// A client of several replicas: calls spread over them, a dead one passed over, a lost call repeated on
/// another only when its idempotency key makes the repeat safe.
@Suite(.timeLimit(.minutes(1))) struct RPCClientGroupTests {
    /// A router whose echo answers with the replica's name. On replica `a`, `test.keyed` and `test.sleep` are
    /// held until the server stops, and say so on `held`.
    private func replica(_ name: String, held: AsyncStream<Void>.Continuation? = nil) -> RPCRouter {
        var router = RPCRouter()
        let answer: @Sendable (EchoRequest, RequestContext) async throws -> EchoResponse = { request, context in
            EchoResponse(
                text: name, number: request.number, peer: context.peer.rawValue,
                idempotencyKey: context.idempotencyKey, connection: "")
        }
        router.register(TestMethods.echo, handler: answer)
        router.register(TestMethods.keyed) { request, context in
            if name == "a" {
                held?.yield()
                try await Self.holdUntilTheServerStops()
            }
            return try await answer(request, context)
        }
        router.register(TestMethods.sleep) { request, _ in
            if name == "a" {
                held?.yield()
                try await Self.holdUntilTheServerStops()
            }
            return SleepResponse(number: request.number)
        }
        return router
    }

    /// Holds a handler until the server stops and cancels it: an event, not a length of time.
    private static func holdUntilTheServerStops() async throws {
        let (stopped, stop) = AsyncStream.makeStream(of: Void.self)
        await withTaskCancellationHandler {
            for await _ in stopped {}
        } onCancel: {
            stop.finish()
        }
        try Task.checkCancellation()
    }

    private func group(_ pki: TestPKI, _ servers: [RunningServer]) throws -> RPCClientGroup {
        try RPCClientGroup(
            endpoints: servers.map(\.endpoint),
            configuration: .init(
                endpoint: servers[0].endpoint, expectedServer: .orders, defaultTimeout: .seconds(10),
                initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(200), agent: "rescind-transport-tests"),
            tls: try pki.files(for: "operator"), logger: quietLogger)
    }

    @Test func callsAreSpreadOverTheReplicasAndADeadOneIsPassedOver() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let a = try await RunningServer.start(pki: pki, router: replica("a"))
        let b = try await RunningServer.start(pki: pki, router: replica("b"))
        defer { Task { await b.stop() } }
        let client = try group(pki, [a, b])
        defer { Task { await client.shutdown() } }
        var answered: [String] = []
        for number in 0..<4 {
            answered.append(try await client.call(TestMethods.echo, EchoRequest(text: "", number: number)).text)
        }
        #expect(answered == ["a", "b", "a", "b"])

        // A dies (its port refuses connections): every call is answered, by B, without an error.
        await a.stop()
        answered = []
        let start = ContinuousClock.now
        for number in 0..<4 {
            answered.append(try await client.call(TestMethods.echo, EchoRequest(text: "", number: number)).text)
        }
        #expect(answered == ["b", "b", "b", "b"])
        // Passed over at once (a refused connection), well within the second a dead replica may cost.
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func aCallLostWithItsReplicaGoesToAnotherOnlyWithAnIdempotencyKey() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let b = try await RunningServer.start(pki: pki, router: replica("b"))
        defer { Task { await b.stop() } }

        // A keyed call reaches A (the group starts with it), and A dies with it: the same key goes to B.
        let (held, holding) = AsyncStream.makeStream(of: Void.self)
        let a = try await RunningServer.start(pki: pki, router: replica("a", held: holding))
        let client = try group(pki, [a, b])
        defer { Task { await client.shutdown() } }
        async let keyed = client.call(
            TestMethods.keyed, EchoRequest(text: "", number: 1), idempotencyKey: "k-1", timeout: .seconds(10))
        for await _ in held { break }
        await a.stop()
        let answer = try await keyed
        #expect(answer.text == "b")
        #expect(answer.idempotencyKey == "k-1")

        // A keyless call lost the same way is not repeated: whether it took effect is unknown, so it says so.
        let (heldAgain, holdingAgain) = AsyncStream.makeStream(of: Void.self)
        let a2 = try await RunningServer.start(pki: pki, router: replica("a", held: holdingAgain))
        let second = try group(pki, [a2, b])
        defer { Task { await second.shutdown() } }
        async let keyless = rescindError {
            _ = try await second.call(TestMethods.sleep, SleepRequest(number: 2, milliseconds: 0))
        }
        for await _ in heldAgain { break }
        await a2.stop()
        #expect(await keyless?.code == .unavailable)
    }
}
