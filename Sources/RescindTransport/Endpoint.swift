/// Where a daemon listens.
public struct Endpoint: Codable, Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` (`[V6]:PORT` for IPv6).
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether the host is an IP literal (TLS then verifies the IP address, and sends no SNI).
    var hostIsIPAddress: Bool {
        host.contains(":")
            || host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
    }
}

/// The replicas of a service, as a configuration names them: one endpoint (`{"host", "port"}`), or a list of
/// them.
public struct Endpoints: Codable, Sendable, Hashable, CustomStringConvertible {
    public var all: [Endpoint]

    public init(_ all: [Endpoint]) {
        self.all = all
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let list = try? container.decode([Endpoint].self) {
            guard !list.isEmpty else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "no endpoint in the list")
            }
            all = list
        } else {
            all = [try container.decode(Endpoint.self)]
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if all.count == 1 { try container.encode(all[0]) } else { try container.encode(all) }
    }

    public var description: String { all.map(\.description).joined(separator: ",") }
}
