import Foundation

/// Decodes `Decodable` values from CBOR (RFC 8949), strictly, for input from untrusted peers.
///
/// The decoder reads exactly what ``CBOREncoder`` writes (see there for the mapping) and
/// rejects everything outside that profile, before allocating anything for it:
/// - trailing bytes after the top-level item, truncated input, and lengths or counts that
///   cannot fit in the remaining input;
/// - indefinite lengths, reserved additional information, non-shortest integers, lengths
///   and counts (floats may use any width);
/// - invalid UTF-8 in any text string; map keys that are not text strings; duplicate keys;
/// - tags other than 1 (only where a `Date` is expected) and 37 (only where a `UUID` is
///   expected), `undefined` and every other simple value except `false`, `true` and `null`;
/// - arrays, maps and tags nested deeper than ``Limits/maxDepth``.
///
/// The whole input is validated first, so a document is rejected even if the offending item
/// sits under a key that the target type ignores.
///
/// Type-directed rules: integers must fit the requested type exactly; `Float` and `Double`
/// accept any float width and integers when the value is exactly representable; `Date`
/// requires tag 1 and `UUID` tag 37; a missing key or a null both decode as `nil` for
/// optionals (`decodeNil(forKey:)` returns `true` for a missing key); unknown keys are
/// ignored; map keys may come in any order; `superDecoder()` reads the key `"super"` and
/// throws ``CBORError/Code/keyNotFound`` if it is missing. Coding paths reported by the
/// decoder (`codingPath`, error messages) are rebuilt from the input, so their keys are
/// plain string keys and array positions rather than the type's own `CodingKey` values.
///
/// The decoder has no mutable state; one instance can be shared between tasks.
public struct CBORDecoder: Sendable {
    /// Bounds that protect the decoder against hostile input.
    public struct Limits: Sendable {
        /// The deepest allowed nesting of arrays, maps and tags together; default 64.
        ///
        /// A top-level array has depth 1. Input nested deeper is rejected with
        /// ``CBORError/Code/tooDeep`` before any value is decoded.
        public var maxDepth: Int

        /// Creates limits.
        ///
        /// - Parameter maxDepth: The deepest allowed nesting of arrays, maps and tags.
        public init(maxDepth: Int = 64) {
            self.maxDepth = maxDepth
        }
    }

    /// The bounds applied to every `decode` call.
    public var limits: Limits

    /// Creates a decoder.
    ///
    /// - Parameter limits: Bounds applied to every `decode` call.
    public init(limits: Limits = .init()) {
        self.limits = limits
    }

    /// Decodes a value of the given type from exactly one CBOR data item.
    ///
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - bytes: The complete input; nothing may follow the item.
    /// - Returns: The decoded value.
    /// - Throws: ``CBORError``: a structural code (``CBORError/Code/truncated``,
    ///   ``CBORError/Code/lengthBeyondInput``, ``CBORError/Code/nonCanonical`` and so on)
    ///   if the input is not acceptable CBOR, or a type-directed code
    ///   (``CBORError/Code/typeMismatch``, ``CBORError/Code/keyNotFound``,
    ///   ``CBORError/Code/valueOutOfRange`` and so on) if it does not match `type`.
    ///   `DecodingError`s thrown by the type's own `init(from:)` are converted to the
    ///   matching code; any other error it throws is rethrown unchanged.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBufferPointer { buffer in
            try decode(type, copying: buffer)
        }
    }

    /// Validates `input`, then decodes from a private copy of it, so that nothing the
    /// decoded type does can outlive the caller's buffer.
    private func decode<T: Decodable>(_ type: T.Type, copying input: UnsafeBufferPointer<UInt8>) throws -> T {
        var state = DecoderState.acquire()
        defer { DecoderState.recycle(&state) }
        try state.load(copying: input, maxDepth: limits.maxDepth)
        let root = Cursor(offset: 0, record: 0)
        do {
            return try state.unbox(T.self, at: root)
        } catch let error as DecodingError {
            throw CBORError(converting: error)
        }
    }

    /// Decodes a value of the given type from any collection of bytes, such as `Data`,
    /// `ArraySlice<UInt8>` or a NIO `ByteBufferView`.
    ///
    /// Behaves exactly like the `[UInt8]` overload. The bytes are copied once into memory
    /// the decoder owns (as for an array); collections without contiguous storage go through
    /// an intermediate array.
    ///
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - bytes: The complete input; nothing may follow the item.
    /// - Returns: The decoded value.
    /// - Throws: ``CBORError``, exactly as the `[UInt8]` overload does.
    public func decode<T: Decodable, Bytes: Collection>(
        _ type: T.Type,
        from bytes: Bytes
    ) throws -> T where Bytes.Element == UInt8 {
        if let result = try bytes.withContiguousStorageIfAvailable({ try decode(type, copying: $0) }) {
            return result
        }
        return try decode(type, from: Array(bytes))
    }
}

// MARK: - Decoding state

struct ItemHead {
    var major: UInt8
    var info: UInt8
    var argument: UInt64
    var length: Int
}

/// The validated input and its container records, shared by every container of one `decode`
/// call, and the `Decoder` that values decode themselves from.
///
/// The input is copied into memory owned by this object, so the decoders and containers that
/// reference it stay valid however long a decoded type keeps them. Reads here rely on the
/// indexer having accepted the input: every head, length and record they follow lies
/// within `bytes`.
///
/// Being the decoder itself saves an object per call: `cursor` is the item that the value
/// being decoded reads, saved and restored around every nested value (`superDecoder()` hands
/// out a separate `SuperDecoder` with a fixed cursor instead). States are recycled through
/// a small pool, buffers and all, once a call has finished, unless something from the call
/// (a decoder or container that a type kept) still refers to them.
final class DecoderState: Decoder {
    /// The validated copy of the input, at the start of `storage` (which may be larger).
    @exclusivity(unchecked)
    private(set) var bytes = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
    @exclusivity(unchecked)
    private var storage = UnsafeMutableBufferPointer<UInt8>(start: nil, count: 0)
    /// The container records of `bytes`, and the indexer's working space.
    @exclusivity(unchecked)
    private(set) var index = ItemIndex()
    /// The item that the value currently being decoded reads.
    @exclusivity(unchecked)
    var cursor = Cursor(offset: 0, record: 0)

    init() {}

    deinit {
        storage.deallocate()
    }

    /// Copies `input` and validates the copy; afterwards `bytes` and `index` describe it.
    func load(copying input: UnsafeBufferPointer<UInt8>, maxDepth: Int) throws {
        if storage.count < input.count {
            storage.deallocate()
            storage = .allocate(capacity: max(input.count, 256))
        }
        if let source = input.baseAddress, let target = storage.baseAddress, input.count > 0 {
            target.update(from: source, count: input.count)
        }
        bytes = UnsafeBufferPointer(rebasing: storage[0..<input.count])
        index.removeAll()  // `recycle` left it empty; this keeps `load` correct on its own
        try Indexer.index(bytes, maxDepth: maxDepth, into: &index)
    }

    // MARK: Recycling

    /// Idle states, each with its buffers emptied but their capacity kept.
    private static let pool = Recycler<DecoderState>()
    /// The largest buffers worth keeping.
    private static let keptInputCapacity = 64 * 1024
    private static let keptTableCapacity = 4096

    static func acquire() -> DecoderState {
        pool.take() ?? DecoderState()
    }

    /// Returns `state` to the pool if nothing else refers to it and its buffers are of a
    /// reasonable size.
    static func recycle(_ state: inout DecoderState) {
        guard isKnownUniquelyReferenced(&state),
            state.storage.count <= keptInputCapacity,
            state.index.capacity <= keptTableCapacity
        else { return }
        state.bytes = UnsafeBufferPointer(start: nil, count: 0)
        state.index.removeAll()
        state.cursor = Cursor(offset: 0, record: 0)
        pool.put(state)
    }

    @inline(__always)
    func head(at offset: Int) -> ItemHead {
        let initial = bytes[offset]
        let info = initial & 0x1f
        var argument = UInt64(info)
        var length = 1
        if info >= 24 && info <= 27 {
            let extra = 1 &<< Int(info - 24)
            argument = 0
            for i in 1...extra {
                argument = argument &<< 8 | UInt64(bytes[offset + i])
            }
            length = 1 + extra
        }
        return ItemHead(major: initial &>> 5, info: info, argument: argument, length: length)
    }

    /// Moves `cursor` past the item it points at.
    @inline(__always)
    func skip(_ cursor: inout Cursor) {
        let head = head(at: cursor.offset)
        switch head.major {
        case 2, 3:
            cursor.offset += head.length + Int(head.argument)
        case 4, 5:
            if head.argument == 0 {
                cursor.offset += head.length
            } else {
                let record = index.records[cursor.record]
                cursor.offset = record.end
                cursor.record = record.next
            }
        case 6:
            cursor.offset += head.length
            skip(&cursor)
        default:
            cursor.offset += head.length
        }
    }

    /// The cursor of the first child of the container at `cursor`.
    @inline(__always)
    func firstChild(of cursor: Cursor, head: ItemHead) -> Cursor {
        Cursor(offset: cursor.offset + head.length, record: head.argument == 0 ? cursor.record : cursor.record + 1)
    }

    func string(payload: Int, count: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[payload..<payload + count]), as: UTF8.self)
    }

    // MARK: Coding paths and errors

    /// The coding path of the item whose head is at `target`, found by walking down from the
    /// root. Only used for `codingPath` and error messages.
    func codingPath(to target: Int) -> [any CodingKey] {
        var path: [any CodingKey] = []
        var cursor = Cursor(offset: 0, record: 0)
        descend: while cursor.offset < target {
            let head = head(at: cursor.offset)
            switch head.major {
            case 4, 5:
                let isMap = head.major == 5
                var child = firstChild(of: cursor, head: head)
                for index in 0..<Int(head.argument) {
                    var key: String?
                    if isMap {
                        let keyHead = self.head(at: child.offset)
                        key = string(payload: child.offset + keyHead.length, count: Int(keyHead.argument))
                        skip(&child)
                    }
                    var next = child
                    skip(&next)
                    if target >= child.offset && target < next.offset {
                        if let key {
                            path.append(AnyCodingKey(stringValue: key))
                        } else {
                            path.append(AnyCodingKey(index: index))
                        }
                        cursor = child
                        continue descend
                    }
                    child = next
                }
                break descend
            case 6:
                cursor.offset += head.length
            default:
                break descend
            }
        }
        return path
    }

    func error(_ code: CBORError.Code, _ detail: String, at offset: Int) -> CBORError {
        CBORError(code, detail, path: codingPath(to: offset), offset: offset)
    }

    /// `valueNotFound` for a null, otherwise `typeMismatch`.
    func mismatch(_ expected: String, at cursor: Cursor) -> CBORError {
        let head = head(at: cursor.offset)
        if head.major == 7 && head.info == 22 {
            return error(.valueNotFound, "expected \(expected), found null", at: cursor.offset)
        }
        let found = ItemDescription.item(major: head.major, info: head.info, argument: head.argument)
        return error(.typeMismatch, "expected \(expected), found \(found)", at: cursor.offset)
    }

    // MARK: Scalars

    @inline(__always)
    func isNull(at cursor: Cursor) -> Bool {
        bytes[cursor.offset] == 0xf6
    }

    func decodeBool(at cursor: Cursor) throws -> Bool {
        switch bytes[cursor.offset] {
        case 0xf4: return false
        case 0xf5: return true
        default: throw mismatch("Bool", at: cursor)
        }
    }

    @inline(__always)
    func decodeInteger<T: FixedWidthInteger>(_ type: T.Type, at cursor: Cursor) throws -> T {
        let head = head(at: cursor.offset)
        if head.major == 0 {
            if let value = T(exactly: head.argument) {
                return value
            }
            throw error(.valueOutOfRange, "\(head.argument) does not fit in \(T.self)", at: cursor.offset)
        }
        if head.major == 1 {
            if T.isSigned, head.argument <= UInt64(Int64.max), let value = T(exactly: -1 - Int64(head.argument)) {
                return value
            }
            throw error(
                .valueOutOfRange,
                "-1-\(head.argument) does not fit in \(T.self)",
                at: cursor.offset
            )
        }
        throw mismatch("\(T.self)", at: cursor)
    }

    func decodeDouble(at cursor: Cursor) throws -> Double {
        let head = head(at: cursor.offset)
        switch head.major {
        case 7:
            switch head.info {
            case 25: return HalfFloat.double(fromHalf: UInt16(truncatingIfNeeded: head.argument))
            case 26: return Double(Float(bitPattern: UInt32(truncatingIfNeeded: head.argument)))
            case 27: return Double(bitPattern: head.argument)
            default: break
            }
        case 0, 1:
            if let value = DecoderState.float(Double.self, fromMajor: head.major, argument: head.argument) {
                return value
            }
            throw error(.valueOutOfRange, "integer is not exactly representable as Double", at: cursor.offset)
        default:
            break
        }
        throw mismatch("Double", at: cursor)
    }

    func decodeFloat(at cursor: Cursor) throws -> Float {
        let head = head(at: cursor.offset)
        switch head.major {
        case 7:
            switch head.info {
            case 25:
                return Float(HalfFloat.double(fromHalf: UInt16(truncatingIfNeeded: head.argument)))
            case 26:
                return Float(bitPattern: UInt32(truncatingIfNeeded: head.argument))
            case 27:
                let double = Double(bitPattern: head.argument)
                if double.isNaN {
                    return .nan
                }
                if let value = Float(exactly: double) {
                    return value
                }
                throw error(.valueOutOfRange, "\(double) is not exactly representable as Float", at: cursor.offset)
            default:
                break
            }
        case 0, 1:
            if let value = DecoderState.float(Float.self, fromMajor: head.major, argument: head.argument) {
                return value
            }
            throw error(.valueOutOfRange, "integer is not exactly representable as Float", at: cursor.offset)
        default:
            break
        }
        throw mismatch("Float", at: cursor)
    }

    /// The exact floating-point value of an integer item, or `nil` if it is not representable.
    static func float<F: BinaryFloatingPoint>(_ type: F.Type, fromMajor major: UInt8, argument: UInt64) -> F? {
        if major == 0 {
            return F(exactly: argument)
        }
        // -1 - argument; for argument == UInt64.max that is -2^64, a power of two.
        if argument == .max {
            return F(sign: .minus, exponent: 64, significand: 1)
        }
        return F(exactly: argument + 1).map { -$0 }
    }

    func decodeString(at cursor: Cursor) throws -> String {
        let head = head(at: cursor.offset)
        guard head.major == 3 else {
            throw mismatch("String", at: cursor)
        }
        return string(payload: cursor.offset + head.length, count: Int(head.argument))
    }

    func decodeData(at cursor: Cursor) throws -> Data {
        let head = head(at: cursor.offset)
        guard head.major == 2 else {
            throw mismatch("Data (byte string)", at: cursor)
        }
        let start = cursor.offset + head.length
        return Data(UnsafeBufferPointer(rebasing: bytes[start..<start + Int(head.argument)]))
    }

    func decodeDate(at cursor: Cursor) throws -> Date {
        let head = head(at: cursor.offset)
        guard head.major == 6, head.argument == 1 else {
            throw mismatch("Date (tag 1)", at: cursor)
        }
        let content = Cursor(offset: cursor.offset + head.length, record: cursor.record)
        let inner = self.head(at: content.offset)
        let seconds: Double
        if inner.major == 7 {
            seconds = try decodeDouble(at: content)
            guard seconds.isFinite else {
                throw error(.invalidValue, "date seconds are not finite", at: content.offset)
            }
        } else {
            guard let value = DecoderState.float(Double.self, fromMajor: inner.major, argument: inner.argument)
            else {
                throw error(
                    .valueOutOfRange, "date seconds are not exactly representable as Double", at: content.offset)
            }
            seconds = value
        }
        return Date(timeIntervalSince1970: seconds)
    }

    func decodeUUID(at cursor: Cursor) throws -> UUID {
        let head = head(at: cursor.offset)
        guard head.major == 6, head.argument == 37 else {
            throw mismatch("UUID (tag 37)", at: cursor)
        }
        let content = cursor.offset + head.length
        let inner = self.head(at: content)
        guard inner.major == 2, inner.argument == 16 else {
            throw error(.invalidValue, "a UUID must be a 16-byte byte string", at: content)
        }
        let b = content + inner.length
        let u = bytes
        return UUID(
            uuid: (
                u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7],
                u[b + 8], u[b + 9], u[b + 10], u[b + 11], u[b + 12], u[b + 13], u[b + 14], u[b + 15]
            ))
    }
}

// MARK: - Decoder

extension DecoderState {
    var codingPath: [any CodingKey] {
        codingPath(to: cursor.offset)
    }

    var userInfo: [CodingUserInfoKey: Any] {
        [:]
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try MapDecoder<Key>(state: self, at: cursor))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try ArrayDecoder(state: self, at: cursor)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueDecoder(state: self, cursor: cursor)
    }

    /// Decodes any value from the item at `at`, with fast paths for the types that have a
    /// dedicated CBOR representation.
    ///
    /// The fast paths convert with `unsafeBitCast` only after checking that `T` is exactly
    /// the decoded type; unlike `as? T` this needs no `Optional<T>` metadata at run time.
    func unbox<T: Decodable>(_ type: T.Type, at position: Cursor) throws -> T {
        if T.self == String.self {
            return unsafeBitCast(try decodeString(at: position), to: T.self)
        }
        if T.self == Int.self {
            return unsafeBitCast(try decodeInteger(Int.self, at: position), to: T.self)
        }
        if T.self == Double.self {
            return unsafeBitCast(try decodeDouble(at: position), to: T.self)
        }
        if T.self == Bool.self {
            return unsafeBitCast(try decodeBool(at: position), to: T.self)
        }
        if T.self == Data.self {
            return unsafeBitCast(try decodeData(at: position), to: T.self)
        }
        if T.self == Date.self {
            return unsafeBitCast(try decodeDate(at: position), to: T.self)
        }
        if T.self == UUID.self {
            return unsafeBitCast(try decodeUUID(at: position), to: T.self)
        }
        // An array is read with its length known: its elements are stored once, not copied at each doubling.
        if head(at: position.offset).major == 4, let array = T.self as? any DecodableArray.Type {
            func decode<A: DecodableArray>(_ array: A.Type) throws -> T {
                unsafeBitCast(try A.cborDecode(self, at: position), to: T.self)
            }
            return try decode(array)
        }
        let saved = cursor
        cursor = position
        defer { cursor = saved }
        return try T(from: self)
    }
}

/// An array the decoder reads itself, as `Array.init(from:)` would (element by element through an unkeyed
/// container, with the same errors), but with room for all its elements reserved first.
protocol DecodableArray {
    static func cborDecode(_ state: DecoderState, at position: Cursor) throws -> Self
}

extension Array: DecodableArray where Element: Decodable {
    static func cborDecode(_ state: DecoderState, at position: Cursor) throws -> Self {
        var container = try ArrayDecoder(state: state, at: position)
        var elements: [Element] = []
        elements.reserveCapacity(container.total)
        while !container.isAtEnd {
            elements.append(try container.decode(Element.self))
        }
        return elements
    }
}

/// The decoder that `superDecoder()` returns: the shared state, fixed to one item.
final class SuperDecoder: Decoder {
    let state: DecoderState
    let cursor: Cursor

    init(state: DecoderState, cursor: Cursor) {
        self.state = state
        self.cursor = cursor
    }

    var codingPath: [any CodingKey] {
        state.codingPath(to: cursor.offset)
    }

    var userInfo: [CodingUserInfoKey: Any] {
        [:]
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try MapDecoder<Key>(state: state, at: cursor))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try ArrayDecoder(state: state, at: cursor)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueDecoder(state: state, cursor: cursor)
    }
}

// MARK: - Containers

/// A map entry as seen by a keyed container: where its key's UTF-8 bytes are and where its
/// value starts.
struct KeySlot {
    var payload: Int
    var length: Int
    var value: Cursor
}

/// Maps with more entries than this get a sorted lookup table instead of linear search.
let linearSearchLimit = 12

/// Key comparison and search for keyed decoding containers. Kept out of the generic
/// container so that unspecialized calls do not have to look up generic metadata.
enum KeyLookup {
    /// Whether `a[aStart ..< aStart + length]` equals `b[bStart ..< bStart + length]`,
    /// compared eight bytes at a time. Ranges outside the buffers compare unequal.
    @inline(__always)
    static func equal(
        _ a: UnsafeBufferPointer<UInt8>,
        _ aStart: Int,
        _ b: UnsafeBufferPointer<UInt8>,
        _ bStart: Int,
        _ length: Int
    ) -> Bool {
        guard aStart >= 0, bStart >= 0, length <= a.count - aStart, length <= b.count - bStart,
            let aBase = a.baseAddress, let bBase = b.baseAddress
        else {
            return length == 0
        }
        let x = UnsafeRawPointer(aBase + aStart)
        let y = UnsafeRawPointer(bBase + bStart)
        if length >= 8 {
            var i = 0
            while length - i >= 8 {
                if x.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    != y.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                {
                    return false
                }
                i += 8
            }
            // The last (overlapping) eight bytes cover any remainder.
            return i == length
                || x.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self)
                    == y.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self)
        }
        var i = 0
        while i < length {
            if x.load(fromByteOffset: i, as: UInt8.self) != y.load(fromByteOffset: i, as: UInt8.self) {
                return false
            }
            i += 1
        }
        return true
    }

    @inline(__always)
    static func compare(
        _ a: UnsafeBufferPointer<UInt8>,
        _ aStart: Int,
        _ b: UnsafeBufferPointer<UInt8>,
        _ bStart: Int,
        _ length: Int
    ) -> Int {
        var i = 0
        while i < length {
            let x = a[aStart + i]
            let y = b[bStart + i]
            if x != y {
                return x < y ? -1 : 1
            }
            i += 1
        }
        return 0
    }

    /// Binary search in a large map's sorted entries.
    static func search(
        _ table: UnsafeBufferPointer<KeySlot>,
        for wanted: UnsafeBufferPointer<UInt8>,
        in bytes: UnsafeBufferPointer<UInt8>
    ) -> Cursor? {
        var low = 0
        var high = table.count
        while low < high {
            let middle = (low + high) / 2
            let slot = table[middle]
            let order: Int
            if slot.length != wanted.count {
                order = slot.length < wanted.count ? -1 : 1
            } else {
                order = compare(bytes, slot.payload, wanted, 0, wanted.count)
            }
            if order == 0 {
                return slot.value
            }
            if order < 0 {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return nil
    }
}

/// A keyed decoding container over a map.
///
/// It holds a single reference (the decoding state) because the standard library's type-erasing box
/// copies the container for every call. Its entries are a run of `ItemIndex.slots`, saved by
/// the indexer; maps with more than `linearSearchLimit` entries are sorted there and
/// searched by bisection.
struct MapDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    typealias Slot = KeySlot

    let state: DecoderState
    let mapOffset: Int
    let first: Cursor
    let count: Int
    /// Where this map's entries start in `state.index.slots`.
    let slotBase: Int

    init(state: DecoderState, at cursor: Cursor) throws {
        let head = state.head(at: cursor.offset)
        guard head.major == 5 else {
            throw state.mismatch("a map (keyed container)", at: cursor)
        }
        self.state = state
        self.mapOffset = cursor.offset
        self.first = state.firstChild(of: cursor, head: head)
        self.count = Int(head.argument)
        // The indexer saved the entries of every non-empty map; a non-empty map's cursor
        // points at its own record.
        if count > 0 {
            let record = state.index.records[cursor.record]
            assert(record.offset == cursor.offset)
            self.slotBase = record.slots
        } else {
            self.slotBase = 0
        }
    }

    var codingPath: [any CodingKey] {
        state.codingPath(to: mapOffset)
    }

    var allKeys: [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(count)
        var entry = first
        for _ in 0..<count {
            let keyHead = state.head(at: entry.offset)
            let text = state.string(payload: entry.offset + keyHead.length, count: Int(keyHead.argument))
            if let key = Key(stringValue: text) {
                keys.append(key)
            }
            state.skip(&entry)
            state.skip(&entry)
        }
        return keys
    }

    /// The cursor of the value stored under `key`, or `nil` if the map has no such key.
    @inline(__always)
    func find(_ key: Key) -> Cursor? {
        find(name: key.stringValue)
    }

    /// The cursor of the value stored under the text key `name`, or `nil`.
    func find(name: String) -> Cursor? {
        var name = name
        let base = slotBase
        let count = count
        let state = state
        return name.withUTF8 { wanted in
            if count > linearSearchLimit {
                return state.index.slots.withUnsafeBufferPointer { slots in
                    KeyLookup.search(
                        UnsafeBufferPointer(rebasing: slots[base..<base + count]),
                        for: wanted,
                        in: state.bytes
                    )
                }
            }
            let bytes = state.bytes
            var i = base
            let end = base + count
            while i < end {
                let slot = state.index.slots[i]
                if slot.length == wanted.count, KeyLookup.equal(bytes, slot.payload, wanted, 0, slot.length) {
                    return slot.value
                }
                i += 1
            }
            return nil
        }
    }

    @inline(__always)
    func require(_ key: Key) throws -> Cursor {
        if let cursor = find(key) {
            return cursor
        }
        throw CBORError(
            .keyNotFound,
            "key '\(key.stringValue)' not found",
            path: codingPath,
            offset: mapOffset
        )
    }

    func contains(_ key: Key) -> Bool {
        find(key) != nil
    }

    /// `true` if the key is absent or its value is null.
    func decodeNil(forKey key: Key) throws -> Bool {
        guard let cursor = find(key) else {
            return true
        }
        return state.isNull(at: cursor)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        try state.decodeBool(at: require(key))
    }

    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        try state.decodeString(at: require(key))
    }

    func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
        try state.decodeDouble(at: require(key))
    }

    func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
        try state.decodeFloat(at: require(key))
    }

    func decode(_ type: Int.Type, forKey key: Key) throws -> Int {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 {
        try state.decodeInteger(type, at: require(key))
    }

    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 {
        try state.decodeInteger(type, at: require(key))
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try state.unbox(type, at: require(key))
    }

    // `decodeIfPresent` looks the key up once instead of three times (contains, decodeNil,
    // decode) as the standard library's default implementation does.

    @inline(__always)
    private func present(_ key: Key) -> Cursor? {
        guard let cursor = find(key), !state.isNull(at: cursor) else {
            return nil
        }
        return cursor
    }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
        guard let position = try present(key) else { return nil }
        return try state.decodeBool(at: position)
    }

    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        guard let position = try present(key) else { return nil }
        return try state.decodeString(at: position)
    }

    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? {
        guard let position = try present(key) else { return nil }
        return try state.decodeDouble(at: position)
    }

    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? {
        guard let position = try present(key) else { return nil }
        return try state.decodeFloat(at: position)
    }

    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? {
        guard let position = try present(key) else { return nil }
        return try state.decodeInteger(type, at: position)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let position = try present(key) else { return nil }
        return try state.unbox(type, at: position)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        KeyedDecodingContainer(try MapDecoder<NestedKey>(state: state, at: require(key)))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ArrayDecoder(state: state, at: require(key))
    }

    /// A decoder for the value under the key `"super"`; throws `keyNotFound` if it is absent.
    func superDecoder() throws -> any Decoder {
        guard let cursor = find(name: "super") else {
            throw CBORError(.keyNotFound, "key 'super' not found", path: codingPath, offset: mapOffset)
        }
        return SuperDecoder(state: state, cursor: cursor)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        SuperDecoder(state: state, cursor: try require(key))
    }
}

struct ArrayDecoder: UnkeyedDecodingContainer {
    let state: DecoderState
    let arrayOffset: Int
    let total: Int
    var currentIndex: Int = 0
    private var cursor: Cursor

    init(state: DecoderState, at position: Cursor) throws {
        let head = state.head(at: position.offset)
        guard head.major == 4 else {
            throw state.mismatch("an array (unkeyed container)", at: position)
        }
        self.state = state
        self.arrayOffset = position.offset
        self.total = Int(head.argument)
        self.cursor = state.firstChild(of: position, head: head)
    }

    var codingPath: [any CodingKey] {
        state.codingPath(to: arrayOffset)
    }

    var count: Int? {
        total
    }

    var isAtEnd: Bool {
        currentIndex >= total
    }

    /// The cursor of the next element; throws `valueNotFound` at the end.
    @inline(__always)
    private func current() throws -> Cursor {
        guard currentIndex < total else {
            throw CBORError(
                .valueNotFound,
                "unkeyed container is at its end (\(total) elements)",
                path: codingPath,
                offset: arrayOffset
            )
        }
        return cursor
    }

    @inline(__always)
    private mutating func advance() {
        state.skip(&cursor)
        currentIndex += 1
    }

    /// Consumes a null and returns `true`; leaves anything else in place and returns `false`.
    mutating func decodeNil() throws -> Bool {
        let position = try current()
        if state.isNull(at: position) {
            advance()
            return true
        }
        return false
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool {
        let value = try state.decodeBool(at: current())
        advance()
        return value
    }

    mutating func decode(_ type: String.Type) throws -> String {
        let value = try state.decodeString(at: current())
        advance()
        return value
    }

    mutating func decode(_ type: Double.Type) throws -> Double {
        let value = try state.decodeDouble(at: current())
        advance()
        return value
    }

    mutating func decode(_ type: Float.Type) throws -> Float {
        let value = try state.decodeFloat(at: current())
        advance()
        return value
    }

    @inline(__always)
    private mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let value = try state.decodeInteger(type, at: current())
        advance()
        return value
    }

    mutating func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let value = try state.unbox(type, at: current())
        advance()
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let container = try MapDecoder<NestedKey>(state: state, at: current())
        advance()
        return KeyedDecodingContainer(container)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let container = try ArrayDecoder(state: state, at: current())
        advance()
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let decoder = SuperDecoder(state: state, cursor: try current())
        advance()
        return decoder
    }
}

struct SingleValueDecoder: SingleValueDecodingContainer {
    let state: DecoderState
    let cursor: Cursor

    var codingPath: [any CodingKey] {
        state.codingPath(to: cursor.offset)
    }

    func decodeNil() -> Bool {
        state.isNull(at: cursor)
    }

    func decode(_ type: Bool.Type) throws -> Bool {
        try state.decodeBool(at: cursor)
    }

    func decode(_ type: String.Type) throws -> String {
        try state.decodeString(at: cursor)
    }

    func decode(_ type: Double.Type) throws -> Double {
        try state.decodeDouble(at: cursor)
    }

    func decode(_ type: Float.Type) throws -> Float {
        try state.decodeFloat(at: cursor)
    }

    func decode(_ type: Int.Type) throws -> Int { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: Int8.Type) throws -> Int8 { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: Int16.Type) throws -> Int16 { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: Int32.Type) throws -> Int32 { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: Int64.Type) throws -> Int64 { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: UInt.Type) throws -> UInt { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try state.decodeInteger(type, at: cursor) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try state.decodeInteger(type, at: cursor) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try state.unbox(type, at: cursor)
    }
}
