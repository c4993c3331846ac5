import Foundation
import RescindTransport

/// The storefront daemon's configuration file.
public struct StorefrontConfiguration: Codable, Sendable, Hashable {
    /// Where it serves HTTP (loopback by default: it is meant to sit behind the store's reverse proxy).
    public struct Listen: Codable, Sendable, Hashable {
        public var host: String
        public var port: Int

        public init(host: String = "127.0.0.1", port: Int = 8080) {
            self.host = host
            self.port = port
        }
    }

    /// A certificate and key (PEM) to serve HTTPS instead of HTTP.
    public struct HTTPS: Codable, Sendable, Hashable {
        public var certificatePath: String
        public var privateKeyPath: String

        public init(certificatePath: String, privateKeyPath: String) {
            self.certificatePath = certificatePath
            self.privateKeyPath = privateKeyPath
        }

        enum CodingKeys: String, CodingKey {
            case certificatePath = "certificate"
            case privateKeyPath = "private_key"
        }
    }

    /// How many requests a client may make in a minute before it gets 429. Each storefront replica counts on its
    /// own (its 429 says so): behind a proxy over N replicas, a client may make up to N times as many.
    public struct RateLimit: Codable, Sendable, Hashable {
        /// Per order link (customer token).
        public var perTokenPerMinute: Int
        /// Per client address.
        public var perAddressPerMinute: Int

        public init(perTokenPerMinute: Int = 60, perAddressPerMinute: Int = 300) {
            self.perTokenPerMinute = perTokenPerMinute
            self.perAddressPerMinute = perAddressPerMinute
        }

        enum CodingKeys: String, CodingKey {
            case perTokenPerMinute = "per_token_per_minute"
            case perAddressPerMinute = "per_address_per_minute"
        }
    }

    /// Its certificate identity: `storefront`.
    public var identity: String
    public var listen: Listen
    public var https: HTTPS?
    /// The Orders daemon's replicas, reached over the Rescind protocol with `tls`.
    public var orders: Endpoints
    public var tls: TLSFiles
    public var logLevel: String
    /// The store's name, shown on its pages.
    public var storeName: String
    /// The language when the browser asks for none the storefront speaks: `en` or `nb`.
    public var defaultLanguage: String
    /// The store's time zone (an IANA name), for the times its pages show.
    public var timeZone: String
    public var rateLimit: RateLimit
    /// A file holding the key of the forms' CSRF tokens (at least 32 bytes), the same for every replica behind a
    /// proxy; without one, each process draws its own (a form then posts only to the replica that served it).
    public var csrfKeyFile: String?
    /// Proxies (their addresses) whose `X-Forwarded-For` names the client: the rate limit per address counts the
    /// customer's address, not the proxy's.
    public var trustedProxies: [String]

    public init(
        identity: String = "storefront", listen: Listen = .init(), https: HTTPS? = nil, orders: Endpoints,
        tls: TLSFiles, logLevel: String = "info", storeName: String = "Rescind store", defaultLanguage: String = "en",
        timeZone: String = "UTC", rateLimit: RateLimit = .init(), csrfKeyFile: String? = nil,
        trustedProxies: [String] = []
    ) {
        self.csrfKeyFile = csrfKeyFile
        self.trustedProxies = trustedProxies
        self.identity = identity
        self.listen = listen
        self.https = https
        self.orders = orders
        self.tls = tls
        self.logLevel = logLevel
        self.storeName = storeName
        self.defaultLanguage = defaultLanguage
        self.timeZone = timeZone
        self.rateLimit = rateLimit
    }

    /// Reads a configuration; optional fields take their defaults, and bad values are refused, naming the field.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        identity = try c.decodeIfPresent(String.self, forKey: .identity) ?? "storefront"
        listen = try c.decodeIfPresent(Listen.self, forKey: .listen) ?? .init()
        guard (0...65_535).contains(listen.port) else {
            throw DecodingError.dataCorruptedError(
                forKey: .listen, in: c, debugDescription: "listen.port must be 0 to 65535")
        }
        https = try c.decodeIfPresent(HTTPS.self, forKey: .https)
        orders = try c.decode(Endpoints.self, forKey: .orders)
        csrfKeyFile = try c.decodeIfPresent(String.self, forKey: .csrfKeyFile)
        trustedProxies = try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? []
        tls = try c.decode(TLSFiles.self, forKey: .tls)
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? "info"
        storeName = try c.decodeIfPresent(String.self, forKey: .storeName) ?? "Rescind store"
        defaultLanguage = try c.decodeIfPresent(String.self, forKey: .defaultLanguage) ?? "en"
        guard Language(rawValue: defaultLanguage) != nil else {
            throw DecodingError.dataCorruptedError(
                forKey: .defaultLanguage, in: c, debugDescription: "default_language must be en or nb")
        }
        timeZone = try c.decodeIfPresent(String.self, forKey: .timeZone) ?? "UTC"
        guard TimeZone(identifier: timeZone) != nil else {
            throw DecodingError.dataCorruptedError(
                forKey: .timeZone, in: c, debugDescription: "time_zone \(timeZone) is not an IANA time zone")
        }
        rateLimit = try c.decodeIfPresent(RateLimit.self, forKey: .rateLimit) ?? .init()
        guard rateLimit.perTokenPerMinute > 0, rateLimit.perAddressPerMinute > 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .rateLimit, in: c, debugDescription: "rate limits must be positive")
        }
    }

    enum CodingKeys: String, CodingKey {
        case identity, listen, https, orders, tls
        case logLevel = "log_level"
        case storeName = "store_name"
        case defaultLanguage = "default_language"
        case timeZone = "time_zone"
        case rateLimit = "rate_limit"
        case csrfKeyFile = "csrf_key_file"
        case trustedProxies = "trusted_proxies"
    }

    /// The key of the forms' CSRF tokens: `csrf_key_file`'s bytes, or nil to draw one.
    /// - Throws: `ConfigurationError`-like text if the file cannot be read or is too short.
    public func csrfKey() throws -> [UInt8]? {
        guard let csrfKeyFile else { return nil }
        let key: [UInt8]
        do {
            key = Array(try Data(contentsOf: URL(fileURLWithPath: csrfKeyFile)))
        } catch {
            throw StorefrontConfigurationError(message: "cannot read csrf_key_file \(csrfKeyFile): \(error)")
        }
        guard key.count >= 32 else {
            throw StorefrontConfigurationError(
                message: "csrf_key_file \(csrfKeyFile) holds \(key.count) bytes; at least 32 are needed")
        }
        return key
    }
}

/// A storefront configuration that cannot be used.
public struct StorefrontConfigurationError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
