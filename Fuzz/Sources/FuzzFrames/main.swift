import CLibFuzzer
import FuzzSupport
import NIOCore
import RescindCBOR
import RescindWire

#if canImport(Glibc)
    import Glibc
#endif

/// libFuzzer entry point for the frame decoder.
///
/// Input: one control byte, then the byte stream a peer sends before closing the connection.
/// Control byte: bits 0-3 the chunk size the stream arrives in (0: all at once); bit 4 set: a small frame
/// limit of 12 + 8 * (bits 5-7) bytes instead of the default 1 MiB.
///
/// The stream goes through `FrameDecoder` whole and in chunks (NIO's single-step processor, with
/// `decodeLast` at EOF); both must agree, the frames must re-encode to the bytes they came from, and the
/// error must match the bytes. The frames then go through the server's handling: the hello
/// (`ClientHello`), then each request frame's `RequestEnvelope` and the method's request type.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let control = data[0]
    let input = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let chunkSize = Int(control & 0x0f)
    let maxFrameLength =
        control & 0x10 != 0 ? Frame.headerLength + 8 * Int(control >> 5) : Frame.defaultMaxLength

    var stream = ByteBufferAllocator().buffer(capacity: input.count)
    stream.writeBytes(input)

    let whole = FrameChecks.decodeWhole(stream, maxFrameLength: maxFrameLength)
    FrameChecks.check(whole, stream: stream, maxFrameLength: maxFrameLength)
    let chunked = FrameChecks.decodeChunked(
        stream,
        chunkSize: chunkSize == 0 ? max(input.count, 1) : chunkSize,
        maxFrameLength: maxFrameLength
    )
    Invariant.check(
        chunked == whole,
        "chunks of \(chunkSize) decode differently from the whole stream:\n whole: \(whole)\n chunked: \(chunked)"
    )
    ServerEmulation.handle(frames: whole.frames)
    return 0
}

// SwiftPM gives an executable its own `main`, so libFuzzer's is not used: run its driver from here.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data, size) })
