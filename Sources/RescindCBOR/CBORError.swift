/// An error thrown by ``CBOREncoder`` or ``CBORDecoder``.
///
/// Inspect ``code`` to react to a category of failure; ``message`` is meant for humans and
/// logs and may change between versions. New codes may be added in later versions, so code
/// that switches over ``code`` must have a `default` branch.
///
/// Errors thrown by a value's own `encode(to:)` or `init(from:)` are passed through
/// unchanged, except Swift's `EncodingError` and `DecodingError`, which are converted to a
/// `CBORError` (``Code/encodingFailed``, or the decoding code that matches the
/// `DecodingError` case) so that callers only ever see one error type from this codec.
public struct CBORError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The category of a ``CBORError``.
    ///
    /// This is a struct with static members rather than an enum so that codes can be added
    /// without breaking source compatibility; compare with `==` or use `switch` with a
    /// `default` branch.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: String, Hashable, Sendable {
            case truncated
            case trailingBytes
            case invalidUTF8
            case tooDeep
            case lengthBeyondInput
            case nonCanonical
            case indefiniteLength
            case unsupported
            case typeMismatch
            case valueOutOfRange
            case keyNotFound
            case duplicateKey
            case valueNotFound
            case invalidValue
            case encodingFailed
        }

        private var wrapped: Wrapped

        private init(_ wrapped: Wrapped) {
            self.wrapped = wrapped
        }

        /// The input ended before the current data item was complete.
        public static let truncated = Code(.truncated)
        /// Bytes remain after the single top-level data item.
        public static let trailingBytes = Code(.trailingBytes)
        /// A text string (or map key) is not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// Arrays, maps and tags are nested deeper than ``CBORDecoder/Limits/maxDepth``.
        public static let tooDeep = Code(.tooDeep)
        /// A declared string length or element count cannot fit in the remaining input.
        ///
        /// Raised before anything is allocated for the item.
        public static let lengthBeyondInput = Code(.lengthBeyondInput)
        /// An integer, length or count is not in its shortest form (RFC 8949 §4.2.1).
        public static let nonCanonical = Code(.nonCanonical)
        /// An indefinite-length item or a "break" stop code (additional information 31).
        public static let indefiniteLength = Code(.indefiniteLength)
        /// Reserved additional information (28–30), an unknown simple value (including
        /// `undefined`), or a tag other than 1 (date) and 37 (UUID).
        public static let unsupported = Code(.unsupported)
        /// The data item has a different type from the one requested, or a map key is not a
        /// text string.
        public static let typeMismatch = Code(.typeMismatch)
        /// A number does not fit the requested Swift type exactly.
        public static let valueOutOfRange = Code(.valueOutOfRange)
        /// A keyed container has no entry for a required key.
        public static let keyNotFound = Code(.keyNotFound)
        /// A map contains the same key twice.
        public static let duplicateKey = Code(.duplicateKey)
        /// A null was found where a non-optional value is required, or an unkeyed container
        /// has no more elements.
        public static let valueNotFound = Code(.valueNotFound)
        /// The item is well-formed and of the right type but its content is invalid, for
        /// example a UUID that is not 16 bytes, or a date that is not finite.
        public static let invalidValue = Code(.invalidValue)
        /// The value could not be encoded, for example because it wrote two values into one
        /// single-value container or used the same key twice in a keyed container.
        public static let encodingFailed = Code(.encodingFailed)

        /// The code's name, for example `"truncated"`.
        public var description: String {
            wrapped.rawValue
        }
    }

    /// The category of the failure.
    public var code: Code

    /// A human-readable explanation.
    ///
    /// Includes the coding path (such as `order.lines[2].sku`) and the byte offset of the
    /// offending item where they are known. The wording is not stable; match on ``code``.
    public var message: String

    /// The byte offset in the input of the data item that caused the failure, if known.
    ///
    /// Always `nil` for encoding errors.
    public var offset: Int?

    /// Creates an error, for example to throw from a custom `init(from:)`.
    ///
    /// - Parameters:
    ///   - code: The category of the failure.
    ///   - message: A human-readable explanation.
    ///   - offset: The byte offset of the offending item, if known.
    public init(code: Code, message: String, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    /// The code followed by the message, for example `"truncated: input ends ..."`.
    public var description: String {
        "\(code): \(message)"
    }
}

extension CBORError {
    /// Builds an error whose message carries the coding path and the byte offset.
    init(_ code: Code, _ detail: String, path: [any CodingKey]?, offset: Int?) {
        var message = detail
        if let path {
            message += " at \(CodingPathText.describe(path))"
        }
        if let offset {
            message += " (byte offset \(offset))"
        }
        self.init(code: code, message: message, offset: offset)
    }

    /// Converts Swift's `EncodingError` into ``Code/encodingFailed``.
    init(converting error: EncodingError) {
        switch error {
        case .invalidValue(let value, let context):
            self.init(
                .encodingFailed,
                "invalid value \(value): \(context.debugDescription)",
                path: context.codingPath,
                offset: nil
            )
        @unknown default:
            self.init(.encodingFailed, "\(error)", path: nil, offset: nil)
        }
    }

    /// Converts Swift's `DecodingError` into the matching code.
    init(converting error: DecodingError) {
        switch error {
        case .typeMismatch(let type, let context):
            self.init(
                .typeMismatch,
                "type mismatch for \(type): \(context.debugDescription)",
                path: context.codingPath,
                offset: nil
            )
        case .valueNotFound(let type, let context):
            self.init(
                .valueNotFound,
                "value of type \(type) not found: \(context.debugDescription)",
                path: context.codingPath,
                offset: nil
            )
        case .keyNotFound(let key, let context):
            self.init(
                .keyNotFound,
                "key '\(key.stringValue)' not found: \(context.debugDescription)",
                path: context.codingPath,
                offset: nil
            )
        case .dataCorrupted(let context):
            self.init(
                .invalidValue,
                "invalid value: \(context.debugDescription)",
                path: context.codingPath,
                offset: nil
            )
        @unknown default:
            self.init(.invalidValue, "\(error)", path: nil, offset: nil)
        }
    }
}
