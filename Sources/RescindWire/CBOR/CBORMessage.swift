import Foundation

/// A `Codable` type with hand-written CBOR coding, which `CBOREncoder` and `CBORDecoder` use in
/// place of its `Codable` conformance.
///
/// The generic Codable path spends about half of every call in machinery that does not depend on
/// the format (container boxes, `CodingKey` conversions, metadata lookups, key searches). A
/// message reads and writes its fields directly, which makes the hot wire types several times
/// faster. The bytes and the accepted input stay exactly those of the `Codable` conformance:
/// - `encode(cbor:)` writes every field under its coding key, in the canonical key order of
///   RFC 8949 §4.2.1 (shorter keys first, then bytewise), leaving out optionals that are `nil`,
///   as the synthesized `encode(to:)` does with `encodeIfPresent`;
/// - `init(cbor:)` visits the entries in input order, ignores unknown keys, takes `null` as
///   `nil` for optionals only, and throws ``CBORError/Code/keyNotFound`` for a missing required
///   key (``CBORMapReader/required(_:_:)``).
///
/// The input has passed the decoder's validating pass before `init(cbor:)` runs (canonical
/// heads, UTF-8, no duplicate keys, depth), so a message checks only types and presence.
/// Tests compare both paths on every message type; `CBOREncoder.usesMessageCoding` and
/// `CBORDecoder.usesMessageCoding` turn this path off for them and for benchmarks.
///
/// The coders take this path for the top-level value and for messages inside messages; a message
/// inside a type without hand-written coding goes through its `Codable` conformance (same bytes).
public protocol CBORMessage: Codable {
    /// Reads the value from the entries of a map.
    init(cbor map: inout CBORMapReader) throws
    /// Writes the value's entries, in canonical key order, into a map.
    func encode(cbor map: inout CBORMapWriter) throws
}

// MARK: - Reading

/// A key of the current map entry, for `switch` with string-literal patterns. It refers to the
/// input and is valid only until the reader moves to the next entry.
///
/// The matching and the generic helpers of ``CBORMapReader`` are inlinable: called across
/// modules unspecialized, they looked up the metadata of `Optional<T>` at every field.
public struct CBORMapKey {
    /// The validated input; the key's UTF-8 is `count` bytes from `start`.
    @usableFromInline let bytes: UnsafeBufferPointer<UInt8>
    @usableFromInline let start: Int
    @usableFromInline let count: Int

    /// Whether the key's UTF-8 bytes equal the literal's.
    @inlinable
    public static func ~= (pattern: StaticString, key: CBORMapKey) -> Bool {
        guard pattern.utf8CodeUnitCount == key.count else { return false }
        let literal = pattern.utf8Start
        var i = 0
        while i < key.count {
            if literal[i] != key.bytes[key.start &+ i] { return false }
            i &+= 1
        }
        return true
    }
}

/// Reads the entries of one map of validated input, for ``CBORMessage/init(cbor:)``.
///
/// ```swift
/// var id: UUID?
/// while map.next() {
///     switch map.key {
///     case "id": id = try map.read(UUID.self)
///     case "note": note = map.isNull ? nil : try map.read(String.self)
///     default: break  // unknown keys are ignored
///     }
/// }
/// self.id = try map.required(id, "id")
/// ```
public struct CBORMapReader {
    let state: _CBORDecodingState
    let mapOffset: Int
    private var remaining: Int
    /// The key of the next entry.
    private var following: _CBORCursor
    /// The value of the current entry.
    private var value: _CBORCursor
    private var keyStart = 0
    private var keyCount = 0

    init(state: _CBORDecodingState, at cursor: _CBORCursor, head: _CBORHead) {
        self.state = state
        mapOffset = cursor.offset
        remaining = Int(head.argument)
        following = state.firstChild(of: cursor, head: head)
        value = following
    }

    /// Moves to the next entry; `false` once every entry has been visited.
    public mutating func next() -> Bool {
        guard remaining > 0 else { return false }
        remaining &-= 1
        // The indexer accepted only text-string keys.
        let head = state.head(at: following.offset)
        keyStart = following.offset &+ head.length
        keyCount = Int(head.argument)
        value = _CBORCursor(offset: keyStart &+ keyCount, record: following.record)
        following = value
        state.skip(&following)
        return true
    }

    /// The key of the current entry.
    public var key: CBORMapKey {
        CBORMapKey(bytes: state.bytes, start: keyStart, count: keyCount)
    }

    /// Whether the current value is `null` (which only an optional field accepts).
    public var isNull: Bool {
        state.isNull(at: value)
    }

    public func read(_ type: String.Type) throws -> String {
        try state.decodeString(at: value)
    }

    public func read(_ type: Bool.Type) throws -> Bool {
        try state.decodeBool(at: value)
    }

    public func read(_ type: Int.Type) throws -> Int {
        try state.decodeInteger(Int.self, at: value)
    }

    public func read(_ type: Int64.Type) throws -> Int64 {
        try state.decodeInteger(Int64.self, at: value)
    }

    public func read(_ type: UInt64.Type) throws -> UInt64 {
        try state.decodeInteger(UInt64.self, at: value)
    }

    public func read(_ type: Data.Type) throws -> Data {
        try state.decodeData(at: value)
    }

    public func read(_ type: Date.Type) throws -> Date {
        try state.decodeDate(at: value)
    }

    public func read(_ type: UUID.Type) throws -> UUID {
        try state.decodeUUID(at: value)
    }

    /// A string enum, as its synthesized `init(from:)` reads it: a text string that must be
    /// one of the raw values, else ``CBORError/Code/invalidValue``.
    @inlinable
    public func read<E: RawRepresentable & Decodable>(_ type: E.Type) throws -> E where E.RawValue == String {
        let raw = try read(String.self)
        guard let result = E(rawValue: raw) else {
            throw invalid(raw, for: E.self)
        }
        return result
    }

    @usableFromInline
    func invalid(_ raw: String, for type: Any.Type) -> CBORError {
        state.error(.invalidValue, "cannot initialize \(type) from invalid String value \(raw)", at: value.offset)
    }

    public func read<M: CBORMessage>(_ type: M.Type) throws -> M {
        try state.decodeMessage(M.self, at: value)
    }

    public func read<M: CBORMessage>(_ type: [M].Type) throws -> [M] {
        let head = state.head(at: value.offset)
        guard head.major == 4 else {
            throw state.mismatch("array", at: value)
        }
        var result: [M] = []
        result.reserveCapacity(Int(head.argument))
        var element = state.firstChild(of: value, head: head)
        for _ in 0..<head.argument {
            result.append(try state.decodeMessage(M.self, at: element))
            state.skip(&element)
        }
        return result
    }

    /// `value`, or ``CBORError/Code/keyNotFound`` naming `key` if the map had no entry for it.
    @inlinable
    public func required<T>(_ value: T?, _ key: StaticString) throws -> T {
        if let value {
            return value
        }
        throw missing(key)
    }

    @usableFromInline
    func missing(_ key: StaticString) -> CBORError {
        state.error(.keyNotFound, "key '\(key)' not found", at: mapOffset)
    }
}

extension _CBORDecodingState {
    /// A message from the map at `cursor`.
    func decodeMessage<M: CBORMessage>(_ type: M.Type, at cursor: _CBORCursor) throws -> M {
        let head = head(at: cursor.offset)
        guard head.major == 5 else {
            throw mismatch("map", at: cursor)
        }
        var map = CBORMapReader(state: self, at: cursor, head: head)
        return try M(cbor: &map)
    }

    /// The loaded input as a `T`, which must be the message type `M` (a `T` found to conform
    /// to ``CBORMessage`` at run time).
    func decodeRoot<M: CBORMessage, T>(_ type: M.Type, as root: T.Type) throws -> T {
        precondition(M.self == T.self)
        let message = try decodeMessage(M.self, at: _CBORCursor(offset: 0, record: 0))
        return withUnsafePointer(to: message) { UnsafeRawPointer($0).assumingMemoryBound(to: T.self).pointee }
    }
}

// MARK: - Writing

/// Writes the entries of one map, for ``CBORMessage/encode(cbor:)``.
///
/// Write the entries in canonical key order and leave out `nil` optionals:
///
/// ```swift
/// map.write("id", id)
/// if let note { map.write("note", note) }
/// try map.write("created_at", createdAt)
/// ```
public struct CBORMapWriter {
    let state: _CBORDirectState
    /// The entries written so far.
    private(set) var count = 0

    init(state: _CBORDirectState) {
        self.state = state
    }

    private mutating func key(_ key: StaticString) {
        count &+= 1
        state.writeHead(3, UInt64(key.utf8CodeUnitCount))
        state.writeBytes(UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
    }

    public mutating func write(_ key: StaticString, _ value: String) {
        self.key(key)
        state.writeText(value)
    }

    public mutating func write(_ key: StaticString, _ value: Bool) {
        self.key(key)
        state.writeByte(value ? 0xf5 : 0xf4)
    }

    public mutating func write(_ key: StaticString, _ value: Int) {
        self.key(key)
        state.writeSigned(Int64(value))
    }

    public mutating func write(_ key: StaticString, _ value: Int64) {
        self.key(key)
        state.writeSigned(value)
    }

    public mutating func write(_ key: StaticString, _ value: UInt64) {
        self.key(key)
        state.writeUnsigned(value)
    }

    public mutating func write(_ key: StaticString, _ value: Data) {
        self.key(key)
        state.writeData(value)
    }

    /// - Throws: ``CBORError/Code/encodingFailed`` if the date is not finite.
    public mutating func write(_ key: StaticString, _ value: Date) throws {
        self.key(key)
        try state.writeDate(value)
    }

    public mutating func write(_ key: StaticString, _ value: UUID) {
        self.key(key)
        state.writeUUID(value)
    }

    /// A string enum, as its raw value.
    public mutating func write<E: RawRepresentable & Encodable>(_ key: StaticString, _ value: E)
    where E.RawValue == String {
        self.key(key)
        state.writeText(value.rawValue)
    }

    public mutating func write<M: CBORMessage>(_ key: StaticString, _ value: M) throws {
        self.key(key)
        try state.writeMessage(value)
    }

    public mutating func write<M: CBORMessage>(_ key: StaticString, _ value: [M]) throws {
        self.key(key)
        state.writeHead(4, UInt64(value.count))
        for element in value {
            try state.writeMessage(element)
        }
    }
}

extension _CBORDirectState {
    /// Writes a message as a map.
    func writeMessage<M: CBORMessage>(_ value: M) throws {
        let head = count
        writeByte(0xa0)
        var map = CBORMapWriter(state: self)
        try value.encode(cbor: &map)
        fixHead(major: 5, at: head, count: map.count)
    }

    /// The encoding of `value`, which must be of the message type `M` (a `T` found to conform to
    /// ``CBORMessage`` at run time).
    func encodeRoot<M: CBORMessage, T>(_ type: M.Type, _ value: T) throws -> [UInt8] {
        precondition(M.self == T.self)
        try withUnsafePointer(to: value) { pointer in
            try writeMessage(UnsafeRawPointer(pointer).assumingMemoryBound(to: M.self).pointee)
        }
        return output
    }
}
