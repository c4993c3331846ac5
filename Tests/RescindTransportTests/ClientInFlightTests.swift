import Foundation
import RescindAPI
import RescindTransport
import RescindWire
import Testing

/// The client keeps to the `max_in_flight` of the server's hello instead of drawing `too_many_in_flight`.
@Suite("Client in-flight limit")
struct ClientInFlightTests {
    /// Runs `body` with a connected client of a server that admits `limit` requests per connection.
    func withServer(
        limit: Int, answerGrace: Duration = .seconds(10), _ body: (RPCClient, Gauge) async throws -> Void
    ) async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let gauge = Gauge()
        let server = try await RunningServer.start(
            pki: pki, configuration: .init(maxInFlightPerConnection: limit), router: gauge.router())
        let client = try makeClient(pki: pki, endpoint: server.endpoint, answerGrace: answerGrace)
        _ = try await client.call(TestMethods.sleep, SleepRequest(number: 0, milliseconds: 0))
        try await body(client, gauge)
        await client.shutdown()
        await server.stop()
    }

    @Test("a burst of calls beyond the server's max_in_flight waits in the client and every call succeeds")
    func burstWaits() async throws {
        try await withServer(limit: 2) { client, gauge in
            let numbers = try await withThrowingTaskGroup(of: Int.self) { group in
                for number in 0..<12 {
                    group.addTask {
                        try await client.call(TestMethods.sleep, SleepRequest(number: number, milliseconds: 50)).number
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(numbers.sorted() == Array(0..<12))
            #expect(gauge.highest == 2, "the server ran \(gauge.highest) requests at once")
        }
    }

    @Test("a call that waits for room past its deadline fails with deadline_exceeded; later calls still run")
    func waitingCallTimesOut() async throws {
        try await withServer(limit: 1) { client, gauge in
            let slow = Task { try await client.call(TestMethods.sleep, SleepRequest(number: 1, milliseconds: 800)) }
            try await gauge.waitUntilRunning(1)
            let refusal = await rescindError {
                _ = try await client.call(
                    TestMethods.sleep, SleepRequest(number: 2, milliseconds: 0), timeout: .milliseconds(100))
            }
            #expect(refusal?.code == .deadlineExceeded)
            #expect(refusal?.retryable == true)
            let slowAnswer = try await slow.value
            #expect(slowAnswer.number == 1)
            let later = try await client.call(TestMethods.sleep, SleepRequest(number: 3, milliseconds: 0))
            #expect(later.number == 3)
            #expect(gauge.highest == 1)
        }
    }

    @Test("a request whose caller gave up keeps its place until its late answer arrives, as on the server")
    func abandonedRequestCounts() async throws {
        try await withServer(limit: 1) { client, gauge in
            let refusal = await rescindError {
                _ = try await client.call(
                    TestMethods.sleep, SleepRequest(number: 1, milliseconds: 600), timeout: .milliseconds(50))
            }
            #expect(refusal?.code == .deadlineExceeded)
            // The server still runs the first request: this one must wait for it rather than be refused.
            let next = try await client.call(TestMethods.sleep, SleepRequest(number: 2, milliseconds: 0))
            #expect(next.number == 2)
            #expect(gauge.highest == 1)
        }
    }

    /// Found by the chaos run: during a partition, requests whose answers will never come held every place,
    /// and after it healed every call waited for room until its deadline, with no bytes flowing to reveal
    /// that the connection was dead.
    @Test("a request unanswered long past its deadline marks the connection dead; the next call gets a new one")
    func unansweredRequestsDoNotHoldThePlacesForEver() async throws {
        try await withServer(limit: 1, answerGrace: .milliseconds(300)) { client, gauge in
            let first = Task {
                await rescindError {
                    _ = try await client.call(
                        TestMethods.sleep, SleepRequest(number: 1, milliseconds: 60_000), timeout: .milliseconds(500))
                }
            }
            try await gauge.waitUntilRunning(1)
            #expect(await first.value?.code == .deadlineExceeded)
            // The only place is held by a request that will not be answered in time: this call waits, then the
            // connection is given up on.
            let dead = await rescindError {
                _ = try await client.call(
                    TestMethods.sleep, SleepRequest(number: 2, milliseconds: 0), timeout: .seconds(5))
            }
            #expect(dead?.code == .unavailable)
            #expect(dead?.reason == "connection_presumed_dead")
            #expect(dead?.retryable == true)
            let next = try await client.call(TestMethods.sleep, SleepRequest(number: 3, milliseconds: 0))
            #expect(next.number == 3)
        }
    }
}
