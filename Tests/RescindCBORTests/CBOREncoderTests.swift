import Foundation
import RescindCBOR
import Testing

// MARK: - Shared helpers (used by every CBOR*Tests.swift file)

/// Lower-case hex of `bytes`, no separators.
func cborHex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// Bytes from hex; spaces are ignored. Only for literals in tests.
func cborBytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16) ?? 0 }
}

func cborEncodeHex<T: Encodable>(_ value: T) throws -> String {
    cborHex(try CBOREncoder().encode(value))
}

func cborRoundTrip<T: Codable>(_ value: T, as type: T.Type = T.self) throws -> T {
    try CBORDecoder().decode(type, from: CBOREncoder().encode(value))
}

/// The `CBORError` that decoding throws, or `nil` if it succeeds or throws something else.
func cborDecodeError<T: Decodable>(
    _ type: T.Type,
    _ bytes: [UInt8],
    limits: CBORDecoder.Limits = .init()
) -> CBORError? {
    do {
        _ = try CBORDecoder(limits: limits).decode(type, from: bytes)
        return nil
    } catch let error as CBORError {
        return error
    } catch {
        return nil
    }
}

/// The `CBORError` that encoding throws, or `nil`.
func cborEncodeError<T: Encodable>(_ value: T) -> CBORError? {
    do {
        _ = try CBOREncoder().encode(value)
        return nil
    } catch let error as CBORError {
        return error
    } catch {
        return nil
    }
}

// MARK: - Fixtures

struct CBORUnorderedFields: Codable, Equatable {
    var zebra = 1
    var a = 2
    var mm = 3
    var b = 4
}

struct CBORReorderedFields: Codable, Equatable {
    var b = 4
    var mm = 3
    var zebra = 1
    var a = 2
}

struct CBOROptionalFields: Codable, Equatable {
    var a: Int?
    var b: String?
}

/// Writes an explicit null for `a` instead of omitting it.
struct CBORExplicitNull: Encodable {
    enum CodingKeys: String, CodingKey { case a, b }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeNil(forKey: .a)
        try container.encode(1, forKey: .b)
    }
}

/// Uses a nested container after the parent has moved on, which a single linear buffer
/// could not handle.
struct CBORInterleaved: Codable, Equatable {
    var inner: [Int]
    var after: String
    var deep: Int

    enum CodingKeys: String, CodingKey { case inner, after, nested }
    enum NestedKeys: String, CodingKey { case deep }

    init(inner: [Int], after: String, deep: Int) {
        self.inner = inner
        self.after = after
        self.deep = deep
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var list = container.nestedUnkeyedContainer(forKey: .inner)
        var nested = container.nestedContainer(keyedBy: NestedKeys.self, forKey: .nested)
        try container.encode(after, forKey: .after)
        for value in inner {
            try list.encode(value)
        }
        try nested.encode(deep, forKey: .deep)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        after = try container.decode(String.self, forKey: .after)
        var list = try container.nestedUnkeyedContainer(forKey: .inner)
        var values: [Int] = []
        while !list.isAtEnd {
            values.append(try list.decode(Int.self))
        }
        inner = values
        deep = try container.nestedContainer(keyedBy: NestedKeys.self, forKey: .nested).decode(Int.self, forKey: .deep)
    }
}

struct CBORDuplicateKeyWriter: Encodable {
    enum CodingKeys: String, CodingKey { case id }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(1, forKey: .id)
        try container.encode(2, forKey: .id)
    }
}

struct CBORTwoSingleValues: Encodable {
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(1)
        try container.encode(2)
    }
}

struct CBORConflictingContainers: Encodable {
    enum CodingKeys: String, CodingKey { case a }
    func encode(to encoder: any Encoder) throws {
        var keyed = encoder.container(keyedBy: CodingKeys.self)
        try keyed.encode(1, forKey: .a)
        var unkeyed = encoder.unkeyedContainer()
        try unkeyed.encode(2)
    }
}

struct CBOREmptyStruct: Codable, Equatable {}

/// Encodes nothing at all.
struct CBORSilent: Encodable {
    func encode(to encoder: any Encoder) throws {}
}

@Suite("CBOREncoder exact bytes")
struct CBOREncoderTests {
    // RFC 8949 Appendix A.

    @Test(arguments: [
        (UInt64(0), "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"),
        (100, "1864"), (1000, "1903e8"), (1_000_000, "1a000f4240"),
        (1_000_000_000_000, "1b000000e8d4a51000"), (UInt64.max, "1bffffffffffffffff"),
        (255, "18ff"), (256, "190100"), (65535, "19ffff"), (65536, "1a00010000"),
        (4_294_967_295, "1affffffff"), (4_294_967_296, "1b0000000100000000"),
    ])
    func unsignedIntegers(value: UInt64, hex: String) throws {
        #expect(try cborEncodeHex(value) == hex)
        if let int = Int64(exactly: value) {
            #expect(try cborEncodeHex(int) == hex)
        }
    }

    @Test(arguments: [
        (Int64(-1), "20"), (-10, "29"), (-24, "37"), (-25, "3818"), (-100, "3863"), (-1000, "3903e7"),
        (-256, "38ff"), (-257, "390100"), (Int64.min, "3b7fffffffffffffff"),
    ])
    func negativeIntegers(value: Int64, hex: String) throws {
        #expect(try cborEncodeHex(value) == hex)
        if let int = Int(exactly: value) {
            #expect(try cborEncodeHex(int) == hex)
        }
    }

    @Test func everyIntegerWidthUsesTheShortestForm() throws {
        #expect(try cborEncodeHex(Int8(-128)) == "387f")
        #expect(try cborEncodeHex(Int8(127)) == "187f")
        #expect(try cborEncodeHex(Int16(-32768)) == "397fff")
        #expect(try cborEncodeHex(Int32(Int32.min)) == "3a7fffffff")
        #expect(try cborEncodeHex(UInt8(24)) == "1818")
        #expect(try cborEncodeHex(UInt16(500)) == "1901f4")
        #expect(try cborEncodeHex(UInt32.max) == "1affffffff")
        #expect(try cborEncodeHex(UInt(7)) == "07")
        #expect(try cborEncodeHex([Int8(-1), 0, 1]) == "83200001")
    }

    @Test(arguments: [
        (0.0, "f90000"), (-0.0, "f98000"), (1.0, "f93c00"), (1.1, "fb3ff199999999999a"),
        (1.5, "f93e00"), (65504.0, "f97bff"), (100000.0, "fa47c35000"),
        (3.4028234663852886e+38, "fa7f7fffff"), (1.0e+300, "fb7e37e43c8800759c"),
        (5.960464477539063e-8, "f90001"), (0.00006103515625, "f90400"), (-4.0, "f9c400"),
        (-4.1, "fbc010666666666666"), (Double.infinity, "f97c00"), (-Double.infinity, "f9fc00"),
        (65505.0, "fa477fe100"), (0.1, "fb3fb999999999999a"),
    ])
    func doublesUseTheShortestExactWidth(value: Double, hex: String) throws {
        #expect(try cborEncodeHex(value) == hex)
    }

    @Test func nanIsCanonical() throws {
        #expect(try cborEncodeHex(Double.nan) == "f97e00")
        #expect(try cborEncodeHex(Double(bitPattern: 0x7ff0_0000_0000_0001)) == "f97e00")
        #expect(try cborEncodeHex(-Double.nan) == "f97e00")
        #expect(try cborEncodeHex(Float.nan) == "f97e00")
    }

    @Test func floats() throws {
        #expect(try cborEncodeHex(Float(1.5)) == "f93e00")
        #expect(try cborEncodeHex(Float(0.1)) == "fa3dcccccd")
        #expect(try cborEncodeHex(Float.greatestFiniteMagnitude) == "fa7f7fffff")
        #expect(try cborEncodeHex(Float.infinity) == "f97c00")
    }

    @Test func simpleValues() throws {
        #expect(try cborEncodeHex(true) == "f5")
        #expect(try cborEncodeHex(false) == "f4")
        #expect(try cborEncodeHex(Int?.none) == "f6")
        #expect(try cborEncodeHex([Int?.none, 1]) == "82f601")
    }

    @Test(arguments: [
        ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ("\"\\", "62225c"),
        ("\u{00fc}", "62c3bc"), ("\u{6c34}", "63e6b0b4"), ("\u{10151}", "64f0908591"),
        ("abcdefghijklmnopqrstuvwx", "78186162636465666768696a6b6c6d6e6f707172737475767778"),
    ])
    func textStrings(value: String, hex: String) throws {
        #expect(try cborEncodeHex(value) == hex)
    }

    @Test func byteStrings() throws {
        #expect(try cborEncodeHex(Data()) == "40")
        #expect(try cborEncodeHex(Data([1, 2, 3, 4])) == "4401020304")
        // A plain [UInt8] stays an array of integers.
        #expect(try cborEncodeHex([UInt8]([1, 2, 3, 4])) == "8401020304")
    }

    @Test func arrays() throws {
        #expect(try cborEncodeHex([Int]()) == "80")
        #expect(try cborEncodeHex([1, 2, 3]) == "83010203")
        #expect(
            try cborEncodeHex([[1], [2, 3], [4, 5]]) == "83810182020382 0405".replacingOccurrences(of: " ", with: ""))
        #expect(
            try cborEncodeHex(Array(1...25))
                == "98190102030405060708090a0b0c0d0e0f101112131415161718181819"
        )
    }

    @Test func mapsSortKeysDeterministically() throws {
        #expect(try cborEncodeHex([String: Int]()) == "a0")
        #expect(
            try cborEncodeHex(["e": "E", "c": "C", "a": "A", "d": "D", "b": "B"])
                == "a56161614161626142616361436164614461656145"
        )
        // Shorter keys first, then bytewise: "a", "b", "mm", "zebra".
        let expected = "a4" + "616102" + "616204" + "626d6d03" + "657a6562726101"
        #expect(try cborEncodeHex(CBORUnorderedFields()) == expected)
        #expect(try cborEncodeHex(CBORReorderedFields()) == expected)
        // [Int: V] uses the decimal string keys, in the same order: "1", "2", "10".
        #expect(try cborEncodeHex([10: "x", 2: "y", 1: "z"]) == "a36131617a613261796231306178")
    }

    @Test func structWithArray() throws {
        struct Pair: Encodable {
            var b = [2, 3]
            var a = 1
        }
        #expect(try cborEncodeHex(Pair()) == "a26161016162820203")
    }

    @Test func dates() throws {
        #expect(try cborEncodeHex(Date(timeIntervalSince1970: 1_363_896_240)) == "c11a514b67b0")
        #expect(try cborEncodeHex(Date(timeIntervalSince1970: 1_363_896_240.5)) == "c1fb41d452d9ec200000")
        #expect(try cborEncodeHex(Date(timeIntervalSince1970: 0)) == "c100")
        #expect(try cborEncodeHex(Date(timeIntervalSince1970: -1)) == "c120")
        #expect(try cborEncodeHex(Date(timeIntervalSince1970: 0.5)) == "c1f93800")
    }

    @Test func uuids() throws {
        let uuid = try #require(UUID(uuidString: "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6"))
        #expect(try cborEncodeHex(uuid) == "d82550f81d4fae7dec11d0a76500a0c91e6bf6")
    }

    @Test func optionalsAreOmittedUnlessNullIsExplicit() throws {
        #expect(try cborEncodeHex(CBOROptionalFields(a: nil, b: nil)) == "a0")
        #expect(try cborEncodeHex(CBOROptionalFields(a: nil, b: "x")) == "a161626178")
        #expect(
            try cborEncodeHex(CBOROptionalFields(a: 1, b: "x"))
                == "a2616101616261 78".replacingOccurrences(of: " ", with: ""))
        #expect(try cborEncodeHex(CBORExplicitNull()) == "a26161f6616201")
    }

    @Test func emptyValues() throws {
        #expect(try cborEncodeHex(CBOREmptyStruct()) == "a0")
        #expect(try cborEncodeHex(CBORSilent()) == "a0")
        #expect(try cborEncodeHex([CBORSilent()]) == "81a0")
    }

    @Test func interleavedNestedContainers() throws {
        let value = CBORInterleaved(inner: [1, 2], after: "x", deep: 7)
        // Keys sorted: "inner", "after" ("a" < "i") and "nested" (longer).
        #expect(
            try cborEncodeHex(value)
                == "a3" + "656166746572" + "6178" + "65696e6e6572" + "820102" + "666e6573746564"
                + "a164646565 7007".replacingOccurrences(of: " ", with: "")
        )
        #expect(try cborRoundTrip(value) == value)
    }

    @Test func deterministicRegardlessOfInsertionOrder() throws {
        var forward: [String: Int] = [:]
        var backward: [String: Int] = [:]
        for i in 0..<200 {
            forward["key\(i)"] = i
        }
        for i in (0..<200).reversed() {
            backward["key\(i)"] = i
        }
        let first = try CBOREncoder().encode(forward)
        #expect(first == (try CBOREncoder().encode(backward)))
        #expect(first == (try CBOREncoder().encode(forward)))
        #expect(first.prefix(3) == [0xb8, 200, 0x64])  // map(200), first key "key0"
    }

    @Test func misuseFailsWithEncodingFailed() throws {
        #expect(cborEncodeError(CBORDuplicateKeyWriter())?.code == .encodingFailed)
        #expect(cborEncodeError(CBORTwoSingleValues())?.code == .encodingFailed)
        #expect(cborEncodeError(CBORConflictingContainers())?.code == .encodingFailed)
        #expect(cborEncodeError(Date(timeIntervalSince1970: .nan))?.code == .encodingFailed)
        let error = cborEncodeError(["outer": CBORDuplicateKeyWriter()])
        #expect(error?.code == .encodingFailed)
        #expect(error?.message.contains("outer") == true)
    }

    /// The exact bytes of values whose `encode(to:)` uses the Codable API out of sequence (a super encoder, a
    /// count read after the parent was written again): whatever encoder writes them must write these.
    @Test func valuesWrittenOutOfSequenceHaveTheirBytes() throws {
        // {"breed": "collie", "super": {"legs": 4, "name": "rex"}}
        #expect(
            try cborEncodeHex(CBORDog(name: "rex", breed: "collie"))
                == "a2" + "656272656564" + "66636f6c6c6965" + "657375706572"
                + "a2" + "646c656773" + "04" + "646e616d65" + "63726578")
        // {"base": {"city": "c", "street": "s"}, "extra": [2]}
        #expect(
            try cborEncodeHex(CBORSuperKeyed(base: CBORAddress(street: "s", city: "c", postcode: nil), extra: [2]))
                == "a2" + "6462617365" + "a2" + "6463697479" + "6163" + "66737472656574" + "6173"
                + "656578747261" + "8102")
        // {"list": [1], "after": 1, "count": 1}
        #expect(
            try cborEncodeHex(CBORLateCount())
                == "a3" + "646c697374" + "8101" + "656166746572" + "01" + "65636f756e74" + "01")
    }

    /// What a misuse's error says, with where it happened.
    @Test func misuseMessagesNameTheProblemAndWhere() throws {
        #expect(
            cborEncodeError(["outer": CBORDuplicateKeyWriter()])?.message
                == "key 'id' was encoded twice in one keyed container at outer")
        #expect(
            cborEncodeError(CBORTwoSingleValues())?.message
                == "a single-value container was asked to encode a second value at <root>")
        #expect(
            cborEncodeError(CBORConflictingContainers())?.message
                == "requested an unkeyed container from an encoder that already holds a keyed container at <root>")
        #expect(
            cborEncodeError(Date(timeIntervalSince1970: .nan))?.message
                == "cannot encode a Date whose time interval is not finite (nan)")
    }

    @Test func encodingErrorIsConverted() throws {
        struct Refuses: Encodable {
            func encode(to encoder: any Encoder) throws {
                throw EncodingError.invalidValue(1, .init(codingPath: encoder.codingPath, debugDescription: "no"))
            }
        }
        #expect(cborEncodeError(["a": [Refuses()]])?.code == .encodingFailed)
        #expect(cborEncodeError(["a": [Refuses()]])?.message.contains("a[0]") == true)
    }

    @Test func codingPathIsVisibleToValues() throws {
        final class PathRecorder: Encodable, @unchecked Sendable {
            var seen: String = ""
            func encode(to encoder: any Encoder) throws {
                seen = encoder.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: "/")
                var container = encoder.singleValueContainer()
                try container.encode(seen)
            }
        }
        struct Holder: Encodable {
            var list: [[String: PathRecorder]]
        }
        let recorder = PathRecorder()
        _ = try CBOREncoder().encode(Holder(list: [[:], ["k": recorder]]))
        #expect(recorder.seen == "list/[1]/k")
    }
}
