import Foundation
import RescindCBOR
import Testing

/// Accepts any single item (for structural tests that must not depend on the target type).
struct CBORAnyItem: Decodable {
    init(from decoder: any Decoder) throws {}
}

/// A map whose keys are all unknown to it.
struct CBORNothing: Decodable {
    init(from decoder: any Decoder) throws { _ = try decoder.container(keyedBy: CodingKeys.self) }
    enum CodingKeys: CodingKey {}
}

/// Nested unkeyed containers of any depth.
struct CBORNest: Decodable {
    var depth: Int
    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        depth = container.isAtEnd ? 1 : try container.decode(CBORNest.self).depth + 1
    }
}

@Suite("CBORDecoder strictness")
struct CBORDecoderTests {
    // MARK: Structure

    @Test func rejectsTrailingBytes() throws {
        let error = cborDecodeError(Int.self, cborBytes("0000"))
        #expect(error?.code == .trailingBytes)
        #expect(error?.offset == 1)
        #expect(cborDecodeError([Int].self, cborBytes("8101 f6"))?.code == .trailingBytes)
        #expect(cborDecodeError(CBORAnyItem.self, cborBytes("a0 a0"))?.code == .trailingBytes)
    }

    @Test func rejectsEveryTruncation() throws {
        let bytes = try CBOREncoder().encode(try cborSampleOrder())
        #expect(try CBORDecoder().decode(CBOROrder.self, from: bytes) == (try cborSampleOrder()))
        for length in 0..<bytes.count {
            let prefix = Array(bytes[0..<length])
            let code = cborDecodeError(CBOROrder.self, prefix)?.code
            #expect(
                code == .truncated || code == .lengthBeyondInput,
                "prefix of \(length) bytes gave \(String(describing: code))")
            // Structural errors do not depend on the target type.
            let anyCode = cborDecodeError(CBORAnyItem.self, prefix)?.code
            #expect(anyCode == code)
        }
    }

    @Test func truncationCodes() throws {
        #expect(cborDecodeError(Int.self, [])?.code == .truncated)
        #expect(cborDecodeError(Int.self, cborBytes("19 01"))?.code == .truncated)
        #expect(cborDecodeError(Int.self, cborBytes("1b 00000000"))?.code == .truncated)
        #expect(cborDecodeError(Double.self, cborBytes("fb 3ff1"))?.code == .truncated)
        #expect(cborDecodeError([String: Int].self, cborBytes("a1 6161"))?.code == .truncated)
        #expect(cborDecodeError(Date.self, cborBytes("c1"))?.code == .truncated)
        #expect(cborDecodeError(String.self, cborBytes("64 4945"))?.code == .lengthBeyondInput)
        #expect(cborDecodeError([Int].self, cborBytes("83 0102"))?.code == .lengthBeyondInput)
    }

    @Test func rejectsLengthsBeyondInputBeforeAllocating() throws {
        let cases = [
            "5b ffffffffffffffff",  // byte string of 2^64-1 bytes
            "7b 7fffffffffffffff 61",  // text string
            "5a ffffffff 00",
            "9b 00000000ffffffff 00 00",  // array of 2^32-1 elements, 2 bytes left
            "9b ffffffffffffffff",
            "bb 7fffffffffffffff 00",  // map
            "a2 6161",  // map of 2 entries needs at least 4 bytes, 2 left
            "ba 00010000 6161",  // non-shortest too, but the impossible count is reported first
            "82 01",  // array of 2, 1 byte left
            "d8 25 5b ffffffffffffffff",  // UUID with a huge length
        ]
        for hex in cases {
            let error = cborDecodeError(CBORAnyItem.self, cborBytes(hex))
            #expect(error?.code == .lengthBeyondInput, "\(hex): \(String(describing: error))")
        }
        #expect(cborDecodeError(Data.self, cborBytes("5b ffffffffffffffff"))?.code == .lengthBeyondInput)
        #expect(cborDecodeError([Int].self, cborBytes("9b 00000000ffffffff 0000"))?.code == .lengthBeyondInput)
        #expect(cborDecodeError([String: Int].self, cborBytes("bb ffffffffffffffff 00"))?.code == .lengthBeyondInput)
    }

    @Test func rejectsInvalidUTF8() throws {
        let cases = [
            "61 ff", "61 80", "62 c080", "62 c1bf", "63 eda080", "63 e08080", "64 f4908080",
            "64 f0808080", "62 e6b0", "61 c3", "6a 61626364656667 68 69ff",
        ]
        for hex in cases {
            let error = cborDecodeError(String.self, cborBytes(hex))
            #expect(error?.code == .invalidUTF8, "\(hex): \(String(describing: error))")
        }
        // In a map key, and under a key the target type ignores.
        #expect(cborDecodeError([String: Int].self, cborBytes("a1 61ff 01"))?.code == .invalidUTF8)
        #expect(cborDecodeError(CBOROptionalFields.self, cborBytes("a1 6178 61ff"))?.code == .invalidUTF8)
        // Valid edge cases are accepted.
        #expect(try CBORDecoder().decode(String.self, from: cborBytes("64 f48fbfbf")) == "\u{10FFFF}")
        #expect(try CBORDecoder().decode(String.self, from: cborBytes("63 ed9fbf")) == "\u{D7FF}")
    }

    @Test func rejectsTooDeepNesting() throws {
        let deep = [UInt8](repeating: 0x81, count: 64) + [0x80]  // 65 nested arrays
        #expect(cborDecodeError(CBORNest.self, deep)?.code == .tooDeep)
        #expect(cborDecodeError(CBORAnyItem.self, deep)?.code == .tooDeep)
        let ok = [UInt8](repeating: 0x81, count: 63) + [0x80]  // 64
        #expect(try CBORDecoder().decode(CBORNest.self, from: ok).depth == 64)
        // Maps and tags count too.
        let maps: [UInt8] = Array(repeating: [UInt8]([0xa1, 0x61, 0x61]), count: 64).flatMap { $0 } + [0xa0]
        #expect(cborDecodeError(CBORAnyItem.self, maps)?.code == .tooDeep)
        let dateInArrays = [UInt8](repeating: 0x81, count: 64) + [0xc1, 0x00]
        #expect(cborDecodeError(CBORAnyItem.self, dateInArrays)?.code == .tooDeep)
        // A huge nesting is rejected without recursion.
        let huge = [UInt8](repeating: 0x81, count: 1_000_000) + [0x80]
        #expect(cborDecodeError(CBORAnyItem.self, huge)?.code == .tooDeep)
    }

    @Test func customDepthLimit() throws {
        let limits = CBORDecoder.Limits(maxDepth: 2)
        #expect(try CBORDecoder(limits: limits).decode([[Int]].self, from: cborBytes("81 81 01")) == [[1]])
        #expect(cborDecodeError([[[Int]]].self, cborBytes("81 81 81 01"), limits: limits)?.code == .tooDeep)
        #expect(
            try CBORDecoder(limits: .init(maxDepth: 1)).decode(Date.self, from: cborBytes("c1 00"))
                == Date(timeIntervalSince1970: 0))
        #expect(cborDecodeError([Date].self, cborBytes("81 c1 00"), limits: .init(maxDepth: 1))?.code == .tooDeep)
        #expect(cborDecodeError([Int].self, cborBytes("80"), limits: .init(maxDepth: 0))?.code == .tooDeep)
        #expect(try CBORDecoder(limits: .init(maxDepth: 0)).decode(Int.self, from: cborBytes("01")) == 1)
        var decoder = CBORDecoder()
        #expect(decoder.limits.maxDepth == 64)
        decoder.limits.maxDepth = 3
        #expect(throws: CBORError.self) { try decoder.decode(CBORNest.self, from: cborBytes("81 81 81 80")) }
    }

    @Test func rejectsIndefiniteLengths() throws {
        for hex in ["9f 01 ff", "5f 4101 ff", "7f 6161 ff", "bf 6161 01 ff", "ff", "82 01 ff", "1f", "3f", "df"] {
            let error = cborDecodeError(CBORAnyItem.self, cborBytes(hex))
            #expect(error?.code == .indefiniteLength, "\(hex): \(String(describing: error))")
        }
    }

    @Test func rejectsReservedAdditionalInformation() throws {
        for hex in ["1c", "1d", "1e", "3c", "5d", "7e", "9c", "bd", "dc", "fc", "fd", "fe"] {
            let error = cborDecodeError(CBORAnyItem.self, cborBytes(hex))
            #expect(error?.code == .unsupported, "\(hex): \(String(describing: error))")
        }
    }

    @Test func rejectsNonShortestForms() throws {
        let cases = [
            "18 17", "18 00", "19 00ff", "19 0017", "1a 0000ffff", "1b 00000000ffffffff",
            "38 17", "39 00ff", "3a 0000ffff", "3b 00000000ffffffff",
            "58 00", "59 0001 00", "78 00", "79 0000", "98 00", "99 0001 00", "b8 00", "d8 01 00",
        ]
        for hex in cases {
            let error = cborDecodeError(CBORAnyItem.self, cborBytes(hex))
            #expect(error?.code == .nonCanonical, "\(hex): \(String(describing: error))")
        }
        #expect(cborDecodeError(UInt8.self, cborBytes("18 17"))?.code == .nonCanonical)
        // Shortest forms at each boundary are fine.
        #expect(try CBORDecoder().decode(UInt64.self, from: cborBytes("18 18")) == 24)
        #expect(try CBORDecoder().decode(UInt64.self, from: cborBytes("19 0100")) == 256)
        #expect(try CBORDecoder().decode(UInt64.self, from: cborBytes("1a 00010000")) == 65536)
        #expect(try CBORDecoder().decode(UInt64.self, from: cborBytes("1b 0000000100000000")) == 4_294_967_296)
    }

    @Test func rejectsUnsupportedSimpleValuesAndTags() throws {
        for hex in [
            "f7", "e0", "f3", "f8 20", "f8 ff", "f8 10", "c2 41 00", "c0 60", "d8 20 60", "d9 d9f7 00", "c6 00",
        ] {
            let error = cborDecodeError(CBORAnyItem.self, cborBytes(hex))
            #expect(error?.code == .unsupported, "\(hex): \(String(describing: error))")
        }
        #expect(cborDecodeError(Int?.self, cborBytes("f7"))?.code == .unsupported)
    }

    @Test func tagsOnlyWhereExpected() throws {
        // A date tag where a Double is expected, a UUID tag where Data is expected, and the
        // reverse: untagged values where a Date or UUID is expected.
        #expect(cborDecodeError(Double.self, cborBytes("c1 00"))?.code == .typeMismatch)
        #expect(
            cborDecodeError(Data.self, cborBytes("d825 50 00000000000000000000000000000000"))?.code == .typeMismatch)
        #expect(cborDecodeError(Date.self, cborBytes("1a514b67b0"))?.code == .typeMismatch)
        #expect(cborDecodeError(UUID.self, cborBytes("50 00000000000000000000000000000000"))?.code == .typeMismatch)
        #expect(
            cborDecodeError(Date.self, cborBytes("d825 50 00000000000000000000000000000000"))?.code == .typeMismatch)
        // Tag 1 must enclose a number, tag 37 a byte string.
        #expect(cborDecodeError(CBORAnyItem.self, cborBytes("c1 60"))?.code == .typeMismatch)
        #expect(cborDecodeError(CBORAnyItem.self, cborBytes("c1 c1 00"))?.code == .typeMismatch)
        #expect(cborDecodeError(CBORAnyItem.self, cborBytes("d825 60"))?.code == .typeMismatch)
    }

    @Test func dates() throws {
        #expect(
            try CBORDecoder().decode(Date.self, from: cborBytes("c11a514b67b0"))
                == Date(timeIntervalSince1970: 1_363_896_240))
        #expect(
            try CBORDecoder().decode(Date.self, from: cborBytes("c1fb41d452d9ec200000"))
                == Date(timeIntervalSince1970: 1_363_896_240.5))
        #expect(
            try CBORDecoder().decode(Date.self, from: cborBytes("c1 fa 3f800000")) == Date(timeIntervalSince1970: 1))
        #expect(try CBORDecoder().decode(Date.self, from: cborBytes("c1 3863")) == Date(timeIntervalSince1970: -100))
        #expect(cborDecodeError(Date.self, cborBytes("c1 f97e00"))?.code == .invalidValue)
        #expect(cborDecodeError(Date.self, cborBytes("c1 f97c00"))?.code == .invalidValue)
        #expect(cborDecodeError(Date.self, cborBytes("c1 1b0020000000000001"))?.code == .valueOutOfRange)
    }

    /// The whole item is validated, not only what the target type reads: a date no `Date` can hold is refused
    /// under a key the target does not know, with the code it gets where a `Date` is read.
    @Test(arguments: [
        ("f97e00", CBORError.Code.invalidValue), ("f97c00", .invalidValue), ("fbfff0000000000000", .invalidValue),
        ("1b0020000000000001", .valueOutOfRange),
    ])
    func datesAreValidatedUnderUnknownKeys(content: String, code: CBORError.Code) throws {
        // {"zz": 1(content)}, read as a type with no keys at all.
        let error = cborDecodeError(CBORNothing.self, cborBytes("a1 62 7a7a c1 \(content)"))
        #expect(error?.code == code)
        #expect(cborDecodeError(Date.self, cborBytes("c1 \(content)"))?.code == code)
    }

    @Test func uuidsRequireSixteenBytes() throws {
        let uuid = try #require(UUID(uuidString: "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6"))
        #expect(try CBORDecoder().decode(UUID.self, from: cborBytes("d82550f81d4fae7dec11d0a76500a0c91e6bf6")) == uuid)
        #expect(cborDecodeError(UUID.self, cborBytes("d825 4f f81d4fae7dec11d0a76500a0c91e6b"))?.code == .invalidValue)
        #expect(
            cborDecodeError(UUID.self, cborBytes("d825 51 f81d4fae7dec11d0a76500a0c91e6bf600"))?.code == .invalidValue)
        #expect(cborDecodeError(UUID.self, cborBytes("d825 40"))?.code == .invalidValue)
    }

    // MARK: Maps

    @Test func rejectsDuplicateKeys() throws {
        #expect(cborDecodeError([String: Int].self, cborBytes("a2 6161 01 6161 02"))?.code == .duplicateKey)
        #expect(
            cborDecodeError(CBOROptionalFields.self, cborBytes("a3 6161 01 6162 6178 6161 f6"))?.code == .duplicateKey)
        // Ignored nested maps are checked too.
        #expect(
            cborDecodeError(CBOROptionalFields.self, cborBytes("a1 6178 a2 6179 01 6179 02"))?.code == .duplicateKey)
        // Large maps (sorted comparison path), out of order.
        let error = cborDecodeError([String: Int].self, cborBytes(cborLargeMapWithDuplicate()))
        #expect(error?.code == .duplicateKey)
        #expect(error?.message.contains("k7") == true)
    }

    @Test func rejectsNonTextKeys() throws {
        #expect(cborDecodeError([String: Int].self, cborBytes("a1 01 02"))?.code == .typeMismatch)
        #expect(cborDecodeError([Int: Int].self, cborBytes("a1 01 02"))?.code == .typeMismatch)
        #expect(cborDecodeError(CBORAnyItem.self, cborBytes("a1 41 61 02"))?.code == .typeMismatch)
        #expect(cborDecodeError(CBORAnyItem.self, cborBytes("a1 80 02"))?.code == .typeMismatch)
        #expect(cborDecodeError(CBORAnyItem.self, cborBytes("a1 f6 02"))?.code == .typeMismatch)
    }

    @Test func missingKeys() throws {
        let error = cborDecodeError(CBORLine.self, cborBytes("a1 63736b75 6161"))
        #expect(error?.code == .keyNotFound)
        #expect(error?.message.contains("quantity") == true)
        // Nested container and superDecoder for a missing key.
        #expect(cborDecodeError(CBORDog.self, cborBytes("a1 656272656564 6161"))?.code == .keyNotFound)
        #expect(cborDecodeError(CBORSuperKeyed.self, cborBytes("a1 6565787472 61 80"))?.code == .keyNotFound)
    }

    // MARK: Types

    @Test func typeMismatches() throws {
        #expect(cborDecodeError(Int.self, cborBytes("6161"))?.code == .typeMismatch)
        #expect(cborDecodeError(String.self, cborBytes("01"))?.code == .typeMismatch)
        #expect(cborDecodeError(String.self, cborBytes("41 61"))?.code == .typeMismatch)
        #expect(cborDecodeError(Data.self, cborBytes("61 61"))?.code == .typeMismatch)
        #expect(cborDecodeError(Bool.self, cborBytes("01"))?.code == .typeMismatch)
        #expect(cborDecodeError(Int.self, cborBytes("f93c00"))?.code == .typeMismatch)
        #expect(cborDecodeError(Double.self, cborBytes("f5"))?.code == .typeMismatch)
        #expect(cborDecodeError(CBORLine.self, cborBytes("80"))?.code == .typeMismatch)
        #expect(cborDecodeError([Int].self, cborBytes("a0"))?.code == .typeMismatch)
        #expect(cborDecodeError([String: Int].self, cborBytes("a1 6161 6161"))?.code == .typeMismatch)
        #expect(cborDecodeError([UInt8].self, cborBytes("43 010203"))?.code == .typeMismatch)
        // Invalid raw values and enum shapes (DecodingError converted).
        #expect(cborDecodeError(CBORColor.self, cborBytes("6470696e6b"))?.code == .invalidValue)
        #expect(cborDecodeError(CBORLevel.self, cborBytes("02"))?.code == .invalidValue)
        #expect(cborDecodeError(CBORShape.self, cborBytes("a0"))?.code == .typeMismatch)
    }

    @Test func nullWhereAValueIsRequired() throws {
        #expect(cborDecodeError(Int.self, cborBytes("f6"))?.code == .valueNotFound)
        #expect(cborDecodeError(String.self, cborBytes("f6"))?.code == .valueNotFound)
        #expect(cborDecodeError(CBORLine.self, cborBytes("f6"))?.code == .valueNotFound)
        #expect(cborDecodeError([Int].self, cborBytes("82 01 f6"))?.code == .valueNotFound)
        // {"sku": null, "quantity": 1, "unitPrice": 1}
        let error = cborDecodeError(
            CBORLine.self, cborBytes("a3 63736b75 f6 687175616e74697479 01 69756e69745072696365 01"))
        #expect(error?.code == .valueNotFound)
        #expect(error?.message.contains("sku") == true)
        #expect(cborDecodeError(CBORNest.self, cborBytes("f6"))?.code == .valueNotFound)
    }

    @Test func unkeyedContainerAtEnd() throws {
        struct TwoInts: Decodable {
            init(from decoder: any Decoder) throws {
                var container = try decoder.unkeyedContainer()
                _ = try container.decode(Int.self)
                _ = try container.decode(Int.self)
            }
        }
        #expect(cborDecodeError(TwoInts.self, cborBytes("81 01"))?.code == .valueNotFound)
    }

    @Test func outOfRangeIntegersNeverTrap() throws {
        #expect(cborDecodeError(Int8.self, cborBytes("18 80"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Int8.self, cborBytes("38 80"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(UInt8.self, cborBytes("19 0100"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(UInt8.self, cborBytes("20"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(UInt64.self, cborBytes("20"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(UInt.self, cborBytes("3b 7fffffffffffffff"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Int16.self, cborBytes("1a 00010000"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Int32.self, cborBytes("1b 0000000100000000"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Int64.self, cborBytes("1b ffffffffffffffff"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Int64.self, cborBytes("1b 8000000000000000"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Int64.self, cborBytes("3b 8000000000000000"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Int.self, cborBytes("3b ffffffffffffffff"))?.code == .valueOutOfRange)
        #expect(cborDecodeError([Int8].self, cborBytes("82 01 18ff"))?.code == .valueOutOfRange)
        #expect(cborDecodeError([String: UInt16].self, cborBytes("a1 6161 1a00010000"))?.code == .valueOutOfRange)
        // Floats: integers and wider floats must be exact.
        #expect(cborDecodeError(Double.self, cborBytes("1b ffffffffffffffff"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Double.self, cborBytes("1b 0020000000000001"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Float.self, cborBytes("1a 01000001"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Float.self, cborBytes("fb 3ff199999999999a"))?.code == .valueOutOfRange)
        #expect(cborDecodeError(Float.self, cborBytes("fb 7e37e43c8800759c"))?.code == .valueOutOfRange)
    }

    // MARK: Messages

    @Test func errorsCarryCodingPathAndOffset() throws {
        var order = try cborSampleOrder()
        order.lines[2].sku = "TARGET"
        var bytes = try CBOREncoder().encode(order)
        // Turn the text string "TARGET" into a byte string of the same length.
        let needle: [UInt8] = [0x66] + Array("TARGET".utf8)
        let index = try #require(cborFind(needle, in: bytes))
        bytes[index] = 0x46  // byte string of 6 bytes
        let error = try #require(cborDecodeError(CBOROrder.self, bytes))
        #expect(error.code == .typeMismatch)
        #expect(error.offset == index)
        #expect(error.message.contains("lines[2].sku"))
        #expect(error.message.contains("byte offset \(index)"))
        #expect(error.description.hasPrefix("typeMismatch: "))

        // Structural errors found while indexing carry the path as well.
        bytes[index] = 0x66
        bytes[index + 1] = 0xff
        let utf8 = try #require(cborDecodeError(CBOROrder.self, bytes))
        #expect(utf8.code == .invalidUTF8)
        #expect(utf8.message.contains("lines[2].sku"))
        #expect(utf8.offset == index)
    }

    @Test func errorCodesAreDistinctAndDescribed() throws {
        let codes: [CBORError.Code] = [
            .truncated, .trailingBytes, .invalidUTF8, .tooDeep, .lengthBeyondInput, .nonCanonical,
            .indefiniteLength, .unsupported, .typeMismatch, .valueOutOfRange, .keyNotFound,
            .duplicateKey, .valueNotFound, .invalidValue, .encodingFailed,
        ]
        #expect(Set(codes).count == codes.count)
        #expect(Set(codes.map(\.description)).count == codes.count)
        #expect(CBORError.Code.truncated.description == "truncated")
        let error = CBORError(code: .invalidValue, message: "m", offset: 3)
        #expect(error == CBORError(code: .invalidValue, message: "m", offset: 3))
        #expect(error != CBORError(code: .invalidValue, message: "m", offset: nil))
        #expect(error.description == "invalidValue: m")
    }

    @Test func otherErrorsPassThrough() throws {
        struct Custom: Error {}
        struct Throws: Decodable {
            init(from decoder: any Decoder) throws { throw Custom() }
        }
        #expect(throws: Custom.self) { try CBORDecoder().decode(Throws.self, from: cborBytes("00")) }
    }

    /// Random mutations of a valid document must throw or succeed, never crash.
    @Test func mutationsNeverCrash() throws {
        let valid = try CBOREncoder().encode(try cborSampleOrder())
        var generator = CBORSplitMix(seed: 0x5eed)
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0...Int(generator.next() % 4) {
                let position = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 3 {
                case 0: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes.remove(at: position)
                default: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
                }
            }
            _ = try? CBORDecoder().decode(CBOROrder.self, from: bytes)
            _ = try? CBORDecoder().decode(CBORAnyItem.self, from: bytes)
        }
    }
}

/// A deterministic pseudo-random generator for the mutation test.
struct CBORSplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

func cborFind(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard needle.count <= haystack.count else { return nil }
    for start in 0...haystack.count - needle.count where Array(haystack[start..<start + needle.count]) == needle {
        return start
    }
    return nil
}

/// Hex of a 30-entry map, keys "k0" ... "k28" in descending order, then "k7" again.
func cborLargeMapWithDuplicate() -> String {
    var hex = "b81e"
    for i in (0..<29).reversed() {
        hex += cborHex([0x60 + UInt8(String(i).utf8.count + 1), 0x6b] + Array(String(i).utf8)) + "00"
    }
    hex += cborHex([0x62, 0x6b, 0x37]) + "01"
    return hex
}
