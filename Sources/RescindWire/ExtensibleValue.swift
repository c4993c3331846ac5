/// A text value from a catalogue that grows: order statuses, saga kinds and states, error codes.
///
/// A struct, not an enum: a peer that does not know a value still decodes it and keeps it as text, so adding
/// a value (a new saga kind, say) breaks no older peer. Known values are static constants; `known` lists
/// them for documentation, command-line choices and the schema's checks.
public protocol ExtensibleValue: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible
where RawValue == String {
    init(rawValue: String)
    /// The values this build knows, in the order the protocol lists them.
    static var known: [Self] { get }
}

extension ExtensibleValue {
    public init(_ rawValue: String) { self.init(rawValue: rawValue) }

    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }

    /// Whether this build knows the value.
    public var isKnown: Bool { Self.known.contains(self) }
}
