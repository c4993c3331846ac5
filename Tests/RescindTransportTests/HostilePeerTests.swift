import Foundation
import NIOCore
import NIOSSL
import RescindAPI
import RescindTransport
import RescindWire
import Testing

/// A peer with a valid certificate that sends hand-made frames: the server answers what it can, closes the
/// connection when the byte stream cannot be trusted any more, and keeps serving everyone else.
@Suite("Hostile peers: hand-made frames against a real server")
struct HostilePeerTests {
    typealias Fixture = HostileFixture

    static func bytes(_ frame: Frame) -> ByteBuffer {
        var buffer = ByteBuffer()
        frame.write(to: &buffer)
        return buffer
    }

    // MARK: The handshake

    @Test("the server's hello names its identity, the chosen version and its in-flight limit")
    func serverHello() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            let hello = try await peer.handshake()
            #expect(hello.version == ProtocolVersion.current)
            #expect(hello.server == "orders")
            #expect(hello.maxInFlight == 16)
        }
        try await fixture.finish()
    }

    @Test("a hello offering only version 99 gets an unsupported_version error frame, then the connection closes")
    func helloWithUnknownVersion() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.send(.hello, correlationID: 0, ClientHello(versions: [99], agent: "from-the-future"))
            try await peer.expectConnectionError(.unsupportedVersion, retryable: false)
        }
        try await fixture.finish()
    }

    @Test("a hello offering several versions, one of them ours, is accepted")
    func helloWithSeveralVersions() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.send(
                .hello, correlationID: 0, ClientHello(versions: [7, ProtocolVersion.current, 99], agent: "a"))
            let frame = try await peer.readFrame()
            #expect(frame.kind == .hello)
            let hello = try WireCodec().decode(ServerHello.self, from: frame.body)
            #expect(hello.version == ProtocolVersion.current)
        }
        try await fixture.finish()
    }

    @Test("a first frame whose header version byte is 2 gets unsupported_version, then the connection closes")
    func helloFrameVersion2() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.send(.hello, correlationID: 0, ClientHello(agent: "v2"), version: 2)
            try await peer.expectConnectionError(.unsupportedVersion)
        }
        try await fixture.finish()
    }

    @Test("a first frame that is not a hello gets malformed/expected_hello, then the connection closes")
    func firstFrameNotHello() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.send(
                .request, correlationID: 1, try RawPeer.envelope("test.echo", EchoRequest(text: "x", number: 1)))
            try await peer.expectConnectionError(.malformed, reason: "expected_hello")
        }
        try await fixture.finish()
    }

    @Test(
        "a hello with a correlation id or flags other than 0 gets malformed/expected_hello, then the connection closes",
        arguments: [(UInt64(5), UInt16(0)), (0, 1), (.max, 0x8000)]
    )
    func helloWithNonZeroIDOrFlags(correlationID: UInt64, flags: UInt16) async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.send(.hello, correlationID: correlationID, ClientHello(agent: "odd"), flags: flags)
            try await peer.expectConnectionError(.malformed, reason: "expected_hello")
        }
        try await fixture.finish()
    }

    @Test("a hello whose body is not a ClientHello gets malformed/bad_hello, then the connection closes")
    func unreadableHello() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.send(Frame(kind: .hello, correlationID: 0, body: ByteBuffer(bytes: [0xFF, 0x00, 0x13])))
            try await peer.expectConnectionError(.malformed, reason: "bad_hello")
        }
        try await fixture.finish()
    }

    @Test("a peer that completes TLS but never says hello is disconnected after the handshake timeout")
    func silentPeerTimesOut() async throws {
        let fixture = try await Fixture.start(handshakeTimeoutSeconds: 0.3)
        let start = ContinuousClock.now
        try await fixture.withPeer(watchdog: .seconds(8)) { peer in
            await peer.expectClosed()
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(250))
        #expect(elapsed < .seconds(6), "took \(elapsed)")
        try await fixture.finish()
    }

    @Test("after a hello, the handshake timeout no longer applies")
    func handshakeTimeoutCancelledByHello() async throws {
        // Long enough for TLS and the hello on a loaded machine; the wait after the hello is longer still.
        let fixture = try await Fixture.start(handshakeTimeoutSeconds: 1)
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await Task.sleep(for: .milliseconds(1_500))
            try await peer.send(
                .request, correlationID: 1, try RawPeer.envelope("test.echo", EchoRequest(text: "late", number: 1)))
            let frame = try await peer.readFrame()
            #expect(frame.kind == .response)
            #expect(frame.correlationID == 1)
        }
        try await fixture.finish()
    }

    // MARK: Frames the server cannot trust: an error frame, then the connection closes

    @Test("a request frame with header version 2 after the hello gets unsupported_version, then the connection closes")
    func requestFrameVersion2() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(
                .request, correlationID: 5, try RawPeer.envelope("test.echo", EchoRequest(text: "x", number: 1)),
                version: 2
            )
            try await peer.expectConnectionError(.unsupportedVersion, retryable: false)
        }
        try await fixture.finish()
    }

    @Test(
        "a length prefix above the server's maximum gets malformed/frame_too_large at once, then the connection closes",
        arguments: [false, true]
    )
    func frameTooLarge(afterHello: Bool) async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            if afterHello { try await peer.handshake() }
            // A header declaring 1 MiB, and only a few bytes of it: the server must not wait for the rest.
            var header = ByteBuffer()
            header.writeInteger(UInt32(1 << 20))
            header.writeBytes([1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9])
            try await peer.send(bytes: header)
            try await peer.expectConnectionError(.malformed, reason: "frame_too_large")
        }
        try await fixture.finish()
    }

    @Test("a length prefix below the header length gets malformed/frame_too_short, then the connection closes")
    func frameTooShort() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            var bytes = ByteBuffer()
            bytes.writeInteger(UInt32(4))
            bytes.writeBytes([1, 2, 0, 0])
            try await peer.send(bytes: bytes)
            try await peer.expectConnectionError(.malformed, reason: "frame_too_short")
        }
        try await fixture.finish()
    }

    @Test("an unknown frame kind after the hello gets malformed/unknown_frame_kind, then the connection closes")
    func unknownFrameKind() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(Frame(kind: FrameKind(rawValue: 9), correlationID: 3, body: ByteBuffer(bytes: [0xA0])))
            try await peer.expectConnectionError(.malformed, reason: "unknown_frame_kind")
        }
        try await fixture.finish()
    }

    @Test("reserved flags that are not 0 get malformed/bad_flags, then the connection closes")
    func nonZeroFlags() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(
                .request, correlationID: 3, try RawPeer.envelope("test.echo", EchoRequest(text: "x", number: 1)),
                flags: 0x0001
            )
            try await peer.expectConnectionError(.malformed, reason: "bad_flags")
        }
        try await fixture.finish()
    }

    /// PROTOCOL.md section 4.4: of several faults in one header, the first row of the table decides.
    @Test(
        "a header with several faults gets the error of the first that the table lists",
        arguments: [
            (UInt8(2), UInt8(9), UInt16(1), UInt64(0), "unsupported_version"),
            (1, 9, 1, 0, "unknown_frame_kind"),
            (1, 3, 1, 0, "bad_flags"),
            (1, 3, 0, 0, "unexpected_frame"),
        ]
    )
    func faultPrecedence(version: UInt8, kind: UInt8, flags: UInt16, correlationID: UInt64, reason: String)
        async throws
    {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(
                Frame(
                    kind: FrameKind(rawValue: kind), correlationID: correlationID, body: ByteBuffer(bytes: [0xA0]),
                    version: version, flags: flags))
            if reason == "unsupported_version" {
                try await peer.expectConnectionError(.unsupportedVersion, reason: nil)
            } else {
                try await peer.expectConnectionError(.malformed, reason: reason)
            }
        }
        try await fixture.finish()
    }

    // MARK: Bad requests

    @Test("a request with correlation id 0 gets the connection error malformed/missing_correlation_id, then a close")
    func requestWithCorrelationIDZero() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            let envelope = try RawPeer.envelope("test.echo", EchoRequest(text: "zero", number: 0))
            try await peer.send(.request, correlationID: 0, envelope)
            try await peer.expectConnectionError(.malformed, reason: "missing_correlation_id")
        }
        try await fixture.finish()
    }

    @Test("a request body that is not CBOR gets invalid_argument for that correlation id; the connection stays usable")
    func requestBodyNotCBOR() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(
                Frame(kind: .request, correlationID: 77, body: ByteBuffer(string: "this is not CBOR"))
            )
            let (id, error) = try await peer.readError()
            #expect(id == 77)
            #expect(error.code == .invalidArgument)
            #expect(error.reason == "bad_envelope")
            #expect(error.retryable == false)

            // An envelope that is well-formed but whose payload is not.
            let envelope = RequestEnvelope(
                method: "test.echo",
                deadlineMillis: UInt64((Date().timeIntervalSince1970 + 5) * 1000),
                payload: Data([0xFF, 0xFF])
            )
            try await peer.send(.request, correlationID: 78, envelope)
            let (payloadID, payloadError) = try await peer.readError()
            #expect(payloadID == 78)
            #expect(payloadError.code == .invalidArgument)
            #expect(payloadError.reason == "bad_body")

            try await peer.send(
                .request, correlationID: 79, try RawPeer.envelope("test.echo", EchoRequest(text: "ok", number: 1)))
            let frame = try await peer.readFrame()
            #expect(frame.kind == .response)
            #expect(frame.correlationID == 79)
        }
        try await fixture.finish()
    }

    @Test(
        "a hello, response or error frame from the client after the handshake gets malformed/unexpected_frame, then a close",
        arguments: [(FrameKind.hello, UInt64(0)), (.response, 12), (.error, 13)]
    )
    func unexpectedFrameKinds(kind: FrameKind, correlationID: UInt64) async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(kind, correlationID: correlationID, RescindError(.internal, "from a client"))
            try await peer.expectConnectionError(.malformed, reason: "unexpected_frame")
        }
        try await fixture.finish()
    }

    @Test(
        "a correlation id already in flight gets the connection error malformed/duplicate_correlation_id, then a close")
    func duplicateCorrelationID() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(
                .request, correlationID: 40,
                try RawPeer.envelope("test.sleep", SleepRequest(number: 1, milliseconds: 300))
            )
            try await peer.send(
                .request, correlationID: 40,
                try RawPeer.envelope("test.sleep", SleepRequest(number: 2, milliseconds: 1))
            )
            let (id, error) = try await peer.readError()
            #expect(id == 0)
            #expect(error.code == .malformed)
            #expect(error.reason == "duplicate_correlation_id")
            // At most the answer to the first request may still come, then the connection closes.
            for _ in 0..<2 {
                let outcome = await peer.read()
                guard case .frame(let frame) = outcome else {
                    if case .watchdogFired = outcome { Issue.record("the server did not close the connection") }
                    break
                }
                #expect(frame.kind == .response && frame.correlationID == 40, "unexpected \(frame)")
                #expect(try WireCodec().decode(SleepResponse.self, from: frame.body).number == 1)
            }
        }
        try await fixture.finish()
    }

    @Test("a correlation id may be used again once its request is answered")
    func correlationIDReuseAfterAnswer() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            for number in 1...3 {
                try await peer.send(
                    .request, correlationID: 40,
                    try RawPeer.envelope("test.sleep", SleepRequest(number: number, milliseconds: 1))
                )
                let frame = try await peer.readFrame()
                #expect(frame.kind == .response)
                #expect(frame.correlationID == 40)
                #expect(try WireCodec().decode(SleepResponse.self, from: frame.body).number == number)
            }
        }
        try await fixture.finish()
    }

    @Test("answers come back by correlation id, out of order, for any 64-bit id")
    func answersByCorrelationID() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            let slowID: UInt64 = .max
            let fastID: UInt64 = 1 << 40
            try await peer.send(
                .request, correlationID: slowID,
                try RawPeer.envelope("test.sleep", SleepRequest(number: 1, milliseconds: 300))
            )
            try await peer.send(
                .request, correlationID: fastID,
                try RawPeer.envelope("test.sleep", SleepRequest(number: 2, milliseconds: 1))
            )
            let first = try await peer.readFrame()
            let second = try await peer.readFrame()
            #expect(first.correlationID == fastID)
            #expect(try WireCodec().decode(SleepResponse.self, from: first.body).number == 2)
            #expect(second.correlationID == slowID)
            #expect(try WireCodec().decode(SleepResponse.self, from: second.body).number == 1)
        }
        try await fixture.finish()
    }

    @Test("a request frame at exactly the server's maximum length is read (and refused only by its content)")
    func frameAtExactMaximum() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            let body = ByteBuffer(repeating: 0x00, count: Fixture.maxFrameLength - Frame.headerLength)
            try await peer.send(Frame(kind: .request, correlationID: 21, body: body))
            let (id, error) = try await peer.readError()
            #expect(id == 21)
            #expect(error.code == .invalidArgument)
        }
        try await fixture.finish()
    }

    @Test("one peer after another sends every kind of garbage; a normal client is served throughout")
    func serverSurvivesAllOfThem() async throws {
        let fixture = try await Fixture.start()
        let garbage: [ByteBuffer] = [
            Self.bytes(
                Frame(
                    kind: .hello, correlationID: 0,
                    body: try WireCodec().encode(ClientHello(versions: [99], agent: "x")))),
            Self.bytes(Frame(kind: .hello, correlationID: 0, body: ByteBuffer(), version: 2)),
            {
                var buffer = ByteBuffer()
                buffer.writeInteger(UInt32(1 << 20))
                return buffer
            }(),
            Self.bytes(Frame(kind: FrameKind(rawValue: 0), correlationID: 0, body: ByteBuffer())),
            ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ]
        for bytes in garbage {
            try await fixture.withPeer { peer in
                try await peer.send(bytes: bytes)
                // Whatever it says, it ends the connection, and it does not take long.
                for _ in 0..<3 {
                    let outcome = await peer.read()
                    if case .frame(let frame) = outcome {
                        #expect(frame.kind == .error)
                        #expect(frame.correlationID == 0)
                        continue
                    }
                    if case .watchdogFired = outcome { Issue.record("the server did not close the connection") }
                    break
                }
            }
            try await TLSTests.expectServing(pki: fixture.pki, server: fixture.server)
        }
        try await fixture.finish()
    }
}
