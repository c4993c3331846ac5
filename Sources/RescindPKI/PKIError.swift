/// An error raised by the RescindPKI module.
///
/// Every error carries a machine-readable ``Code`` and a human-readable ``message``
/// that is suitable for showing to an operator as-is.
public struct PKIError: Error, CustomStringConvertible, Sendable {
    /// The kind of a ``PKIError``.
    ///
    /// `Code` is an extensible set of values rather than an enum, so new codes can be
    /// added without breaking callers that `switch` over it.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The stable, machine-readable name of this code, e.g. `"invalidName"`.
        public let rawValue: String

        private init(_ rawValue: String) {
            self.rawValue = rawValue
        }

        /// An identity name or certificate authority common name was rejected.
        public static let invalidName = Code("invalidName")
        /// A host (DNS name or IP address) given for a certificate was rejected.
        public static let invalidHost = Code("invalidHost")
        /// A validity period was not positive, or the certificate authority has expired.
        public static let invalidValidity = Code("invalidValidity")
        /// A certificate could not be parsed, or is not usable for its purpose (e.g. it is not a CA).
        public static let invalidCertificate = Code("invalidCertificate")
        /// A private key could not be parsed, or it does not match its certificate.
        public static let invalidPrivateKey = Code("invalidPrivateKey")
        /// A file that would be written already exists and overwriting was not requested.
        public static let fileExists = Code("fileExists")
        /// A file that is needed does not exist.
        public static let fileNotFound = Code("fileNotFound")
        /// A file system operation failed.
        public static let io = Code("io")
        /// Building or signing a certificate failed.
        public static let issuanceFailed = Code("issuanceFailed")

        /// The ``rawValue`` of this code.
        public var description: String { self.rawValue }
    }

    /// What kind of error this is.
    public let code: Code

    /// A human-readable explanation of what went wrong.
    public let message: String

    /// Creates an error from a code and a human-readable message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, prefixed by the code, e.g. `invalidName: "Orders" is not a valid name ...`.
    public var description: String {
        "\(self.code): \(self.message)"
    }
}
