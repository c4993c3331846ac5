import Foundation
import NIOCore
import RescindAPI
import RescindTransport
import RescindWire
import Testing

/// `listen.idle_timeout_seconds`: a connection with nothing in flight and nothing read for that long is
/// closed with `unavailable`/`idle_timeout`; one with a request running is not.
@Suite("Idle connections")
struct IdleTimeoutTests {
    static let idle = 0.3

    @Test("a peer that handshakes and then says nothing gets unavailable/idle_timeout on id 0, then the close")
    func silentPeerIsClosed() async throws {
        let fixture = try await HostileFixture.start(idleTimeoutSeconds: Self.idle)
        try await fixture.withPeer { peer in
            // The server's idle clock starts once it has read the hello, so after this.
            let start = ContinuousClock.now
            try await peer.handshake()
            try await peer.expectConnectionError(.unavailable, reason: "idle_timeout", retryable: true)
            #expect(ContinuousClock.now - start >= .milliseconds(Int64(Self.idle * 1000)), "closed before the timeout")
        }
        try await fixture.finish()
    }

    @Test("a request running longer than the idle timeout keeps the connection open until its answer is sent")
    func requestInFlightIsNotIdle() async throws {
        let fixture = try await HostileFixture.start(idleTimeoutSeconds: Self.idle)
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(
                .request, correlationID: 7,
                try RawPeer.envelope(TestMethods.sleep.name, SleepRequest(number: 7, milliseconds: 1_000)))
            let answer = try await peer.readFrame()
            #expect(answer.kind == .response)
            #expect(answer.correlationID == 7)
            #expect(try WireCodec().decode(SleepResponse.self, from: answer.body).number == 7)
            // Idle from the answer on.
            let (id, error) = try await peer.readError()
            #expect(id == 0)
            #expect(error.reason == "idle_timeout")
        }
        try await fixture.finish()
    }

    @Test("a client whose idle connection was closed reconnects on its next call")
    func clientReconnects() async throws {
        let fixture = try await HostileFixture.start(idleTimeoutSeconds: Self.idle)
        let client = try makeClient(pki: fixture.pki, endpoint: fixture.server.endpoint)
        let first = try await client.call(TestMethods.echo, EchoRequest(text: "a", number: 1))
        try await Task.sleep(for: .milliseconds(Int64(Self.idle * 3_000)))
        let second: EchoResponse
        do {
            second = try await client.call(TestMethods.echo, EchoRequest(text: "b", number: 2))
        } catch let error as RescindError where error.reason == "idle_timeout" {
            // On a busy machine the server's close can cross this request (PROTOCOL.md 4.3): the
            // error is retryable, and the retry must go out on a new connection.
            #expect(error.retryable)
            second = try await client.call(TestMethods.echo, EchoRequest(text: "b", number: 2))
        }
        #expect(second.number == 2)
        #expect(second.connection != first.connection, "the idle connection was not closed")
        await client.shutdown()
        try await fixture.finish()
    }
}
