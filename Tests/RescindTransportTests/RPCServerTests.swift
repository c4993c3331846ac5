import Foundation
import RescindAPI
import RescindTransport
import RescindWire
import Testing

/// An `RPCServer` over real loopback sockets and mutual TLS, called by an `RPCClient`.
@Suite("RPC server: dispatch, authorisation and errors over mutual TLS")
struct RPCServerTests {
    @Test("a call reaches its handler and the response comes back; the handler sees the caller's certificate identity")
    func echo() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)

        let first = try await client.call(TestMethods.echo, EchoRequest(text: "hello", number: 1))
        #expect(first.text == "hello")
        #expect(first.number == 1)
        #expect(first.peer == "operator")
        #expect(first.idempotencyKey == nil)

        let second = try await client.call(
            TestMethods.echo, EchoRequest(text: "ünïcødé ✓", number: -42), idempotencyKey: "key-1"
        )
        #expect(second.text == "ünïcødé ✓")
        #expect(second.number == -42)
        #expect(second.idempotencyKey == "key-1")
        // Both calls went over the same connection.
        #expect(second.connection == first.connection)

        let sleepy = try await client.call(TestMethods.sleep, SleepRequest(number: 5, milliseconds: 1))
        #expect(sleepy.number == 5)

        await client.shutdown()
        await server.stop()
    }

    @Test("the server's identity is the one it was bound with, and it listens on the port it reports")
    func reportsPortAndIdentity() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki, identity: .inventory)
        #expect(server.server.identity == .inventory)
        #expect(server.port > 0)
        let client = try makeClient(pki: pki, endpoint: server.endpoint, expectedServer: .inventory)
        let reply = try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 0))
        #expect(reply.text == "x")
        await client.shutdown()
        await server.stop()
    }

    @Test("50 calls in flight on one connection are answered out of order, each with its own answer")
    func manyCallsOutOfOrder() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        // Open the connection first, so all 50 calls share it.
        let warmUp = try await client.call(TestMethods.echo, EchoRequest(text: "warm-up", number: 0))

        let count = 50
        let completionOrder = Recorder<Int>()
        let answers = try await withThrowingTaskGroup(of: (Int, SleepResponse).self) { group in
            for number in 0..<count {
                group.addTask {
                    // Lower numbers sleep longer: the last request sent is the first answered.
                    let request = SleepRequest(number: number, milliseconds: (count - number) * 10)
                    let response = try await client.call(TestMethods.sleep, request)
                    completionOrder.append(number)
                    return (number, response)
                }
            }
            var answers: [Int: SleepResponse] = [:]
            for try await (number, response) in group { answers[number] = response }
            return answers
        }

        #expect(answers.count == count)
        for number in 0..<count {
            #expect(answers[number]?.number == number, "call \(number) got \(String(describing: answers[number]))")
        }
        let order = completionOrder.values
        #expect(order.count == count)
        // The calls were concurrent: the 500 ms one was not answered before the 10 ms one.
        let firstIndex = try #require(order.firstIndex(of: 0))
        let lastIndex = try #require(order.firstIndex(of: count - 1))
        #expect(lastIndex < firstIndex, "completion order: \(order)")
        #expect(order != Array(0..<count))

        // Still the same single connection.
        let after = try await client.call(TestMethods.echo, EchoRequest(text: "after", number: 0))
        #expect(after.connection == warmUp.connection)

        await client.shutdown()
        await server.stop()
    }

    @Test("calling a method whose callers exclude the caller's identity fails with permission_denied")
    func permissionDenied() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let operatorClient = try makeClient(pki: pki, endpoint: server.endpoint, identity: .operator)
        let error = await rescindError {
            _ = try await operatorClient.call(TestMethods.paymentsOnly, EchoRequest(text: "x", number: 1))
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.reason == "identity_not_allowed")
        #expect(error?.retryable == false)

        // The same method works for an identity it lists, which proves the identity comes from the certificate.
        let paymentsClient = try makeClient(pki: pki, endpoint: server.endpoint, identity: .payments)
        let reply = try await paymentsClient.call(TestMethods.paymentsOnly, EchoRequest(text: "ok", number: 2))
        #expect(reply.peer == "payments")

        // A refusal does not end the connection.
        let echo = try await operatorClient.call(TestMethods.echo, EchoRequest(text: "still here", number: 3))
        #expect(echo.text == "still here")

        await operatorClient.shutdown()
        await paymentsClient.shutdown()
        await server.stop()
    }

    @Test("calling a method the server does not have fails with unimplemented")
    func unknownMethod() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        let error = await rescindError { _ = try await client.call(TestMethods.missing, Empty()) }
        #expect(error?.code == .unimplemented)
        #expect(error?.reason == "unknown_method")
        #expect(error?.retryable == false)
        await client.shutdown()
        await server.stop()
    }

    @Test(
        "a RescindError thrown by a handler reaches the client with the same code, message, reason and retryable",
        arguments: [
            FailRequest(
                code: "failed_precondition", message: "card declined", reason: "card_declined", retryable: false),
            FailRequest(code: "unavailable", message: "processor down", reason: nil, retryable: true),
            // The flag is carried, not recomputed from the code.
            FailRequest(code: "unavailable", message: "permanently gone", reason: "gone", retryable: false),
            FailRequest(code: "not_found", message: "no order 7", reason: "order", retryable: true),
            FailRequest(code: "some_future_code", message: "from a newer peer", reason: "x", retryable: false),
        ]
    )
    func handlerErrorReachesClient(request: FailRequest) async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        let error = await rescindError { _ = try await client.call(TestMethods.fail, request) }
        #expect(error?.code.rawValue == request.code)
        #expect(error?.message == request.message)
        #expect(error?.reason == request.reason)
        #expect(error?.retryable == request.retryable)
        await client.shutdown()
        await server.stop()
    }

    @Test("a handler's non-Rescind error becomes internal without its details")
    func plainErrorBecomesInternal() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        let request = FailRequest(code: "x", message: "secret", reason: nil, retryable: true, plainError: true)
        let error = await rescindError { _ = try await client.call(TestMethods.fail, request) }
        #expect(error?.code == .internal)
        #expect(error?.retryable == false)
        #expect(error?.message.contains("PlainFailure") == false)
        await client.shutdown()
        await server.stop()
    }

    @Test("a request the method cannot decode fails with invalid_argument")
    func undecodableRequest() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        let error = await rescindError {
            _ = try await client.call(TestMethods.echoWrongShape, WrongShapeRequest(unrelated: true))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.reason == "bad_body")
        await client.shutdown()
        await server.stop()
    }

    @Test("a method that requires an idempotency key refuses a call without one, and passes the key to the handler")
    func idempotencyKeyRequired() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try await RunningServer.start(pki: pki)
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        let missing = await rescindError {
            _ = try await client.call(TestMethods.keyed, EchoRequest(text: "x", number: 1))
        }
        #expect(missing?.code == .invalidArgument)
        #expect(missing?.reason == "missing_idempotency_key")

        let empty = await rescindError {
            _ = try await client.call(TestMethods.keyed, EchoRequest(text: "x", number: 1), idempotencyKey: "")
        }
        #expect(empty?.reason == "missing_idempotency_key")

        let tooLong = await rescindError {
            _ = try await client.call(
                TestMethods.keyed, EchoRequest(text: "x", number: 1), idempotencyKey: String(repeating: "k", count: 256)
            )
        }
        #expect(tooLong?.code == .invalidArgument)
        #expect(tooLong?.reason == "bad_idempotency_key")

        let reply = try await client.call(TestMethods.keyed, EchoRequest(text: "x", number: 1), idempotencyKey: "abc")
        #expect(reply.idempotencyKey == "abc")
        await client.shutdown()
        await server.stop()
    }

    @Test("a graceful shutdown lets the call in flight finish, then serve() returns and new calls are unavailable")
    func gracefulShutdownDrains() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let gauge = Gauge()
        let server = try await RunningServer.start(pki: pki, router: gauge.router())
        let client = try makeClient(pki: pki, endpoint: server.endpoint)
        _ = try await client.call(TestMethods.echo, EchoRequest(text: "connect", number: 0))

        let pending = Task { try await client.call(TestMethods.sleep, SleepRequest(number: 7, milliseconds: 400)) }
        try await gauge.waitUntilRunning(1)
        let start = ContinuousClock.now
        await server.server.shutdownGracefully(drainTimeout: .seconds(12))
        let drained = ContinuousClock.now - start
        #expect(drained < .seconds(6), "the drain waited for its timeout instead of the call: \(drained)")

        let answer = try await within(.seconds(3)) { try await pending.value }
        #expect(answer.number == 7)
        // serve() returns by itself, without being cancelled.
        let served = await Result { try await within(.seconds(3)) { try await server.task.value } }
        #expect((try? served.get()) != nil, "serve() did not return: \(served)")

        let error = await rescindError {
            _ = try await within(.seconds(3)) {
                try await client.call(TestMethods.echo, EchoRequest(text: "x", number: 1))
            }
        }
        #expect(error?.code == .unavailable)
        #expect(error?.retryable == true)
        await client.shutdown()
        await server.stop()
    }

    @Test("a graceful shutdown does not wait past its drain timeout; the unfinished call fails with unavailable")
    func gracefulShutdownDrainTimeout() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let gauge = Gauge()
        let server = try await RunningServer.start(pki: pki, router: gauge.router())
        let client = try makeClient(pki: pki, endpoint: server.endpoint, defaultTimeout: .seconds(12))
        _ = try await client.call(TestMethods.echo, EchoRequest(text: "connect", number: 0))

        let pending = Task { try await client.call(TestMethods.sleep, SleepRequest(number: 1, milliseconds: 8_000)) }
        try await gauge.waitUntilRunning(1)
        let start = ContinuousClock.now
        await server.server.shutdownGracefully(drainTimeout: .milliseconds(200))
        #expect(ContinuousClock.now - start < .seconds(4), "the drain waited for the 8 s call")

        let error = await rescindError { _ = try await within(.seconds(6)) { try await pending.value } }
        #expect(error?.code == .unavailable)
        #expect(error?.retryable == true)
        #expect(ContinuousClock.now - start < .seconds(4), "the call was not failed when its connection closed")
        await client.shutdown()
        await server.stop()
    }
}
