import NIOCore

/// One protocol frame: a fixed header and a CBOR body.
///
/// On the wire (all integers big-endian):
///
/// ```
/// offset  size  field
///      0     4  length: bytes after this field (header rest + body), 12 ... maxFrameLength
///      4     1  version: 1
///      5     1  kind (FrameKind)
///      6     2  flags: 0 (reserved)
///      8     8  correlation id
///     16     n  body: one CBOR data item (may be empty for no body)
/// ```
public struct Frame: Sendable, Hashable {
    /// The only frame-format version this build speaks.
    public static let currentVersion: UInt8 = 1
    /// Bytes of the header after the length prefix.
    public static let headerLength = 12
    /// Bytes of the length prefix.
    public static let lengthPrefixLength = 4
    /// The default largest value of the length field (1 MiB).
    public static let defaultMaxLength = 1 << 20

    public var version: UInt8
    public var kind: FrameKind
    public var flags: UInt16
    /// Pairs a response or error with its request. Zero is reserved for connection-level frames
    /// (handshake, connection errors).
    public var correlationID: UInt64
    public var body: ByteBuffer

    public init(
        kind: FrameKind,
        correlationID: UInt64,
        body: ByteBuffer,
        version: UInt8 = Frame.currentVersion,
        flags: UInt16 = 0
    ) {
        self.version = version
        self.kind = kind
        self.flags = flags
        self.correlationID = correlationID
        self.body = body
    }
}

/// What a frame carries.
public struct FrameKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Client to server, first frame: the versions the client speaks. Server to client: the version chosen.
    public static let hello = FrameKind(rawValue: 1)
    /// A request: body is a `RequestEnvelope`.
    public static let request = FrameKind(rawValue: 2)
    /// A successful response: body is the method's response value.
    public static let response = FrameKind(rawValue: 3)
    /// A failed request (correlation id of the request) or a connection error (correlation id 0): body is a
    /// `RescindError`.
    public static let error = FrameKind(rawValue: 4)

    public var isKnown: Bool { (1...4).contains(rawValue) }

    public var description: String {
        switch self {
        case .hello: "hello"
        case .request: "request"
        case .response: "response"
        case .error: "error"
        default: "kind(\(rawValue))"
        }
    }
}

/// A frame the decoder cannot accept. The connection cannot be resynchronised after it, so it is closed
/// after an error frame.
public struct FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let name: String
        /// The declared length is above the configured maximum.
        public static let tooLarge = Code(name: "too_large")
        /// The declared length is too small to hold a header.
        public static let tooShort = Code(name: "too_short")
        /// The connection ended in the middle of a frame.
        public static let truncated = Code(name: "truncated")
    }

    public var code: Code
    public var message: String

    public var description: String { "\(code.name): \(message)" }

    /// The wire error a peer is sent for this frame error.
    public var rescindError: RescindError {
        RescindError(.malformed, message, reason: "frame_\(code.name)", retryable: false)
    }
}
