import NIOCore
import NIOEmbedded
import NIOTestUtils
import RescindWire
import Testing

@Suite("Frame coding: length prefix, header, body")
struct FrameCodingTests {
    /// Encodes frames exactly as a peer puts them on the wire.
    static func bytes(of frames: [Frame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { frame.write(to: &buffer) }
        return buffer
    }

    static func body(_ bytes: [UInt8]) -> ByteBuffer {
        ByteBuffer(bytes: bytes)
    }

    /// A length prefix alone, as the first four bytes of a frame.
    static func lengthPrefix(_ length: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(length)
        return buffer
    }

    static let sampleFrames: [Frame] = [
        // A hello with a CBOR body: {"versions": [1], "agent": "t"}-ish bytes; the decoder does not read bodies.
        Frame(kind: .hello, correlationID: 0, body: body([0xA1, 0x61, 0x76, 0x81, 0x01])),
        Frame(kind: .request, correlationID: 1, body: body(Array(repeating: 0x42, count: 300))),
        Frame(kind: .response, correlationID: 0xFFFF_FFFF_FFFF_FFFF, body: body([0xA0])),
        Frame(kind: .error, correlationID: 7, body: body([0x60])),
        // An empty body: length 12, header only.
        Frame(kind: .request, correlationID: 0x0102_0304, body: ByteBuffer()),
        // Unknown kind, other version and flags survive decoding: the server judges them, not the decoder.
        Frame(kind: FrameKind(rawValue: 200), correlationID: 3, body: body([0x00]), version: 2, flags: 0x8001),
    ]

    @Test("frames of every kind round-trip through write(to:) and FrameDecoder, drip-fed and coalesced")
    func roundTripThroughVerifier() throws {
        var pairs: [(ByteBuffer, [Frame])] = Self.sampleFrames.map { frame in
            (Self.bytes(of: [frame]), [frame])
        }
        // Several frames arriving in one read.
        pairs.append((Self.bytes(of: Self.sampleFrames), Self.sampleFrames))
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            FrameDecoder(maxFrameLength: 4096)
        }
    }

    @Test("a known frame encodes to exactly its bytes: length, version 1, kind, flags 0, big-endian id, body")
    func exactBytes() throws {
        let frame = Frame(
            kind: .request,
            correlationID: 0x0102_0304_0506_0708,
            body: Self.body([0xA1, 0x61, 0x61, 0x01])
        )
        var buffer = ByteBuffer()
        frame.write(to: &buffer)
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x10,  // length: 12 header bytes + 4 body bytes
            0x01,  // version
            0x02,  // kind: request
            0x00, 0x00,  // flags
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // correlation id, big-endian
            0xA1, 0x61, 0x61, 0x01,  // body
        ]
        #expect(Array(buffer.readableBytesView) == expected)

        // The kinds have fixed numbers on the wire.
        #expect(FrameKind.hello.rawValue == 1)
        #expect(FrameKind.request.rawValue == 2)
        #expect(FrameKind.response.rawValue == 3)
        #expect(FrameKind.error.rawValue == 4)

        // And the same bytes decode back to the frame.
        var decoder = FrameDecoder()
        var input = ByteBuffer(bytes: expected)
        let decodedFrame = try decoder.decode(buffer: &input)
        let decoded = try #require(decodedFrame)
        #expect(decoded == frame)
        #expect(input.readableBytes == 0)
    }

    @Test("the MessageToByteEncoder writes the same bytes as write(to:)")
    func encoderHandlerMatchesWrite() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(FrameEncoder()))
        defer { _ = try? channel.finish() }
        for frame in Self.sampleFrames {
            try channel.writeOutbound(frame)
            let written = try #require(try channel.readOutbound(as: ByteBuffer.self))
            #expect(written == Self.bytes(of: [frame]))
        }
    }

    @Test("a declared length above the maximum is refused as soon as the 4-byte length arrives")
    func tooLargeRefusedFromLengthAlone() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 1024)))
        defer { _ = try? channel.finish() }
        // Only the length prefix: no header, no body. Waiting for 1025 more bytes would be the bug.
        let error = #expect(throws: FrameError.self) {
            try channel.writeInbound(Self.lengthPrefix(1025))
        }
        #expect(error?.code == .tooLarge)
        #expect(error?.rescindError.code == .malformed)
        #expect(error?.rescindError.reason == "frame_too_large")
        #expect(error?.rescindError.retryable == false)
        #expect(try channel.readInbound(as: Frame.self) == nil)
    }

    @Test("a length prefix of exactly the maximum is waited for, and such a frame is accepted")
    func exactlyMaximumIsAccepted() throws {
        let maximum = 1024
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: maximum)))
        defer { _ = try? channel.finish() }
        let frame = Frame(
            kind: .response,
            correlationID: 9,
            body: ByteBuffer(repeating: 0x5A, count: maximum - Frame.headerLength)
        )
        var wire = Self.bytes(of: [frame])
        #expect(wire.readableBytes == Frame.lengthPrefixLength + maximum)
        // The length alone: no error, no frame yet.
        let prefix = wire.readSlice(length: 4)
        try channel.writeInbound(try #require(prefix))
        #expect(try channel.readInbound(as: Frame.self) == nil)
        // The rest, in two pieces.
        let middle = wire.readSlice(length: 500)
        try channel.writeInbound(try #require(middle))
        #expect(try channel.readInbound(as: Frame.self) == nil)
        try channel.writeInbound(wire)
        #expect(try channel.readInbound(as: Frame.self) == frame)
    }

    @Test("a declared length below the header length is refused with tooShort", arguments: [UInt32(0), 1, 11])
    func tooShort(length: UInt32) throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 1024)))
        defer { _ = try? channel.finish() }
        var input = Self.lengthPrefix(length)
        input.writeBytes(Array(repeating: 0x01, count: 16))
        let error = #expect(throws: FrameError.self) { try channel.writeInbound(input) }
        #expect(error?.code == .tooShort)
        #expect(error?.rescindError.reason == "frame_too_short")
        #expect(try channel.readInbound(as: Frame.self) == nil)
    }

    @Test("a length of exactly the header length is a frame with an empty body")
    func headerOnlyFrame() throws {
        var decoder = FrameDecoder()
        var input = ByteBuffer(bytes: [0, 0, 0, 12, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5])
        let decoded = try decoder.decode(buffer: &input)
        let frame = try #require(decoded)
        #expect(frame.kind == .response)
        #expect(frame.correlationID == 5)
        #expect(frame.body.readableBytes == 0)
    }

    @Test("decodeLast: a truncated frame at EOF is refused with truncated", arguments: [1, 3, 4, 10, 17])
    func truncatedAtEOF(keptBytes: Int) throws {
        let frame = Frame(kind: .request, correlationID: 42, body: Self.body([1, 2, 3, 4, 5, 6]))
        var wire = Self.bytes(of: [frame])
        let slice = wire.readSlice(length: keptBytes)
        var partial = try #require(slice)
        var decoder = FrameDecoder()
        #expect(try decoder.decode(buffer: &partial) == nil)
        let error = #expect(throws: FrameError.self) {
            try decoder.decodeLast(buffer: &partial, seenEOF: true)
        }
        #expect(error?.code == .truncated)
        #expect(error?.rescindError.reason == "frame_truncated")
    }

    @Test("decodeLast: whole frames before EOF are delivered, then the truncated tail is refused")
    func wholeFramesThenTruncatedTail() throws {
        let first = Frame(kind: .response, correlationID: 1, body: Self.body([0xA0]))
        let second = Frame(kind: .response, correlationID: 2, body: Self.body([0xA0]))
        var wire = Self.bytes(of: [first, second])
        wire.moveWriterIndex(to: wire.writerIndex - 3)  // cut the second frame short
        var decoder = FrameDecoder()
        #expect(try decoder.decodeLast(buffer: &wire, seenEOF: true) == first)
        #expect(throws: FrameError.self) { try decoder.decodeLast(buffer: &wire, seenEOF: true) }

        // Nothing left over at EOF is fine.
        var empty = ByteBuffer()
        #expect(try decoder.decodeLast(buffer: &empty, seenEOF: true) == nil)
    }

    @Test("a connection closed in the middle of a frame reports truncated through the channel handler")
    func truncatedThroughChannel() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        let frame = Frame(kind: .request, correlationID: 42, body: Self.body([1, 2, 3, 4]))
        var wire = Self.bytes(of: [frame])
        let head = wire.readSlice(length: 9)
        try channel.writeInbound(try #require(head))
        #expect(try channel.readInbound(as: Frame.self) == nil)
        let error = #expect(throws: FrameError.self) { _ = try channel.finish() }
        #expect(error?.code == .truncated)
    }
}
