import Crypto
import Foundation
import SwiftASN1
import X509

/// A certificate authority for a Rescind suite: an ECDSA P-256 key and a self-signed CA certificate.
///
/// The authority issues one leaf certificate per identity (a service such as `orders`, or a
/// person such as `operator`). The leaf's subject common name is the identity that a TLS peer
/// presenting it is authorised as; see ``CertificateIdentity``.
///
/// A value is immutable and safe to share between tasks.
public struct CertificateAuthority: Sendable {
    /// The CA certificate, PEM-encoded (`-----BEGIN CERTIFICATE-----`).
    ///
    /// This is the trust root that every peer of the suite must be configured with.
    public let certificatePEM: String

    /// The CA private key, PEM-encoded as PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
    public let privateKeyPEM: String

    private let certificate: Certificate
    private let privateKey: Certificate.PrivateKey

    /// The default validity of a certificate authority created by ``create(commonName:validity:now:)``: 10 years.
    public static let defaultValidity: Duration = .seconds(10 * 365 * 86_400)

    /// The default validity of a leaf certificate issued by ``issue(name:hosts:validity:now:)``: 2 years.
    public static let defaultLeafValidity: Duration = .seconds(2 * 365 * 86_400)

    /// How far before `now` certificates start being valid, to tolerate clock skew between hosts: 5 minutes.
    public static let clockSkewAllowance: Duration = .seconds(300)

    /// Creates a new certificate authority with a fresh ECDSA P-256 key and a self-signed certificate.
    ///
    /// The certificate has subject `CN=<commonName>`, basicConstraints `CA:true, pathlen:0` (critical),
    /// keyUsage `keyCertSign, cRLSign` (critical), a subject key identifier and a random 20-byte serial.
    /// It is valid from `now` minus ``clockSkewAllowance`` until `now + validity`.
    ///
    /// - Parameters:
    ///   - commonName: The subject common name of the CA: 1 to 64 characters, no control characters.
    ///   - validity: How long the CA is valid for, from `now`. Must be positive.
    ///   - now: The current time.
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidName``, ``PKIError/Code/invalidValidity``
    ///   or ``PKIError/Code/issuanceFailed``.
    public static func create(
        commonName: String = "Rescind Development CA",
        validity: Duration = CertificateAuthority.defaultValidity,
        now: Date = Date()
    ) throws -> CertificateAuthority {
        try Self.validateCommonName(commonName)
        let seconds = try Self.positiveSeconds(validity)

        let key = P256.Signing.PrivateKey()
        let privateKey = Certificate.PrivateKey(key)
        let publicKey = privateKey.publicKey
        let subject = DistinguishedName([
            RelativeDistinguishedName(
                RelativeDistinguishedName.Attribute(type: .RDNAttributeType.commonName, utf8String: commonName)
            )
        ])

        let notValidBefore = now.addingTimeInterval(-Self.seconds(Self.clockSkewAllowance))
        let notValidAfter = now.addingTimeInterval(seconds)
        try Self.checkEncodable(notValidBefore, notValidAfter)

        let certificate: Certificate
        do {
            var extensions = Certificate.Extensions()
            try extensions.append(
                Certificate.Extension(BasicConstraints.isCertificateAuthority(maxPathLength: 0), critical: true)
            )
            try extensions.append(
                Certificate.Extension(KeyUsage(keyCertSign: true, cRLSign: true), critical: true)
            )
            try extensions.append(
                Certificate.Extension(SubjectKeyIdentifier(hash: publicKey), critical: false)
            )
            certificate = try Certificate(
                version: .v3,
                serialNumber: Self.randomSerialNumber(),
                publicKey: publicKey,
                notValidBefore: notValidBefore,
                notValidAfter: notValidAfter,
                issuer: subject,
                subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: privateKey
            )
        } catch {
            throw PKIError(.issuanceFailed, "could not create the CA certificate: \(error)")
        }

        return CertificateAuthority(
            certificatePEM: try Self.pem(of: certificate),
            privateKeyPEM: key.pemRepresentation,
            certificate: certificate,
            privateKey: privateKey
        )
    }

    /// Loads an existing certificate authority and checks that it is usable.
    ///
    /// The certificate must carry basicConstraints `CA:true`, must allow `keyCertSign` if it has a
    /// keyUsage extension, and `privateKeyPEM` must be the private key of the certificate's public key.
    /// The private key may be PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`); ``privateKeyPEM`` is
    /// always stored as PKCS#8. Both PEM strings are stored in their canonical re-encoded form.
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidCertificate`` or ``PKIError/Code/invalidPrivateKey``.
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: certificatePEM)
        } catch {
            throw PKIError(.invalidCertificate, "the CA certificate is not a valid PEM X.509 certificate: \(error)")
        }

        let basicConstraints: BasicConstraints?
        let keyUsage: KeyUsage?
        do {
            basicConstraints = try certificate.extensions.basicConstraints
            keyUsage = try certificate.extensions.keyUsage
        } catch {
            throw PKIError(.invalidCertificate, "the CA certificate has malformed extensions: \(error)")
        }
        guard case .isCertificateAuthority = basicConstraints else {
            throw PKIError(
                .invalidCertificate,
                "the certificate \(certificate.subject) is not a certificate authority (basicConstraints CA:true is missing)"
            )
        }
        if let keyUsage, !keyUsage.keyCertSign {
            throw PKIError(
                .invalidCertificate,
                "the certificate \(certificate.subject) is not allowed to sign certificates (keyUsage lacks keyCertSign)"
            )
        }

        let privateKey: Certificate.PrivateKey
        do {
            privateKey = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
        } catch {
            throw PKIError(.invalidPrivateKey, "the CA private key is not a valid PEM private key: \(error)")
        }
        guard privateKey.publicKey == certificate.publicKey else {
            throw PKIError(.invalidPrivateKey, "the CA private key does not match the CA certificate")
        }

        let normalisedKeyPEM: String
        do {
            normalisedKeyPEM = try privateKey.serializeAsPEM().pemString
        } catch {
            throw PKIError(.invalidPrivateKey, "the CA private key cannot be serialised as PEM: \(error)")
        }

        self.init(
            certificatePEM: try Self.pem(of: certificate),
            privateKeyPEM: normalisedKeyPEM,
            certificate: certificate,
            privateKey: privateKey
        )
    }

    private init(
        certificatePEM: String,
        privateKeyPEM: String,
        certificate: Certificate,
        privateKey: Certificate.PrivateKey
    ) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// Issue a leaf certificate for an identity (e.g. "orders", "payments", "inventory", "operator").
    ///
    /// The certificate has a fresh ECDSA P-256 key and:
    /// - subject `CN=<name>`: the identity a peer presenting it is authorised as;
    /// - subjectAltName: each entry of `hosts` that parses as an IPv4 or IPv6 address (optionally in
    ///   brackets, e.g. `[::1]`) as an IP address SAN, every other entry as a DNS name SAN (duplicates
    ///   removed); no subjectAltName extension at all when `hosts` is empty (a client-only identity);
    /// - extendedKeyUsage `serverAuth, clientAuth`;
    /// - keyUsage `digitalSignature` (critical); basicConstraints `CA:false` (critical);
    /// - subject and authority key identifiers; a random 20-byte serial number.
    ///
    /// It is valid from `now` minus ``clockSkewAllowance`` (but not before the CA) until `now + validity`,
    /// cut short to the CA's own expiry if the CA expires sooner.
    ///
    /// - Parameters:
    ///   - name: The identity; must match `^[a-z][a-z0-9-]{0,62}$`, see ``validateName(_:)``.
    ///   - hosts: DNS names and IP addresses the identity serves on. DNS names are letters, digits and
    ///     hyphens in dot-separated labels, optionally with a leftmost `*` wildcard label.
    ///   - validity: How long the certificate is valid for. Must be positive.
    ///   - now: The current time.
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidName``, ``PKIError/Code/invalidHost``,
    ///   ``PKIError/Code/invalidValidity`` (also when the CA has expired) or ``PKIError/Code/issuanceFailed``.
    public func issue(
        name: String,
        hosts: [String],
        validity: Duration = CertificateAuthority.defaultLeafValidity,
        now: Date = Date()
    ) throws -> IssuedCertificate {
        try Self.validateName(name)
        let alternativeNames = try HostNames.subjectAlternativeNames(for: hosts)
        let seconds = try Self.positiveSeconds(validity)

        let notValidBefore = max(
            now.addingTimeInterval(-Self.seconds(Self.clockSkewAllowance)),
            self.certificate.notValidBefore
        )
        let notValidAfter = min(now.addingTimeInterval(seconds), self.certificate.notValidAfter)
        guard notValidAfter > now, notValidAfter > notValidBefore else {
            throw PKIError(
                .invalidValidity,
                "the certificate authority \(self.certificate.subject) expired at \(self.certificate.notValidAfter)"
            )
        }
        try Self.checkEncodable(notValidBefore, notValidAfter)

        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subject = DistinguishedName([
            RelativeDistinguishedName(
                RelativeDistinguishedName.Attribute(type: .RDNAttributeType.commonName, utf8String: name)
            )
        ])

        let certificate: Certificate
        do {
            let authorityKeyID =
                try self.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: self.certificate.publicKey).keyIdentifier

            var extensions = Certificate.Extensions()
            try extensions.append(
                Certificate.Extension(BasicConstraints.notCertificateAuthority, critical: true)
            )
            try extensions.append(
                Certificate.Extension(KeyUsage(digitalSignature: true), critical: true)
            )
            try extensions.append(
                Certificate.Extension(try ExtendedKeyUsage([.serverAuth, .clientAuth]), critical: false)
            )
            if !alternativeNames.isEmpty {
                try extensions.append(
                    Certificate.Extension(SubjectAlternativeNames(alternativeNames), critical: false)
                )
            }
            try extensions.append(
                Certificate.Extension(SubjectKeyIdentifier(hash: publicKey), critical: false)
            )
            try extensions.append(
                Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: authorityKeyID), critical: false)
            )

            certificate = try Certificate(
                version: .v3,
                serialNumber: Self.randomSerialNumber(),
                publicKey: publicKey,
                notValidBefore: notValidBefore,
                notValidAfter: notValidAfter,
                issuer: self.certificate.subject,
                subject: subject,
                extensions: extensions,
                issuerPrivateKey: self.privateKey
            )
        } catch {
            throw PKIError(.issuanceFailed, "could not issue a certificate for \"\(name)\": \(error)")
        }

        return IssuedCertificate(
            name: name,
            certificatePEM: try Self.pem(of: certificate),
            privateKeyPEM: key.pemRepresentation
        )
    }

    /// Checks that `name` is a valid identity name, and throws ``PKIError/Code/invalidName`` if it is not.
    ///
    /// A valid name matches `^[a-z][a-z0-9-]{0,62}$` and is not reserved: `ca`, and names ending in
    /// `-key`, are refused because their files would collide with `ca.pem` or with another identity's
    /// `NAME-key.pem` in a ``PKIDirectory``.
    public static func validateName(_ name: String) throws {
        let bytes = Array(name.utf8)
        let isLowercaseLetter: (UInt8) -> Bool = { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }
        let isDigit: (UInt8) -> Bool = { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard
            let first = bytes.first,
            bytes.count <= 63,
            isLowercaseLetter(first),
            bytes.allSatisfy({ isLowercaseLetter($0) || isDigit($0) || $0 == UInt8(ascii: "-") })
        else {
            throw PKIError(
                .invalidName,
                "\(Self.quoted(name)) is not a valid name: use 1 to 63 characters of a-z, 0-9 and '-', starting with a letter"
            )
        }
        guard name != "ca", !name.hasSuffix("-key") else {
            throw PKIError(
                .invalidName,
                "\"\(name)\" is reserved: \"ca\" and names ending in \"-key\" would collide with the PKI directory's key files"
            )
        }
    }

    // MARK: - Helpers

    private static func validateCommonName(_ commonName: String) throws {
        guard
            !commonName.isEmpty,
            commonName.count <= 64,
            !commonName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw PKIError(
                .invalidName,
                "\(Self.quoted(commonName)) is not a valid CA common name: use 1 to 64 characters and no control characters"
            )
        }
    }

    /// A name, quoted for an error message, with control characters escaped and long input shortened.
    static func quoted(_ string: String) -> String {
        let shortened = string.count > 80 ? String(string.prefix(80)) + "…" : string
        return "\"" + shortened.unicodeScalars.map { $0.escaped(asASCII: false) }.joined() + "\""
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        let components = duration.components
        return TimeInterval(components.seconds) + TimeInterval(components.attoseconds) / 1e18
    }

    private static func positiveSeconds(_ duration: Duration) throws -> TimeInterval {
        let seconds = Self.seconds(duration)
        guard seconds >= 1, seconds.isFinite else {
            throw PKIError(.invalidValidity, "a validity period must be at least one second, not \(duration)")
        }
        return seconds
    }

    /// A random positive serial number of exactly 20 octets in DER (RFC 5280 section 4.1.2.2), with over 158
    /// random bits.
    ///
    /// `Certificate.SerialNumber()` draws 20 random bytes and encodes half of them with a leading zero
    /// byte, i.e. as 21 octets, over RFC 5280's limit. A first byte in 1...0x7f avoids that, and also a
    /// first byte of zero, which would be dropped and leave a high bit set in the next one.
    private static func randomSerialNumber() -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<20).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        bytes[0] = UInt8.random(in: 1...0x7f, using: &generator)
        return Certificate.SerialNumber(bytes: bytes)
    }

    /// The range of times an X.509 certificate can encode (years 1950 to 9999).
    private static let encodableTimes =
        Date(timeIntervalSince1970: -631_152_000)...Date(timeIntervalSince1970: 253_402_300_799)

    /// Throws ``PKIError/Code/invalidValidity`` unless both dates can be encoded in a certificate.
    ///
    /// swift-certificates traps on dates it cannot encode, so they must be refused before it sees them.
    private static func checkEncodable(_ notValidBefore: Date, _ notValidAfter: Date) throws {
        guard Self.encodableTimes.contains(notValidBefore), Self.encodableTimes.contains(notValidAfter) else {
            throw PKIError(
                .invalidValidity,
                "a certificate cannot be valid from \(notValidBefore) to \(notValidAfter): X.509 dates must lie in the years 1950 to 9999"
            )
        }
    }

    private static func pem(of certificate: Certificate) throws -> String {
        do {
            return try certificate.serializeAsPEM().pemString
        } catch {
            throw PKIError(.issuanceFailed, "could not encode the certificate as PEM: \(error)")
        }
    }
}

/// A leaf certificate issued by a ``CertificateAuthority``, with its private key.
public struct IssuedCertificate: Sendable, Hashable {
    /// The identity the certificate was issued for; it is the certificate's subject common name.
    public let name: String
    /// The certificate, PEM-encoded (`-----BEGIN CERTIFICATE-----`).
    public let certificatePEM: String
    /// The certificate's ECDSA P-256 private key, PEM-encoded as PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
    public let privateKeyPEM: String

    /// Creates a value from its parts. No validation is done.
    public init(name: String, certificatePEM: String, privateKeyPEM: String) {
        self.name = name
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }
}
