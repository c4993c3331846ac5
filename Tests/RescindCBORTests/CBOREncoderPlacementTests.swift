import Foundation
import RescindCBOR
import Testing

/// Whether every map in `bytes` (one CBOR item as this encoder writes it: definite lengths, no
/// indefinite items) has its keys in strictly increasing bytewise order of their encodings
/// (RFC 8949 §4.2.1). With the decoder's own checks (shortest forms, no duplicates), this is
/// what "deterministic" means.
func cborKeysInOrder(_ bytes: [UInt8]) -> Bool {
    var ordered = true
    func head(_ offset: Int) -> (major: UInt8, argument: Int, length: Int) {
        let info = Int(bytes[offset] & 0x1f)
        guard info >= 24 else { return (bytes[offset] >> 5, info, 1) }
        let extra = 1 << (info - 24)
        var argument = 0
        for i in 1...extra {
            argument = argument << 8 | Int(bytes[offset + i])
        }
        return (bytes[offset] >> 5, argument, 1 + extra)
    }
    func end(_ offset: Int) -> Int {
        let item = head(offset)
        switch item.major {
        case 2, 3: return offset + item.length + item.argument
        case 4:
            var position = offset + item.length
            for _ in 0..<item.argument { position = end(position) }
            return position
        case 5:
            var position = offset + item.length
            var previous: [UInt8]?
            for _ in 0..<item.argument {
                let keyEnd = end(position)
                let key = Array(bytes[position..<keyEnd])
                if let previous, !previous.lexicographicallyPrecedes(key) { ordered = false }
                previous = key
                position = end(keyEnd)
            }
            return position
        case 6: return end(offset + item.length)
        default: return offset + item.length
        }
    }
    return end(0) == bytes.count && ordered
}

/// Whether `value` comes back equal from its encoding, and the encoding has its keys in order.
func cborCanonicalRoundTrip<T: Codable & Equatable>(_ value: T) throws -> Bool {
    let bytes = try CBOREncoder().encode(value)
    let back = try CBORDecoder().decode(T.self, from: bytes)
    return cborKeysInOrder(bytes) && back == value
}

/// A value whose `encode(to:)` is the closure: for writing the Codable API out of sequence.
struct CBORScript: Encodable {
    let body: (any Encoder) throws -> Void
    func encode(to encoder: any Encoder) throws { try body(encoder) }
}

/// Keys for scripts.
struct CBORName: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension CBORName: ExpressibleByStringLiteral {
    init(stringLiteral value: String) { self.init(stringValue: value) }
}

/// Keeps a container for a value encoded later to write into (which the encoder refuses).
final class CBORKept: @unchecked Sendable {
    var container: KeyedEncodingContainer<CBORName>?
}

/// Writes through `nestedContainer` and `nestedUnkeyedContainer`, one container at a time.
struct CBORSequentialNesting: Encodable {
    enum Keys: String, CodingKey { case zeta, alpha, list, inner, last }
    enum InnerKeys: String, CodingKey { case y, x }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(1, forKey: .zeta)
        var list = container.nestedUnkeyedContainer(forKey: .list)
        try list.encode("a")
        var deeper = list.nestedContainer(keyedBy: InnerKeys.self)
        try deeper.encode(true, forKey: .y)
        try deeper.encode(false, forKey: .x)
        try list.encode("b")
        var inner = container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
        try inner.encode(2.5, forKey: .y)
        try inner.encodeNil(forKey: .x)
        try container.encode("a", forKey: .alpha)  // completes `inner`
        try container.encode([1, 2], forKey: .last)
    }
}

/// Reads `count` of a nested unkeyed container after its parent was written again.
/// What `lateWritesLandWhereTheyBelong` writes out of sequence, in order.
struct CBORGrownList: Encodable {
    var list = Array(0..<24)
    var a = 0
    var count = 24
}

struct CBORLateCount: Encodable {
    enum Keys: String, CodingKey { case list, after, count }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var list = container.nestedUnkeyedContainer(forKey: .list)
        try list.encode(1)
        try container.encode(list.count, forKey: .after)  // read before the write completes `list`
        try container.encode(list.count, forKey: .count)  // read after
    }
}

@Suite("CBOREncoder placement")
struct CBOREncoderPlacementTests {
    @Test func ordinaryValuesComeBackInCanonicalForm() throws {
        #expect(try cborCanonicalRoundTrip(try cborSampleOrder()))
        #expect(try cborCanonicalRoundTrip(CBORAllIntegers.minimum))
        #expect(try cborCanonicalRoundTrip(CBORAllIntegers.maximum))
        #expect(try cborCanonicalRoundTrip(CBORWide()))
        #expect(try cborCanonicalRoundTrip(CBORUnorderedFields()))
        #expect(try cborCanonicalRoundTrip(CBOROptionalFields(a: nil, b: "x")))
        #expect(try cborCanonicalRoundTrip(CBOREmptyStruct()))
        #expect(try cborCanonicalRoundTrip([1, nil, 3] as [Int?]))
        #expect(try cborCanonicalRoundTrip("lone string"))
        #expect(try cborCanonicalRoundTrip(-1.5))
        #expect(try cborCanonicalRoundTrip(Data(repeating: 7, count: 300)))
        #expect(try cborCanonicalRoundTrip([UUID(), UUID()]))
        for shape in [CBORShape.circle(radius: 2), .rectangle(1, 2), .labelled(name: "n", tags: nil), .point] {
            #expect(try cborCanonicalRoundTrip(shape))
        }
    }

    @Test func sequentialNestedContainersHaveTheirBytes() throws {
        // {"last": [1, 2], "list": ["a", {"x": false, "y": true}, "b"], "zeta": 1, "alpha": "a",
        //  "inner": {"x": null, "y": 2.5}}
        #expect(
            try cborEncodeHex(CBORSequentialNesting())
                == "a5" + "646c617374" + "820102" + "646c697374" + "83" + "6161" + "a2" + "6178f4" + "6179f5" + "6162"
                + "647a657461" + "01" + "65616c706861" + "6161" + "65696e6e6572" + "a2" + "6178f6" + "6179f94100")
    }

    @Test func longHeadsKeysAndLargeMaps() throws {
        // Counts of 24 and more need a longer head than the placeholder byte.
        #expect(try cborCanonicalRoundTrip(Array(0..<24)))
        #expect(try cborEncodeHex(Array(0..<24)).hasPrefix("9818"))
        #expect(try cborCanonicalRoundTrip(Array(0..<300)))
        #expect(try cborCanonicalRoundTrip(Array(repeating: [UInt8](repeating: 1, count: 3), count: 70_000)))
        var wide: [String: Int] = [:]
        for i in 0..<300 {
            wide["key\(i)"] = i
        }
        #expect(try cborCanonicalRoundTrip(wide))
        #expect(try cborCanonicalRoundTrip(["x": wide, "a": [:]]))
        // Keys that share their first eight bytes, keys of eight and sixteen bytes, and keys
        // longer than 23 bytes (a two-byte head).
        let keys = [
            "prefix_a", "prefix_b", "prefix_aa", "prefix_a_longer_than_23_bytes", "prefix_a_longer_than_23_bytez",
            "sixteen_bytes_16", "sixteen_bytes_15", "", "é", "ü", "a", "b",
        ]
        var awkward: [String: Int] = [:]
        for (i, key) in keys.enumerated() {
            awkward[key] = i
        }
        #expect(try cborCanonicalRoundTrip(awkward))
        #expect(
            try cborCanonicalRoundTrip(
                Dictionary(uniqueKeysWithValues: (0..<40).map { (String(repeating: "k", count: $0), $0) })))
    }

    /// Writes to containers that are complete are moved into place: the bytes are those of the same
    /// content written in order.
    @Test func lateWritesLandWhereTheyBelong() throws {
        // A late element takes a complete array from 23 elements to 24 (a longer head); the
        // count read afterwards sees it.
        let grown = CBORScript { encoder in
            var container = encoder.container(keyedBy: CBORName.self)
            var list = container.nestedUnkeyedContainer(forKey: "list")
            for i in 0..<23 { try list.encode(i) }
            try container.encode(0, forKey: "a")
            try list.encode(23)
            try container.encode(list.count, forKey: "count")
        }
        #expect(try CBOREncoder().encode(grown) == CBOREncoder().encode(CBORGrownList()))

        // A complete map that its parent's sorting has moved, written to after the parent is complete.
        let moved = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            var parent = root.nestedContainer(keyedBy: CBORName.self, forKey: "p")
            var inner = parent.nestedContainer(keyedBy: CBORName.self, forKey: "zz")
            try inner.encode(1, forKey: "b")
            try parent.encode(1, forKey: "a")  // completes `inner`
            try root.encode(0, forKey: "q")  // completes `parent`, which puts "a" before "zz"
            try inner.encode(2, forKey: "a")
        }
        // {"p": {"a": 1, "zz": {"a": 2, "b": 1}}, "q": 0}
        #expect(try cborEncodeHex(moved) == "a2" + "6170" + "a2" + "616101" + "627a7a" + "a2616102616201" + "617100")

        // A container opened in a complete one, then written to.
        let opened = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            var list = root.nestedUnkeyedContainer(forKey: "l")
            try root.encode(1, forKey: "x")
            var late = list.nestedContainer(keyedBy: CBORName.self)
            try late.encode("v", forKey: "k")
            try list.encode(5)
        }
        // {"l": [{"k": "v"}, 5], "x": 1}
        #expect(try cborEncodeHex(opened) == "a2" + "616c" + "82" + "a1616b6176" + "05" + "617801")

        // A late struct value, whose own containers are written at the end and moved.
        let structs = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            var list = root.nestedUnkeyedContainer(forKey: "l")
            try root.encode(1, forKey: "x")
            try list.encode(CBORAddress(street: "s", city: "c", postcode: nil))
        }
        #expect(
            try cborEncodeHex(structs)
                == "a2" + "616c" + "81" + "a2" + "6463697479" + "6163" + "66737472656574" + "6173" + "617801")
    }

    @Test func superEncodersBecomeWhatTheyAreAskedFor() throws {
        let unused = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            _ = root.superEncoder()
        }
        #expect(try cborEncodeHex(unused) == "a1" + "657375706572" + "a0")  // {"super": {}}
        let unkeyed = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            var list = root.superEncoder().unkeyedContainer()
            try list.encode(1)
        }
        #expect(try cborEncodeHex(unkeyed) == "a1" + "657375706572" + "8101")  // {"super": [1]}
        let single = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            let later = root.superEncoder(forKey: "b")
            try root.encode(1, forKey: "a")
            var value = later.singleValueContainer()
            try value.encode(CBORAddress(street: "s", city: "c", postcode: nil))
        }
        // {"a": 1, "b": {"city": "c", "street": "s"}}
        #expect(
            try cborEncodeHex(single)
                == "a2" + "616101" + "6162" + "a2" + "6463697479" + "6163" + "66737472656574" + "6173")
    }

    /// A nested value that throws leaves its entry begun and unwritten: the call fails even if an enclosing value
    /// catches the error and goes on.
    @Test func anErrorCaughtByAnEnclosingValueStillFailsTheCall() throws {
        struct Refuses: Encodable {
            func encode(to encoder: any Encoder) throws {
                throw EncodingError.invalidValue(0, .init(codingPath: encoder.codingPath, debugDescription: "no"))
            }
        }
        let swallows = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            try? root.encode(Refuses(), forKey: "bad")
            try root.encode(1, forKey: "good")
        }
        let error = cborEncodeError(swallows)
        #expect(error?.code == .encodingFailed)
        #expect(error?.message.contains("bad") == true)
        // The same encoder encodes the next value cleanly.
        #expect(try cborEncodeHex(["k": 1]) == "a1616b01")
    }

    @Test func misuseOfLateWritesIsRefused() throws {
        let twice = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            let slot = root.superEncoder()
            var first = slot.singleValueContainer()
            try first.encode(1)
            _ = slot.container(keyedBy: CBORName.self)
        }
        #expect(
            cborEncodeError(twice)?.message
                == "requested a keyed container from an encoder that already holds a single value at super")
        let lateDuplicate = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            var inner = root.nestedContainer(keyedBy: CBORName.self, forKey: "m")
            try inner.encode(1, forKey: "k")
            try root.encode(1, forKey: "x")
            try inner.encode(2, forKey: "k")
        }
        #expect(cborEncodeError(lateDuplicate)?.message == "key 'k' was encoded twice in one keyed container at m")
        // A nested value writes to its parent's container, which it was handed.
        let kept = CBORKept()
        let smuggler = CBORScript { encoder in
            var root = encoder.container(keyedBy: CBORName.self)
            kept.container = root
            try root.encode(
                CBORScript { _ in try kept.container?.encode(1, forKey: "inside") }, forKey: "nested")
        }
        #expect(
            cborEncodeError(smuggler)?.message
                == "a container was written while a value nested in it was being encoded at nested")
    }
    @Test func recycledStatesStartClean() throws {
        // The second call reuses the first call's state (and the third the second's).
        let encoder = CBOREncoder()
        let big = try encoder.encode(Array(0..<1000))
        let small = try encoder.encode(["k": 1])
        #expect(cborHex(small) == "a1616b01")
        #expect(try encoder.encode(Array(0..<1000)) == big)
        #expect(cborEncodeError(CBORDuplicateKeyWriter())?.code == .encodingFailed)
        #expect(cborHex(try encoder.encode(["k": 1])) == "a1616b01")
    }
}
