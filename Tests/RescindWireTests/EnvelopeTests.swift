import Foundation
import NIOCore
import RescindCBOR
import RescindWire
import Testing

@Suite("Frame bodies: envelopes, hellos and errors through WireCodec")
struct EnvelopeTests {
    let codec = WireCodec()

    func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T {
        let buffer = try codec.encode(value)
        #expect(buffer.readableBytes > 0)
        return try codec.decode(T.self, from: buffer)
    }

    // MARK: Round trips

    @Test("RequestEnvelope round-trips with and without an idempotency key")
    func requestEnvelopeRoundTrip() throws {
        let payload = try codec.encoder.encode(["sku": "ABC-1"])
        let withKey = RequestEnvelope(
            method: "payments.refund",
            deadlineMillis: 1_767_225_600_123,
            idempotencyKey: "refund-7f3c",
            payload: Data(payload)
        )
        #expect(try roundTrip(withKey) == withKey)

        let withoutKey = RequestEnvelope(method: "health", deadlineMillis: .max, payload: Data())
        let decoded = try roundTrip(withoutKey)
        #expect(decoded == withoutKey)
        #expect(decoded.idempotencyKey == nil)
        #expect(decoded.payload.isEmpty)
    }

    @Test("RequestEnvelope uses the wire names deadline and idempotency_key, and the payload is a byte string")
    func requestEnvelopeWireNames() throws {
        struct WireEnvelope: Decodable {
            var method: String
            var deadline: UInt64
            var idempotency_key: String?
            var payload: Data
        }
        let envelope = RequestEnvelope(
            method: "orders.cancel",
            deadlineMillis: 99,
            idempotencyKey: "k",
            payload: Data([0xA0])
        )
        let wire = try codec.decode(WireEnvelope.self, from: try codec.encode(envelope))
        #expect(wire.method == "orders.cancel")
        #expect(wire.deadline == 99)
        #expect(wire.idempotency_key == "k")
        #expect(wire.payload == Data([0xA0]))
    }

    @Test("ClientHello round-trips; by default it offers the current protocol version")
    func clientHelloRoundTrip() throws {
        let hello = ClientHello(versions: [3, 2, 1], agent: "rescindctl/0.1.0")
        #expect(try roundTrip(hello) == hello)

        let defaultHello = ClientHello(agent: "a")
        #expect(defaultHello.versions == [ProtocolVersion.current])
        #expect(ProtocolVersion.supported.contains(ProtocolVersion.current))
        #expect(try roundTrip(defaultHello) == defaultHello)
    }

    @Test("ServerHello round-trips and names its limit max_in_flight on the wire")
    func serverHelloRoundTrip() throws {
        let hello = ServerHello(version: 1, server: "orders", maxInFlight: 256)
        #expect(try roundTrip(hello) == hello)

        struct WireServerHello: Decodable {
            var version: UInt32
            var server: String
            var max_in_flight: UInt32
        }
        let wire = try codec.decode(WireServerHello.self, from: try codec.encode(hello))
        #expect(wire.version == 1)
        #expect(wire.server == "orders")
        #expect(wire.max_in_flight == 256)
    }

    @Test(
        "RescindError round-trips with its code, message, reason and retryable flag",
        arguments: [
            RescindError(.failedPrecondition, "card declined", reason: "card_declined"),
            RescindError(.unavailable, "shutting down"),
            RescindError(.unavailable, "do not retry this one", retryable: false),
            RescindError(.invalidArgument, "quantity must be positive", reason: "bad_quantity", retryable: true),
            RescindError(RescindError.Code("a_code_from_the_future"), "newer peer", reason: "x"),
            RescindError(.internal, ""),
        ]
    )
    func rescindErrorRoundTrip(error: RescindError) throws {
        let decoded = try roundTrip(error)
        #expect(decoded == error)
        #expect(decoded.code == error.code)
        #expect(decoded.message == error.message)
        #expect(decoded.reason == error.reason)
        #expect(decoded.retryable == error.retryable)
    }

    @Test("an error's code is a plain string on the wire, so an unknown code still decodes")
    func rescindErrorCodeIsAString() throws {
        struct WireError: Codable {
            var code: String
            var message: String
            var retryable: Bool
            var reason: String?
        }
        let encoded = try codec.encode(RescindError(.notFound, "no order 7", reason: "order"))
        let wire = try codec.decode(WireError.self, from: encoded)
        #expect(wire.code == "not_found")
        #expect(wire.retryable == false)
        #expect(wire.reason == "order")

        let future = try codec.encode(WireError(code: "quota_exceeded", message: "m", retryable: true, reason: nil))
        let decoded = try codec.decode(RescindError.self, from: future)
        #expect(decoded.code.rawValue == "quota_exceeded")
        #expect(decoded.retryable)
        #expect(decoded.reason == nil)
    }

    // MARK: Error catalogue

    @Test("only unavailable, deadline_exceeded and resource_exhausted are retryable by default")
    func retryableDefaults() {
        let retryable: [RescindError.Code] = [.unavailable, .deadlineExceeded, .resourceExhausted]
        let notRetryable: [RescindError.Code] = [
            .invalidArgument, .notFound, .failedPrecondition, .conflict, .permissionDenied, .unimplemented,
            .unsupportedVersion, .malformed, .internal, RescindError.Code("something_new"),
        ]
        for code in retryable {
            #expect(code.isRetryableByDefault, "\(code)")
            #expect(RescindError(code, "m").retryable, "\(code)")
            #expect(RescindError(code, "m", retryable: false).retryable == false, "\(code)")
        }
        for code in notRetryable {
            #expect(!code.isRetryableByDefault, "\(code)")
            #expect(!RescindError(code, "m").retryable, "\(code)")
            #expect(RescindError(code, "m", retryable: true).retryable, "\(code)")
        }
        #expect(RescindError.unavailable("x").retryable)
        #expect(!RescindError.conflict("x").retryable)
    }

    @Test("error codes have their catalogue names on the wire")
    func catalogueNames() {
        let names: [(RescindError.Code, String)] = [
            (.invalidArgument, "invalid_argument"), (.notFound, "not_found"),
            (.failedPrecondition, "failed_precondition"), (.conflict, "conflict"),
            (.permissionDenied, "permission_denied"), (.unavailable, "unavailable"),
            (.deadlineExceeded, "deadline_exceeded"), (.resourceExhausted, "resource_exhausted"),
            (.unimplemented, "unimplemented"), (.unsupportedVersion, "unsupported_version"),
            (.malformed, "malformed"), (.internal, "internal"),
        ]
        for (code, name) in names {
            #expect(code.rawValue == name)
        }
    }

    // MARK: decodeRequest

    struct Order: Codable, Equatable {
        var id: Int
        var note: String
    }

    @Test("decodeRequest decodes a well-formed request")
    func decodeRequestSucceeds() throws {
        let order = Order(id: 7, note: "hi")
        let bytes = try codec.encoder.encode(order)
        #expect(try codec.decodeRequest(Order.self, from: bytes) == order)
    }

    @Test(
        "decodeRequest turns unreadable bytes into invalid_argument",
        arguments: [
            [UInt8](),  // nothing at all
            [0xFF],  // a lone break code
            [0x1C],  // reserved additional information
            [0xA1, 0x62, 0x69],  // a map cut short
            [0x17],  // a CBOR integer, not a map
            [0xA1, 0x62, 0x69, 0x64, 0x07],  // {"id": 7}: no note
            [0xA2, 0x62, 0x69, 0x64, 0x61, 0x78, 0x64, 0x6E, 0x6F, 0x74, 0x65, 0x60],  // {"id": "x", "note": ""}
        ]
    )
    func decodeRequestFailsWithInvalidArgument(bytes: [UInt8]) throws {
        let error = #expect(throws: RescindError.self) {
            try codec.decodeRequest(Order.self, from: bytes)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.reason == "bad_body")
        #expect(error?.retryable == false)
    }

    @Test("decodeRequest refuses trailing bytes after the request")
    func decodeRequestRefusesTrailingBytes() throws {
        var bytes = try codec.encoder.encode(Order(id: 1, note: "n"))
        bytes.append(0x00)
        let error = #expect(throws: RescindError.self) { try codec.decodeRequest(Order.self, from: bytes) }
        #expect(error?.code == .invalidArgument)
    }
}
