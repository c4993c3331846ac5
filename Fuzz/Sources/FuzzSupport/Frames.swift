import NIOCore
import RescindCBOR
import RescindWire

/// What a frame decoder made of a byte stream that then ended (EOF).
public struct FrameRun: Equatable {
    public var frames: [Frame] = []
    public var error: FrameError?
}

/// Runs `FrameDecoder` over byte streams two ways and checks they agree with each other and with the
/// frame format.
public enum FrameChecks {
    /// The whole stream in one buffer: `decode` until it returns nil, then `decodeLast` at EOF until nil,
    /// as `ByteToMessageHandler` does when the connection closes. Checks that a `nil` leaves the reader index.
    public static func decodeWhole(_ stream: ByteBuffer, maxFrameLength: Int) -> FrameRun {
        var decoder = FrameDecoder(maxFrameLength: maxFrameLength)
        var buffer = stream
        var run = FrameRun()
        do {
            while true {
                let before = buffer.readerIndex
                guard let frame = try decoder.decode(buffer: &buffer) else {
                    Invariant.check(buffer.readerIndex == before, "decode returned nil after consuming bytes")
                    break
                }
                Invariant.check(buffer.readerIndex > before, "decode returned a frame without consuming bytes")
                run.frames.append(frame)
            }
            while true {
                let before = buffer.readerIndex
                guard let frame = try decoder.decodeLast(buffer: &buffer, seenEOF: true) else {
                    Invariant.check(buffer.readerIndex == before, "decodeLast returned nil after consuming bytes")
                    break
                }
                Invariant.check(buffer.readerIndex > before, "decodeLast returned a frame without consuming bytes")
                run.frames.append(frame)
            }
            Invariant.check(buffer.readableBytes == 0, "\(buffer.readableBytes) bytes left after EOF without an error")
        } catch let error as FrameError {
            run.error = error
        } catch {
            Invariant.fail("FrameDecoder threw a \(type(of: error)), not a FrameError: \(error)")
        }
        return run
    }

    /// The stream in chunks of `chunkSize` bytes through NIO's `NIOSingleStepByteToMessageProcessor`, then
    /// `finishProcessing(seenEOF: true)`; stops at the first error, as the server closes the connection.
    public static func decodeChunked(_ stream: ByteBuffer, chunkSize: Int, maxFrameLength: Int) -> FrameRun {
        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maxFrameLength: maxFrameLength))
        var run = FrameRun()
        do {
            var offset = stream.readerIndex
            let end = stream.writerIndex
            while offset < end {
                let length = min(chunkSize, end - offset)
                guard let chunk = stream.getSlice(at: offset, length: length) else {
                    Invariant.fail("cannot slice the stream at \(offset)")
                }
                try processor.process(buffer: chunk) { run.frames.append($0) }
                offset += length
            }
            try processor.finishProcessing(seenEOF: true) { run.frames.append($0) }
        } catch let error as FrameError {
            run.error = error
        } catch {
            Invariant.fail("the processor threw a \(type(of: error)), not a FrameError: \(error)")
        }
        return run
    }

    /// Checks a run against the frame format: every frame re-encodes to exactly the bytes it was read from,
    /// the frames cover a prefix of the stream, and what stopped the decoder is what the next bytes say.
    public static func check(_ run: FrameRun, stream: ByteBuffer, maxFrameLength: Int) {
        var encoded = ByteBuffer()
        for frame in run.frames {
            Invariant.check(
                frame.body.readableBytes + Frame.headerLength <= maxFrameLength,
                "a frame of \(frame.body.readableBytes + Frame.headerLength) bytes passed the limit \(maxFrameLength)"
            )
            frame.write(to: &encoded)
        }
        let consumed = encoded.readableBytes
        Invariant.check(consumed <= stream.readableBytes, "the frames re-encode to more bytes than the stream has")
        Invariant.check(
            encoded.readableBytesView.elementsEqual(stream.readableBytesView.prefix(consumed)),
            "the frames do not re-encode to the bytes they came from"
        )
        let rest = stream.readableBytes - consumed
        let declared = stream.getInteger(at: stream.readerIndex + consumed, as: UInt32.self).map(Int.init)
        guard let error = run.error else {
            Invariant.check(rest == 0, "\(rest) bytes were neither decoded nor refused")
            return
        }
        Invariant.check(rest > 0, "an error (\(error)) with no bytes left")
        switch error.code {
        case .tooLarge:
            Invariant.check(
                declared.map { $0 > maxFrameLength } == true, "too_large for length \(String(describing: declared))")
        case .tooShort:
            Invariant.check(
                declared.map { $0 < Frame.headerLength } == true, "too_short for length \(String(describing: declared))"
            )
        case .truncated:
            if let declared {
                Invariant.check(
                    (Frame.headerLength...maxFrameLength).contains(declared)
                        && Frame.lengthPrefixLength + declared > rest,
                    "truncated, but the next frame (length \(declared)) fits the \(rest) bytes left"
                )
            }
            Invariant.check(
                error.message.contains("\(rest) bytes"),
                "truncated with \(rest) bytes left, but the error says: \(error.message)"
            )
        default:
            Invariant.fail("unexpected frame error \(error)")
        }
        // The connection error the server sends for it must encode.
        ServerEmulation.errorFrame(error.rescindError)
    }
}
