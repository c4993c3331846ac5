import struct Foundation.Data
import struct Foundation.Date
import struct Foundation.UUID

/// Asks the decoder for nothing: decoding it only validates the input (the decoder validates the whole
/// input before any value is decoded).
public struct ValidateOnly: Codable, Equatable {
    public init() {}
    public init(from decoder: any Decoder) throws {}
    public func encode(to encoder: any Encoder) throws {}
}

/// A string or integer coding key.
public struct AnyKey: CodingKey, Hashable {
    public var stringValue: String
    public var intValue: Int?
    public init(_ string: String) { stringValue = string }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}

/// Any value the decoder can produce without a type to direct it, found by asking for each kind in turn:
/// it drives the type-directed paths (mismatch, range, tags) over arbitrary shapes.
public indirect enum AnyCBOR: Codable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case bytes(Data)
    case date(Date)
    case uuid(UUID)
    case array([AnyCBOR])
    case map([String: AnyCBOR])

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer() {
            if single.decodeNil() {
                self = .null
                return
            }
            if let value = try? single.decode(Bool.self) {
                self = .bool(value)
            } else if let value = try? single.decode(Int64.self) {
                self = .int(value)
            } else if let value = try? single.decode(UInt64.self) {
                self = .uint(value)
            } else if let value = try? single.decode(Double.self) {
                self = .double(value)
            } else if let value = try? single.decode(String.self) {
                self = .string(value)
            } else if let value = try? single.decode(Data.self) {
                self = .bytes(value)
            } else if let value = try? single.decode(Date.self) {
                self = .date(value)
            } else if let value = try? single.decode(UUID.self) {
                self = .uuid(value)
            } else {
                self = try Self.container(from: decoder)
            }
            return
        }
        self = try Self.container(from: decoder)
    }

    private static func container(from decoder: any Decoder) throws -> AnyCBOR {
        if let keyed = try? decoder.container(keyedBy: AnyKey.self) {
            var map: [String: AnyCBOR] = [:]
            for key in keyed.allKeys {
                Invariant.check(keyed.contains(key), "allKeys lists \(key.stringValue), contains denies it")
                map[key.stringValue] = try keyed.decode(AnyCBOR.self, forKey: key)
            }
            return .map(map)
        }
        var unkeyed = try decoder.unkeyedContainer()
        var array: [AnyCBOR] = []
        if let count = unkeyed.count { array.reserveCapacity(min(count, 1024)) }
        while !unkeyed.isAtEnd {
            array.append(try unkeyed.decode(AnyCBOR.self))
        }
        Invariant.check(
            unkeyed.count == nil || unkeyed.count == unkeyed.currentIndex,
            "an unkeyed container ended at \(unkeyed.currentIndex) of \(String(describing: unkeyed.count))"
        )
        return .array(array)
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .array(let values):
            var container = encoder.unkeyedContainer()
            for value in values { try container.encode(value) }
        case .map(let values):
            var container = encoder.container(keyedBy: AnyKey.self)
            for (key, value) in values { try container.encode(value, forKey: AnyKey(key)) }
        default:
            var container = encoder.singleValueContainer()
            switch self {
            case .null: try container.encodeNil()
            case .bool(let value): try container.encode(value)
            case .int(let value): try container.encode(value)
            case .uint(let value): try container.encode(value)
            case .double(let value): try container.encode(value)
            case .string(let value): try container.encode(value)
            case .bytes(let value): try container.encode(value)
            case .date(let value): try container.encode(value)
            case .uuid(let value): try container.encode(value)
            case .array, .map: break
            }
        }
    }
}

/// A struct with a field of every kind the encoder maps, all optional so that partial inputs decode.
public struct KitchenSink: Codable, Equatable {
    public enum Choice: Codable, Equatable {
        case none
        case one(Int)
        case pair(String, Bool)
        case named(x: Double, y: [UInt8])
    }

    /// Coded by hand through a super decoder and nested containers.
    public struct Nested: Codable, Equatable {
        public var base: Int32?
        public var point: [Int16?] = []
        public var flags: [String: Bool] = [:]

        public init(base: Int32?, point: [Int16?], flags: [String: Bool]) {
            self.base = base
            self.point = point
            self.flags = flags
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            if container.contains(AnyKey("super")) {
                let single = try container.superDecoder().singleValueContainer()
                base = single.decodeNil() ? nil : try single.decode(Int32.self)
            }
            if container.contains(AnyKey("point")) {
                var unkeyed = try container.nestedUnkeyedContainer(forKey: AnyKey("point"))
                while !unkeyed.isAtEnd {
                    point.append(try unkeyed.decodeNil() ? nil : try unkeyed.decode(Int16.self))
                }
            }
            if container.contains(AnyKey("flags")) {
                let nested = try container.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("flags"))
                for key in nested.allKeys {
                    flags[key.stringValue] = try nested.decode(Bool.self, forKey: key)
                }
            }
        }

        /// Written out of sequence on purpose, so that the fuzzer drives the encoder's writes into complete
        /// containers: the super encoder and both containers are asked for first, `flags` (which completes
        /// `point`) is written next, then `point`, then the super encoder. The bytes must be those of
        /// `InOrder`, which writes the same content in order.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: AnyKey.self)
            let superEncoder = base.map { _ in container.superEncoder() }
            var unkeyed = point.isEmpty ? nil : container.nestedUnkeyedContainer(forKey: AnyKey("point"))
            var nested = flags.isEmpty ? nil : container.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("flags"))
            for (key, value) in flags { try nested?.encode(value, forKey: AnyKey(key)) }
            for value in point {
                if let value { try unkeyed?.encode(value) } else { try unkeyed?.encodeNil() }
            }
            if let base, let superEncoder {
                var single = superEncoder.singleValueContainer()
                try single.encode(base)
            }
        }

        /// The same content, written in order.
        public struct InOrder: Encodable {
            public let nested: Nested

            public init(_ nested: Nested) {
                self.nested = nested
            }

            public func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: AnyKey.self)
                if let base = nested.base {
                    var single = container.superEncoder().singleValueContainer()
                    try single.encode(base)
                }
                if !nested.point.isEmpty {
                    var unkeyed = container.nestedUnkeyedContainer(forKey: AnyKey("point"))
                    for value in nested.point {
                        if let value { try unkeyed.encode(value) } else { try unkeyed.encodeNil() }
                    }
                }
                if !nested.flags.isEmpty {
                    var inner = container.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("flags"))
                    for (key, value) in nested.flags { try inner.encode(value, forKey: AnyKey(key)) }
                }
            }
        }
    }

    public var i8: Int8?
    public var i16: Int16?
    public var i32: Int32?
    public var i64: Int64?
    public var u8: UInt8?
    public var u16: UInt16?
    public var u32: UInt32?
    public var u64: UInt64?
    public var int: Int?
    public var uint: UInt?
    public var f32: Float?
    public var f64: Double?
    public var flag: Bool?
    public var text: String?
    public var data: Data?
    public var uuid: UUID?
    public var date: Date?
    public var ints: [Int]?
    public var optionals: [Int?]?
    public var nested: [[String]]?
    public var byName: [String: Int64]?
    public var byNumber: [Int: String]?
    public var bytes: [UInt8]?
    public var choice: Choice?
    public var inner: Nested?

    public init() {}
}
