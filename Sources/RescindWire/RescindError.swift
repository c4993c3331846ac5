/// An error a peer can act on: a code from a fixed catalogue, a message for a person, and whether to retry.
///
/// This is the only error that crosses the wire. Services throw it for per-request failures; the transport
/// turns it into an error frame and back. Process errors (a socket that will not bind, a corrupt database
/// file) are other types and never reach a peer.
public struct RescindError: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    /// A code from the catalogue in `protocol/PROTOCOL.md`. A struct, not an enum, so the catalogue can grow
    /// without breaking peers that do not know a new code: they treat it by its `retryable` flag.
    public struct Code: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The request is malformed or a field is out of range; retrying the same request fails the same way.
        public static let invalidArgument = Code("invalid_argument")
        /// The order, payment, SKU, location or saga does not exist.
        public static let notFound = Code("not_found")
        /// The system is not in a state that allows the operation (an order already cancelled, a card declined).
        public static let failedPrecondition = Code("failed_precondition")
        /// The request conflicts with another one (an idempotency key reused with other parameters).
        public static let conflict = Code("conflict")
        /// The peer's certificate identity may not call this method.
        public static let permissionDenied = Code("permission_denied")
        /// The callee cannot be reached or is shutting down; retry with backoff.
        public static let unavailable = Code("unavailable")
        /// The deadline passed before an answer; the effect may or may not have happened: retry with the same key.
        public static let deadlineExceeded = Code("deadline_exceeded")
        /// A limit was crossed (too many requests in flight on a connection).
        public static let resourceExhausted = Code("resource_exhausted")
        /// No method of that name exists on this daemon.
        public static let unimplemented = Code("unimplemented")
        /// The peer speaks a protocol version this daemon does not.
        public static let unsupportedVersion = Code("unsupported_version")
        /// A frame or body could not be read; the connection is closed after this error.
        public static let malformed = Code("malformed")
        /// A bug or an unexpected failure on the callee's side.
        public static let `internal` = Code("internal")

        public static let known: [Code] = [
            .invalidArgument, .notFound, .failedPrecondition, .conflict, .permissionDenied, .unavailable,
            .deadlineExceeded, .resourceExhausted, .unimplemented, .unsupportedVersion, .malformed, .internal,
        ]

        /// Whether an error with this code is worth retrying when the error itself does not say.
        public var isRetryableByDefault: Bool {
            self == .unavailable || self == .deadlineExceeded || self == .resourceExhausted
        }
    }

    /// What kind of failure this is; programs branch on it.
    public var code: Code
    /// A sentence for a person. Never contains secrets or card numbers.
    public var message: String
    /// Whether the same request (with the same idempotency key) may succeed later.
    public var retryable: Bool
    /// A finer machine-readable cause within the code, e.g. `card_declined`, `out_of_stock`,
    /// `location_deactivated`, `order_fulfilled`.
    public var reason: String?

    /// Creates an error; `retryable` defaults to what the code implies.
    public init(_ code: Code, _ message: String, reason: String? = nil, retryable: Bool? = nil) {
        self.code = code
        self.message = message
        self.reason = reason
        self.retryable = retryable ?? code.isRetryableByDefault
    }

    public var description: String {
        var text = "\(code.rawValue)"
        if let reason { text += "/\(reason)" }
        text += ": \(message)"
        if retryable { text += " (retryable)" }
        return text
    }
}

extension RescindError {
    public static func invalidArgument(_ message: String, reason: String? = nil) -> RescindError {
        RescindError(.invalidArgument, message, reason: reason)
    }
    public static func notFound(_ message: String, reason: String? = nil) -> RescindError {
        RescindError(.notFound, message, reason: reason)
    }
    public static func failedPrecondition(_ message: String, reason: String? = nil) -> RescindError {
        RescindError(.failedPrecondition, message, reason: reason)
    }
    public static func conflict(_ message: String, reason: String? = nil) -> RescindError {
        RescindError(.conflict, message, reason: reason)
    }
    public static func unavailable(_ message: String, reason: String? = nil) -> RescindError {
        RescindError(.unavailable, message, reason: reason)
    }
    public static func internalError(_ message: String, reason: String? = nil) -> RescindError {
        RescindError(.internal, message, reason: reason)
    }
}
