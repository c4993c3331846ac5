/// A non-empty array or map found by the indexer, in pre-order.
///
/// `end` is the offset just past the container; `next` is the index of the first record
/// after the container's subtree. Together they let the decoder skip any item in O(1).
/// Scalars, strings, tags and empty containers get no record: they can be skipped by
/// reading their head.
struct ContainerSpan {
    var offset: Int
    var end: Int
    var next: Int
    /// For a map, where its entries start in `ItemIndex.slots`.
    var slots: Int
}

/// The container records of one input, and the working space of the indexer that found them,
/// kept together so that a recycled decoding state reuses all of their capacity.
struct ItemIndex {
    struct Frame {
        var record: Int
        /// Items expected in total (twice the entry count for a map).
        var total: Int
        var remaining: Int
        var isMap: Bool
        /// Where this map's keys start in `keys`.
        var keyBase: Int
    }

    /// An encoded map key: `start` is the head, `payload ..< end` the UTF-8 bytes, and
    /// `record` the first record at or after its value.
    struct KeyRange {
        var start: Int
        var payload: Int
        var end: Int
        var record: Int
    }

    var records: [ContainerSpan] = []
    /// The entries of every non-empty map, each map's together (in input order, or sorted
    /// for lookup if there are more than `linearSearchLimit`).
    var slots: [KeySlot] = []
    var outer: [Frame] = []
    var keys: [KeyRange] = []

    /// The largest capacity of the arrays.
    var capacity: Int {
        max(records.capacity, slots.capacity, outer.capacity, keys.capacity)
    }

    mutating func removeAll() {
        if !records.isEmpty { records.removeAll(keepingCapacity: true) }
        if !slots.isEmpty { slots.removeAll(keepingCapacity: true) }
        if !outer.isEmpty { outer.removeAll(keepingCapacity: true) }
        if !keys.isEmpty { keys.removeAll(keepingCapacity: true) }
    }
}

/// A position in validated input: the offset of an item's head, and the index of the first
/// record whose offset is at or after it.
struct Cursor {
    var offset: Int
    var record: Int
}

/// The single validating pass over untrusted input.
///
/// It checks everything that does not depend on the Swift type being decoded: well-formed
/// heads, shortest forms, definite lengths, lengths against the remaining input (before
/// anything is allocated), nesting depth, UTF-8, text-string map keys without duplicates,
/// and the allowed tags and simple values. Afterwards the decoder can read the input
/// without re-checking, and only type-directed checks remain.
struct Indexer {
    typealias Frame = ItemIndex.Frame
    typealias KeyRange = ItemIndex.KeyRange

    private struct Head {
        var major: UInt8
        var info: UInt8
        var argument: UInt64
        var length: Int
        /// `false` if the argument would fit in a shorter head (ignored for floats).
        var isShortest: Bool
        var problem: Problem
    }

    private enum Problem {
        case none, truncated, reserved, indefinite
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var records: [ContainerSpan]
    private var slots: [KeySlot]
    /// The innermost open container (meaningful only when `depth > 0`).
    private var top = Frame(record: 0, total: 0, remaining: 0, isMap: false, keyBase: 0)
    /// The open containers outside `top`, outermost first.
    private var outer: [Frame]
    /// The number of open containers, `top` included.
    private var depth = 0
    private var keys: [KeyRange]

    /// Takes over the arrays of `index`, which must be empty, so that their capacity is reused.
    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int, taking index: inout ItemIndex) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        records = []
        slots = []
        outer = []
        keys = []
        swap(&records, &index.records)
        swap(&slots, &index.slots)
        swap(&outer, &index.outer)
        swap(&keys, &index.keys)
        // A modest guess that avoids most regrowth for typical messages; the arrays still grow
        // on demand (to at most one record per two input bytes).
        records.reserveCapacity(min(bytes.count / 16 + 4, 1024))
        keys.reserveCapacity(16)
        outer.reserveCapacity(8)
    }

    /// Validates `bytes` as exactly one CBOR data item and leaves its container records in
    /// `index.records` (which are meaningless if this throws).
    static func index(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int, into index: inout ItemIndex) throws {
        var indexer = Indexer(bytes: bytes, maxDepth: maxDepth, taking: &index)
        defer {
            swap(&indexer.records, &index.records)
            swap(&indexer.slots, &index.slots)
            swap(&indexer.outer, &index.outer)
            swap(&indexer.keys, &index.keys)
        }
        try indexer.run()
    }

    private mutating func run() throws {
        let end = bytes.count
        var position = 0
        while true {
            let start = position
            let head = readHead(at: position)
            if head.problem != .none {
                throw headFailure(head, at: position)
            }
            position += head.length
            let isKey = depth > 0 && top.isMap && top.remaining & 1 == 0
            if isKey && head.major != 3 {
                throw failure(.typeMismatch, "map key must be a text string, found \(Self.describe(head))", at: start)
            }
            switch head.major {
            case 0, 1:
                if !head.isShortest { throw nonCanonical(head, at: start) }
            case 2, 3:
                guard head.argument <= UInt64(end &- position) else {
                    throw lengthFailure(head, available: end &- position, at: start)
                }
                if !head.isShortest { throw nonCanonical(head, at: start) }
                let length = Int(head.argument)
                if head.major == 3,
                    let bad = UTF8Check.firstInvalidByteUnlessShortASCII(in: bytes, start: position, count: length)
                {
                    throw failure(.invalidUTF8, "text string is not valid UTF-8 at byte \(bad)", at: start)
                }
                if isKey {
                    keys.append(
                        KeyRange(start: start, payload: position, end: position &+ length, record: records.count))
                }
                position &+= length
            case 4, 5:
                // Every element takes at least one byte (a map entry two), so a count that the
                // rest of the input cannot hold is rejected before anything is reserved for it.
                let available = UInt64(end &- position)
                let isMap = head.major == 5
                guard head.argument <= (isMap ? available / 2 : available) else {
                    throw lengthFailure(head, available: end &- position, at: start)
                }
                if !head.isShortest { throw nonCanonical(head, at: start) }
                guard depth < maxDepth else { throw tooDeep(at: start) }
                if head.argument > 0 {
                    records.append(ContainerSpan(offset: start, end: 0, next: 0, slots: 0))
                    let items = Int(head.argument) &* (isMap ? 2 : 1)
                    if depth > 0 {
                        outer.append(top)
                    }
                    top = Frame(
                        record: records.count &- 1,
                        total: items,
                        remaining: items,
                        isMap: isMap,
                        keyBase: keys.count
                    )
                    depth &+= 1
                    continue
                }
            case 6:
                if !head.isShortest { throw nonCanonical(head, at: start) }
                guard head.argument == 1 || head.argument == 37 else {
                    throw failure(
                        .unsupported, "unsupported tag \(head.argument) (only 1 and 37 are allowed)", at: start)
                }
                guard depth < maxDepth else { throw tooDeep(at: start) }
                position = try tagContent(head.argument, at: position)
            default:
                switch head.info {
                case 20, 21, 22, 25, 26, 27:
                    break
                case 23:
                    throw failure(.unsupported, "undefined (0xf7) is not supported", at: start)
                default:
                    throw failure(.unsupported, "unsupported simple value", at: start)
                }
            }
            // The item is complete: close every container it completes.
            while depth > 0 {
                top.remaining &-= 1
                if top.remaining > 0 {
                    break
                }
                try close(at: position)
            }
            if depth == 0 {
                break
            }
        }
        guard position == end else {
            throw CBORError(
                .trailingBytes,
                "\(end - position) bytes follow the top-level item",
                path: nil,
                offset: position
            )
        }
    }

    /// Finishes the container in `top`, which ends at `position`.
    @inline(__always)
    private mutating func close(at position: Int) throws {
        if top.isMap {
            try checkDuplicateKeys(from: top.keyBase)
            records[top.record].slots = slots.count
            saveSlots(from: top.keyBase)
            keys.removeLast(keys.count &- top.keyBase)
        }
        records[top.record].end = position
        records[top.record].next = records.count
        depth &-= 1
        if let frame = outer.popLast() {
            top = frame
        }
    }

    /// Appends the entries of the map whose keys start at `keys[base]` to `slots`, sorted by
    /// key (length first, then bytes) if the map is large enough to be searched by bisection.
    private mutating func saveSlots(from base: Int) {
        let first = slots.count
        for i in base..<keys.count {
            let key = keys[i]
            slots.append(
                KeySlot(
                    payload: key.payload,
                    length: key.end &- key.payload,
                    value: Cursor(offset: key.end, record: key.record)
                )
            )
        }
        if keys.count - base > linearSearchLimit {
            let bytes = self.bytes
            slots[first...].sort { a, b in
                if a.length != b.length {
                    return a.length < b.length
                }
                return KeyLookup.compare(bytes, a.payload, bytes, b.payload, a.length) < 0
            }
        }
    }

    /// Validates the content of tag 1 (an integer or float) or tag 37 (a 16-byte byte
    /// string) at `position` and returns the offset after it.
    private func tagContent(_ tag: UInt64, at position: Int) throws -> Int {
        let content = readHead(at: position)
        if content.problem != .none {
            throw headFailure(content, at: position)
        }
        // A date is validated whole wherever it is, under an unknown key too (PROTOCOL.md section 5.3):
        // the same checks, with the same codes, as decoding it into a `Date`.
        if tag == 1 {
            switch content.major {
            case 0, 1:
                if !content.isShortest { throw nonCanonical(content, at: position) }
                guard DecoderState.float(Double.self, fromMajor: content.major, argument: content.argument) != nil
                else {
                    throw failure(
                        .valueOutOfRange, "date seconds are not exactly representable as Double", at: position)
                }
            case 7 where content.info >= 25 && content.info <= 27:
                let seconds: Double =
                    switch content.info {
                    case 25: HalfFloat.double(fromHalf: UInt16(truncatingIfNeeded: content.argument))
                    case 26: Double(Float(bitPattern: UInt32(truncatingIfNeeded: content.argument)))
                    default: Double(bitPattern: content.argument)
                    }
                guard seconds.isFinite else {
                    throw failure(.invalidValue, "date seconds are not finite", at: position)
                }
            default:
                throw failure(
                    .typeMismatch,
                    "tag 1 (epoch date) must enclose an integer or a float, found \(Self.describe(content))",
                    at: position
                )
            }
            return position + content.length
        }
        guard content.major == 2 else {
            throw failure(
                .typeMismatch,
                "tag 37 (UUID) must enclose a byte string, found \(Self.describe(content))",
                at: position
            )
        }
        let available = bytes.count - position - content.length
        guard content.argument <= UInt64(available) else {
            throw lengthFailure(content, available: available, at: position)
        }
        if !content.isShortest { throw nonCanonical(content, at: position) }
        guard content.argument == 16 else {
            throw failure(.invalidValue, "a UUID must be 16 bytes, found \(content.argument)", at: position)
        }
        return position + content.length + 16
    }

    /// Reads the head of the item at `position`; `problem` reports truncation, reserved
    /// additional information and indefinite lengths.
    @inline(__always)
    private func readHead(at position: Int) -> Head {
        let end = bytes.count
        guard position < end, let base = bytes.baseAddress else {
            return Head(major: 0, info: 0, argument: 0, length: 0, isShortest: true, problem: .truncated)
        }
        let initial = base[position]
        let major = initial &>> 5
        let info = initial & 0x1f
        if info < 24 {
            return Head(major: major, info: info, argument: UInt64(info), length: 1, isShortest: true, problem: .none)
        }
        if info > 27 {
            return Head(
                major: major,
                info: info,
                argument: 0,
                length: 1,
                isShortest: true,
                problem: info == 31 ? .indefinite : .reserved
            )
        }
        let extra = 1 &<< Int(info &- 24)  // 1, 2, 4 or 8 bytes
        guard end &- position > extra else {
            return Head(major: major, info: info, argument: 0, length: 0, isShortest: true, problem: .truncated)
        }
        let source = UnsafeRawPointer(base + position + 1)
        let argument: UInt64
        switch extra {
        case 1: argument = UInt64(source.load(as: UInt8.self))
        case 2: argument = UInt64(UInt16(bigEndian: source.loadUnaligned(as: UInt16.self)))
        case 4: argument = UInt64(UInt32(bigEndian: source.loadUnaligned(as: UInt32.self)))
        default: argument = UInt64(bigEndian: source.loadUnaligned(as: UInt64.self))
        }
        let minimum: UInt64 = info == 24 ? 24 : (1 &<< UInt64(4 &* extra))
        return Head(
            major: major,
            info: info,
            argument: argument,
            length: 1 &+ extra,
            isShortest: argument >= minimum,
            problem: .none
        )
    }

    // MARK: Errors (built out of line to keep the loop small)

    @inline(never)
    private func headFailure(_ head: Head, at position: Int) -> CBORError {
        switch head.problem {
        case .truncated:
            return failure(.truncated, "input ends inside or before the head of a data item", at: position)
        case .reserved:
            return failure(.unsupported, "reserved additional information \(head.info)", at: position)
        default:
            return failure(.indefiniteLength, "indefinite-length items and break codes are not allowed", at: position)
        }
    }

    @inline(never)
    private func nonCanonical(_ head: Head, at position: Int) -> CBORError {
        failure(.nonCanonical, "argument \(head.argument) is not in its shortest form", at: position)
    }

    @inline(never)
    private func lengthFailure(_ head: Head, available: Int, at position: Int) -> CBORError {
        let what: String
        switch head.major {
        case 2: what = "byte string of \(head.argument) bytes"
        case 3: what = "text string of \(head.argument) bytes"
        case 4: what = "array of \(head.argument) elements"
        default: what = "map of \(head.argument) entries"
        }
        return failure(.lengthBeyondInput, "\(what) cannot fit in the \(available) remaining bytes", at: position)
    }

    @inline(never)
    private func tooDeep(at position: Int) -> CBORError {
        failure(.tooDeep, "nesting exceeds the maximum depth of \(maxDepth)", at: position)
    }

    /// Fails if the keys of the map that just ended contain a duplicate.
    private func checkDuplicateKeys(from base: Int) throws {
        let count = keys.count - base
        guard count > 1 else { return }
        // Fast path: keys already in deterministic order (as this encoder writes them).
        var ascending = true
        for i in (base + 1)..<keys.count where !precedes(keys[i - 1], keys[i]) {
            ascending = false
            break
        }
        if ascending {
            return
        }
        if count <= 16 {
            for i in base..<keys.count {
                for j in (i + 1)..<keys.count where equal(keys[i], keys[j]) {
                    throw duplicate(keys[j])
                }
            }
            return
        }
        let sorted = keys[base...].sorted { precedes($0, $1) }
        for i in 1..<sorted.count where !precedes(sorted[i - 1], sorted[i]) {
            throw duplicate(sorted[i - 1].start > sorted[i].start ? sorted[i - 1] : sorted[i])
        }
    }

    private func duplicate(_ key: KeyRange) -> CBORError {
        failure(.duplicateKey, "duplicate map key '\(string(key))'", at: key.start)
    }

    /// Bytewise order of the encoded keys (RFC 8949 §4.2.1).
    private func precedes(_ a: KeyRange, _ b: KeyRange) -> Bool {
        let aLength = a.end - a.start
        let bLength = b.end - b.start
        let common = min(aLength, bLength)
        var i = 0
        if let base = bytes.baseAddress {
            // Eight bytes at a time: big-endian words order like their bytes. Both keys lie
            // within `bytes`, so every load does too.
            let raw = UnsafeRawPointer(base)
            while common - i >= 8 {
                let x = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: a.start + i, as: UInt64.self))
                let y = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: b.start + i, as: UInt64.self))
                if x != y {
                    return x < y
                }
                i += 8
            }
        }
        while i < common {
            let x = bytes[a.start + i]
            let y = bytes[b.start + i]
            if x != y {
                return x < y
            }
            i += 1
        }
        return aLength < bLength
    }

    private func equal(_ a: KeyRange, _ b: KeyRange) -> Bool {
        let length = a.end - a.payload
        guard length == b.end - b.payload else { return false }
        var i = 0
        while i < length {
            if bytes[a.payload + i] != bytes[b.payload + i] {
                return false
            }
            i += 1
        }
        return true
    }

    private func string(_ key: KeyRange) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[key.payload..<key.end]), as: UTF8.self)
    }

    /// An error whose message carries the coding path of the item being read.
    @inline(never)
    private func failure(_ code: CBORError.Code, _ detail: String, at offset: Int) -> CBORError {
        CBORError(code, detail, path: currentPath(), offset: offset)
    }

    /// The coding path of the item being read, from the containers still open.
    private func currentPath() -> [any CodingKey] {
        var path: [any CodingKey] = []
        for frame in outer + (depth > 0 ? [top] : []) {
            let consumed = frame.total - frame.remaining
            if frame.isMap {
                // An odd count means a key has been read and its value is in progress.
                guard consumed & 1 == 1 else { break }
                let keyIndex = frame.keyBase + consumed / 2
                guard keyIndex < keys.count else { break }
                path.append(AnyCodingKey(stringValue: string(keys[keyIndex])))
            } else {
                path.append(AnyCodingKey(index: consumed))
            }
        }
        return path
    }

    private static func describe(_ head: Head) -> String {
        ItemDescription.item(major: head.major, info: head.info, argument: head.argument)
    }
}

enum ItemDescription {
    /// A short name of an item's type for error messages.
    static func item(major: UInt8, info: UInt8, argument: UInt64) -> String {
        switch major {
        case 0: return "unsigned integer"
        case 1: return "negative integer"
        case 2: return "byte string"
        case 3: return "text string"
        case 4: return "array"
        case 5: return "map"
        case 6: return "tag \(argument)"
        default:
            switch info {
            case 20: return "false"
            case 21: return "true"
            case 22: return "null"
            case 25, 26, 27: return "float"
            default: return "simple value"
            }
        }
    }
}
