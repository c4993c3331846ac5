import Foundation
import NIOCore
import NIOSSL
import RescindAPI
import RescindTransport
import RescindWire
import Synchronization
import Testing

/// More misbehaving peers against a real server over real TLS: cut frames, a zero length, bodies that are not
/// acceptable CBOR, a flood past the in-flight limit, and peers that never get through TLS. Each test ends by
/// checking that a normal client is still served.
@Suite("Hostile peers: cut frames, bad CBOR, floods and peers that never speak TLS")
struct HostilePeerMoreTests {
    typealias Fixture = HostileFixture

    /// A deadline far in the future (2100-01-01), so hand-made envelopes never expire.
    static let farDeadline: UInt64 = 4_102_444_800_000

    /// The bytes of a frame, length prefix included.
    static func bytes(_ frame: Frame) -> [UInt8] {
        var buffer = ByteBuffer()
        frame.write(to: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// Sends a good echo request on `peer` and expects its response: the connection is still usable.
    static func expectEcho(_ peer: RawPeer, correlationID: UInt64, sourceLocation: SourceLocation = #_sourceLocation)
        async throws
    {
        try await peer.send(
            .request, correlationID: correlationID,
            try RawPeer.envelope("test.echo", EchoRequest(text: "still here", number: 5))
        )
        let frame = try await peer.readFrame(sourceLocation: sourceLocation)
        try #require(frame.kind == .response, "expected a response, got \(frame)", sourceLocation: sourceLocation)
        #expect(frame.correlationID == correlationID, sourceLocation: sourceLocation)
        let echo = try WireCodec().decode(EchoResponse.self, from: frame.body)
        #expect(echo.text == "still here" && echo.number == 5, sourceLocation: sourceLocation)
    }

    // MARK: A frame cut short, then the end of the stream

    struct Cut: Sendable, CustomTestStringConvertible {
        var name: String
        var afterHello: Bool
        /// How many bytes of the frame are sent.
        var keep: Int
        /// Close only the write side (TLS close_notify, then a TCP half-close) rather than the whole connection.
        var halfClose: Bool

        var testDescription: String { name }

        static let all: [Cut] = [
            Cut(name: "a hello cut after 2 length bytes, half-close", afterHello: false, keep: 2, halfClose: true),
            Cut(name: "a hello cut inside its body, half-close", afterHello: false, keep: 20, halfClose: true),
            Cut(name: "a request cut after 3 length bytes, half-close", afterHello: true, keep: 3, halfClose: true),
            Cut(name: "a request cut inside its header, half-close", afterHello: true, keep: 10, halfClose: true),
            Cut(name: "a request without its last byte, half-close", afterHello: true, keep: -1, halfClose: true),
            Cut(name: "a request without its last byte, full close", afterHello: true, keep: -1, halfClose: false),
        ]
    }

    @Test(
        "a frame cut short and then the end of the stream: the server closes the connection and sends no frame",
        arguments: Cut.all)
    func truncatedFrameThenEOF(cut: Cut) async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            let frame: [UInt8]
            if cut.afterHello {
                try await peer.handshake()
                let envelope = try RawPeer.envelope("test.echo", EchoRequest(text: "cut", number: 1))
                frame = Self.bytes(Frame(kind: .request, correlationID: 9, body: try WireCodec().encode(envelope)))
            } else {
                frame = Self.bytes(
                    Frame(kind: .hello, correlationID: 0, body: try WireCodec().encode(ClientHello(agent: "cut"))))
            }
            let keep = cut.keep < 0 ? frame.count + cut.keep : cut.keep
            try #require(keep > 0 && keep < frame.count)
            try await peer.send(bytes: ByteBuffer(bytes: frame.prefix(keep)))
            if cut.halfClose {
                try await peer.channel.close(mode: .output).get()
                // The server must neither wait for the rest nor answer a frame it never got whole.
                await peer.expectClosed()
            } else {
                try await peer.channel.close().get()
            }
        }
        try await fixture.finish()
    }

    // MARK: A zero length

    @Test(
        "a length prefix of exactly 0 gets malformed/frame_too_short on id 0, then the connection closes",
        arguments: [false, true])
    func zeroLength(afterHello: Bool) async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            if afterHello { try await peer.handshake() }
            try await peer.send(bytes: ByteBuffer(bytes: [0, 0, 0, 0]))
            try await peer.expectConnectionError(.malformed, reason: "frame_too_short", retryable: false)
        }
        try await fixture.finish()
    }

    // MARK: Bodies that are not acceptable CBOR

    /// A body that the server must refuse, with the name the test is reported under.
    struct BadBody: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var testDescription: String { name }

        init(_ name: String, _ bytes: [UInt8]) {
            self.name = name
            self.bytes = bytes
        }
    }

    /// The entries of a good envelope for `test.echo` carrying `payload`.
    static func envelopeEntries(payload: [UInt8] = goodPayload) -> [(String, [UInt8])] {
        [
            ("method", RawCBOR.text("test.echo")),
            ("payload", RawCBOR.bytes(payload)),
            ("deadline", RawCBOR.uint(farDeadline)),
        ]
    }

    static let goodEnvelope = RawCBOR.map(envelopeEntries())

    /// An `EchoRequest` by hand: `{"text": "hi", "number": 1}`.
    static let goodPayload = RawCBOR.map([("text", RawCBOR.text("hi")), ("number", RawCBOR.uint(1))])

    /// Request envelopes that are malformed, too deep, followed by more bytes, or of the wrong shape.
    static let badEnvelopes: [BadBody] = {
        let entries = envelopeEntries()
        let without = { (key: String) in entries.filter { $0.0 != key } }
        let replacing = { (key: String, value: [UInt8]) in entries.map { $0.0 == key ? (key, value) : $0 } }
        return [
            // Malformed.
            BadBody("malformed: a lone break code", [0xFF]),
            BadBody("malformed: an empty body", []),
            BadBody("malformed: cut 3 bytes short", Array(goodEnvelope.dropLast(3))),
            BadBody("malformed: an indefinite-length map", [0xBF] + RawCBOR.entries(entries) + [0xFF]),
            BadBody("malformed: the key method twice", RawCBOR.map(entries + [("method", RawCBOR.text("test.echo"))])),
            BadBody(
                "malformed: invalid UTF-8 in the method", RawCBOR.map(replacing("method", [0x63, 0xFF, 0xFE, 0xFD]))),
            BadBody(
                "malformed: a byte string longer than the input",
                RawCBOR.map(replacing("payload", [0x59, 0x03, 0xE8, 1, 2, 3]))),
            BadBody(
                "malformed: a non-shortest integer under an ignored key",
                RawCBOR.map(entries + [("zzz", [0x18, 0x05])])),
            BadBody("malformed: undefined under an ignored key", RawCBOR.map(entries + [("zzz", [0xF7])])),
            BadBody("malformed: tag 99 under an ignored key", RawCBOR.map(entries + [("zzz", [0xD8, 0x63, 0x00])])),
            // Nested deeper than 64.
            BadBody(
                "too deep: 64 nested arrays under an ignored key (depth 65)",
                RawCBOR.map(entries + [("deep", RawCBOR.nested(depth: 64))])),
            BadBody("too deep: 65 nested arrays", RawCBOR.nested(depth: 65)),
            BadBody("too deep: 4 000 nested arrays", RawCBOR.nested(depth: 4_000)),
            // Trailing bytes.
            BadBody("trailing: a good envelope then 0x00", goodEnvelope + [0x00]),
            BadBody("trailing: two good envelopes", goodEnvelope + goodEnvelope),
            // Valid CBOR of the wrong shape.
            BadBody("wrong shape: an array of the three values", RawCBOR.array(entries.map(\.1))),
            BadBody("wrong shape: an empty map", [0xA0]),
            BadBody("wrong shape: null", [0xF6]),
            BadBody("wrong shape: no method", RawCBOR.map(without("method"))),
            BadBody("wrong shape: no payload", RawCBOR.map(without("payload"))),
            BadBody("wrong shape: no deadline", RawCBOR.map(without("deadline"))),
            BadBody("wrong shape: the method is an integer", RawCBOR.map(replacing("method", RawCBOR.uint(7)))),
            BadBody("wrong shape: the method is null", RawCBOR.map(replacing("method", [0xF6]))),
            BadBody(
                "wrong shape: the payload is a map, not a byte string", RawCBOR.map(replacing("payload", goodPayload))),
            BadBody("wrong shape: the deadline is negative", RawCBOR.map(replacing("deadline", [0x20]))),
            BadBody(
                "wrong shape: the idempotency key is an integer",
                RawCBOR.map(entries + [("idempotency_key", RawCBOR.uint(1))])),
        ]
    }()

    @Test(
        "an envelope that is not acceptable CBOR gets invalid_argument/bad_envelope; the connection stays usable",
        arguments: badEnvelopes)
    func badEnvelope(body: BadBody) async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            try await peer.send(Frame(kind: .request, correlationID: 41, body: ByteBuffer(bytes: body.bytes)))
            let (id, error) = try await peer.readError()
            #expect(id == 41)
            #expect(error.code == .invalidArgument)
            #expect(error.reason == "bad_envelope")
            #expect(error.retryable == false)
            try await Self.expectEcho(peer, correlationID: 42)
        }
        try await fixture.finish()
    }

    /// Payloads of `test.echo` that are malformed, too deep, followed by more bytes, or of the wrong shape.
    static let badPayloads: [BadBody] = {
        let entries: [(String, [UInt8])] = [("text", RawCBOR.text("hi")), ("number", RawCBOR.uint(1))]
        let without = { (key: String) in entries.filter { $0.0 != key } }
        let replacing = { (key: String, value: [UInt8]) in entries.map { $0.0 == key ? (key, value) : $0 } }
        return [
            // Malformed.
            BadBody("malformed: a lone break code", [0xFF]),
            BadBody("malformed: an empty payload", []),
            BadBody("malformed: cut 2 bytes short", Array(goodPayload.dropLast(2))),
            BadBody("malformed: an indefinite-length map", [0xBF] + RawCBOR.entries(entries) + [0xFF]),
            BadBody("malformed: the key number twice", RawCBOR.map(entries + [("number", RawCBOR.uint(2))])),
            BadBody("malformed: invalid UTF-8 in the text", RawCBOR.map(replacing("text", [0x63, 0xFF, 0xFE, 0xFD]))),
            BadBody("malformed: a non-shortest integer", RawCBOR.map(replacing("number", [0x18, 0x05]))),
            BadBody("malformed: undefined under an ignored key", RawCBOR.map(entries + [("zzz", [0xF7])])),
            BadBody("malformed: a map key that is an integer", [0xA3] + RawCBOR.entries(entries) + [0x01, 0x02]),
            // Nested deeper than 64.
            BadBody(
                "too deep: 64 nested arrays under an ignored key (depth 65)",
                RawCBOR.map(entries + [("deep", RawCBOR.nested(depth: 64))])),
            BadBody("too deep: 65 nested arrays", RawCBOR.nested(depth: 65)),
            // Trailing bytes.
            BadBody("trailing: a good payload then 0x00", goodPayload + [0x00]),
            BadBody("trailing: two good payloads", goodPayload + goodPayload),
            // Valid CBOR of the wrong shape.
            BadBody("wrong shape: an array [text, number]", RawCBOR.array(entries.map(\.1))),
            BadBody("wrong shape: an empty map", [0xA0]),
            BadBody("wrong shape: no number", RawCBOR.map(without("number"))),
            BadBody("wrong shape: the text is an integer", RawCBOR.map(replacing("text", RawCBOR.uint(3)))),
            BadBody("wrong shape: the number is text", RawCBOR.map(replacing("number", RawCBOR.text("1")))),
            BadBody("wrong shape: the number is null", RawCBOR.map(replacing("number", [0xF6]))),
            BadBody(
                "wrong shape: the number is above Int.max", RawCBOR.map(replacing("number", RawCBOR.uint(.max)))),
        ]
    }()

    @Test(
        "a payload that is not acceptable CBOR gets invalid_argument/bad_body; the connection stays usable",
        arguments: badPayloads)
    func badPayload(body: BadBody) async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            let envelope = RawCBOR.map(Self.envelopeEntries(payload: body.bytes))
            try await peer.send(Frame(kind: .request, correlationID: 51, body: ByteBuffer(bytes: envelope)))
            let (id, error) = try await peer.readError()
            #expect(id == 51)
            #expect(error.code == .invalidArgument)
            #expect(error.reason == "bad_body")
            #expect(error.retryable == false)
            try await Self.expectEcho(peer, correlationID: 52)
        }
        try await fixture.finish()
    }

    @Test("the limits are exact: nesting of exactly 64, unknown keys and keys out of order are accepted")
    func acceptedAtTheLimits() async throws {
        let fixture = try await Fixture.start()
        try await fixture.withPeer { peer in
            try await peer.handshake()
            // The payload: a map (depth 1) holding 63 nested arrays, so 64 in all.
            let payload = RawCBOR.map([
                ("deep", RawCBOR.nested(depth: 63)), ("number", RawCBOR.uint(4)), ("text", RawCBOR.text("deep")),
            ])
            // The envelope: keys in reverse order, an unknown key, and 63 nested arrays under it.
            let envelope = RawCBOR.map(
                Self.envelopeEntries(payload: payload).reversed() + [("unknown", RawCBOR.nested(depth: 63))])
            try await peer.send(Frame(kind: .request, correlationID: 61, body: ByteBuffer(bytes: envelope)))
            let frame = try await peer.readFrame()
            try #require(frame.kind == .response, "expected a response, got \(frame)")
            #expect(frame.correlationID == 61)
            let echo = try WireCodec().decode(EchoResponse.self, from: frame.body)
            #expect(echo.text == "deep" && echo.number == 4)
        }
        try await fixture.finish()
    }

    // MARK: A flood past the in-flight limit

    /// A method that records each start and waits for a gate, so the test decides when requests finish.
    static let gated = Method<SleepRequest, SleepResponse>("test.gated", callers: [.operator])

    static func gatedRouter(started: Recorder<Int>, gate: Gate) -> RPCRouter {
        var router = TestMethods.router()
        router.register(gated) { request, _ in
            started.append(request.number)
            try await gate.wait()
            return SleepResponse(number: request.number)
        }
        return router
    }

    @Test(
        "a flood past max_in_flight, unread: the first max_in_flight run, the rest get too_many_in_flight by id",
        arguments: [16, 200])
    func floodPastTheInFlightLimit(total: Int) async throws {
        let limit = 8
        let started = Recorder<Int>()
        let gate = Gate()
        let fixture = try await Fixture.start(
            maxInFlight: limit, router: Self.gatedRouter(started: started, gate: gate))
        defer { gate.open() }
        try await fixture.withPeer { peer in
            let hello = try await peer.handshake()
            #expect(hello.maxInFlight == UInt32(limit))

            // Every request in one write, before reading anything.
            var burst = ByteBuffer()
            for id in 1...UInt64(total) {
                let envelope = try RawPeer.envelope(Self.gated.name, SleepRequest(number: Int(id), milliseconds: 0))
                Frame(kind: .request, correlationID: id, body: try WireCodec().encode(envelope)).write(to: &burst)
            }
            try await peer.send(bytes: burst)

            // The ones past the limit are refused at once, in order, each under its own id.
            for expected in UInt64(limit + 1)...UInt64(total) {
                let (id, error) = try await peer.readError()
                #expect(id == expected)
                #expect(error.code == .resourceExhausted)
                #expect(error.reason == "too_many_in_flight")
                #expect(error.retryable)
            }
            // Exactly the first `limit` run.
            let deadline = ContinuousClock.now + .seconds(5)
            while started.values.count < limit, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(started.values.sorted() == Array(1...limit))

            // Meanwhile, with this connection full, another client is served.
            try await TLSTests.expectServing(pki: fixture.pki, server: fixture.server)
            #expect(started.values.count == limit, "a refused request ran")

            // Once they finish, each answer comes back under its id.
            gate.open()
            var answered: Set<UInt64> = []
            for _ in 0..<limit {
                let frame = try await peer.readFrame()
                #expect(frame.kind == .response)
                #expect(try WireCodec().decode(SleepResponse.self, from: frame.body).number == Int(frame.correlationID))
                answered.insert(frame.correlationID)
            }
            #expect(answered == Set(1...UInt64(limit)))

            // And there is room again: another full batch, reusing the answered ids, is run.
            var again = ByteBuffer()
            for id in 1...UInt64(limit) {
                let envelope = try RawPeer.envelope(Self.gated.name, SleepRequest(number: Int(id), milliseconds: 0))
                Frame(kind: .request, correlationID: id, body: try WireCodec().encode(envelope)).write(to: &again)
            }
            try await peer.send(bytes: again)
            answered = []
            for _ in 0..<limit {
                let frame = try await peer.readFrame()
                #expect(frame.kind == .response, "expected a response, got \(frame)")
                answered.insert(frame.correlationID)
            }
            #expect(answered == Set(1...UInt64(limit)))
            #expect(started.values.count == 2 * limit)
        }
        try await fixture.finish()
    }

    /// A method that records each call and answers `size` bytes.
    static let countedBlob = Method<BlobRequest, BlobResponse>("test.counted_blob", callers: [.operator])

    /// The client context of a raw peer that closes at once instead of waiting up to 5 s for the server's
    /// close_notify (which a server whose answers are stuck behind a peer that reads nothing cannot send).
    static func impatientPeerContext(pki: TestPKI) throws -> NIOSSLContext {
        let files = try pki.files(for: "operator")
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(files.certificatePath).map {
            .certificate($0)
        }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: files.privateKeyPath, format: .pem))
        configuration.minimumTLSVersion = .tlsv13
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(files.caCertificatePath))
        configuration.applicationProtocols = [TransportConstants.alpn]
        configuration.shutdownTimeout = .milliseconds(50)
        return try NIOSSLContext(configuration: configuration)
    }

    @Test("requests sent one by one by a peer that reads nothing: the server does not hold answers without bound")
    func trickleWithoutReadingAnswers() async throws {
        let limit = 8
        let total = 400
        let size = 128 * 1024
        let ran = Recorder<Int>()
        var router = TestMethods.router()
        router.register(Self.countedBlob) { request, _ in
            ran.append(request.size)
            return BlobResponse(blob: Data(repeating: 0x62, count: request.size))
        }
        let fixture = try await Fixture.start(
            maxFrameLength: Frame.defaultMaxLength, maxInFlight: limit, router: router)
        let context = try Self.impatientPeerContext(pki: fixture.pki)
        try await RawPeer.with(port: fixture.server.port, context: context, watchdog: .seconds(5)) { peer in
            try await peer.handshake()
            // One small request at a time, each after the previous one had time to run; never a read.
            let envelope = try RawPeer.envelope(Self.countedBlob.name, BlobRequest(size: size))
            let body = try WireCodec().encode(envelope)
            let sendUntil = ContinuousClock.now + .seconds(1)
            for id in 1...UInt64(total) where ContinuousClock.now < sendUntil {
                try await peer.send(Frame(kind: .request, correlationID: id, body: body))
                try await Task.sleep(for: .milliseconds(1))
            }
            // Wait until the server has run all it is going to run.
            var last = -1
            let settleUntil = ContinuousClock.now + .seconds(1)
            while ran.values.count != last, ContinuousClock.now < settleUntil {
                last = ran.values.count
                try await Task.sleep(for: .milliseconds(100))
            }
            // A bounded server runs `limit` requests whose answers it cannot write, plus those whose answers fit
            // in the buffers between it and the peer: the peer's inbound queue (about 10 frames) and the
            // kernel's socket buffers (a few MiB). Allow 12 MiB of them.
            let allowance = limit + 12 + (12 << 20) / size
            #expect(
                ran.values.count <= allowance,
                """
                the server ran \(ran.values.count) requests (\((ran.values.count * size) >> 20) MiB of answers) \
                for a peer that reads nothing and may have \(limit) in flight
                """
            )
        }
        try await fixture.finish()
    }

    // MARK: Peers that never get through TLS

    /// True if `bytes` starts like a Rescind frame (a plausible length, version 1, a known kind).
    static func looksLikeFrame(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= Frame.lengthPrefixLength + Frame.headerLength else { return false }
        let length = bytes.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        return length >= Frame.headerLength && bytes[4] == Frame.currentVersion && (1...4).contains(bytes[5])
    }

    /// What a server may say in clear text to a peer that is not speaking TLS: nothing, or TLS alert records.
    static func expectNoCleartextAnswer(_ outcome: PlainOutcome, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(
            !looksLikeFrame(outcome.received), "the server answered in clear text: \(outcome)",
            sourceLocation: sourceLocation)
        #expect(
            outcome.received.isEmpty || outcome.received.first == 0x15,
            "expected nothing or a TLS alert, got \(outcome)", sourceLocation: sourceLocation)
    }

    @Test(
        "a peer that sends the first bytes of a TLS ClientHello and then nothing is closed after the handshake timeout")
    func partialClientHello() async throws {
        let fixture = try await Fixture.start(handshakeTimeoutSeconds: 0.5)
        // A handshake record header announcing 200 bytes, and the start of the ClientHello in it.
        let fragment: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0xC8, 0x01, 0x00, 0x00, 0xC4, 0x03, 0x03]
        let port = fixture.server.port
        async let held = PlainPeer.exchange(port: port, sending: fragment, watchdog: .seconds(5))
        // Meanwhile another client is served.
        try await TLSTests.expectServing(pki: fixture.pki, server: fixture.server)
        let outcome = try await held
        #expect(outcome.closedByServer, "\(outcome)")
        #expect(outcome.elapsed >= .milliseconds(450), "closed before the handshake timeout: \(outcome)")
        Self.expectNoCleartextAnswer(outcome)
        try await fixture.finish()
    }

    static let cleartext: [BadBody] = {
        let hello = (try? WireCodec().encode(ClientHello(agent: "cleartext"))) ?? ByteBuffer()
        let envelope =
            (try? WireCodec().encode(
                RequestEnvelope(method: "test.echo", deadlineMillis: farDeadline, payload: Data(goodPayload))))
            ?? ByteBuffer()
        return [
            BadBody("a Rescind hello frame", bytes(Frame(kind: .hello, correlationID: 0, body: hello))),
            BadBody(
                "a hello frame then a request frame",
                bytes(Frame(kind: .hello, correlationID: 0, body: hello))
                    + bytes(Frame(kind: .request, correlationID: 1, body: envelope))),
            BadBody("an HTTP request", Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)),
        ]
    }()

    @Test(
        "a plain-TCP client speaking Rescind in clear text is closed without a clear-text answer", arguments: cleartext)
    func plainTCPClient(sent: BadBody) async throws {
        // The handshake timeout is long: the server must close because the bytes are not TLS, not because of it.
        let fixture = try await Fixture.start(handshakeTimeoutSeconds: 30)
        let outcome = try await PlainPeer.exchange(
            port: fixture.server.port, sending: sent.bytes, watchdog: .seconds(5))
        #expect(outcome.closedByServer, "\(outcome)")
        Self.expectNoCleartextAnswer(outcome)
        try await fixture.finish()
    }

    @Test(
        "50 connections that say nothing are closed after the handshake timeout; a normal client is served meanwhile"
    )
    func manySilentConnections() async throws {
        // Long enough that the normal client is served before it ends, even on a loaded machine.
        let fixture = try await Fixture.start(handshakeTimeoutSeconds: 2)
        let port = fixture.server.port
        let count = 50
        let (outcomes, served) = try await withThrowingTaskGroup(of: PlainOutcome.self) { group in
            for _ in 0..<count {
                group.addTask { try await PlainPeer.exchange(port: port, watchdog: .seconds(7)) }
            }
            // While they are held open, a normal client is served.
            try await TLSTests.expectServing(pki: fixture.pki, server: fixture.server)
            let served = ContinuousClock.now
            var outcomes: [PlainOutcome] = []
            for try await outcome in group { outcomes.append(outcome) }
            return (outcomes, served)
        }
        #expect(outcomes.count == count)
        #expect(outcomes.allSatisfy { $0.closedByServer }, "\(outcomes.filter { !$0.closedByServer })")
        #expect(outcomes.allSatisfy { $0.elapsed >= .milliseconds(1950) }, "\(outcomes.map(\.elapsed))")
        #expect(outcomes.allSatisfy { $0.received.isEmpty }, "\(outcomes.filter { !$0.received.isEmpty })")
        let firstClosed = try #require(outcomes.map(\.ended).min())
        #expect(served < firstClosed, "the normal client was served only \(served - firstClosed) after the first close")
        try await fixture.finish()
    }
}

// MARK: - Helpers

/// Lets handlers wait until the test opens it, for at most a few seconds (and not past cancellation).
final class Gate: Sendable {
    private let isOpen = Atomic<Bool>(false)

    func open() {
        isOpen.store(true, ordering: .releasing)
    }

    func wait(limit: Duration = .seconds(5)) async throws {
        let deadline = ContinuousClock.now + limit
        while !isOpen.load(ordering: .acquiring), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// CBOR by hand, to build items the encoder would never write.
enum RawCBOR {
    /// A head in its shortest form.
    static func head(_ major: UInt8, _ argument: UInt64) -> [UInt8] {
        let type = major << 5
        func bigEndian(_ count: Int) -> [UInt8] {
            (0..<count).reversed().map { UInt8(truncatingIfNeeded: argument >> (8 * UInt64($0))) }
        }
        switch argument {
        case 0..<24: return [type | UInt8(argument)]
        case 24...0xFF: return [type | 24] + bigEndian(1)
        case 0x100...0xFFFF: return [type | 25] + bigEndian(2)
        case 0x1_0000...0xFFFF_FFFF: return [type | 26] + bigEndian(4)
        default: return [type | 27] + bigEndian(8)
        }
    }

    static func uint(_ value: UInt64) -> [UInt8] { head(0, value) }
    static func bytes(_ value: [UInt8]) -> [UInt8] { head(2, UInt64(value.count)) + value }
    static func text(_ value: String) -> [UInt8] { head(3, UInt64(value.utf8.count)) + Array(value.utf8) }
    static func array(_ items: [[UInt8]]) -> [UInt8] { head(4, UInt64(items.count)) + items.flatMap { $0 } }
    /// The keys and values of a map, without its head.
    static func entries(_ entries: [(String, [UInt8])]) -> [UInt8] { entries.flatMap { text($0.0) + $0.1 } }
    static func map(_ entries: [(String, [UInt8])]) -> [UInt8] {
        head(5, UInt64(entries.count)) + self.entries(entries)
    }
    /// Arrays nested `depth` deep, each holding the next; the innermost is empty (a lone `[]` has depth 1).
    static func nested(depth: Int) -> [UInt8] { Array(repeating: 0x81, count: depth - 1) + [0x80] }
}
