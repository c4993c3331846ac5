import Foundation
import RescindCBOR
import Testing

struct CBORAllIntegers: Codable, Equatable {
    var int: Int
    var int8: Int8
    var int16: Int16
    var int32: Int32
    var int64: Int64
    var uint: UInt
    var uint8: UInt8
    var uint16: UInt16
    var uint32: UInt32
    var uint64: UInt64

    static let minimum = CBORAllIntegers(
        int: .min, int8: .min, int16: .min, int32: .min, int64: .min,
        uint: .min, uint8: .min, uint16: .min, uint32: .min, uint64: .min
    )
    static let maximum = CBORAllIntegers(
        int: .max, int8: .max, int16: .max, int32: .max, int64: .max,
        uint: .max, uint8: .max, uint16: .max, uint32: .max, uint64: .max
    )
}

struct CBORLine: Codable, Equatable {
    var sku: String
    var quantity: Int
    var unitPrice: Double
    var discount: Float?
}

struct CBORAddress: Codable, Equatable {
    var street: String
    var city: String
    var postcode: String?
}

enum CBORColor: String, Codable, Equatable {
    case red, green, blue
}

enum CBORLevel: Int, Codable, Equatable {
    case low = 1
    case high = 100
    case negative = -5
}

enum CBORShape: Codable, Equatable {
    case circle(radius: Double)
    case rectangle(Double, Double)
    case labelled(name: String, tags: [String]?)
    case point
}

struct CBOROrder: Codable, Equatable {
    var id: UUID
    var createdAt: Date
    var customer: String
    var lines: [CBORLine]
    var shipping: CBORAddress?
    var billing: CBORAddress?
    var color: CBORColor
    var level: CBORLevel
    var shape: CBORShape
    var attachment: Data
    var metadata: [String: String]
    var counts: [Int: Int]
    var flags: [Bool]
    var matrix: [[Int]]
    var note: String?
}

class CBORAnimal: Codable, Equatable {
    var name: String
    var legs: Int

    init(name: String, legs: Int) {
        self.name = name
        self.legs = legs
    }

    static func == (lhs: CBORAnimal, rhs: CBORAnimal) -> Bool {
        lhs.isEqual(to: rhs)
    }

    func isEqual(to other: CBORAnimal) -> Bool {
        type(of: self) == type(of: other) && name == other.name && legs == other.legs
    }
}

/// Encodes its superclass through `superEncoder()` (under the key "super").
final class CBORDog: CBORAnimal {
    var breed: String

    enum CodingKeys: String, CodingKey { case breed }

    init(name: String, breed: String) {
        self.breed = breed
        super.init(name: name, legs: 4)
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        breed = try container.decode(String.self, forKey: .breed)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(breed, forKey: .breed)
        try super.encode(to: container.superEncoder())
    }

    override func isEqual(to other: CBORAnimal) -> Bool {
        guard let other = other as? CBORDog else { return false }
        return super.isEqual(to: other) && breed == other.breed
    }
}

/// Shares its superclass's container by passing the same encoder along.
final class CBORBird: CBORAnimal {
    var wingspan: Double

    enum CodingKeys: String, CodingKey { case wingspan }

    init(name: String, wingspan: Double) {
        self.wingspan = wingspan
        super.init(name: name, legs: 2)
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        wingspan = try container.decode(Double.self, forKey: .wingspan)
        try super.init(from: decoder)
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(wingspan, forKey: .wingspan)
        try super.encode(to: encoder)
    }

    override func isEqual(to other: CBORAnimal) -> Bool {
        guard let other = other as? CBORBird else { return false }
        return super.isEqual(to: other) && wingspan == other.wingspan
    }
}

/// Uses `superEncoder(forKey:)` and an unkeyed `superEncoder()`.
struct CBORSuperKeyed: Codable, Equatable {
    var base: CBORAddress
    var extra: [Int]

    enum CodingKeys: String, CodingKey { case base, extra }

    init(base: CBORAddress, extra: [Int]) {
        self.base = base
        self.extra = extra
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try base.encode(to: container.superEncoder(forKey: .base))
        var list = container.nestedUnkeyedContainer(forKey: .extra)
        for value in extra {
            var single = list.superEncoder().singleValueContainer()
            try single.encode(value)
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        base = try CBORAddress(from: container.superDecoder(forKey: .base))
        var list = try container.nestedUnkeyedContainer(forKey: .extra)
        var values: [Int] = []
        while !list.isAtEnd {
            values.append(try list.superDecoder().singleValueContainer().decode(Int.self))
        }
        extra = values
    }
}

/// More fields than the decoder's linear-search limit, so lookups use the sorted table.
struct CBORWide: Codable, Equatable {
    var f01 = 1, f02 = 2, f03 = 3, f04 = 4, f05 = 5, f06 = 6, f07 = 7, f08 = 8
    var f09 = 9, f10 = 10, f11 = 11, f12 = 12, f13 = 13, f14 = 14, f15 = 15
    var text = "wide"
    var optional: Int?
}

func cborSampleOrder() throws -> CBOROrder {
    CBOROrder(
        id: try #require(UUID(uuidString: "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6")),
        createdAt: Date(timeIntervalSince1970: 1_700_000_000.25),
        customer: "Zoë Çelik 🦊",
        lines: (0..<5).map {
            CBORLine(
                sku: "SKU-\($0)", quantity: $0 * 3, unitPrice: Double($0) + 0.99, discount: $0 % 2 == 0 ? 0.5 : nil)
        },
        shipping: CBORAddress(street: "1 Main St", city: "Springfield", postcode: nil),
        billing: nil,
        color: .green,
        level: .negative,
        shape: .labelled(name: "tri", tags: ["a", "b"]),
        attachment: Data([0, 1, 2, 255]),
        metadata: ["b": "2", "a": "1", "": "empty"],
        counts: [3: 30, -1: -10, 100: 1000],
        flags: [true, false],
        matrix: [[], [1], [2, 3]],
        note: nil
    )
}

@Suite("CBOR round trips")
struct CBORRoundTripTests {
    @Test func integerExtremes() throws {
        #expect(try cborRoundTrip(CBORAllIntegers.minimum) == .minimum)
        #expect(try cborRoundTrip(CBORAllIntegers.maximum) == .maximum)
        #expect(try cborRoundTrip(UInt64.max) == UInt64.max)
        #expect(try cborRoundTrip(Int64.min) == Int64.min)
        #expect(try cborRoundTrip([Int8.min, -1, 0, Int8.max]) == [Int8.min, -1, 0, Int8.max])
        #expect(try cborRoundTrip([UInt16.max, 0]) == [UInt16.max, 0])
        #expect(try cborRoundTrip(Int32.min) == Int32.min)
        #expect(try cborRoundTrip(UInt.max) == UInt.max)
    }

    @Test func integersDecodeIntoWiderTypes() throws {
        let bytes = try CBOREncoder().encode(Int8(-5))
        #expect(try CBORDecoder().decode(Int64.self, from: bytes) == -5)
        #expect(try CBORDecoder().decode(Int.self, from: bytes) == -5)
        #expect(try CBORDecoder().decode(UInt64.self, from: CBOREncoder().encode(UInt8(200))) == 200)
    }

    @Test func optionals() throws {
        for value in [
            CBOROptionalFields(a: nil, b: nil), CBOROptionalFields(a: 0, b: nil),
            CBOROptionalFields(a: nil, b: ""), CBOROptionalFields(a: -7, b: "x"),
        ] {
            #expect(try cborRoundTrip(value) == value)
        }
        // An explicit null decodes as nil too.
        struct TwoOptionalInts: Codable, Equatable {
            var a: Int?
            var b: Int?
        }
        let explicit = try CBOREncoder().encode(CBORExplicitNull())  // {"a": null, "b": 1}
        #expect(try CBORDecoder().decode(TwoOptionalInts.self, from: explicit) == TwoOptionalInts(a: nil, b: 1))
        #expect(try cborRoundTrip([1, nil, 3] as [Int?]) == [1, nil, 3])
        #expect(try cborRoundTrip(["a": nil, "b": 2] as [String: Int?]) == ["a": nil, "b": 2])
        #expect(try cborRoundTrip(Int?.none) == nil)
        #expect(try cborRoundTrip(Optional(Optional(5))) == 5)
    }

    @Test func decodeNilForAbsentKeyIsTrue() throws {
        struct Probe: Decodable {
            var absent: Bool
            var null: Bool
            var present: Bool
            enum CodingKeys: String, CodingKey { case missing, a, b }
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                absent = try container.decodeNil(forKey: .missing)
                null = try container.decodeNil(forKey: .a)
                present = try container.decodeNil(forKey: .b)
            }
        }
        let probe = try CBORDecoder().decode(Probe.self, from: CBOREncoder().encode(CBORExplicitNull()))
        #expect(probe.absent)
        #expect(probe.null)
        #expect(!probe.present)
    }

    @Test func nestedStructsArraysAndDictionaries() throws {
        let order = try cborSampleOrder()
        #expect(try cborRoundTrip(order) == order)
        #expect(try cborRoundTrip([order, order]) == [order, order])
        #expect(try cborRoundTrip(["x": [order]]) == ["x": [order]])
    }

    @Test func dictionaries() throws {
        #expect(try cborRoundTrip([String: Int]()) == [:])
        #expect(try cborRoundTrip([Int: String]()) == [:])
        #expect(try cborRoundTrip([1: "a", -2: "b", 300: "c"]) == [1: "a", -2: "b", 300: "c"])
        #expect(try cborRoundTrip(["ü": [1], "": []]) == ["ü": [1], "": []])
        var large: [String: Int] = [:]
        for i in 0..<1000 {
            large["k\(i * 7919 % 1000)"] = i
        }
        #expect(try cborRoundTrip(large) == large)
        var largeInts: [Int: [String: Int]] = [:]
        for i in -50..<50 {
            largeInts[i * 1000] = ["v": i]
        }
        #expect(try cborRoundTrip(largeInts) == largeInts)
    }

    @Test func enums() throws {
        #expect(try cborRoundTrip(CBORColor.blue) == .blue)
        #expect(try cborEncodeHex(CBORColor.red) == "63726564")
        #expect(try cborRoundTrip(CBORLevel.high) == .high)
        #expect(try cborEncodeHex(CBORLevel.high) == "1864")
        #expect(try cborRoundTrip(CBORLevel.negative) == .negative)
        for shape in [
            CBORShape.circle(radius: 1.5), .rectangle(2, 3.25), .labelled(name: "n", tags: nil),
            .labelled(name: "", tags: []), .point,
        ] {
            #expect(try cborRoundTrip(shape) == shape)
        }
        // {"circle": {"radius": 1.5}}
        #expect(try cborEncodeHex(CBORShape.circle(radius: 1.5)) == "a166636972636c65a166726164697573f93e00")
        // {"point": {}}
        #expect(try cborEncodeHex(CBORShape.point) == "a165706f696e74a0")
        // {"rectangle": {"_0": 2, "_1": 3.25}}
        #expect(try cborEncodeHex(CBORShape.rectangle(2, 3)) == "a16972656374616e676c65a2625f30f94000625f31f94200")
    }

    @Test func dataDateUUIDBool() throws {
        #expect(try cborRoundTrip(Data()) == Data())
        #expect(try cborRoundTrip(Data(0...255)) == Data(0...255))
        for seconds in [0, 1_363_896_240, -86_400, 1_363_896_240.5, 0.25, -0.5, 4_102_444_800, 1_700_000_000.125]
            as [Double]
        {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(try cborRoundTrip(date).timeIntervalSince1970 == seconds)
        }
        let now = Date()
        #expect(try abs(cborRoundTrip(now).timeIntervalSince(now)) < 1e-6)
        let uuid = UUID()
        #expect(try cborRoundTrip(uuid) == uuid)
        #expect(try cborRoundTrip([uuid, uuid]) == [uuid, uuid])
        #expect(try cborRoundTrip(true) == true)
        #expect(try cborRoundTrip(false) == false)
        #expect(try cborRoundTrip(["t": true]) == ["t": true])
    }

    @Test(arguments: [
        1.5, 100_000.0, 1.1, 0.0, 65504.0, 5.960464477539063e-8, 0.1, -2.5e-10,
        Double.greatestFiniteMagnitude, -Double.greatestFiniteMagnitude, Double.leastNonzeroMagnitude,
        Double.leastNormalMagnitude, Double.infinity, -Double.infinity, Double.pi,
        Double(Float.greatestFiniteMagnitude), 1e300,
    ])
    func doubles(value: Double) throws {
        #expect(try cborRoundTrip(value).bitPattern == value.bitPattern)
        #expect(try cborRoundTrip([value])[0].bitPattern == value.bitPattern)
    }

    @Test func specialDoubles() throws {
        #expect(try cborRoundTrip(-0.0).sign == .minus)
        #expect(try cborRoundTrip(Double.nan).isNaN)
        #expect(try cborRoundTrip(Float.nan).isNaN)
        #expect(try cborRoundTrip(Float(-0.0)).sign == .minus)
    }

    @Test(arguments: [
        Float(1.5), 0.1, 100_000, Float.greatestFiniteMagnitude, Float.leastNonzeroMagnitude,
        Float.leastNormalMagnitude, -Float.infinity, 3.1415927,
    ])
    func floats(value: Float) throws {
        #expect(try cborRoundTrip(value).bitPattern == value.bitPattern)
        // A Float widens exactly into a Double.
        let widened = try CBORDecoder().decode(Double.self, from: CBOREncoder().encode(value))
        #expect(widened == Double(value))
    }

    @Test func floatsAcceptEveryWidthAndExactIntegers() throws {
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("f93e00")) == 1.5)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("fa47c35000")) == 100_000)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("fb3ff8000000000000")) == 1.5)
        #expect(try CBORDecoder().decode(Float.self, from: cborBytes("fb3ff8000000000000")) == 1.5)
        #expect(try CBORDecoder().decode(Float.self, from: cborBytes("f93e00")) == 1.5)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("1864")) == 100)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("3863")) == -100)
        #expect(try CBORDecoder().decode(Float.self, from: cborBytes("1a000f4240")) == 1_000_000)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("3bffffffffffffffff")) == -0x1p64)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("1b0020000000000000")) == 0x1p53)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("f90001")) == 5.960464477539063e-8)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("f97c00")) == .infinity)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("f9fc00")) == -.infinity)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("f97e00")).isNaN)
        #expect(try CBORDecoder().decode(Double.self, from: cborBytes("f97bff")) == 65504)
    }

    @Test func strings() throws {
        for string in ["", "a", "IETF", "ü", "水", "𐅑", "Zoë Çelik 🦊 \u{0}", String(repeating: "long ", count: 1000)] {
            #expect(try cborRoundTrip(string) == string)
            #expect(try cborRoundTrip(["k": string]) == ["k": string])
            #expect(try cborRoundTrip([string: 1]) == [string: 1])
        }
    }

    @Test func emptyContainers() throws {
        #expect(try cborRoundTrip([Int]()) == [])
        #expect(try cborRoundTrip([[Int]]([[], []])) == [[], []])
        #expect(try cborRoundTrip(CBOREmptyStruct()) == CBOREmptyStruct())
        #expect(try cborRoundTrip([CBOREmptyStruct()]) == [CBOREmptyStruct()])
        #expect(try cborRoundTrip("") == "")
    }

    @Test func classHierarchies() throws {
        let dog = CBORDog(name: "Rex", breed: "Collie")
        let decodedDog = try cborRoundTrip(dog)
        #expect(decodedDog == dog)
        // {"breed": "Collie", "super": {"legs": 4, "name": "Rex"}}
        #expect(
            try cborEncodeHex(dog)
                == "a2" + "656272656564" + "66436f6c6c6965" + "657375706572" + "a2" + "646c65677304" + "646e616d65"
                + "63526578"
        )
        let bird = CBORBird(name: "Tweety", wingspan: 0.25)
        #expect(try cborRoundTrip(bird) == bird)
        let superKeyed = CBORSuperKeyed(base: CBORAddress(street: "s", city: "c", postcode: "p"), extra: [1, -2])
        #expect(try cborRoundTrip(superKeyed) == superKeyed)
    }

    @Test func wideStructUsesTableLookup() throws {
        var wide = CBORWide()
        wide.optional = 42
        #expect(try cborRoundTrip(wide) == wide)
        #expect(try cborRoundTrip(CBORWide()) == CBORWide())
        #expect(try cborRoundTrip([wide, CBORWide()]) == [wide, CBORWide()])
    }

    @Test func unknownKeysAreIgnoredAndOrderIsFree() throws {
        // {"zzz": [1, {"q": h'00'}], "b": "x", "a": 1} read as CBOROptionalFields.
        let bytes = cborBytes("a3 637a7a7a 8201a1617141 00 6162 6178 6161 01")
        #expect(try CBORDecoder().decode(CBOROptionalFields.self, from: bytes) == CBOROptionalFields(a: 1, b: "x"))
    }

    @Test func convenienceCollections() throws {
        let order = try cborSampleOrder()
        let bytes = try CBOREncoder().encode(order)
        #expect(try CBORDecoder().decode(CBOROrder.self, from: Data(bytes)) == order)
        let padded = [0xff] + bytes + [0xff]
        #expect(try CBORDecoder().decode(CBOROrder.self, from: padded[1..<padded.count - 1]) == order)
        #expect(try CBORDecoder().decode(CBOROrder.self, from: ContiguousArray(bytes)) == order)
    }

    @Test func codingPathInsideDecoding() throws {
        final class PathProbe: Decodable, @unchecked Sendable {
            let path: String
            init(from decoder: any Decoder) throws {
                path = decoder.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
                _ = try decoder.singleValueContainer().decode(Int.self)
            }
        }
        struct Holder: Decodable {
            var list: [[String: PathProbe]]
        }
        // {"list": [{}, {"k": 1}]}
        let holder = try CBORDecoder().decode(Holder.self, from: cborBytes("a1 646c697374 82 a0 a1 616b 01"))
        #expect(holder.list[1]["k"]?.path == ".list[1].k")
    }

    @Test func deepNestingWithinTheLimitWorks() throws {
        struct Nest: Codable, Equatable {
            var depth: Int
            init(depth: Int) { self.depth = depth }
            init(from decoder: any Decoder) throws {
                var container = try decoder.unkeyedContainer()
                depth = container.isAtEnd ? 1 : try container.decode(Nest.self).depth + 1
            }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.unkeyedContainer()
                if depth > 1 {
                    try container.encode(Nest(depth: depth - 1))
                }
            }
        }
        #expect(try cborRoundTrip(Nest(depth: 64)) == Nest(depth: 64))
        let bytes = try CBOREncoder().encode(Nest(depth: 200))
        #expect(try CBORDecoder(limits: .init(maxDepth: 200)).decode(Nest.self, from: bytes) == Nest(depth: 200))
    }
}
