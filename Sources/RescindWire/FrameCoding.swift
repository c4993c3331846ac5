import NIOCore

/// Splits a byte stream into frames, refusing a frame longer than the maximum as soon as its length is read,
/// before any of it is buffered.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// The largest accepted value of the length field.
    public let maxFrameLength: Int

    public init(maxFrameLength: Int = Frame.defaultMaxLength) {
        self.maxFrameLength = maxFrameLength
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= maxFrameLength else {
            throw FrameError(
                code: .tooLarge,
                message: "frame of \(length) bytes is above the maximum of \(maxFrameLength)"
            )
        }
        guard Int(length) >= Frame.headerLength else {
            throw FrameError(
                code: .tooShort,
                message: "frame length \(length) is below the header length \(Frame.headerLength)"
            )
        }
        guard buffer.readableBytes >= Frame.lengthPrefixLength + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: Frame.lengthPrefixLength)
        // The guards above make these reads total.
        guard let version = buffer.readInteger(as: UInt8.self),
            let kind = buffer.readInteger(as: UInt8.self),
            let flags = buffer.readInteger(as: UInt16.self),
            let correlationID = buffer.readInteger(as: UInt64.self),
            let body = buffer.readSlice(length: Int(length) - Frame.headerLength)
        else { return nil }
        return Frame(
            kind: FrameKind(rawValue: kind),
            correlationID: correlationID,
            body: body,
            version: version,
            flags: flags
        )
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if seenEOF && buffer.readableBytes > 0 {
            throw FrameError(
                code: .truncated,
                message: "connection closed with \(buffer.readableBytes) bytes of an incomplete frame"
            )
        }
        return nil
    }
}

/// Writes frames with their length prefix and header.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        frame.write(to: &out)
    }
}

extension Frame {
    /// Appends the encoded frame (length prefix, header, body) to `buffer`.
    public func write(to buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: Frame.lengthPrefixLength + Frame.headerLength + body.readableBytes)
        buffer.writeInteger(UInt32(Frame.headerLength + body.readableBytes))
        buffer.writeInteger(version)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(flags)
        buffer.writeInteger(correlationID)
        var body = body
        buffer.writeBuffer(&body)
    }
}
