import Foundation

/// A row of one table as a `Codable` value: its coding keys are the table's columns. The storage layer reads it
/// from a row and writes it (`insert`, `update`, `upsert`) with statements made once per type.
public protocol SQLRecord: Codable, Sendable {
    static var table: String { get }
    /// The columns of the primary key.
    static var primaryKey: [String] { get }
    /// Columns the database fills in (an identity key): left out of an insert while they are nil.
    static var generated: [String] { get }
}

extension SQLRecord {
    public static var generated: [String] { [] }
}

extension SQLTransaction {
    /// The rows of a query as records.
    public func fetchAll<R: SQLRecord>(_ type: R.Type, _ sql: String, _ arguments: SQLArguments = []) throws -> [R] {
        try query(sql, arguments).map { try R(from: SQLRowDecoder(row: $0)) }
    }

    /// The first row of a query as a record.
    public func fetchOne<R: SQLRecord>(_ type: R.Type, _ sql: String, _ arguments: SQLArguments = []) throws -> R? {
        try queryOne(sql, arguments).map { try R(from: SQLRowDecoder(row: $0)) }
    }

    /// A row of a query (with columns of its own besides, say) as a record.
    public func record<R: SQLRecord>(_ type: R.Type, _ row: SQLRow) throws -> R {
        try R(from: SQLRowDecoder(row: row))
    }

    /// The record with this primary key (in `R.primaryKey`'s order).
    public func find<R: SQLRecord>(_ type: R.Type, key: SQLArguments) throws -> R? {
        let condition = R.primaryKey.map { "\(quoted($0)) = ?" }.joined(separator: " AND ")
        return try fetchOne(R.self, "SELECT * FROM \(R.table) WHERE \(condition)", key)
    }

    public func insert<R: SQLRecord>(_ record: R) throws {
        let columns = try SQLRowEncoder.columns(of: record).filter {
            !($0.value == .null && R.generated.contains($0.name))
        }
        try execute(
            "INSERT INTO \(R.table) (\(columns.map { quoted($0.name) }.joined(separator: ", "))) VALUES ("
                + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")",
            columns.map(\.value))
    }

    /// Writes every column of an existing record; returns whether it was there.
    @discardableResult
    public func update<R: SQLRecord>(_ record: R) throws -> Bool {
        try update(record, where: nil, [])
    }

    /// Writes every column of an existing record if its row also meets `condition` (a fence: `lease_token = ?`);
    /// returns whether it did.
    public func update<R: SQLRecord>(_ record: R, where condition: String?, _ arguments: SQLArguments) throws -> Bool {
        let columns = try SQLRowEncoder.columns(of: record)
        let key = columns.filter { R.primaryKey.contains($0.name) }
        let rest = columns.filter { !R.primaryKey.contains($0.name) }
        return try execute(
            "UPDATE \(R.table) SET \(rest.map { "\(quoted($0.name)) = ?" }.joined(separator: ", ")) WHERE "
                + (key.map { "\(quoted($0.name)) = ?" } + (condition.map { ["(\($0))"] } ?? []))
                .joined(separator: " AND "),
            rest.map(\.value) + key.map(\.value) + arguments) > 0
    }

    /// Inserts a record, or writes every column of the one with its key.
    public func upsert<R: SQLRecord>(_ record: R) throws {
        let columns = try SQLRowEncoder.columns(of: record)
        let rest = columns.filter { !R.primaryKey.contains($0.name) }
        try execute(
            "INSERT INTO \(R.table) (\(columns.map { quoted($0.name) }.joined(separator: ", "))) VALUES ("
                + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ") ON CONFLICT ("
                + R.primaryKey.map(quoted).joined(separator: ", ") + ") DO UPDATE SET "
                + rest.map { "\(quoted($0.name)) = excluded.\(quoted($0.name))" }.joined(separator: ", "),
            columns.map(\.value))
    }

    /// Deletes the record with this primary key; returns whether it was there.
    @discardableResult
    public func delete<R: SQLRecord>(_ type: R.Type, key: SQLArguments) throws -> Bool {
        try execute(
            "DELETE FROM \(R.table) WHERE " + R.primaryKey.map { "\(quoted($0)) = ?" }.joined(separator: " AND "), key)
            > 0
    }
}

/// A column's name quoted, so that one named as a keyword (`by`) is a name to both backends.
private func quoted(_ name: String) -> String { "\"\(name)\"" }

/// Reads a `Decodable` value from a row: a key is a column; optional columns read null as nil.
struct SQLRowDecoder: Decoder {
    let row: SQLRow
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Keyed<Key>(row: row))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self, .init(codingPath: codingPath, debugDescription: "a row is read by column names"))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(
            Any.self, .init(codingPath: codingPath, debugDescription: "a row is read by column names"))
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let row: SQLRow
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { row.columns.names.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { row.columns.position(key.stringValue) != nil }

        private func value(_ key: Key) throws -> SQLValue {
            guard let position = row.columns.position(key.stringValue) else {
                throw DecodingError.keyNotFound(key, .init(codingPath: [key], debugDescription: "no such column"))
            }
            return row.values[position]
        }

        func decodeNil(forKey key: Key) throws -> Bool { try value(key) == .null }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            let value = try value(key)
            if let convertible = T.self as? any SQLValueConvertible.Type {
                guard let converted = convertible.init(sqlValue: value) as? T else {
                    throw DecodingError.typeMismatch(
                        T.self, .init(codingPath: [key], debugDescription: "column holds \(value)"))
                }
                return converted
            }
            return try T(from: SingleValue(value: value, codingPath: [key]))
        }

        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
            guard contains(key), try value(key) != .null else { return nil }
            return try decode(T.self, forKey: key)
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            throw DecodingError.typeMismatch(Any.self, .init(codingPath: [key], debugDescription: "a column is flat"))
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            throw DecodingError.typeMismatch(Any.self, .init(codingPath: [key], debugDescription: "a column is flat"))
        }

        func superDecoder() throws -> any Decoder { SQLRowDecoder(row: row) }
        func superDecoder(forKey key: Key) throws -> any Decoder { SQLRowDecoder(row: row) }
    }

    /// One column's value, for a type that decodes itself from a single value (a `String` enum, say).
    struct SingleValue: Decoder, SingleValueDecodingContainer {
        let value: SQLValue
        let codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
            throw DecodingError.typeMismatch(Any.self, .init(codingPath: codingPath, debugDescription: "flat"))
        }

        func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
            throw DecodingError.typeMismatch(Any.self, .init(codingPath: codingPath, debugDescription: "flat"))
        }

        func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

        func decodeNil() -> Bool { value == .null }

        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            if let convertible = T.self as? any SQLValueConvertible.Type,
                let converted = convertible.init(sqlValue: value) as? T
            {
                return converted
            }
            throw DecodingError.typeMismatch(
                T.self, .init(codingPath: codingPath, debugDescription: "column holds \(value)"))
        }
    }
}

/// Writes an `Encodable` value as columns: a key is a column; nil is written as null (never left out, so that an
/// update clears it).
enum SQLRowEncoder {
    struct Column {
        var name: String
        var value: SQLValue
    }

    static func columns(of value: some Encodable) throws -> [Column] {
        let sink = Sink()
        try value.encode(to: RowEncoder(sink: sink))
        return sink.columns
    }

    final class Sink {
        var columns: [Column] = []
    }

    struct RowEncoder: Encoder {
        let sink: Sink
        var codingPath: [any CodingKey] { [] }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            KeyedEncodingContainer(Keyed<Key>(sink: sink))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            preconditionFailure("a record is written by column names")
        }

        func singleValueContainer() -> any SingleValueEncodingContainer {
            preconditionFailure("a record is written by column names")
        }
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let sink: Sink
        var codingPath: [any CodingKey] { [] }

        mutating func encodeNil(forKey key: Key) throws {
            sink.columns.append(Column(name: key.stringValue, value: .null))
        }

        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            sink.columns.append(Column(name: key.stringValue, value: try SingleValue.value(of: value)))
        }

        mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
            if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
        }

        mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try put(value, key) }

        private mutating func put<T: Encodable>(_ value: T?, _ key: Key) throws {
            if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
            -> KeyedEncodingContainer<NestedKey>
        {
            preconditionFailure("a column is flat")
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            preconditionFailure("a column is flat")
        }

        mutating func superEncoder() -> any Encoder { RowEncoder(sink: sink) }
        mutating func superEncoder(forKey key: Key) -> any Encoder { RowEncoder(sink: sink) }
    }

    /// One column's value, for a type that encodes itself as a single value (a `String` enum, say).
    final class SingleValue: Encoder, SingleValueEncodingContainer {
        var result: SQLValue = .null
        var codingPath: [any CodingKey] { [] }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        static func value(of value: some Encodable) throws -> SQLValue {
            if let convertible = value as? any SQLValueConvertible { return convertible.sqlValue }
            let encoder = SingleValue()
            try value.encode(to: encoder)
            return encoder.result
        }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            preconditionFailure("a column is flat")
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer { preconditionFailure("a column is flat") }
        func singleValueContainer() -> any SingleValueEncodingContainer { self }

        func encodeNil() throws { result = .null }

        func encode<T: Encodable>(_ value: T) throws {
            guard let convertible = value as? any SQLValueConvertible else {
                throw EncodingError.invalidValue(
                    value, .init(codingPath: [], debugDescription: "\(T.self) is not one column's value"))
            }
            result = convertible.sqlValue
        }
    }
}
