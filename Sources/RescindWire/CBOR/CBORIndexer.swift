/// A non-empty array or map found by the indexer, in pre-order.
///
/// `end` is the offset just past the container; `next` is the index of the first record
/// after the container's subtree. Together they let the decoder skip any item in O(1).
/// Scalars, strings, tags and empty containers get no record: they can be skipped by
/// reading their head.
struct _CBORRecord {
    var offset: Int
    var end: Int
    var next: Int
}

/// A position in validated input: the offset of an item's head, and the index of the first
/// record whose offset is at or after it.
struct _CBORCursor {
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
struct _CBORIndexer {
    private struct Frame {
        var record: Int
        /// Items expected in total (twice the entry count for a map).
        var total: Int
        var remaining: Int
        var isMap: Bool
        /// Where this map's keys start in `keys`.
        var keyBase: Int
    }

    /// An encoded map key: `start` is the head, `payload ..< end` the UTF-8 bytes.
    private struct KeyRange {
        var start: Int
        var payload: Int
        var end: Int
    }

    private struct Head {
        var major: UInt8
        var info: UInt8
        var argument: UInt64
        var length: Int
        /// `false` if the argument would fit in a shorter head (ignored for floats).
        var isShortest: Bool
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var records: [_CBORRecord] = []
    /// The innermost open container (meaningful only when `depth > 0`).
    private var top = Frame(record: 0, total: 0, remaining: 0, isMap: false, keyBase: 0)
    /// The open containers outside `top`, outermost first.
    private var outer: [Frame] = []
    /// The number of open containers, `top` included.
    private var depth = 0
    private var keys: [KeyRange] = []

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Validates `bytes` as exactly one CBOR data item and returns its container records.
    static func index(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) throws -> [_CBORRecord] {
        var indexer = _CBORIndexer(bytes: bytes, maxDepth: maxDepth)
        try indexer.run()
        return indexer.records
    }

    private mutating func run() throws {
        let end = bytes.count
        var position = 0
        while true {
            let start = position
            let head = try readHead(at: position)
            position += head.length
            let isKey: Bool
            if depth > 0, top.isMap, top.remaining & 1 == 0 {
                isKey = true
                guard head.major == 3 else {
                    throw failure(
                        .typeMismatch,
                        "map key must be a text string, found \(_CBORIndexer.describe(head))",
                        at: start
                    )
                }
            } else {
                isKey = false
            }
            switch head.major {
            case 0, 1:
                try requireShortest(head, at: start)
            case 2, 3:
                let available = end - position
                guard head.argument <= UInt64(available) else {
                    throw failure(
                        .lengthBeyondInput,
                        "\(head.major == 2 ? "byte" : "text") string length \(head.argument) exceeds the \(available) remaining bytes",
                        at: start
                    )
                }
                try requireShortest(head, at: start)
                let length = Int(head.argument)
                if head.major == 3, let bad = _CBORUTF8.firstInvalidByte(in: bytes, start: position, count: length) {
                    throw failure(.invalidUTF8, "text string is not valid UTF-8 at byte \(bad)", at: start)
                }
                if isKey {
                    keys.append(KeyRange(start: start, payload: position, end: position + length))
                }
                position += length
            case 4, 5:
                let available = UInt64(end - position)
                let isMap = head.major == 5
                // Every element takes at least one byte, so a count the rest of the input
                // cannot hold is rejected before anything is reserved for it.
                guard head.argument <= (isMap ? available / 2 : available) else {
                    throw failure(
                        .lengthBeyondInput,
                        "\(isMap ? "map" : "array") of \(head.argument) \(isMap ? "entries" : "elements") cannot fit in the \(available) remaining bytes",
                        at: start
                    )
                }
                try requireShortest(head, at: start)
                guard depth < maxDepth else {
                    throw failure(.tooDeep, "nesting exceeds the maximum depth of \(maxDepth)", at: start)
                }
                if head.argument > 0 {
                    records.append(_CBORRecord(offset: start, end: 0, next: 0))
                    let items = Int(head.argument) * (isMap ? 2 : 1)
                    if depth > 0 {
                        outer.append(top)
                    }
                    top = Frame(
                        record: records.count - 1,
                        total: items,
                        remaining: items,
                        isMap: isMap,
                        keyBase: keys.count
                    )
                    depth += 1
                    continue
                }
            case 6:
                try requireShortest(head, at: start)
                guard head.argument == 1 || head.argument == 37 else {
                    throw failure(
                        .unsupported,
                        "unsupported tag \(head.argument) (only 1 and 37 are allowed)",
                        at: start
                    )
                }
                guard depth < maxDepth else {
                    throw failure(.tooDeep, "nesting exceeds the maximum depth of \(maxDepth)", at: start)
                }
                let content = try readHead(at: position)
                if head.argument == 1 {
                    switch content.major {
                    case 0, 1:
                        try requireShortest(content, at: position)
                    case 7 where content.info >= 25 && content.info <= 27:
                        break
                    default:
                        throw failure(
                            .typeMismatch,
                            "tag 1 (epoch date) must enclose an integer or a float, found \(_CBORIndexer.describe(content))",
                            at: position
                        )
                    }
                    position += content.length
                } else {
                    guard content.major == 2 else {
                        throw failure(
                            .typeMismatch,
                            "tag 37 (UUID) must enclose a byte string, found \(_CBORIndexer.describe(content))",
                            at: position
                        )
                    }
                    let available = end - position - content.length
                    guard content.argument <= UInt64(available) else {
                        throw failure(
                            .lengthBeyondInput,
                            "byte string length \(content.argument) exceeds the \(available) remaining bytes",
                            at: position
                        )
                    }
                    try requireShortest(content, at: position)
                    guard content.argument == 16 else {
                        throw failure(
                            .invalidValue,
                            "a UUID must be 16 bytes, found \(content.argument)",
                            at: position
                        )
                    }
                    position += content.length + 16
                }
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
                top.remaining -= 1
                if top.remaining > 0 {
                    break
                }
                if top.isMap {
                    try checkDuplicateKeys(from: top.keyBase)
                    keys.removeSubrange(top.keyBase...)
                }
                records[top.record].end = position
                records[top.record].next = records.count
                depth -= 1
                if let frame = outer.popLast() {
                    top = frame
                }
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

    /// Reads and validates the head of the item at `position`.
    @inline(__always)
    private func readHead(at position: Int) throws -> Head {
        let end = bytes.count
        guard position < end else {
            throw failure(.truncated, "input ends where a data item was expected", at: position)
        }
        let initial = bytes[position]
        let major = initial &>> 5
        let info = initial & 0x1f
        switch info {
        case 0..<24:
            return Head(major: major, info: info, argument: UInt64(info), length: 1, isShortest: true)
        case 24...27:
            let extra = 1 << Int(info - 24)  // 1, 2, 4 or 8 bytes
            guard end - position > extra else {
                throw failure(.truncated, "input ends inside the head of an item", at: position)
            }
            var argument: UInt64 = 0
            for i in 1...extra {
                argument = argument &<< 8 | UInt64(bytes[position + i])
            }
            let minimum: UInt64 = info == 24 ? 24 : (1 &<< UInt64(4 * extra))
            return Head(
                major: major,
                info: info,
                argument: argument,
                length: 1 + extra,
                isShortest: argument >= minimum
            )
        case 28...30:
            throw failure(.unsupported, "reserved additional information \(info)", at: position)
        default:
            throw failure(.indefiniteLength, "indefinite-length items and break codes are not allowed", at: position)
        }
    }

    /// Fails unless an integer, length, count or tag number uses its shortest head. Called
    /// after the length checks, so that an impossible length is reported as such.
    private func requireShortest(_ head: Head, at position: Int) throws {
        guard head.isShortest else {
            throw failure(
                .nonCanonical,
                "argument \(head.argument) is not in its shortest form",
                at: position
            )
        }
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
                path.append(_CBORKey(stringValue: string(keys[keyIndex])))
            } else {
                path.append(_CBORKey(index: consumed))
            }
        }
        return path
    }

    private static func describe(_ head: Head) -> String {
        _CBORDescribe.item(major: head.major, info: head.info, argument: head.argument)
    }
}

enum _CBORDescribe {
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
