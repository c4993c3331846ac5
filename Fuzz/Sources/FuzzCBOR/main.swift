import CLibFuzzer
import FuzzSupport
import NIOCore
import RescindCBOR
import RescindWire

#if canImport(Glibc)
    import Glibc
#endif

/// libFuzzer entry point for the CBOR decoder.
///
/// Input: one frame body. It is decoded as every type a server or a client of the suite decodes from a
/// peer: `ClientHello`, `ServerHello`, `RequestEnvelope` (and then its payload as the method's request
/// type, or as every request type for an unknown method), `RescindError`, every method's request and
/// response type; and as two fuzz-only shapes that reach the rest of the decoder (`KitchenSink`, `AnyCBOR`).
///
/// `KitchenSink.Nested` writes out of sequence and must have the bytes of the same content written in order.
/// Whatever decodes must re-encode to bytes that decode to an equal value and encode to the same bytes
/// again; every failure must be a `CBORError`. An input the decoder rejects as CBOR must be rejected the
/// same way whatever the type.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    // Structural validation first: if the bytes are not acceptable CBOR, no type may accept them.
    do {
        _ = try CBORChecks.decoder.decode(ValidateOnly.self, from: bytes)
    } catch {
        CBORChecks.checkDecodingError(error, decoding: ValidateOnly.self)
        let code = (error as? CBORError)?.code
        do {
            let hello = try CBORChecks.decoder.decode(ClientHello.self, from: bytes)
            Invariant.fail("rejected as CBOR (\(error)) but decoded as a ClientHello: \(hello)")
        } catch let other as CBORError {
            Invariant.check(
                other.code == code,
                "rejected as \(String(describing: code)) without a type, as \(other.code) for ClientHello"
            )
        } catch {
            Invariant.fail("decoding ClientHello threw a \(type(of: error)): \(error)")
        }
        return 0
    }

    // The server's decodes, through ByteBuffer as RPCServer reads a frame body.
    var body = ByteBufferAllocator().buffer(capacity: bytes.count)
    body.writeBytes(bytes)
    _ = ServerEmulation.hello(Frame(kind: .hello, correlationID: 0, body: body))
    if let envelope = CBORChecks.decode(RequestEnvelope.self, from: bytes) {
        ServerEmulation.dispatch(envelope, tryEveryTypeIfUnknown: true)
    }

    // Every request and response body, and the other wire types.
    for entry in Methods.distinctRequests { _ = entry.decodeRequest(bytes) }
    for entry in Methods.all { _ = entry.decodeResponse(bytes) }
    CBORChecks.decode(RescindError.self, from: bytes)
    CBORChecks.decode(ServerHello.self, from: bytes)

    // Shapes beyond the protocol's own types. Floats (NaN) and dates only promise stable bytes.
    if let sink = CBORChecks.decode(KitchenSink.self, from: bytes, roundTrip: .stableBytes), let inner = sink.inner {
        // Written out of sequence, the nested shape has the bytes of the same content written in order.
        Invariant.check(
            (try? CBORChecks.encoder.encode(inner))
                == (try? CBORChecks.encoder.encode(KitchenSink.Nested.InOrder(inner))),
            "writes into complete containers gave other bytes than the same content in order: \(inner)")
    }
    CBORChecks.decode(AnyCBOR.self, from: bytes, roundTrip: .stableBytes)
    return 0
}

// SwiftPM gives an executable its own `main`, so libFuzzer's is not used: run its driver from here.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data, size) })
