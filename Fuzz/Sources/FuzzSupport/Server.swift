import NIOCore
import RescindCBOR
import RescindWire

import struct Foundation.Date

/// The decodes `RPCServer` and `RPCRouter` make of a connection's frames, in their order, without sockets,
/// TLS or handlers. Each decode checks the invariants of `CBORChecks`.
public enum ServerEmulation {
    static let codec = WireCodec()

    /// The error frame the server would send, which must encode (the server falls back to an empty body).
    static func errorFrame(_ error: RescindError) {
        do {
            let body = try codec.encode(error)
            let back = try codec.decode(RescindError.self, from: body)
            Invariant.check(back == error, "an error frame does not round-trip: \(error) -> \(back)")
        } catch {
            Invariant.fail("an error frame does not encode or decode: \(error)")
        }
    }

    /// The whole connection: the hello, then request frames until one ends the connection.
    public static func handle(frames: [Frame]) {
        guard let first = frames.first else { return }
        guard hello(first) else { return }
        for frame in frames.dropFirst() {
            if let fatal = connectionError(for: frame) {
                errorFrame(fatal)
                return
            }
            answer(body: frame.body)
        }
    }

    /// The first frame: must be a version-1 hello with correlation id 0 and flags 0, whose body is a
    /// `ClientHello` naming a supported version. Returns whether the connection goes on.
    public static func hello(_ first: Frame) -> Bool {
        guard first.version == Frame.currentVersion, first.kind == .hello, first.correlationID == 0, first.flags == 0
        else { return false }
        let hello: ClientHello
        do {
            hello = try codec.decode(ClientHello.self, from: first.body)
        } catch {
            CBORChecks.checkDecodingError(error, decoding: ClientHello.self)
            errorFrame(RescindError(.malformed, "cannot read the hello frame: \(error)", reason: "bad_hello"))
            return false
        }
        CBORChecks.checkRoundTrip(hello, .equalValue)
        guard let version = ProtocolVersion.supported.first(where: hello.versions.contains) else {
            errorFrame(
                RescindError(
                    .unsupportedVersion,
                    "no common protocol version: client speaks \(hello.versions), server speaks \(ProtocolVersion.supported)",
                    retryable: false
                )
            )
            return false
        }
        let reply = ServerHello(version: version, server: "fuzz", maxInFlight: 256)
        Invariant.check((try? codec.encode(reply)) != nil, "the server hello does not encode")
        _ = "\(hello.agent)"
        return true
    }

    /// The checks `RPCServer.connectionError(for:)` makes of a frame after the hello.
    static func connectionError(for frame: Frame) -> RescindError? {
        if frame.version != Frame.currentVersion {
            return RescindError(.unsupportedVersion, "frame version \(frame.version)", retryable: false)
        }
        if !frame.kind.isKnown {
            return RescindError(.malformed, "unknown frame kind \(frame.kind.rawValue)", reason: "unknown_frame_kind")
        }
        if frame.flags != 0 { return RescindError(.malformed, "reserved flags must be 0", reason: "bad_flags") }
        if frame.kind != .request {
            return RescindError(.malformed, "a client may not send \(frame.kind) frames after hello")
        }
        if frame.correlationID == 0 {
            return RescindError(.malformed, "a request needs a correlation id other than 0")
        }
        return nil
    }

    /// A request frame's body: the envelope, then the route's checks and the payload.
    public static func answer(body: ByteBuffer) {
        let envelope: RequestEnvelope
        do {
            envelope = try codec.decode(RequestEnvelope.self, from: body)
        } catch {
            CBORChecks.checkDecodingError(error, decoding: RequestEnvelope.self)
            errorFrame(.invalidArgument("cannot read the request envelope: \(error)", reason: "bad_envelope"))
            return
        }
        CBORChecks.checkRoundTrip(envelope, .equalValue)
        dispatch(envelope, tryEveryTypeIfUnknown: false)
    }

    /// What `RPCRouter.dispatch` does before the handler runs: the route, then the payload decoded as the
    /// method's request type (`WireCodec.decodeRequest` of `Array(payload)`).
    /// An unknown method's payload is tried against every request type if asked.
    public static func dispatch(_ envelope: RequestEnvelope, tryEveryTypeIfUnknown: Bool) {
        let payload = Array(envelope.payload)
        guard let entry = Methods.byName[envelope.method] else {
            errorFrame(RescindError(.unimplemented, "no method named \(envelope.method)", reason: "unknown_method"))
            if tryEveryTypeIfUnknown {
                for entry in Methods.distinctRequests { _ = entry.decodeRequest(payload) }
            }
            return
        }
        // The key and deadline checks only refuse; a peer controls both fields, so the payload is decoded
        // whatever they hold (a missing key or a passed deadline would otherwise hide the payload from the
        // fuzzer, and the vectors' deadlines are in the past).
        var key = envelope.idempotencyKey
        if key?.isEmpty == true { key = nil }
        _ = entry.requiresIdempotencyKey && key == nil
        _ = key.map { $0.utf8.count > 255 }
        _ = Date(timeIntervalSince1970: Double(envelope.deadlineMillis) / 1000)
        _ = entry.decodeRequest(payload)
    }
}
