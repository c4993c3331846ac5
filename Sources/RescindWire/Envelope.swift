import NIOCore
import RescindCBOR

import struct Foundation.Data
import struct Foundation.Date

/// The body of a request frame.
public struct RequestEnvelope: Codable, Sendable, Hashable {
    /// The method's full name, e.g. `payments.refund`.
    public var method: String
    /// When the caller stops waiting, in milliseconds since the Unix epoch. The callee refuses work that
    /// arrives after it with `deadline_exceeded`.
    public var deadlineMillis: UInt64
    /// Makes the effect of a request happen at most once: the callee stores its first answer for the key
    /// and returns it again for a repeat. Required by methods with effects between daemons.
    public var idempotencyKey: String?
    /// The method's request value, itself encoded as CBOR.
    public var payload: Data

    public init(method: String, deadlineMillis: UInt64, idempotencyKey: String? = nil, payload: Data) {
        self.method = method
        self.deadlineMillis = deadlineMillis
        self.idempotencyKey = idempotencyKey
        self.payload = payload
    }

    enum CodingKeys: String, CodingKey {
        case method
        case deadlineMillis = "deadline"
        case idempotencyKey = "idempotency_key"
        case payload
    }
}

extension RequestEnvelope {
    /// A date as milliseconds since the Unix epoch, clamped to the range of the field.
    public static func millis(_ date: Date) -> UInt64 {
        let millis = (date.timeIntervalSince1970 * 1000).rounded(.down)
        guard millis.isFinite, millis > 0 else { return 0 }
        return millis >= 0x1p64 ? .max : UInt64(millis)
    }
}

/// The body of the client's hello frame: the protocol versions it speaks.
public struct ClientHello: Codable, Sendable, Hashable {
    public var versions: [UInt32]
    /// Free text naming the client software, for logs.
    public var agent: String

    public init(versions: [UInt32] = [ProtocolVersion.current], agent: String) {
        self.versions = versions
        self.agent = agent
    }
}

/// The body of the server's hello frame: the version chosen for the connection.
public struct ServerHello: Codable, Sendable, Hashable {
    public var version: UInt32
    /// The identity of the daemon, as in its certificate.
    public var server: String
    /// The most requests the client may have in flight on this connection.
    public var maxInFlight: UInt32

    public init(version: UInt32, server: String, maxInFlight: UInt32) {
        self.version = version
        self.server = server
        self.maxInFlight = maxInFlight
    }

    enum CodingKeys: String, CodingKey {
        case version, server
        case maxInFlight = "max_in_flight"
    }
}

/// Protocol versions.
public enum ProtocolVersion {
    /// The version this build speaks.
    public static let current: UInt32 = 1
    /// Every version this build can speak, preferred first.
    public static let supported: [UInt32] = [1]
}

/// Encodes and decodes frame bodies.
public struct WireCodec: Sendable {
    public var encoder = CBOREncoder()
    public var decoder = CBORDecoder()

    public init() {}

    /// Encodes a value into a new buffer.
    /// - Throws: `CBORError` if the value cannot be encoded.
    public func encode<T: Encodable>(_ value: T, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws
        -> ByteBuffer
    {
        let bytes = try encoder.encode(value)
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }

    /// Decodes a value from all readable bytes of a buffer.
    /// - Throws: `CBORError` for malformed CBOR or a value of the wrong shape.
    public func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        try decoder.decode(type, from: buffer.readableBytesView)
    }

    /// Decodes a value, turning any failure into an `invalid_argument` error a peer can read.
    /// - Throws: `RescindError` with code `invalid_argument`.
    public func decodeRequest<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>) throws -> T {
        do {
            return try decoder.decode(type, from: bytes)
        } catch let error as CBORError {
            throw RescindError(.invalidArgument, "cannot read the request: \(error.message)", reason: "bad_body")
        }
    }
}
