import Foundation

// The fast path of `CBOREncoder`: writes every item straight into its final place in one
// buffer, in the order the value's `encode(to:)` produces it, and puts each map's entries
// into deterministic key order when the map is complete.
//
// A container is complete when the value that asked for it has returned from `encode(to:)`,
// or, for a container from `nestedContainer`/`nestedUnkeyedContainer`, when its parent is
// written again. That covers the synthesized implementations and every sequential use of
// the Codable API. Anything else -- writing to a container that is complete, `superEncoder()`,
// asking one encoder for two kinds of container, a second single value, a duplicate key, or any
// error thrown while encoding -- makes this path give up; `CBOREncoder` then encodes the value
// again with the general encoder (`_CBOREncodingState`), which accepts any interleaving and
// reports errors with their coding paths. Both produce the same bytes for every value that
// this path accepts.

/// A container that is being written.
struct _CBORDirectFrame {
    /// Distinguishes this container from every other one of the same `encode` call.
    var id: Int
    var isMap: Bool
    /// The offset of the container's head, written as one placeholder byte until it is complete.
    var head: Int
    /// Entries (map) or elements (array) written so far.
    var count: Int
    /// Where this map's key offsets start in `marks`.
    var markBase: Int
}

/// A map entry while its map is put in key order.
struct _CBORDirectEntry {
    /// The first eight bytes of the encoded key, zero-filled (see `keyPrefix`).
    var prefix: UInt64
    /// Where the entry (its key) starts, and where it ends.
    var mark: Int
    var end: Int
}

/// The value whose `encode(to:)` is running: where its bytes start and how many containers were
/// open when it started (its own containers go above those).
struct _CBORDirectLevel {
    var start: Int
    var depth: Int
    var id: Int
}

/// The state of one fast-path `encode` call, and the `Encoder` that values encode themselves
/// to. Recycled through a small pool like `_CBOREncodingState`.
final class _CBORDirectState: Encoder {
    /// The output: `count` initialized bytes of `capacity`. Every write reserves room first.
    /// (No stored property here needs dynamic exclusivity checks: a state is used by one call.)
    @exclusivity(unchecked)
    private var buffer: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked)
    private(set) var count = 0
    @exclusivity(unchecked)
    private var capacity: Int
    /// Scratch space for reordering a map's entries.
    @exclusivity(unchecked)
    private var spare: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked)
    private var spareCapacity: Int
    /// The open containers, outermost first.
    @exclusivity(unchecked)
    var frames: [_CBORDirectFrame] = []
    /// The offset of every key of every open map, each map's keys together.
    @exclusivity(unchecked)
    private var marks: [Int] = []
    @exclusivity(unchecked)
    var level = _CBORDirectLevel(start: 0, depth: 0, id: 0)
    @exclusivity(unchecked)
    private var lastID = 0
    /// Set once this path has given up; everything written afterwards is discarded.
    @exclusivity(unchecked)
    private(set) var failed = false

    init() {
        capacity = 1024
        buffer = .allocate(capacity: capacity)
        spareCapacity = 256
        spare = .allocate(capacity: spareCapacity)
        frames.reserveCapacity(16)
        marks.reserveCapacity(64)
    }

    deinit {
        buffer.deallocate()
        spare.deallocate()
    }

    // MARK: Recycling

    private static let pool = _CBORRecycler<_CBORDirectState>()
    private static let keptCapacity = 64 * 1024

    static func acquire() -> _CBORDirectState {
        pool.take() ?? _CBORDirectState()
    }

    /// Returns `state` to the pool if nothing else refers to it (a value may have kept an
    /// encoder or container) and its buffers are of a reasonable size.
    static func recycle(_ state: inout _CBORDirectState) {
        guard isKnownUniquelyReferenced(&state),
            state.capacity <= keptCapacity,
            state.spareCapacity <= keptCapacity,
            state.marks.capacity <= keptCapacity / 8
        else { return }
        state.count = 0
        state.frames.removeAll(keepingCapacity: true)
        state.marks.removeAll(keepingCapacity: true)
        state.level = _CBORDirectLevel(start: 0, depth: 0, id: 0)
        state.lastID = 0
        state.failed = false
        pool.put(state)
    }

    // MARK: Entry point

    /// The encoding of `value`, or `nil` if this path gave up.
    func encodeRoot<T: Encodable>(_ value: T) -> [UInt8]? {
        do {
            try encodeNested(value)
        } catch {
            return nil
        }
        close(downTo: 0)
        if failed {
            return nil
        }
        return output
    }

    /// A copy of everything written.
    var output: [UInt8] {
        [UInt8](UnsafeBufferPointer(start: buffer, count: count))
    }

    /// Gives up on this path.
    @inline(never)
    func fail() {
        failed = true
    }

    @inline(__always)
    func nextID() -> Int {
        lastID &+= 1
        return lastID
    }

    // MARK: Values

    /// Encodes a value that starts a level of its own: a map value, an array element, the
    /// top-level value, or the value of a single-value container that has nothing yet.
    func encodeNested<T: Encodable>(_ value: T) throws {
        if T.self == String.self {
            writeText(unsafeBitCast(value, to: String.self))
        } else if T.self == Int.self {
            writeSigned(Int64(unsafeBitCast(value, to: Int.self)))
        } else if T.self == Double.self {
            writeDouble(unsafeBitCast(value, to: Double.self))
        } else if T.self == Bool.self {
            writeByte(unsafeBitCast(value, to: Bool.self) ? 0xf5 : 0xf4)
        } else if T.self == Data.self {
            writeData(unsafeBitCast(value, to: Data.self))
        } else if T.self == Date.self {
            try writeDate(unsafeBitCast(value, to: Date.self))
        } else if T.self == UUID.self {
            writeUUID(unsafeBitCast(value, to: UUID.self))
        } else {
            let saved = level
            level = _CBORDirectLevel(start: count, depth: frames.count, id: nextID())
            defer { level = saved }
            try value.encode(to: self)
            close(downTo: level.depth)
            if count == level.start {
                writeByte(0xa0)  // the value asked for no container: an empty map
            }
        }
    }

    // MARK: Containers

    /// Prepares a write to the container `id` at `depth`: fails unless it is open and belongs
    /// to the running value, and completes any containers opened after it.
    @inline(__always)
    func enter(_ id: Int, _ depth: Int) -> Bool {
        if depth == frames.count &- 1, depth >= level.depth, frames[depth].id == id {
            return true
        }
        return enterSlow(id, depth)
    }

    @inline(never)
    private func enterSlow(_ id: Int, _ depth: Int) -> Bool {
        guard !failed, depth >= level.depth, depth < frames.count, frames[depth].id == id else {
            fail()
            return false
        }
        close(downTo: depth + 1)
        return true
    }

    /// Opens a container for the running value (`Encoder.container(keyedBy:)` and
    /// `unkeyedContainer()`), or finds the one it already has. Returns its id and depth, or
    /// `nil` after giving up.
    func open(isMap: Bool) -> (id: Int, depth: Int)? {
        guard !failed else { return nil }
        if frames.count == level.depth && count == level.start {
            return push(isMap: isMap)
        }
        // Asked again (as `super.encode(to: encoder)` does): the same container.
        if frames.count > level.depth, frames[level.depth].head == level.start, frames[level.depth].isMap == isMap {
            let depth = level.depth
            close(downTo: depth + 1)
            return (frames[depth].id, depth)
        }
        fail()
        return nil
    }

    /// Starts a container at the end of the output.
    func push(isMap: Bool) -> (id: Int, depth: Int) {
        let id = nextID()
        frames.append(_CBORDirectFrame(id: id, isMap: isMap, head: count, count: 0, markBase: marks.count))
        writeByte(isMap ? 0xa0 : 0x80)  // placeholder head, fixed when the container is complete
        return (id, frames.count - 1)
    }

    /// Writes a map key into the top container, which `enter` has checked is an open map.
    @inline(__always)
    func writeKey(_ key: some CodingKey) {
        let top = frames.count &- 1
        marks.append(count)
        frames[top].count &+= 1
        writeText(key.stringValue)
    }

    /// Counts an element of the top container, which `enter` has checked is an open array.
    @inline(__always)
    func countElement() {
        frames[frames.count &- 1].count &+= 1
    }

    /// Whether a single-value container of the level `id` may write its value.
    @inline(__always)
    func enterSingle(_ id: Int) -> Bool {
        if level.id == id, frames.count == level.depth, count == level.start {
            return true
        }
        fail()
        return false
    }

    /// Completes the containers at `depth` and above.
    func close(downTo depth: Int) {
        while frames.count > depth {
            let frame = frames.removeLast()
            if frame.isMap {
                sortEntries(of: frame)
                marks.removeLast(marks.count - frame.markBase)
            }
            fixHead(major: frame.isMap ? 5 : 4, at: frame.head, count: frame.count)
        }
    }

    /// Writes the real head of a complete container over its placeholder byte at `head`; the
    /// container's body runs from there to the end of the output.
    func fixHead(major: UInt8, at head: Int, count entries: Int) {
        let argument = UInt64(entries)
        if argument < 24 {
            buffer[head] = major &<< 5 | UInt8(truncatingIfNeeded: argument)
            return
        }
        let extra = argument <= 0xff ? 1 : argument <= 0xffff ? 2 : argument <= 0xffff_ffff ? 4 : 8
        // Move the body up to make room for the longer head.
        reserve(extra)
        let body = head + 1
        // The ranges overlap; `copyMemory` allows that.
        UnsafeMutableRawPointer(buffer + body + extra).copyMemory(from: buffer + body, byteCount: count - body)
        count += extra
        buffer[head] = major &<< 5 | UInt8(24 + extra.trailingZeroBitCount)
        var shift = UInt64(extra - 1) * 8
        var position = body
        while true {
            buffer[position] = UInt8(truncatingIfNeeded: argument &>> shift)
            position += 1
            if shift == 0 { break }
            shift -= 8
        }
    }

    /// Puts the entries of a complete map, which end at `count`, in the order of their encoded
    /// keys (RFC 8949 §4.2.1). Gives up on a duplicate key.
    private func sortEntries(of frame: _CBORDirectFrame) {
        let entries = marks.count - frame.markBase
        guard entries > 1 else { return }
        let base = frame.markBase
        // Each key's first eight bytes as a big-endian word settle almost every comparison:
        // the head comes first, so keys of different lengths differ there.
        withUnsafeTemporaryAllocation(of: _CBORDirectEntry.self, capacity: entries) {
            var items = $0
            // An entry runs from its key to the next key in writing order (or the map's end).
            var sorted = true
            for i in 0..<entries {
                let mark = marks[base + i]
                let end = i + 1 < entries ? marks[base + i + 1] : count
                items.initializeElement(at: i, to: _CBORDirectEntry(prefix: keyPrefix(at: mark), mark: mark, end: end))
                if i > 0, sorted, !precedes(items[i - 1], items[i]) {
                    sorted = false
                }
            }
            if sorted {
                return
            }
            if entries <= 16 {
                for i in 1..<entries {
                    let moving = items[i]
                    var j = i
                    while j > 0, precedes(moving, items[j - 1]) {
                        items[j] = items[j - 1]
                        j -= 1
                    }
                    items[j] = moving
                }
            } else {
                items.sort { precedes($0, $1) }
            }
            for i in 1..<entries where !precedes(items[i - 1], items[i]) {
                fail()  // a duplicate key: let the general encoder report it
                return
            }
            // Copy the body aside, then write the entries back in order.
            let bodyStart = marks[base]
            let bodyLength = count - bodyStart
            if spareCapacity < bodyLength {
                spare.deallocate()
                spareCapacity = max(bodyLength, spareCapacity * 2)
                spare = .allocate(capacity: spareCapacity)
            }
            spare.update(from: buffer + bodyStart, count: bodyLength)
            var position = bodyStart
            for i in 0..<entries {
                let length = items[i].end - items[i].mark
                copy(from: spare + (items[i].mark - bodyStart), to: buffer + position, count: length)
                position += length
            }
        }
    }

    /// The first eight bytes of the encoded key at `offset` as a big-endian word, zero-filled
    /// past the end of a shorter key.
    @inline(__always)
    private func keyPrefix(at offset: Int) -> UInt64 {
        let length = keyLength(at: offset)
        if count - offset >= 8 {
            let word = UInt64(
                bigEndian: UnsafeRawPointer(buffer).loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            return length >= 8 ? word : word & ~(UInt64.max >> (8 * length))
        }
        var word: UInt64 = 0
        for i in 0..<8 {
            word = word << 8 | (i < length ? UInt64(buffer[offset + i]) : 0)
        }
        return word
    }

    /// Whether key `a` comes before key `b`, given their first eight bytes and their offsets.
    @inline(__always)
    private func precedes(_ a: (prefix: UInt64, mark: Int), _ b: (prefix: UInt64, mark: Int)) -> Bool {
        if a.prefix != b.prefix {
            return a.prefix < b.prefix
        }
        return keyPrecedes(a.mark, b.mark)
    }

    @inline(__always)
    private func precedes(_ a: _CBORDirectEntry, _ b: _CBORDirectEntry) -> Bool {
        precedes((a.prefix, a.mark), (b.prefix, b.mark))
    }

    /// The extent of the encoded key (a text string) at `offset`.
    @inline(__always)
    private func keyLength(at offset: Int) -> Int {
        let info = Int(buffer[offset] & 0x1f)
        if info < 24 {
            return 1 + info
        }
        let extra = 1 << (info - 24)
        var length = 0
        for i in 1...extra {
            length = length << 8 | Int(buffer[offset + i])
        }
        return 1 + extra + length
    }

    /// RFC 8949 §4.2.1 order: bytewise lexicographic order of the encoded keys.
    private func keyPrecedes(_ a: Int, _ b: Int) -> Bool {
        let aLength = keyLength(at: a)
        let bLength = keyLength(at: b)
        let common = min(aLength, bLength)
        let raw = UnsafeRawPointer(buffer)
        var i = 0
        while common - i >= 8 {
            let x = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: a + i, as: UInt64.self))
            let y = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: b + i, as: UInt64.self))
            if x != y {
                return x < y
            }
            i += 8
        }
        while i < common {
            let x = buffer[a + i]
            let y = buffer[b + i]
            if x != y {
                return x < y
            }
            i += 1
        }
        return aLength < bLength
    }

    // MARK: Coding paths

    /// The coding path through the current entries of the first `depth` open containers.
    func codingPath(depth: Int) -> [any CodingKey] {
        var path: [any CodingKey] = []
        for frame in frames.prefix(depth) {
            if frame.isMap {
                guard frame.count > 0 else { break }
                let key = marks[frame.markBase + frame.count - 1]
                let length = keyLength(at: key)
                let info = buffer[key] & 0x1f
                let headLength = info < 24 ? 1 : 1 + (1 << Int(info - 24))
                let text = String(
                    decoding: UnsafeBufferPointer(start: buffer + key + headLength, count: length - headLength),
                    as: UTF8.self
                )
                path.append(_CBORKey(stringValue: text))
            } else {
                path.append(_CBORKey(index: max(frame.count - 1, 0)))
            }
        }
        return path
    }

    // MARK: Writing

    @inline(__always)
    private func reserve(_ bytes: Int) {
        if capacity &- count < bytes {
            grow(bytes)
        }
    }

    @inline(never)
    private func grow(_ bytes: Int) {
        let newCapacity = max(capacity * 2, count + bytes)
        let newBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBuffer.moveInitialize(from: buffer, count: count)
        buffer.deallocate()
        buffer = newBuffer
        capacity = newCapacity
    }

    @inline(__always)
    func writeByte(_ byte: UInt8) {
        reserve(1)
        buffer[count] = byte
        count &+= 1
    }

    @inline(__always)
    func writeHead(_ major: UInt8, _ argument: UInt64) {
        reserve(9)
        let initial = major &<< 5
        if argument < 24 {
            buffer[count] = initial | UInt8(truncatingIfNeeded: argument)
            count &+= 1
            return
        }
        let extra: Int
        if argument <= 0xff {
            buffer[count] = initial | 24
            extra = 1
        } else if argument <= 0xffff {
            buffer[count] = initial | 25
            extra = 2
        } else if argument <= 0xffff_ffff {
            buffer[count] = initial | 26
            extra = 4
        } else {
            buffer[count] = initial | 27
            extra = 8
        }
        count &+= 1
        writeBigEndian(argument, bytes: extra)
    }

    /// Writes the low `bytes` bytes of `value`, most significant first; room is reserved.
    @inline(__always)
    private func writeBigEndian(_ value: UInt64, bytes: Int) {
        var shift = UInt64(bytes - 1) * 8
        while true {
            buffer[count] = UInt8(truncatingIfNeeded: value &>> shift)
            count &+= 1
            if shift == 0 { break }
            shift -= 8
        }
    }

    @inline(__always)
    func writeSigned(_ value: Int64) {
        if value >= 0 {
            writeHead(0, UInt64(truncatingIfNeeded: value))
        } else {
            writeHead(1, UInt64(truncatingIfNeeded: ~value))
        }
    }

    @inline(__always)
    func writeUnsigned(_ value: UInt64) {
        writeHead(0, value)
    }

    @inline(__always)
    func writeBytes(_ source: UnsafeRawBufferPointer) {
        let length = source.count
        guard let base = source.baseAddress, length > 0 else { return }
        reserve(length)
        copy(from: base.assumingMemoryBound(to: UInt8.self), to: buffer + count, count: length)
        count &+= length
    }

    /// Copies between ranges that do not overlap; short runs (most keys and scalars) in a
    /// loop, which beats a call to memmove.
    @inline(__always)
    private func copy(from source: UnsafePointer<UInt8>, to target: UnsafeMutablePointer<UInt8>, count: Int) {
        if count <= 16 {
            for i in 0..<count {
                target[i] = source[i]
            }
        } else {
            target.update(from: source, count: count)
        }
    }

    @inline(__always)
    func writeText(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            writeHead(3, UInt64(utf8.count))
            writeBytes(UnsafeRawBufferPointer(utf8))
        }
    }

    func writeData(_ value: Data) {
        writeHead(2, UInt64(value.count))
        value.withUnsafeBytes { writeBytes($0) }
    }

    /// The shortest of float16, float32 and float64 that holds `value` exactly; every NaN is
    /// `f9 7e 00` (as `_CBORWriter.double`).
    func writeDouble(_ value: Double) {
        reserve(9)
        if value.isNaN {
            buffer[count] = 0xf9
            count &+= 1
            writeBigEndian(0x7e00, bytes: 2)
        } else if let half = _CBORFloat.halfBits(exactly: value) {
            buffer[count] = 0xf9
            count &+= 1
            writeBigEndian(UInt64(half), bytes: 2)
        } else if let single = Float(exactly: value) {
            buffer[count] = 0xfa
            count &+= 1
            writeBigEndian(UInt64(single.bitPattern), bytes: 4)
        } else {
            buffer[count] = 0xfb
            count &+= 1
            writeBigEndian(value.bitPattern, bytes: 8)
        }
    }

    @inline(__always)
    func writeFloat(_ value: Float) {
        writeDouble(Double(value))
    }

    /// Tag 1 and whole seconds as an integer, or the shortest exact float (as
    /// `_CBORWriter.date`).
    func writeDate(_ value: Date) throws {
        let seconds = value.timeIntervalSince1970
        guard seconds.isFinite else {
            throw CBORError(code: .encodingFailed, message: "cannot encode a Date that is not finite")
        }
        writeByte(0xc1)
        if let whole = Int64(exactly: seconds) {
            writeSigned(whole)
        } else {
            writeDouble(seconds)
        }
    }

    /// Tag 37 and the 16 bytes of the UUID (as `_CBORWriter.uuid`).
    func writeUUID(_ value: UUID) {
        reserve(19)
        buffer[count] = 0xd8
        buffer[count + 1] = 37
        buffer[count + 2] = 0x50
        count &+= 3
        withUnsafeBytes(of: value.uuid) { writeBytes($0) }
    }
}

// MARK: - Encoder

extension _CBORDirectState {
    var codingPath: [any CodingKey] {
        codingPath(depth: level.depth)
    }

    var userInfo: [CodingUserInfoKey: Any] {
        [:]
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let opened = open(isMap: true)
        return KeyedEncodingContainer(
            _CBORDirectKeyedContainer<Key>(state: self, id: opened?.id ?? 0, depth: opened?.depth ?? -1)
        )
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let opened = open(isMap: false)
        return _CBORDirectUnkeyedContainer(state: self, id: opened?.id ?? 0, depth: opened?.depth ?? -1)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        _CBORDirectSingleValueContainer(state: self, level: level.id)
    }
}

// MARK: - Containers

struct _CBORDirectKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: _CBORDirectState
    let id: Int
    let depth: Int

    var codingPath: [any CodingKey] {
        state.codingPath(depth: max(depth, 0))
    }

    @inline(__always)
    private func begin(_ key: Key) -> Bool {
        guard state.enter(id, depth) else { return false }
        state.writeKey(key)
        return true
    }

    mutating func encodeNil(forKey key: Key) throws {
        if begin(key) { state.writeByte(0xf6) }
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws {
        if begin(key) { state.writeByte(value ? 0xf5 : 0xf4) }
    }

    mutating func encode(_ value: String, forKey key: Key) throws {
        if begin(key) { state.writeText(value) }
    }

    mutating func encode(_ value: Double, forKey key: Key) throws {
        if begin(key) { state.writeDouble(value) }
    }

    mutating func encode(_ value: Float, forKey key: Key) throws {
        if begin(key) { state.writeFloat(value) }
    }

    mutating func encode(_ value: Int, forKey key: Key) throws {
        if begin(key) { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int8, forKey key: Key) throws {
        if begin(key) { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int16, forKey key: Key) throws {
        if begin(key) { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int32, forKey key: Key) throws {
        if begin(key) { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int64, forKey key: Key) throws {
        if begin(key) { state.writeSigned(value) }
    }

    mutating func encode(_ value: UInt, forKey key: Key) throws {
        if begin(key) { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt8, forKey key: Key) throws {
        if begin(key) { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt16, forKey key: Key) throws {
        if begin(key) { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt32, forKey key: Key) throws {
        if begin(key) { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        if begin(key) { state.writeUnsigned(value) }
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        if begin(key) { try state.encodeNested(value) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        guard begin(key) else {
            return KeyedEncodingContainer(_CBORDirectKeyedContainer<NestedKey>(state: state, id: 0, depth: -1))
        }
        let nested = state.push(isMap: true)
        return KeyedEncodingContainer(
            _CBORDirectKeyedContainer<NestedKey>(state: state, id: nested.id, depth: nested.depth)
        )
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        guard begin(key) else {
            return _CBORDirectUnkeyedContainer(state: state, id: 0, depth: -1)
        }
        let nested = state.push(isMap: false)
        return _CBORDirectUnkeyedContainer(state: state, id: nested.id, depth: nested.depth)
    }

    mutating func superEncoder() -> any Encoder {
        state.fail()
        return state
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        state.fail()
        return state
    }
}

struct _CBORDirectUnkeyedContainer: UnkeyedEncodingContainer {
    let state: _CBORDirectState
    let id: Int
    let depth: Int

    var codingPath: [any CodingKey] {
        state.codingPath(depth: max(depth, 0))
    }

    var count: Int {
        guard depth >= 0, depth < state.frames.count, state.frames[depth].id == id else {
            state.fail()  // a complete container: only the general encoder still knows its count
            return 0
        }
        return state.frames[depth].count
    }

    @inline(__always)
    private func begin() -> Bool {
        guard state.enter(id, depth), !state.frames[depth].isMap else {
            state.fail()
            return false
        }
        state.countElement()
        return true
    }

    mutating func encodeNil() throws {
        if begin() { state.writeByte(0xf6) }
    }

    mutating func encode(_ value: Bool) throws {
        if begin() { state.writeByte(value ? 0xf5 : 0xf4) }
    }

    mutating func encode(_ value: String) throws {
        if begin() { state.writeText(value) }
    }

    mutating func encode(_ value: Double) throws {
        if begin() { state.writeDouble(value) }
    }

    mutating func encode(_ value: Float) throws {
        if begin() { state.writeFloat(value) }
    }

    mutating func encode(_ value: Int) throws {
        if begin() { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int8) throws {
        if begin() { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int16) throws {
        if begin() { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int32) throws {
        if begin() { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int64) throws {
        if begin() { state.writeSigned(value) }
    }

    mutating func encode(_ value: UInt) throws {
        if begin() { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt8) throws {
        if begin() { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt16) throws {
        if begin() { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt32) throws {
        if begin() { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt64) throws {
        if begin() { state.writeUnsigned(value) }
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        if begin() { try state.encodeNested(value) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        guard begin() else {
            return KeyedEncodingContainer(_CBORDirectKeyedContainer<NestedKey>(state: state, id: 0, depth: -1))
        }
        let nested = state.push(isMap: true)
        return KeyedEncodingContainer(
            _CBORDirectKeyedContainer<NestedKey>(state: state, id: nested.id, depth: nested.depth)
        )
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        guard begin() else {
            return _CBORDirectUnkeyedContainer(state: state, id: 0, depth: -1)
        }
        let nested = state.push(isMap: false)
        return _CBORDirectUnkeyedContainer(state: state, id: nested.id, depth: nested.depth)
    }

    mutating func superEncoder() -> any Encoder {
        state.fail()
        return state
    }
}

struct _CBORDirectSingleValueContainer: SingleValueEncodingContainer {
    let state: _CBORDirectState
    /// The level this container was made for.
    let level: Int

    var codingPath: [any CodingKey] {
        state.codingPath
    }

    mutating func encodeNil() throws {
        if state.enterSingle(level) { state.writeByte(0xf6) }
    }

    mutating func encode(_ value: Bool) throws {
        if state.enterSingle(level) { state.writeByte(value ? 0xf5 : 0xf4) }
    }

    mutating func encode(_ value: String) throws {
        if state.enterSingle(level) { state.writeText(value) }
    }

    mutating func encode(_ value: Double) throws {
        if state.enterSingle(level) { state.writeDouble(value) }
    }

    mutating func encode(_ value: Float) throws {
        if state.enterSingle(level) { state.writeFloat(value) }
    }

    mutating func encode(_ value: Int) throws {
        if state.enterSingle(level) { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int8) throws {
        if state.enterSingle(level) { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int16) throws {
        if state.enterSingle(level) { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int32) throws {
        if state.enterSingle(level) { state.writeSigned(Int64(value)) }
    }

    mutating func encode(_ value: Int64) throws {
        if state.enterSingle(level) { state.writeSigned(value) }
    }

    mutating func encode(_ value: UInt) throws {
        if state.enterSingle(level) { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt8) throws {
        if state.enterSingle(level) { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt16) throws {
        if state.enterSingle(level) { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt32) throws {
        if state.enterSingle(level) { state.writeUnsigned(UInt64(value)) }
    }

    mutating func encode(_ value: UInt64) throws {
        if state.enterSingle(level) { state.writeUnsigned(value) }
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        if state.enterSingle(level) { try state.encodeNested(value) }
    }
}
