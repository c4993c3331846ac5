import NIOSSL
import RescindWire

/// Where a daemon or client finds its TLS material: the suite's CA, its own certificate and private key (PEM).
public struct TLSFiles: Codable, Sendable, Hashable {
    public var caCertificatePath: String
    public var certificatePath: String
    public var privateKeyPath: String

    public init(caCertificatePath: String, certificatePath: String, privateKeyPath: String) {
        self.caCertificatePath = caCertificatePath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }

    enum CodingKeys: String, CodingKey {
        case caCertificatePath = "ca_certificate"
        case certificatePath = "certificate"
        case privateKeyPath = "private_key"
    }

    /// A TLS 1.3 server context that requires a client certificate signed by the suite's CA.
    /// - Throws: `TransportError` with code `tlsConfiguration` if a file is missing or unreadable.
    public func makeServerContext() throws -> NIOSSLContext {
        let material = try load()
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: material.chain.map { .certificate($0) },
            privateKey: .privateKey(material.key)
        )
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(material.roots)
        configuration.applicationProtocols = [TransportConstants.alpn]
        return try makeContext(configuration)
    }

    /// A TLS 1.3 client context that presents this certificate and trusts only the suite's CA.
    /// - Throws: `TransportError` with code `tlsConfiguration` if a file is missing or unreadable.
    public func makeClientContext() throws -> NIOSSLContext {
        let material = try load()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = material.chain.map { .certificate($0) }
        configuration.privateKey = .privateKey(material.key)
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates(material.roots)
        configuration.applicationProtocols = [TransportConstants.alpn]
        return try makeContext(configuration)
    }

    private struct Material {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var roots: [NIOSSLCertificate]
    }

    private func load() throws -> Material {
        do {
            return Material(
                chain: try NIOSSLCertificate.fromPEMFile(certificatePath),
                key: try NIOSSLPrivateKey(file: privateKeyPath, format: .pem),
                roots: try NIOSSLCertificate.fromPEMFile(caCertificatePath)
            )
        } catch {
            throw TransportError(
                .tlsConfiguration,
                "cannot load TLS material (ca \(caCertificatePath), certificate \(certificatePath)): \(error)"
            )
        }
    }

    private func makeContext(_ configuration: TLSConfiguration) throws -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TransportError(.tlsConfiguration, "invalid TLS configuration: \(error)")
        }
    }
}

public enum TransportConstants {
    /// The ALPN protocol name both sides offer. This build does not refuse a peer that offers none.
    public static let alpn = "rescind/1"
}

/// A process-level failure of the transport (not a per-request error): bad TLS files, a port in use.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let name: String
        public static let tlsConfiguration = Code(name: "tls_configuration")
        public static let bind = Code(name: "bind")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name): \(message)" }
}
