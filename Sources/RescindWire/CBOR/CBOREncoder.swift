import Foundation

/// Encodes `Encodable` values as deterministic CBOR (RFC 8949).
///
/// The output uses only definite lengths and the preferred (shortest) serialization of
/// integers, lengths and floats, and sorts map keys in the core deterministic order of
/// RFC 8949 §4.2.1, so equal values always give identical bytes regardless of field
/// declaration order or dictionary iteration order.
///
/// The mapping from Swift to CBOR:
/// - Integers of every width: major type 0 or 1, shortest form.
/// - `Bool`: `f4`/`f5`. `nil` written with `encodeNil`: `f6` (null). Optional properties that
///   are `nil` are omitted from their struct (Swift's synthesized `encodeIfPresent`).
/// - `Float`/`Double`: the shortest of float16, float32, float64 that holds the value
///   exactly; every NaN is written as `f9 7e 00`.
/// - `String`: text string. `Data`: byte string. `[UInt8]` stays an array of integers.
/// - `Date`: tag 1 followed by whole seconds since 1970 as an integer, or a float when the
///   seconds are fractional. `Date` stores seconds since 2001, so a fractional date may come
///   back one floating-point step away unless its seconds since 1970 are exactly
///   representable after the shift (whole seconds and binary fractions such as .5 always are).
/// - `UUID`: tag 37 followed by a 16-byte byte string.
/// - Keyed containers (structs, enums with associated values, `[String: V]`, `[Int: V]`):
///   a map with text-string keys (the key's `stringValue`, so `[Int: V]` keys are decimal
///   strings). `superEncoder()` writes under the key `"super"`. Unkeyed containers: an array.
///   A value that requests no container at all is written as an empty map.
///
/// Values are written straight into place in one pass, and each map is put in key order once it
/// is complete. A value that uses the Codable API out of sequence (writes to a container after
/// opening a later one and leaving it, uses `superEncoder()`) or fails is encoded a second time
/// by a general encoder that accepts any order of calls and reports the error, so its
/// `encode(to:)` may run twice; the result is the same either way.
///
/// The encoder has no state; one instance can be shared between tasks.
public struct CBOREncoder: Sendable {
    /// Whether values of ``CBORMessage`` types are written by their `encode(cbor:)` rather than
    /// their `encode(to:)`; the bytes are the same. Off only to compare the two (tests,
    /// benchmarks).
    public var usesMessageCoding = true

    /// Creates an encoder.
    public init() {}

    /// Encodes a value as a single CBOR data item.
    ///
    /// - Parameter value: The value to encode.
    /// - Returns: The encoded bytes. The same value always produces the same bytes.
    /// - Throws: ``CBORError`` with code ``CBORError/Code/encodingFailed`` if the value
    ///   encodes the same key twice in one keyed container, encodes two values into one
    ///   single-value container, asks one encoder for containers of different kinds, encodes
    ///   a `Date` that is not finite, or throws `EncodingError` itself. Any other error the
    ///   value's `encode(to:)` throws is rethrown unchanged.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var direct = _CBORDirectState.acquire()
        defer { _CBORDirectState.recycle(&direct) }
        if usesMessageCoding, let message = T.self as? any CBORMessage.Type {
            return try direct.encodeRoot(message, value)
        }
        if let bytes = direct.encodeRoot(value) {
            return bytes
        }
        return try encodeInGeneral(value)
    }

    /// Encodes with the general encoder, which accepts any use of the Codable API (the fast
    /// path of `_CBORDirectState` gives up on some) and reports every error.
    func encodeInGeneral<T: Encodable>(_ value: T) throws -> [UInt8] {
        var state = _CBOREncodingState.acquire()
        defer { _CBOREncodingState.recycle(&state) }
        do {
            try state.encodeValue(value, into: 0)
        } catch let error as EncodingError {
            throw CBORError(converting: error)
        }
        if let error = state.deferredError {
            throw error
        }
        return try state.serialize()
    }
}

// MARK: - Encoding state

/// One container (array or map) under construction. Its entries form a singly linked list
/// in `_CBOREncodingState.entries`, so containers may be written to in any interleaving.
struct _CBOREncNode {
    var isMap: Bool
    var first: Int = -1
    var last: Int = -1
    var count: Int = 0
    /// The entry this container is the value of (0 for the top level).
    var slot: Int
}

/// One position that holds a value: the top level (entry 0), an array element or a map
/// entry. For a map entry, `scratch[keyStart ..< keyEnd]` is the encoded key.
struct _CBOREncEntry {
    var keyStart: Int
    var keyEnd: Int
    var valueStart: Int
    var valueEnd: Int
    /// The container this entry's value is, or -1 if the value is bytes in `scratch` (or
    /// not written yet, when `valueStart == valueEnd`).
    var node: Int = -1
    var next: Int = -1
    /// The container holding this entry, or -1 for the top level.
    var owner: Int
    /// The array index, for array elements.
    var index: Int

    @inline(__always)
    var isEmpty: Bool { node < 0 && valueStart == valueEnd }
}

/// The shared state of one `encode` call, and the `Encoder` that values encode themselves to.
///
/// Scalars and keys are appended to `scratch` as they arrive; `serialize()` then walks the
/// container tree once, writing headers (whose counts are known by then), sorting map entries
/// by their encoded key bytes and copying.
///
/// Being the encoder itself saves an object per call: `slot` is the entry that the value being
/// encoded fills, saved and restored around every nested value (`superEncoder()` hands out a
/// separate `_CBORSuperEncoder` with a fixed slot instead). States are recycled through a
/// small pool once a call has finished, unless something from the call still refers to them.
final class _CBOREncodingState: Encoder {
    @exclusivity(unchecked)
    var scratch: [UInt8] = []
    @exclusivity(unchecked)
    var entries: [_CBOREncEntry] = [_CBOREncodingState.rootEntry]
    @exclusivity(unchecked)
    var nodes: [_CBOREncNode] = []
    /// Entry indices of the maps being written, used as a stack while serializing.
    @exclusivity(unchecked)
    var sortStack: [Int] = []
    /// A misuse found in a non-throwing Encoder method, thrown when encoding finishes.
    var deferredError: CBORError?
    /// The entry that the value currently being encoded fills.
    @exclusivity(unchecked)
    var slot: Int = 0

    static let rootEntry = _CBOREncEntry(keyStart: 0, keyEnd: 0, valueStart: 0, valueEnd: 0, owner: -1, index: 0)

    init() {
        scratch.reserveCapacity(512)
        entries.reserveCapacity(64)
        nodes.reserveCapacity(16)
        sortStack.reserveCapacity(32)
    }

    // MARK: Recycling

    /// Idle states, each with its buffers emptied but their capacity kept.
    private static let pool = _CBORRecycler<_CBOREncodingState>()
    /// The largest buffers worth keeping.
    private static let keptScratchCapacity = 64 * 1024
    private static let keptEntryCapacity = 2048

    static func acquire() -> _CBOREncodingState {
        pool.take() ?? _CBOREncodingState()
    }

    /// Returns `state` to the pool if nothing else refers to it (a value may have kept an
    /// encoder or container) and its buffers are of a reasonable size.
    static func recycle(_ state: inout _CBOREncodingState) {
        guard isKnownUniquelyReferenced(&state),
            state.scratch.capacity <= keptScratchCapacity,
            state.entries.capacity <= keptEntryCapacity,
            state.nodes.capacity <= keptEntryCapacity
        else { return }
        state.scratch.removeAll(keepingCapacity: true)
        state.entries.removeAll(keepingCapacity: true)
        state.entries.append(rootEntry)
        state.nodes.removeAll(keepingCapacity: true)
        state.sortStack.removeAll(keepingCapacity: true)
        state.deferredError = nil
        state.slot = 0
        pool.put(state)
    }

    // MARK: Building

    @inline(__always)
    func addMapEntry(to node: Int, key: some CodingKey) -> Int {
        let keyStart = scratch.count
        _CBORWriter.text(key.stringValue, into: &scratch)
        let index = entries.count
        entries.append(
            _CBOREncEntry(
                keyStart: keyStart,
                keyEnd: scratch.count,
                valueStart: scratch.count,
                valueEnd: scratch.count,
                owner: node,
                index: nodes[node].count
            )
        )
        link(index, to: node)
        return index
    }

    @inline(__always)
    func addArrayEntry(to node: Int) -> Int {
        let index = entries.count
        let position = scratch.count
        entries.append(
            _CBOREncEntry(
                keyStart: position,
                keyEnd: position,
                valueStart: position,
                valueEnd: position,
                owner: node,
                index: nodes[node].count
            )
        )
        link(index, to: node)
        return index
    }

    @inline(__always)
    private func link(_ entry: Int, to node: Int) {
        let last = nodes[node].last
        if last >= 0 {
            entries[last].next = entry
        } else {
            nodes[node].first = entry
        }
        nodes[node].last = entry
        nodes[node].count += 1
    }

    /// Marks `scratch[start...]` as the value of `entry`.
    @inline(__always)
    func finishValue(_ entry: Int, from start: Int) {
        entries[entry].valueStart = start
        entries[entry].valueEnd = scratch.count
    }

    /// Creates a container as the value of `entry`.
    func newNode(isMap: Bool, in entry: Int) -> Int {
        let node = nodes.count
        nodes.append(_CBOREncNode(isMap: isMap, slot: entry))
        entries[entry].node = node
        return node
    }

    /// The container for an `Encoder.container(keyedBy:)` or `unkeyedContainer()` request.
    ///
    /// Asking the same encoder twice for the same kind returns the same container (this is
    /// how `super.encode(to: encoder)` shares a container). A conflicting request records a
    /// deferred error and returns a detached container so that the caller can continue.
    func node(for entry: Int, isMap: Bool) -> Int {
        let existing = entries[entry].node
        if existing >= 0, nodes[existing].isMap == isMap {
            return existing
        }
        if entries[entry].isEmpty {
            return newNode(isMap: isMap, in: entry)
        }
        if deferredError == nil {
            let what =
                existing >= 0 ? (nodes[existing].isMap ? "a keyed" : "an unkeyed") + " container" : "a single value"
            deferredError = CBORError(
                .encodingFailed,
                "requested \(isMap ? "a keyed" : "an unkeyed") container from an encoder that already holds \(what)",
                path: codingPath(ofEntry: entry),
                offset: nil
            )
        }
        let node = nodes.count
        nodes.append(_CBOREncNode(isMap: isMap, slot: entry))
        return node
    }

    /// The coding path of an entry. Map keys are rebuilt from their encoded bytes, so they are
    /// string keys rather than the caller's own `CodingKey` values.
    func codingPath(ofEntry entry: Int) -> [any CodingKey] {
        var path: [any CodingKey] = []
        var current = entry
        while current > 0 {
            let owner = entries[current].owner
            if owner >= 0, nodes[owner].isMap {
                path.append(_CBORKey(stringValue: keyString(ofEntry: current)))
            } else {
                path.append(_CBORKey(index: entries[current].index))
            }
            guard owner >= 0 else { break }
            current = nodes[owner].slot
        }
        path.reverse()
        return path
    }

    /// The text of a map entry's key.
    func keyString(ofEntry entry: Int) -> String {
        let start = entries[entry].keyStart
        let end = entries[entry].keyEnd
        guard start < end else { return "" }
        let info = scratch[start] & 0x1f
        let headLength = info < 24 ? 1 : 1 + (1 << Int(info - 24))
        return String(decoding: scratch[start + headLength..<end], as: UTF8.self)
    }

    func codingPath(ofNode node: Int) -> [any CodingKey] {
        codingPath(ofEntry: nodes[node].slot)
    }

    // MARK: Serializing

    func serialize() throws -> [UInt8] {
        let root = entries[0]
        if root.node < 0 && root.valueStart == 0 && root.valueEnd == scratch.count && root.valueEnd > 0 {
            return scratch  // a lone scalar
        }
        // Everything in `scratch` is written at most once; each container adds a head of at
        // most 9 bytes and each entry left empty adds 1 byte (an empty map).
        let capacity = scratch.count + 9 * nodes.count + entries.count
        var duplicate: (entry: Int, node: Int)?
        var overflowed = false
        var stack: [Int] = []
        swap(&stack, &sortStack)
        let out = scratch.withUnsafeBufferPointer { scratch in
            entries.withUnsafeBufferPointer { entries in
                nodes.withUnsafeBufferPointer { nodes in
                    [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
                        var serializer = _CBORSerializer(
                            scratch: scratch,
                            entries: entries,
                            nodes: nodes,
                            out: buffer,
                            sortStack: stack
                        )
                        stack = []
                        serializer.write(entry: 0)
                        duplicate = serializer.duplicate
                        overflowed = serializer.overflowed
                        count = serializer.position
                        swap(&stack, &serializer.sortStack)
                    }
                }
            }
        }
        swap(&stack, &sortStack)
        if let duplicate {
            throw CBORError(
                .encodingFailed,
                "key '\(keyString(ofEntry: duplicate.entry))' was encoded twice in one keyed container",
                path: codingPath(ofNode: duplicate.node),
                offset: nil
            )
        }
        guard !overflowed else {
            throw CBORError(code: .encodingFailed, message: "internal error: output size bound exceeded")
        }
        return out
    }
}

/// Writes the container tree of a finished `_CBOREncodingState` to the output in one pass,
/// working on unsafe views of its arrays so that the copy loop does no reference counting.
/// `out` is sized by the caller to hold the whole result.
struct _CBORSerializer {
    let scratch: UnsafeBufferPointer<UInt8>
    let entries: UnsafeBufferPointer<_CBOREncEntry>
    let nodes: UnsafeBufferPointer<_CBOREncNode>
    let out: UnsafeMutableBufferPointer<UInt8>
    var position = 0
    /// Set if the output would exceed `out` (which the size bound rules out); never traps.
    var overflowed = false
    /// Entry indices of the maps being written, used as a stack while sorting (lent by the
    /// encoding state, so that its capacity is reused).
    var sortStack: [Int]
    /// The first duplicate key found (an entry and its map); writing stops there.
    var duplicate: (entry: Int, node: Int)?

    init(
        scratch: UnsafeBufferPointer<UInt8>,
        entries: UnsafeBufferPointer<_CBOREncEntry>,
        nodes: UnsafeBufferPointer<_CBOREncNode>,
        out: UnsafeMutableBufferPointer<UInt8>,
        sortStack: [Int]
    ) {
        self.scratch = scratch
        self.entries = entries
        self.nodes = nodes
        self.out = out
        self.sortStack = sortStack
    }

    /// Copies `scratch[start ..< end]` to the output.
    @inline(__always)
    private mutating func copy(_ start: Int, _ end: Int) {
        let count = end - start
        guard count > 0 else { return }
        guard start >= 0, end <= scratch.count, position + count <= out.count,
            let source = scratch.baseAddress, let target = out.baseAddress
        else {
            overflowed = true
            return
        }
        (target + position).update(from: source + start, count: count)
        position += count
    }

    @inline(__always)
    private mutating func append(_ byte: UInt8) {
        guard position < out.count else {
            overflowed = true
            return
        }
        out[position] = byte
        position += 1
    }

    @inline(__always)
    private mutating func head(_ major: UInt8, _ argument: UInt64) {
        let initial = major &<< 5
        if argument < 24 {
            append(initial | UInt8(truncatingIfNeeded: argument))
            return
        }
        let extra: Int
        if argument <= 0xff {
            append(initial | 24)
            extra = 1
        } else if argument <= 0xffff {
            append(initial | 25)
            extra = 2
        } else if argument <= 0xffff_ffff {
            append(initial | 26)
            extra = 4
        } else {
            append(initial | 27)
            extra = 8
        }
        var shift = UInt64(extra - 1) * 8
        while true {
            append(UInt8(truncatingIfNeeded: argument &>> shift))
            if shift == 0 { break }
            shift -= 8
        }
    }

    mutating func write(entry: Int) {
        let value = entries[entry]
        if value.node >= 0 {
            write(node: value.node)
        } else if value.valueStart == value.valueEnd {
            append(0xa0)  // the value asked for no container: an empty map
        } else {
            copy(value.valueStart, value.valueEnd)
        }
    }

    private mutating func write(node: Int) {
        guard duplicate == nil else { return }
        let header = nodes[node]
        head(header.isMap ? 5 : 4, UInt64(header.count))
        if !header.isMap {
            var entry = header.first
            while entry >= 0 {
                write(entry: entry)
                entry = entries[entry].next
            }
            return
        }
        let base = sortStack.count
        var entry = header.first
        var sorted = true
        while entry >= 0 {
            if sorted, sortStack.count > base,
                !_CBORSerializer.keyPrecedes(sortStack[sortStack.count - 1], entry, scratch, entries)
            {
                sorted = false
            }
            sortStack.append(entry)
            entry = entries[entry].next
        }
        let end = sortStack.count
        if !sorted {
            let scratch = self.scratch
            let entries = self.entries
            if end - base <= 16 {
                // Insertion sort: fewer comparisons and no closure for the usual struct sizes.
                for i in (base + 1)..<end {
                    let moving = sortStack[i]
                    var j = i
                    while j > base, _CBORSerializer.keyPrecedes(moving, sortStack[j - 1], scratch, entries) {
                        sortStack[j] = sortStack[j - 1]
                        j -= 1
                    }
                    sortStack[j] = moving
                }
            } else {
                sortStack[base..<end].sort { _CBORSerializer.keyPrecedes($0, $1, scratch, entries) }
            }
            for i in (base + 1)..<end
            where !_CBORSerializer.keyPrecedes(sortStack[i - 1], sortStack[i], scratch, entries) {
                duplicate = (sortStack[i], node)
                return
            }
        }
        for i in base..<end {
            let entry = sortStack[i]
            copy(entries[entry].keyStart, entries[entry].keyEnd)
            write(entry: entry)
        }
        sortStack.removeSubrange(base...)
    }

    /// RFC 8949 §4.2.1 order: bytewise lexicographic order of the encoded keys.
    static func keyPrecedes(
        _ a: Int,
        _ b: Int,
        _ scratch: UnsafeBufferPointer<UInt8>,
        _ entries: UnsafeBufferPointer<_CBOREncEntry>
    ) -> Bool {
        let aStart = entries[a].keyStart
        let bStart = entries[b].keyStart
        let aLength = entries[a].keyEnd - aStart
        let bLength = entries[b].keyEnd - bStart
        let common = min(aLength, bLength)
        var i = 0
        if let base = scratch.baseAddress {
            // Eight bytes at a time: big-endian words order like their bytes. Every key lies
            // within `scratch` (it was written there), so every load does too.
            let raw = UnsafeRawPointer(base)
            while common - i >= 8 {
                let x = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: aStart + i, as: UInt64.self))
                let y = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: bStart + i, as: UInt64.self))
                if x != y {
                    return x < y
                }
                i += 8
            }
        }
        while i < common {
            let x = scratch[aStart + i]
            let y = scratch[bStart + i]
            if x != y {
                return x < y
            }
            i += 1
        }
        return aLength < bLength
    }
}

// MARK: - Encoder

extension _CBOREncodingState {
    var codingPath: [any CodingKey] {
        codingPath(ofEntry: slot)
    }

    var userInfo: [CodingUserInfoKey: Any] {
        [:]
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        keyedContainer(keyedBy: type, slot: slot)
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        unkeyedContainer(slot: slot)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        _CBORSingleValueEncodingContainer(state: self, slot: slot)
    }

    @inline(__always)
    func keyedContainer<Key: CodingKey>(keyedBy type: Key.Type, slot: Int) -> KeyedEncodingContainer<Key> {
        let node = node(for: slot, isMap: true)
        return KeyedEncodingContainer(_CBORKeyedEncodingContainer<Key>(state: self, node: node))
    }

    @inline(__always)
    func unkeyedContainer(slot: Int) -> any UnkeyedEncodingContainer {
        _CBORUnkeyedEncodingContainer(state: self, node: node(for: slot, isMap: false))
    }

    /// Fails unless `entry` has not been given a value yet.
    @inline(__always)
    func requireEmpty(_ entry: Int) throws {
        guard entries[entry].isEmpty else {
            throw CBORError(
                .encodingFailed,
                "a single-value container was asked to encode a second value",
                path: codingPath(ofEntry: entry),
                offset: nil
            )
        }
    }

    /// Encodes any value into an empty entry, with fast paths for the types that have a
    /// dedicated CBOR representation (converted with `unsafeBitCast` only after checking
    /// that `T` is exactly that type, which avoids a dynamic cast).
    func encodeValue<T: Encodable>(_ value: T, into entry: Int) throws {
        let start = scratch.count
        if T.self == String.self {
            let string = unsafeBitCast(value, to: String.self)
            try requireEmpty(entry)
            _CBORWriter.text(string, into: &scratch)
        } else if T.self == Int.self {
            let int = unsafeBitCast(value, to: Int.self)
            try requireEmpty(entry)
            _CBORWriter.signed(Int64(int), into: &scratch)
        } else if T.self == Double.self {
            let double = unsafeBitCast(value, to: Double.self)
            try requireEmpty(entry)
            _CBORWriter.double(double, into: &scratch)
        } else if T.self == Bool.self {
            let bool = unsafeBitCast(value, to: Bool.self)
            try requireEmpty(entry)
            _CBORWriter.bool(bool, into: &scratch)
        } else if T.self == Data.self {
            let data = unsafeBitCast(value, to: Data.self)
            try requireEmpty(entry)
            _CBORWriter.data(data, into: &scratch)
        } else if T.self == Date.self {
            let date = unsafeBitCast(value, to: Date.self)
            try requireEmpty(entry)
            try _CBORWriter.date(date, into: &scratch)
        } else if T.self == UUID.self {
            let uuid = unsafeBitCast(value, to: UUID.self)
            try requireEmpty(entry)
            _CBORWriter.uuid(uuid, into: &scratch)
        } else {
            let saved = slot
            slot = entry
            defer { slot = saved }
            try value.encode(to: self)
            return
        }
        finishValue(entry, from: start)
    }
}

/// The encoder that `superEncoder()` returns: the shared state, fixed to one entry.
final class _CBORSuperEncoder: Encoder {
    let state: _CBOREncodingState
    let slot: Int

    init(state: _CBOREncodingState, slot: Int) {
        self.state = state
        self.slot = slot
    }

    var codingPath: [any CodingKey] {
        state.codingPath(ofEntry: slot)
    }

    var userInfo: [CodingUserInfoKey: Any] {
        [:]
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        state.keyedContainer(keyedBy: type, slot: slot)
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        state.unkeyedContainer(slot: slot)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        _CBORSingleValueEncodingContainer(state: state, slot: slot)
    }
}

// MARK: - Containers

struct _CBORKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: _CBOREncodingState
    let node: Int

    var codingPath: [any CodingKey] {
        state.codingPath(ofNode: node)
    }

    @inline(__always)
    private func write(_ key: Key, _ body: (inout [UInt8]) -> Void) {
        let entry = state.addMapEntry(to: node, key: key)
        let start = state.scratch.count
        body(&state.scratch)
        state.finishValue(entry, from: start)
    }

    mutating func encodeNil(forKey key: Key) throws {
        write(key) { _CBORWriter.null(into: &$0) }
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws {
        write(key) { _CBORWriter.bool(value, into: &$0) }
    }

    mutating func encode(_ value: String, forKey key: Key) throws {
        write(key) { _CBORWriter.text(value, into: &$0) }
    }

    mutating func encode(_ value: Double, forKey key: Key) throws {
        write(key) { _CBORWriter.double(value, into: &$0) }
    }

    mutating func encode(_ value: Float, forKey key: Key) throws {
        write(key) { _CBORWriter.float(value, into: &$0) }
    }

    mutating func encode(_ value: Int, forKey key: Key) throws {
        write(key) { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int8, forKey key: Key) throws {
        write(key) { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int16, forKey key: Key) throws {
        write(key) { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int32, forKey key: Key) throws {
        write(key) { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int64, forKey key: Key) throws {
        write(key) { _CBORWriter.signed(value, into: &$0) }
    }

    mutating func encode(_ value: UInt, forKey key: Key) throws {
        write(key) { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt8, forKey key: Key) throws {
        write(key) { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt16, forKey key: Key) throws {
        write(key) { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt32, forKey key: Key) throws {
        write(key) { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        write(key) { _CBORWriter.unsigned(value, into: &$0) }
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let entry = state.addMapEntry(to: node, key: key)
        try state.encodeValue(value, into: entry)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let entry = state.addMapEntry(to: node, key: key)
        let nested = state.newNode(isMap: true, in: entry)
        return KeyedEncodingContainer(_CBORKeyedEncodingContainer<NestedKey>(state: state, node: nested))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let entry = state.addMapEntry(to: node, key: key)
        return _CBORUnkeyedEncodingContainer(state: state, node: state.newNode(isMap: false, in: entry))
    }

    mutating func superEncoder() -> any Encoder {
        let entry = state.addMapEntry(to: node, key: _CBORKey.super)
        return _CBORSuperEncoder(state: state, slot: entry)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let entry = state.addMapEntry(to: node, key: key)
        return _CBORSuperEncoder(state: state, slot: entry)
    }
}

struct _CBORUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let state: _CBOREncodingState
    let node: Int

    var codingPath: [any CodingKey] {
        state.codingPath(ofNode: node)
    }

    var count: Int {
        state.nodes[node].count
    }

    @inline(__always)
    private func write(_ body: (inout [UInt8]) -> Void) {
        let entry = state.addArrayEntry(to: node)
        let start = state.scratch.count
        body(&state.scratch)
        state.finishValue(entry, from: start)
    }

    mutating func encodeNil() throws {
        write { _CBORWriter.null(into: &$0) }
    }

    mutating func encode(_ value: Bool) throws {
        write { _CBORWriter.bool(value, into: &$0) }
    }

    mutating func encode(_ value: String) throws {
        write { _CBORWriter.text(value, into: &$0) }
    }

    mutating func encode(_ value: Double) throws {
        write { _CBORWriter.double(value, into: &$0) }
    }

    mutating func encode(_ value: Float) throws {
        write { _CBORWriter.float(value, into: &$0) }
    }

    mutating func encode(_ value: Int) throws {
        write { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int8) throws {
        write { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int16) throws {
        write { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int32) throws {
        write { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int64) throws {
        write { _CBORWriter.signed(value, into: &$0) }
    }

    mutating func encode(_ value: UInt) throws {
        write { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt8) throws {
        write { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt16) throws {
        write { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt32) throws {
        write { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt64) throws {
        write { _CBORWriter.unsigned(value, into: &$0) }
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let entry = state.addArrayEntry(to: node)
        try state.encodeValue(value, into: entry)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let entry = state.addArrayEntry(to: node)
        let nested = state.newNode(isMap: true, in: entry)
        return KeyedEncodingContainer(_CBORKeyedEncodingContainer<NestedKey>(state: state, node: nested))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let entry = state.addArrayEntry(to: node)
        return _CBORUnkeyedEncodingContainer(state: state, node: state.newNode(isMap: false, in: entry))
    }

    mutating func superEncoder() -> any Encoder {
        let entry = state.addArrayEntry(to: node)
        return _CBORSuperEncoder(state: state, slot: entry)
    }
}

struct _CBORSingleValueEncodingContainer: SingleValueEncodingContainer {
    let state: _CBOREncodingState
    let slot: Int

    var codingPath: [any CodingKey] {
        state.codingPath(ofEntry: slot)
    }

    @inline(__always)
    private func write(_ body: (inout [UInt8]) -> Void) throws {
        try state.requireEmpty(slot)
        let start = state.scratch.count
        body(&state.scratch)
        state.finishValue(slot, from: start)
    }

    mutating func encodeNil() throws {
        try write { _CBORWriter.null(into: &$0) }
    }

    mutating func encode(_ value: Bool) throws {
        try write { _CBORWriter.bool(value, into: &$0) }
    }

    mutating func encode(_ value: String) throws {
        try write { _CBORWriter.text(value, into: &$0) }
    }

    mutating func encode(_ value: Double) throws {
        try write { _CBORWriter.double(value, into: &$0) }
    }

    mutating func encode(_ value: Float) throws {
        try write { _CBORWriter.float(value, into: &$0) }
    }

    mutating func encode(_ value: Int) throws {
        try write { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int8) throws {
        try write { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int16) throws {
        try write { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int32) throws {
        try write { _CBORWriter.signed(Int64(value), into: &$0) }
    }

    mutating func encode(_ value: Int64) throws {
        try write { _CBORWriter.signed(value, into: &$0) }
    }

    mutating func encode(_ value: UInt) throws {
        try write { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt8) throws {
        try write { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt16) throws {
        try write { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt32) throws {
        try write { _CBORWriter.unsigned(UInt64(value), into: &$0) }
    }

    mutating func encode(_ value: UInt64) throws {
        try write { _CBORWriter.unsigned(value, into: &$0) }
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try state.encodeValue(value, into: slot)
    }
}
