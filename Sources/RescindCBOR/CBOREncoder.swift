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
///   A value that requests no container at all, and a super encoder that is never used, are
///   written as an empty map.
///
/// Values are written straight into place in one pass, and each map is put in key order once
/// it is complete. A container is complete when the value that asked for it has returned from
/// `encode(to:)`, or, for a nested container, when its parent is written again. Writing to a
/// complete container (as a value that keeps a nested container and comes back to it later
/// does, or one that uses a super encoder) is accepted too: the new entry is moved into place
/// and the container's count and key order are brought up to date. That is slower, and no
/// value of the synthesized conformances needs it.
///
/// The encoder has no state; one instance can be shared between tasks.
public struct CBOREncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Encodes a value as a single CBOR data item.
    ///
    /// - Parameter value: The value to encode.
    /// - Returns: The encoded bytes. The same value always produces the same bytes.
    /// - Throws: ``CBORError`` with code ``CBORError/Code/encodingFailed`` if the value
    ///   encodes the same key twice in one keyed container, encodes two values into one
    ///   single-value container, asks one encoder for containers of different kinds, writes to
    ///   a container of an enclosing value while a value nested in it is being encoded, encodes
    ///   a `Date` that is not finite, or throws `EncodingError` itself. Any other error the
    ///   value's `encode(to:)` throws is rethrown unchanged. An error thrown by a nested value fails the
    ///   whole call even if an enclosing `encode(to:)` catches it.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var state = EncoderState.acquire()
        defer { EncoderState.recycle(&state) }
        do {
            return try state.encodeRoot(value)
        } catch let error as EncodingError {
            throw CBORError(converting: error)
        }
    }
}

// MARK: - Encoding state

/// A container that is being written: the innermost open containers, outermost first.
struct OpenContainer {
    /// The container's record in `EncoderState.records`.
    var id: Int
    var isMap: Bool
    /// The offset of the container's head, written as one placeholder byte until it is complete.
    var head: Int
    /// Entries (map) or elements (array) written so far.
    var count: Int
    /// Where this map's key offsets start in `EncoderState.marks`.
    var markBase: Int
}

/// Where a container is, found again by its path (its parent and its key or position) rather
/// than by an offset, because a complete container moves when its parent's entries are sorted.
struct ContainerRecord {
    enum Kind: UInt8 {
        case map, array
        /// A super encoder's place, an empty map until it is used.
        case slot
        /// A super encoder's place that holds a single value.
        case filled
    }

    /// The enclosing container's record, or -1 for the top-level item.
    var parent: Int
    /// In a map: where the encoded key starts in `EncoderState.keys`; in an array: the position.
    var key: Int
    /// The encoded key's length, or -1 in an array.
    var keyLength: Int
    var kind: Kind
}

/// The value whose `encode(to:)` is running: where its bytes start, how many containers were
/// open when it started (its own containers go above those), and its identity for its
/// single-value container.
struct EncodingLevel {
    var start: Int
    var depth: Int
    var id: Int
}

/// The place of a value written into a complete container, which is encoded at the end of the
/// output and then moved into place: the containers it opens at `depth` belong there.
struct LatePlace {
    var depth: Int
    var parent: Int
    var key: Int
    var keyLength: Int
}

/// A write into a complete container that has begun: the container (or super encoder place) it
/// goes to, where its bytes start at the end of the output, and the place of the write it is in.
struct PendingWrite {
    var target: Int
    var tail: Int
    var fills: Bool
    var outer: LatePlace?
}

/// A map entry while its map is put in key order.
struct MapEntry {
    /// The first eight bytes of the encoded key, zero-filled (see `keyPrefix`).
    var prefix: UInt64
    /// Where the entry (its key) starts, and where it ends.
    var mark: Int
    var end: Int
}

/// The state of one `encode` call, and the `Encoder` that values encode themselves to.
///
/// Being the encoder itself saves an object per call: `level` is the value being encoded, saved
/// and restored around every nested value (a super encoder is a separate `SuperEncoder`).
/// States are recycled through a small pool once a call has finished, unless something from
/// the call (an encoder or container that a value kept) still refers to them.
final class EncoderState: Encoder {
    /// The output: `count` initialized bytes of `capacity`. Every write reserves room first.
    /// (No stored property here needs dynamic exclusivity checks: a state is used by one call.)
    @exclusivity(unchecked)
    private var buffer: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked)
    private(set) var count = 0
    @exclusivity(unchecked)
    private var capacity: Int
    /// Scratch space for reordering a map's entries and moving a late entry into place.
    @exclusivity(unchecked)
    private var spare: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked)
    private var spareCapacity: Int
    @exclusivity(unchecked)
    var frames: [OpenContainer] = []
    /// The offset of every key of every open map, each map's keys together.
    @exclusivity(unchecked)
    private var marks: [Int] = []
    /// Every container of this call, open or complete, by id.
    @exclusivity(unchecked)
    private var records: [ContainerRecord] = []
    /// The encoded keys that `records` refer to.
    @exclusivity(unchecked)
    private var keys: [UInt8] = []
    @exclusivity(unchecked)
    var level = EncodingLevel(start: 0, depth: 0, id: 0)
    @exclusivity(unchecked)
    private var lastLevel = 0
    @exclusivity(unchecked)
    private var late: LatePlace?
    /// The writes into complete containers that have begun and not finished, innermost last.
    @exclusivity(unchecked)
    private var pending: [PendingWrite] = []
    /// The first misuse of the Codable API, thrown when the call ends; later writes do nothing.
    @exclusivity(unchecked)
    private(set) var error: CBORError?
    /// The first error a value's `encode(to:)` threw, caught or not on the way out.
    @exclusivity(unchecked)
    private var thrown: (any Error)?

    init() {
        capacity = 1024
        buffer = .allocate(capacity: capacity)
        spareCapacity = 256
        spare = .allocate(capacity: spareCapacity)
        frames.reserveCapacity(16)
        marks.reserveCapacity(64)
        records.reserveCapacity(64)
        keys.reserveCapacity(256)
    }

    deinit {
        buffer.deallocate()
        spare.deallocate()
    }

    // MARK: Recycling

    private static let pool = Recycler<EncoderState>()
    private static let keptCapacity = 64 * 1024

    static func acquire() -> EncoderState {
        pool.take() ?? EncoderState()
    }

    /// Returns `state` to the pool if nothing else refers to it (a value may have kept an
    /// encoder or container) and its buffers are of a reasonable size.
    static func recycle(_ state: inout EncoderState) {
        guard isKnownUniquelyReferenced(&state),
            state.capacity <= keptCapacity,
            state.spareCapacity <= keptCapacity,
            state.marks.capacity <= keptCapacity / 8,
            state.records.capacity <= keptCapacity / 8,
            state.keys.capacity <= keptCapacity
        else { return }
        state.count = 0
        state.frames.removeAll(keepingCapacity: true)
        state.marks.removeAll(keepingCapacity: true)
        state.records.removeAll(keepingCapacity: true)
        state.keys.removeAll(keepingCapacity: true)
        state.level = EncodingLevel(start: 0, depth: 0, id: 0)
        state.lastLevel = 0
        state.late = nil
        state.pending.removeAll(keepingCapacity: true)
        state.error = nil
        state.thrown = nil
        pool.put(state)
    }

    // MARK: Entry point

    func encodeRoot<T: Encodable>(_ value: T) throws -> [UInt8] {
        try encodeNested(value)
        // A value that threw fails the call even if an enclosing `encode(to:)` caught it: its entry was begun
        // and never written, which the output cannot show.
        if let thrown {
            throw thrown
        }
        close(downTo: 0)
        if let error {
            throw error
        }
        return [UInt8](UnsafeBufferPointer(start: buffer, count: count))
    }

    /// Records the first misuse.
    @inline(never)
    func fail(_ detail: String, path: [any CodingKey]) {
        if error == nil {
            error = CBORError(.encodingFailed, detail, path: path, offset: nil)
        }
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
            do {
                try writeDate(unsafeBitCast(value, to: Date.self))
            } catch {
                thrown = thrown ?? error
                throw error
            }
        } else if T.self == UUID.self {
            writeUUID(unsafeBitCast(value, to: UUID.self))
        } else {
            let saved = level
            lastLevel &+= 1
            level = EncodingLevel(start: count, depth: frames.count, id: lastLevel)
            defer { level = saved }
            do {
                try value.encode(to: self)
            } catch {
                thrown = thrown ?? error
                throw error
            }
            close(downTo: level.depth)
            if count == level.start {
                writeByte(0xa0)  // the value asked for no container: an empty map
            }
        }
    }

    // MARK: Containers

    /// What `begin` answers when the write must not happen (after a misuse).
    static let refused = -2
    /// What `begin` answers when the value goes at the end of the output, as usual.
    static let appended = -1

    /// Starts a write into the container `id` (created at `depth`, or -1 if it was complete when it
    /// was created): writes the entry's key, or counts the element. Answers `refused`, `appended`,
    /// or, for a write into a complete container, where the entry starts at the end of the output;
    /// the caller writes the value and then calls `finish` with the answer.
    @inline(__always)
    func begin(_ id: Int, _ depth: Int, _ key: String?) -> Int {
        if depth == frames.count &- 1, depth >= level.depth, frames[depth].id == id {
            if let key {
                writeKey(key)
            } else {
                frames[depth].count &+= 1
            }
            return Self.appended
        }
        return beginSlow(id, depth, key)
    }

    /// Ends a write that `begin` started.
    @inline(__always)
    func finish(_ begun: Int) {
        if begun >= 0 {
            finishLate()
        }
    }

    /// A write to a container that is not the innermost open one: an open container further
    /// out (everything opened after it is complete from now on), or a complete one, whose new
    /// entry is written at the end of the output and moved into place by `finishLate`.
    @inline(never)
    private func beginSlow(_ id: Int, _ depth: Int, _ key: String?) -> Int {
        guard error == nil, id >= 0 else { return Self.refused }
        if depth >= 0, depth < frames.count, frames[depth].id == id {
            guard depth >= level.depth else {
                fail(Self.enclosing, path: codingPath)
                return Self.refused
            }
            close(downTo: depth + 1)
            if let key {
                writeKey(key)
            } else {
                frames[depth].count &+= 1
            }
            return Self.appended
        }
        guard let offset = locate(id), offset >= level.start else {
            fail(Self.enclosing, path: codingPath)
            return Self.refused
        }
        let tail = count
        let place: LatePlace
        if let key {
            writeText(key)
            let start = keys.count
            keys.append(contentsOf: UnsafeBufferPointer(start: buffer + tail, count: count - tail))
            place = LatePlace(depth: frames.count, parent: id, key: start, keyLength: count - tail)
        } else {
            place = LatePlace(depth: frames.count, parent: id, key: Int(item(at: offset).argument), keyLength: -1)
        }
        pending.append(PendingWrite(target: id, tail: tail, fills: false, outer: late))
        late = place
        return tail
    }

    /// Moves the entry that a write into a complete container wrote at the end of the output into
    /// place, and brings the container's count and key order up to date; or, for a super
    /// encoder's single value, puts the value in place of the empty map that held the place.
    @inline(never)
    private func finishLate() {
        let write = pending.removeLast()
        late = write.outer
        // The value's own writes cannot reach before `tail` (see `enclosing`), so the target is
        // still where it was, and nothing it opened is still open.
        guard error == nil, let target = locate(write.target) else { return }
        if write.fills {
            records[write.target].kind = .filled
            moveTail(from: write.tail, to: target)
            removeByte(at: target + (count - write.tail))  // the empty map that held the place
            return
        }
        let end = itemEnd(target)
        moveTail(from: write.tail, to: end)
        let head = item(at: target)
        setHead(at: target, major: head.major, oldLength: head.length, count: head.argument + 1)
        if head.major == 5 {
            sortMap(at: target, id: write.target)
        }
    }

    private static let enclosing =
        "a container was written while a value nested in it was being encoded"

    /// Opens a container for the running value (`Encoder.container(keyedBy:)` and
    /// `unkeyedContainer()`), or finds the one it already has (as `super.encode(to: encoder)`
    /// asks again). Returns its id and depth, or -1s after a misuse.
    func open(isMap: Bool) -> (id: Int, depth: Int) {
        guard error == nil else { return (-1, -1) }
        if frames.count == level.depth && count == level.start {
            return push(isMap: isMap)
        }
        let holds: String
        if frames.count > level.depth, frames[level.depth].head == level.start {
            let depth = level.depth
            if frames[depth].isMap == isMap {
                close(downTo: depth + 1)
                return (frames[depth].id, depth)
            }
            holds = frames[depth].isMap ? "a keyed container" : "an unkeyed container"
        } else {
            holds = "a single value"
        }
        fail(Self.conflict(isMap: isMap, holds: holds), path: codingPath)
        return (-1, -1)
    }

    static func conflict(isMap: Bool, holds: String) -> String {
        "requested \(isMap ? "a keyed" : "an unkeyed") container from an encoder that already holds \(holds)"
    }

    /// Starts a container at the end of the output.
    func push(isMap: Bool) -> (id: Int, depth: Int) {
        let id = newRecord(kind: isMap ? .map : .array)
        frames.append(OpenContainer(id: id, isMap: isMap, head: count, count: 0, markBase: marks.count))
        writeByte(isMap ? 0xa0 : 0x80)  // placeholder head, fixed when the container is complete
        return (id, frames.count - 1)
    }

    /// A nested container (`nestedContainer`, `nestedUnkeyedContainer`) of the container `id`.
    func nested(in id: Int, depth: Int, key: String?, isMap: Bool) -> (id: Int, depth: Int) {
        let begun = begin(id, depth, key)
        switch begun {
        case Self.refused:
            return (-1, -1)
        case Self.appended:
            return push(isMap: isMap)
        default:
            // Complete from the start: every write to it will be moved into place.
            writeByte(isMap ? 0xa0 : 0x80)
            let nested = newRecord(kind: isMap ? .map : .array)
            finish(begun)
            return (nested, -1)
        }
    }

    /// Records a container that starts at the end of the output. Its place is the running
    /// late write's, or the newest entry of the innermost open container, or the top level.
    func newRecord(kind: ContainerRecord.Kind) -> Int {
        let id = records.count
        if let late, late.depth == frames.count {
            records.append(ContainerRecord(parent: late.parent, key: late.key, keyLength: late.keyLength, kind: kind))
        } else if let top = frames.last {
            if top.isMap {
                let mark = marks[marks.count &- 1]
                let length = keyLength(at: mark)
                let start = keys.count
                keys.append(contentsOf: UnsafeBufferPointer(start: buffer + mark, count: length))
                records.append(ContainerRecord(parent: top.id, key: start, keyLength: length, kind: kind))
            } else {
                records.append(ContainerRecord(parent: top.id, key: top.count &- 1, keyLength: -1, kind: kind))
            }
        } else {
            records.append(ContainerRecord(parent: -1, key: 0, keyLength: -1, kind: kind))
        }
        return id
    }

    /// Writes a map key into the innermost container, an open map.
    @inline(__always)
    func writeKey(_ key: String) {
        let top = frames.count &- 1
        marks.append(count)
        frames[top].count &+= 1
        writeText(key)
    }

    /// Whether a single-value container of the level `id` may write its value.
    @inline(__always)
    func enterSingle(_ id: Int) -> Bool {
        if level.id == id, frames.count == level.depth, count == level.start, error == nil {
            return true
        }
        if error == nil {
            fail(Self.secondValue, path: codingPath)
        }
        return false
    }

    static let secondValue = "a single-value container was asked to encode a second value"

    /// Completes the containers at `depth` and above.
    func close(downTo depth: Int) {
        while frames.count > depth {
            let frame = frames[frames.count - 1]
            if frame.isMap {
                if let duplicate = sortEntries(base: frame.markBase, end: count) {
                    fail(duplicateKey(at: duplicate), path: codingPath(depth: frames.count - 1))
                }
                marks.removeLast(marks.count - frame.markBase)
            }
            frames.removeLast()
            setHead(at: frame.head, major: frame.isMap ? 5 : 4, oldLength: 1, count: UInt64(frame.count))
        }
    }

    private func duplicateKey(at mark: Int) -> String {
        "key '\(keyText(at: mark))' was encoded twice in one keyed container"
    }

    // MARK: Super encoders

    /// A super encoder for the entry `key` (or the next element) of the container `id`: its
    /// place holds an empty map until the encoder is used.
    func superEncoder(in id: Int, depth: Int, key: String?) -> any Encoder {
        let begun = begin(id, depth, key)
        var slot = -1
        if begun != Self.refused {
            writeByte(0xa0)
            slot = newRecord(kind: .slot)
            finish(begun)
        }
        return SuperEncoder(state: self, slot: slot)
    }

    /// Decides what a super encoder's place holds when the encoder is asked for a container.
    func decide(_ slot: Int, isMap: Bool) -> Bool {
        guard error == nil, slot >= 0 else { return false }
        switch records[slot].kind {
        case .slot:
            if !isMap, let offset = locate(slot) {
                buffer[offset] = 0x80
            }
            records[slot].kind = isMap ? .map : .array
            return true
        case .map where isMap, .array where !isMap:
            return true
        case .map, .array:
            let holds = records[slot].kind == .map ? "a keyed container" : "an unkeyed container"
            fail(Self.conflict(isMap: isMap, holds: holds), path: path(of: slot))
        case .filled:
            fail(Self.conflict(isMap: isMap, holds: "a single value"), path: path(of: slot))
        }
        return false
    }

    /// Starts writing a super encoder's single value, which `finish` puts in place of its empty map.
    func beginFill(_ slot: Int) -> Int {
        guard error == nil, slot >= 0 else { return Self.refused }
        guard records[slot].kind == .slot else {
            fail(Self.secondValue, path: path(of: slot))
            return Self.refused
        }
        guard let offset = locate(slot), offset >= level.start else {
            fail(Self.enclosing, path: codingPath)
            return Self.refused
        }
        let record = records[slot]
        pending.append(PendingWrite(target: slot, tail: count, fills: true, outer: late))
        late = LatePlace(depth: frames.count, parent: record.parent, key: record.key, keyLength: record.keyLength)
        return count
    }

    // MARK: Complete containers

    /// The offset of the container `id`'s head, found by its path.
    func locate(_ id: Int) -> Int? {
        if let depth = openDepth(of: id) {
            return frames[depth].head
        }
        let record = records[id]
        guard record.parent >= 0 else { return 0 }
        guard let parent = locate(record.parent) else { return nil }
        var position: Int
        let entries: Int
        if let depth = openDepth(of: record.parent) {
            position = parent + 1
            entries = frames[depth].count
        } else {
            let head = item(at: parent)
            position = parent + head.length
            entries = Int(head.argument)
        }
        for index in 0..<entries where position < count {
            if record.keyLength >= 0 {
                let value = position + keyLength(at: position)
                if keyMatches(at: position, record) {
                    return value
                }
                position = itemEnd(value)
            } else {
                if index == record.key {
                    return position
                }
                position = itemEnd(position)
            }
        }
        return nil
    }

    /// Whether the encoded key at `position` is the key `record` was made under.
    private func keyMatches(at position: Int, _ record: ContainerRecord) -> Bool {
        guard keyLength(at: position) == record.keyLength else { return false }
        for i in 0..<record.keyLength where buffer[position + i] != keys[record.key + i] {
            return false
        }
        return true
    }

    private func openDepth(of id: Int) -> Int? {
        var depth = frames.count - 1
        while depth >= 0 {
            if frames[depth].id == id {
                return depth
            }
            depth -= 1
        }
        return nil
    }

    /// The number of entries or elements the container `id` has.
    func entryCount(of id: Int) -> Int {
        if let depth = openDepth(of: id) {
            return frames[depth].count
        }
        guard id >= 0, let offset = locate(id) else { return 0 }
        return Int(item(at: offset).argument)
    }

    /// The head of the item this call wrote at `offset`.
    private func item(at offset: Int) -> (major: UInt8, argument: UInt64, length: Int) {
        let initial = buffer[offset]
        let info = initial & 0x1f
        guard info >= 24, info <= 27 else {
            return (initial >> 5, UInt64(info), 1)
        }
        let extra = 1 << Int(info - 24)
        var argument: UInt64 = 0
        for i in 1...extra {
            argument = argument << 8 | UInt64(buffer[offset + i])
        }
        return (initial >> 5, argument, 1 + extra)
    }

    /// Where the complete item at `offset` ends.
    private func itemEnd(_ offset: Int) -> Int {
        guard offset < count else { return count }
        let head = item(at: offset)
        switch head.major {
        case 2, 3:
            return offset + head.length + Int(head.argument)
        case 4, 5:
            var position = offset + head.length
            for _ in 0..<(Int(head.argument) * (head.major == 5 ? 2 : 1)) {
                position = itemEnd(position)
            }
            return position
        case 6:
            return itemEnd(offset + head.length)
        default:
            // Simple values and floats: info 25, 26, 27 carry 2, 4, 8 bytes like an argument.
            return offset + head.length
        }
    }

    /// Moves the bytes from `tail` to the end of the output to `position`, after which the
    /// bytes that were between follow them.
    private func moveTail(from tail: Int, to position: Int) {
        let length = count - tail
        guard position < tail, length > 0 else { return }
        reserveSpare(length)
        spare.update(from: buffer + tail, count: length)
        UnsafeMutableRawPointer(buffer + position + length).copyMemory(
            from: buffer + position, byteCount: tail - position)
        (buffer + position).update(from: spare, count: length)
        shift(from: position, upTo: tail, by: length)
    }

    private func removeByte(at position: Int) {
        UnsafeMutableRawPointer(buffer + position).copyMemory(
            from: buffer + position + 1, byteCount: count - position - 1)
        count -= 1
        shift(from: position + 1, upTo: Int.max, by: -1)
    }

    /// Moves the offsets of open containers and keys in `start ..< end` by `delta`.
    private func shift(from start: Int, upTo end: Int, by delta: Int) {
        for i in frames.indices where frames[i].head >= start && frames[i].head < end {
            frames[i].head += delta
        }
        for i in marks.indices where marks[i] >= start && marks[i] < end {
            marks[i] += delta
        }
    }

    /// Puts the entries of the complete map at `offset` back in key order after a late entry.
    private func sortMap(at offset: Int, id: Int) {
        let head = item(at: offset)
        let base = marks.count
        var position = offset + head.length
        for _ in 0..<Int(head.argument) {
            marks.append(position)
            position = itemEnd(itemEnd(position))
        }
        if let duplicate = sortEntries(base: base, end: position) {
            fail(duplicateKey(at: duplicate), path: path(of: id))
        }
        marks.removeLast(marks.count - base)
    }

    /// Writes the head of a container over its old head at `head` (one placeholder byte while
    /// it was open), moving its body if the length changes.
    func setHead(at head: Int, major: UInt8, oldLength: Int, count entries: UInt64) {
        if entries < 24 && oldLength == 1 {
            buffer[head] = major &<< 5 | UInt8(truncatingIfNeeded: entries)
            return
        }
        let extra = entries < 24 ? 0 : entries <= 0xff ? 1 : entries <= 0xffff ? 2 : entries <= 0xffff_ffff ? 4 : 8
        let delta = 1 + extra - oldLength
        if delta != 0 {
            reserve(max(delta, 0))
            let body = head + oldLength
            // The ranges overlap; `copyMemory` allows that.
            UnsafeMutableRawPointer(buffer + body + delta).copyMemory(from: buffer + body, byteCount: count - body)
            count += delta
            shift(from: head + 1, upTo: Int.max, by: delta)
        }
        if extra == 0 {
            buffer[head] = major &<< 5 | UInt8(truncatingIfNeeded: entries)
            return
        }
        buffer[head] = major &<< 5 | UInt8(24 + extra.trailingZeroBitCount)
        var shift = UInt64(extra - 1) * 8
        var position = head + 1
        while true {
            buffer[position] = UInt8(truncatingIfNeeded: entries &>> shift)
            position += 1
            if shift == 0 { break }
            shift -= 8
        }
    }

    /// Puts the entries of a map, whose keys' offsets are `marks[base...]` and whose body ends
    /// at `end`, in the order of their encoded keys (RFC 8949 §4.2.1). Returns the offset of a
    /// key that is there twice, leaving the order as it was, or `nil`.
    private func sortEntries(base: Int, end: Int) -> Int? {
        let entries = marks.count - base
        guard entries > 1 else { return nil }
        // Each key's first eight bytes as a big-endian word settle almost every comparison:
        // the head comes first, so keys of different lengths differ there.
        return withUnsafeTemporaryAllocation(of: MapEntry.self, capacity: entries) { storage -> Int? in
            var items = storage
            // An entry runs from its key to the next key in writing order (or the map's end).
            var sorted = true
            for i in 0..<entries {
                let mark = marks[base + i]
                let next = i + 1 < entries ? marks[base + i + 1] : end
                items.initializeElement(at: i, to: MapEntry(prefix: keyPrefix(at: mark), mark: mark, end: next))
                if i > 0, sorted, !precedes(items[i - 1], items[i]) {
                    sorted = false
                }
            }
            if sorted {
                return nil
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
                return items[i].mark
            }
            // Copy the body aside, then write the entries back in order.
            let bodyStart = marks[base]
            let bodyLength = end - bodyStart
            reserveSpare(bodyLength)
            spare.update(from: buffer + bodyStart, count: bodyLength)
            var position = bodyStart
            for i in 0..<entries {
                let length = items[i].end - items[i].mark
                copy(from: spare + (items[i].mark - bodyStart), to: buffer + position, count: length)
                position += length
            }
            return nil
        }
    }

    private func reserveSpare(_ length: Int) {
        if spareCapacity < length {
            spare.deallocate()
            spareCapacity = max(length, spareCapacity * 2)
            spare = .allocate(capacity: spareCapacity)
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

    @inline(__always)
    private func precedes(_ a: MapEntry, _ b: MapEntry) -> Bool {
        if a.prefix != b.prefix {
            return a.prefix < b.prefix
        }
        return keyPrecedes(a.mark, b.mark)
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

    /// The text of the encoded key at `offset`.
    private func keyText(at offset: Int) -> String {
        let head = item(at: offset)
        return String(
            decoding: UnsafeBufferPointer(start: buffer + offset + head.length, count: Int(head.argument)),
            as: UTF8.self
        )
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

    /// The coding path through the current entries of the first `depth` open containers, or,
    /// inside a late write, through the place it writes to.
    func codingPath(depth: Int) -> [any CodingKey] {
        var path: [any CodingKey] = []
        var first = 0
        if let late, late.depth <= depth {
            path = self.path(of: late.parent)
            path.append(
                late.keyLength >= 0
                    ? AnyCodingKey(
                        stringValue: String(decoding: encodedKeyText(late.key, late.keyLength), as: UTF8.self))
                    : AnyCodingKey(index: late.key))
            first = late.depth
        }
        for frame in frames[min(first, frames.count)..<min(depth, frames.count)] {
            if frame.isMap {
                guard frame.count > 0 else { break }
                path.append(AnyCodingKey(stringValue: keyText(at: marks[frame.markBase + frame.count - 1])))
            } else {
                path.append(AnyCodingKey(index: max(frame.count - 1, 0)))
            }
        }
        return path
    }

    /// The coding path of the container `id`.
    func path(of id: Int) -> [any CodingKey] {
        guard id >= 0 else { return [] }
        if let depth = openDepth(of: id) {
            return codingPath(depth: depth)
        }
        let record = records[id]
        var path = self.path(of: record.parent)
        if record.keyLength >= 0 {
            path.append(
                AnyCodingKey(stringValue: String(decoding: encodedKeyText(record.key, record.keyLength), as: UTF8.self))
            )
        } else {
            path.append(AnyCodingKey(index: record.key))
        }
        return path
    }

    /// The text of an encoded key kept in `keys`.
    private func encodedKeyText(_ start: Int, _ length: Int) -> [UInt8] {
        let key = Array(keys[start..<start + length])
        let info = key[0] & 0x1f
        let headLength = info < 24 ? 1 : 1 + (1 << Int(info - 24))
        return Array(key[headLength...])
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
    /// `f9 7e 00`.
    func writeDouble(_ value: Double) {
        reserve(9)
        if value.isNaN {
            buffer[count] = 0xf9
            count &+= 1
            writeBigEndian(0x7e00, bytes: 2)
        } else if let half = HalfFloat.bits(exactly: value) {
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

    /// Tag 1 and whole seconds as an integer, or the shortest exact float.
    func writeDate(_ value: Date) throws {
        let seconds = value.timeIntervalSince1970
        guard seconds.isFinite else {
            throw CBORError(
                code: .encodingFailed,
                message: "cannot encode a Date whose time interval is not finite (\(seconds))"
            )
        }
        writeByte(0xc1)
        if let whole = Int64(exactly: seconds) {
            writeSigned(whole)
        } else {
            writeDouble(seconds)
        }
    }

    /// Tag 37 and the 16 bytes of the UUID.
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

extension EncoderState {
    var codingPath: [any CodingKey] {
        codingPath(depth: level.depth)
    }

    var userInfo: [CodingUserInfoKey: Any] {
        [:]
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let opened = open(isMap: true)
        return KeyedEncodingContainer(MapEncoder<Key>(state: self, id: opened.id, depth: opened.depth))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let opened = open(isMap: false)
        return ArrayEncoder(state: self, id: opened.id, depth: opened.depth)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueEncoder(state: self, level: level.id, slot: -1)
    }
}

/// The encoder that `superEncoder()` returns: the place of one entry, which becomes what the
/// encoder is first asked for.
final class SuperEncoder: Encoder {
    let state: EncoderState
    let slot: Int

    init(state: EncoderState, slot: Int) {
        self.state = state
        self.slot = slot
    }

    var codingPath: [any CodingKey] {
        state.path(of: slot)
    }

    var userInfo: [CodingUserInfoKey: Any] {
        [:]
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let id = state.decide(slot, isMap: true) ? slot : -1
        return KeyedEncodingContainer(MapEncoder<Key>(state: state, id: id, depth: -1))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        ArrayEncoder(state: state, id: state.decide(slot, isMap: false) ? slot : -1, depth: -1)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueEncoder(state: state, level: -1, slot: slot)
    }
}

// MARK: - Containers

/// A keyed container: the map `id`, open at `depth` (or -1 if it was complete from the start).
///
/// Every write is `begin`, the value, `finish`: no closure, so no context to retain per call.
struct MapEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: EncoderState
    let id: Int
    let depth: Int

    var codingPath: [any CodingKey] {
        state.path(of: id)
    }

    @inline(__always)
    private func begin(_ key: Key) -> Int {
        state.begin(id, depth, key.stringValue)
    }

    mutating func encodeNil(forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeByte(0xf6)
        state.finish(begun)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeByte(value ? 0xf5 : 0xf4)
        state.finish(begun)
    }

    mutating func encode(_ value: String, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeText(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Double, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeDouble(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Float, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeFloat(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Int, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int8, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int16, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int32, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int64, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeSigned(value)
        state.finish(begun)
    }

    mutating func encode(_ value: UInt, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt8, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt16, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt32, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(value)
        state.finish(begun)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let begun = begin(key)
        guard begun != EncoderState.refused else { return }
        try state.encodeNested(value)
        state.finish(begun)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let nested = state.nested(in: id, depth: depth, key: key.stringValue, isMap: true)
        return KeyedEncodingContainer(MapEncoder<NestedKey>(state: state, id: nested.id, depth: nested.depth))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = state.nested(in: id, depth: depth, key: key.stringValue, isMap: false)
        return ArrayEncoder(state: state, id: nested.id, depth: nested.depth)
    }

    mutating func superEncoder() -> any Encoder {
        state.superEncoder(in: id, depth: depth, key: AnyCodingKey.super.stringValue)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        state.superEncoder(in: id, depth: depth, key: key.stringValue)
    }
}

/// An unkeyed container: the array `id`, open at `depth` (or -1 if it was complete from the start).
struct ArrayEncoder: UnkeyedEncodingContainer {
    let state: EncoderState
    let id: Int
    let depth: Int

    var codingPath: [any CodingKey] {
        state.path(of: id)
    }

    var count: Int {
        state.entryCount(of: id)
    }

    @inline(__always)
    private func begin() -> Int {
        state.begin(id, depth, nil)
    }

    mutating func encodeNil() throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeByte(0xf6)
        state.finish(begun)
    }

    mutating func encode(_ value: Bool) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeByte(value ? 0xf5 : 0xf4)
        state.finish(begun)
    }

    mutating func encode(_ value: String) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeText(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Double) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeDouble(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Float) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeFloat(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Int) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int8) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int16) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int32) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int64) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(value)
        state.finish(begun)
    }

    mutating func encode(_ value: UInt) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt8) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt16) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt32) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt64) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(value)
        state.finish(begun)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        try state.encodeNested(value)
        state.finish(begun)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let nested = state.nested(in: id, depth: depth, key: nil, isMap: true)
        return KeyedEncodingContainer(MapEncoder<NestedKey>(state: state, id: nested.id, depth: nested.depth))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = state.nested(in: id, depth: depth, key: nil, isMap: false)
        return ArrayEncoder(state: state, id: nested.id, depth: nested.depth)
    }

    mutating func superEncoder() -> any Encoder {
        state.superEncoder(in: id, depth: depth, key: nil)
    }
}

/// A single-value container: of the value `level`, or of a super encoder's place `slot`.
struct SingleValueEncoder: SingleValueEncodingContainer {
    let state: EncoderState
    let level: Int
    let slot: Int

    var codingPath: [any CodingKey] {
        slot >= 0 ? state.path(of: slot) : state.codingPath
    }

    @inline(__always)
    private func begin() -> Int {
        if slot >= 0 {
            return state.beginFill(slot)
        }
        return state.enterSingle(level) ? EncoderState.appended : EncoderState.refused
    }

    mutating func encodeNil() throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeByte(0xf6)
        state.finish(begun)
    }

    mutating func encode(_ value: Bool) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeByte(value ? 0xf5 : 0xf4)
        state.finish(begun)
    }

    mutating func encode(_ value: String) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeText(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Double) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeDouble(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Float) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeFloat(value)
        state.finish(begun)
    }

    mutating func encode(_ value: Int) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int8) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int16) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int32) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(Int64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: Int64) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeSigned(value)
        state.finish(begun)
    }

    mutating func encode(_ value: UInt) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt8) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt16) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt32) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(UInt64(value))
        state.finish(begun)
    }

    mutating func encode(_ value: UInt64) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        state.writeUnsigned(value)
        state.finish(begun)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let begun = begin()
        guard begun != EncoderState.refused else { return }
        try state.encodeNested(value)
        state.finish(begun)
    }
}
