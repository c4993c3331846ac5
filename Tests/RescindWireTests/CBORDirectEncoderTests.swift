import Foundation
import Testing

@testable import RescindWire

/// The bytes of the encoder's fast path (`nil` if it gives up) and of its general encoder.
func cborBothPaths<T: Encodable>(_ value: T) throws -> (direct: [UInt8]?, general: [UInt8]) {
    (_CBORDirectState().encodeRoot(value), try CBOREncoder().encodeInGeneral(value))
}

/// Whether the fast path takes `value` and writes exactly what the general encoder writes.
func cborFastPathAgrees<T: Encodable>(_ value: T) throws -> Bool {
    let (direct, general) = try cborBothPaths(value)
    return direct == general
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

@Suite("CBOREncoder fast path")
struct CBORDirectEncoderTests {
    @Test func ordinaryValuesTakeTheFastPathWithTheSameBytes() throws {
        #expect(try cborFastPathAgrees(try cborSampleOrder()))
        #expect(try cborFastPathAgrees(CBORAllIntegers.minimum))
        #expect(try cborFastPathAgrees(CBORAllIntegers.maximum))
        #expect(try cborFastPathAgrees(CBORWide()))
        #expect(try cborFastPathAgrees(CBORUnorderedFields()))
        #expect(try cborFastPathAgrees(CBOROptionalFields(a: nil, b: "x")))
        #expect(try cborFastPathAgrees(CBORExplicitNull()))
        #expect(try cborFastPathAgrees(CBOREmptyStruct()))
        #expect(try cborFastPathAgrees(CBORSilent()))
        #expect(try cborFastPathAgrees([CBORSilent()]))
        #expect(try cborFastPathAgrees(CBORBird(name: "robin", wingspan: 0.25)))
        #expect(try cborFastPathAgrees([1, nil, 3] as [Int?]))
        #expect(try cborFastPathAgrees(Optional(Optional(5))))
        #expect(try cborFastPathAgrees(Int?.none))
        #expect(try cborFastPathAgrees("lone string"))
        #expect(try cborFastPathAgrees(-1.5))
        #expect(try cborFastPathAgrees(Float.nan))
        #expect(try cborFastPathAgrees(Date(timeIntervalSince1970: 1_767_225_600.123)))
        #expect(try cborFastPathAgrees(Data(repeating: 7, count: 300)))
        #expect(try cborFastPathAgrees([UUID(), UUID()]))
        for shape in [CBORShape.circle(radius: 2), .rectangle(1, 2), .labelled(name: "n", tags: nil), .point] {
            #expect(try cborFastPathAgrees(shape))
        }
    }

    @Test func sequentialNestedContainersStayOnTheFastPath() throws {
        let (direct, general) = try cborBothPaths(CBORSequentialNesting())
        #expect(direct != nil)
        #expect(direct == general)
    }

    @Test func longHeadsKeysAndLargeMaps() throws {
        // Counts of 24 and more need a longer head than the placeholder byte.
        #expect(try cborFastPathAgrees(Array(0..<24)))
        #expect(try cborFastPathAgrees(Array(0..<300)))
        #expect(try cborFastPathAgrees(Array(repeating: [UInt8](repeating: 1, count: 3), count: 70_000)))
        var wide: [String: Int] = [:]
        for i in 0..<300 {
            wide["key\(i)"] = i
        }
        #expect(try cborFastPathAgrees(wide))
        #expect(try cborFastPathAgrees(["x": wide, "a": [:]]))
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
        #expect(try cborFastPathAgrees(awkward))
        #expect(
            try cborFastPathAgrees(
                Dictionary(uniqueKeysWithValues: (0..<40).map { (String(repeating: "k", count: $0), $0) })))
    }

    @Test func fastPathGivesUpWhereItMust() throws {
        // Writes to a container after a later one was opened, super encoders, conflicting
        // requests, two single values, duplicate keys, errors, and a count read too late: the
        // general encoder takes over and its result is what `encode` returns.
        #expect(try cborBothPaths(CBORInterleaved(inner: [1, 2], after: "x", deep: 7)).direct == nil)
        #expect(try cborBothPaths(CBORDog(name: "rex", breed: "collie")).direct == nil)
        #expect(
            try cborBothPaths(CBORSuperKeyed(base: CBORAddress(street: "s", city: "c", postcode: nil), extra: [2]))
                .direct == nil)
        #expect(try cborBothPaths(CBORLateCount()).direct == nil)
        #expect(_CBORDirectState().encodeRoot(CBORConflictingContainers()) == nil)
        #expect(_CBORDirectState().encodeRoot(CBORTwoSingleValues()) == nil)
        #expect(_CBORDirectState().encodeRoot(CBORDuplicateKeyWriter()) == nil)
        #expect(_CBORDirectState().encodeRoot(Date(timeIntervalSince1970: .infinity)) == nil)
        #expect(
            try CBOREncoder().encode(CBORInterleaved(inner: [1, 2], after: "x", deep: 7))
                == CBOREncoder().encodeInGeneral(CBORInterleaved(inner: [1, 2], after: "x", deep: 7))
        )
        #expect(try CBOREncoder().encode(CBORLateCount()) == CBOREncoder().encodeInGeneral(CBORLateCount()))
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
