import Foundation
import RescindPKI
import Testing
import X509

// Only RescindPKI, X509, NIO and NIOSSL are dependencies of this test target, and under
// MemberImportVisibility SwiftASN1's and Crypto's members (e.g. `Certificate(pemEncoded:)`) are not
// visible here: certificates are parsed with `CertificateCoding` and keys with `Certificate.PrivateKey`.

@Suite("CertificateAuthority")
struct CertificateAuthorityTests {
    @Test("the CA certificate is a self-signed P-256 certificate authority")
    func caIsACertificateAuthority() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let authority = try CertificateAuthority.create(commonName: "Test CA", now: now)
        let certificate = try CertificateCoding.certificate(fromPEM: authority.certificatePEM)

        #expect(try certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(certificate.extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        let keyUsage = try #require(try certificate.extensions.keyUsage)
        #expect(keyUsage.keyCertSign)
        #expect(keyUsage.cRLSign)
        #expect(!keyUsage.digitalSignature)
        #expect(try certificate.extensions.subjectKeyIdentifier != nil)

        #expect(certificate.subject == certificate.issuer)
        #expect(try CertificateIdentity.commonName(fromPEM: authority.certificatePEM) == "Test CA")
        #expect(certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        #expect(certificate.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(Self.isP256(certificate.publicKey))

        #expect(certificate.notValidBefore == now.addingTimeInterval(-300))
        #expect(certificate.notValidAfter == now.addingTimeInterval(10 * 365 * 86_400))

        #expect(authority.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(authority.certificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
    }

    @Test("a loaded CA round-trips, and a SEC1 key is normalised to PKCS#8")
    func loadRoundTrip() throws {
        let authority = try CertificateAuthority.create()
        let loaded = try CertificateAuthority(
            certificatePEM: authority.certificatePEM,
            privateKeyPEM: authority.privateKeyPEM
        )
        #expect(loaded.certificatePEM == authority.certificatePEM)
        #expect(loaded.privateKeyPEM == authority.privateKeyPEM)

        let sec1PEM = try Self.sec1PEM(fromPKCS8PEM: authority.privateKeyPEM)
        #expect(sec1PEM.hasPrefix("-----BEGIN EC PRIVATE KEY-----\n"))
        let fromSEC1 = try CertificateAuthority(certificatePEM: authority.certificatePEM, privateKeyPEM: sec1PEM)
        #expect(fromSEC1.privateKeyPEM == authority.privateKeyPEM)
    }

    @Test("loading refuses a key that does not match, a leaf certificate, and garbage")
    func loadValidation() throws {
        let authority = try CertificateAuthority.create()
        let other = try CertificateAuthority.create()
        let leaf = try authority.issue(name: "orders", hosts: ["localhost"])

        let mismatch = #expect(throws: PKIError.self) {
            try CertificateAuthority(certificatePEM: authority.certificatePEM, privateKeyPEM: other.privateKeyPEM)
        }
        #expect(mismatch?.code == .invalidPrivateKey)

        let notCA = #expect(throws: PKIError.self) {
            try CertificateAuthority(certificatePEM: leaf.certificatePEM, privateKeyPEM: leaf.privateKeyPEM)
        }
        #expect(notCA?.code == .invalidCertificate)

        let garbageCertificate = #expect(throws: PKIError.self) {
            try CertificateAuthority(certificatePEM: "hello", privateKeyPEM: authority.privateKeyPEM)
        }
        #expect(garbageCertificate?.code == .invalidCertificate)

        let garbageKey = #expect(throws: PKIError.self) {
            try CertificateAuthority(certificatePEM: authority.certificatePEM, privateKeyPEM: "")
        }
        #expect(garbageKey?.code == .invalidPrivateKey)
    }

    @Test("a leaf has CN = name, the SANs, both EKUs, critical digitalSignature, CA:false and key identifiers")
    func leafContents() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let authority = try CertificateAuthority.create(now: now)
        let issued = try authority.issue(
            name: "orders",
            hosts: ["localhost", "orders.internal", "127.0.0.1", "::1", "[fe80::1]", "localhost", "*.orders.internal"],
            now: now.addingTimeInterval(60)
        )
        #expect(issued.name == "orders")
        #expect(issued.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))

        let ca = try CertificateCoding.certificate(fromPEM: authority.certificatePEM)
        let certificate = try CertificateCoding.certificate(fromPEM: issued.certificatePEM)
        #expect(try CertificateIdentity.commonName(fromDER: CertificateCoding.derBytes(of: certificate)) == "orders")
        #expect(try CertificateIdentity.commonName(of: certificate) == "orders")
        #expect(certificate.issuer == ca.subject)
        #expect(ca.publicKey.isValidSignature(certificate.signature, for: certificate))

        let sans = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(
            sans.map(\.description) == [
                #"DNSName("localhost")"#,
                #"DNSName("orders.internal")"#,
                "IPAddress([127, 0, 0, 1])",
                "IPAddress([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])",
                "IPAddress([254, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])",
                #"DNSName("*.orders.internal")"#,
            ]
        )

        let eku = try #require(try certificate.extensions.extendedKeyUsage)
        #expect(Array(eku) == [.serverAuth, .clientAuth])

        let keyUsage = try #require(try certificate.extensions.keyUsage)
        #expect(keyUsage == KeyUsage(digitalSignature: true))
        #expect(certificate.extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)

        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)

        let ski = try #require(try certificate.extensions.subjectKeyIdentifier)
        #expect(ski == SubjectKeyIdentifier(hash: certificate.publicKey))
        let aki = try #require(try certificate.extensions.authorityKeyIdentifier)
        #expect(aki.keyIdentifier == (try ca.extensions.subjectKeyIdentifier)?.keyIdentifier)

        #expect(Self.isP256(certificate.publicKey))
        let key = try Certificate.PrivateKey(pemEncoded: issued.privateKeyPEM)
        #expect(key.publicKey == certificate.publicKey)

        #expect(certificate.notValidBefore == now.addingTimeInterval(60 - 300))
        #expect(certificate.notValidAfter == now.addingTimeInterval(60 + 2 * 365 * 86_400))
    }

    @Test("serial numbers are random and positive")
    func serials() throws {
        let authority = try CertificateAuthority.create()
        // A first byte of zero or above 0x7f comes up once in 128 certificates; issue enough to meet both.
        let certificates = try (0..<600).map { _ in
            try CertificateCoding.certificate(fromPEM: authority.issue(name: "a", hosts: []).certificatePEM)
        }
        #expect(Set(certificates.map(\.serialNumber)).count == certificates.count)
        for certificate in certificates {
            // DER INTEGER content octets: at most 20 (RFC 5280), positive (no leading zero needed).
            let bytes = certificate.serialNumber.bytes
            #expect(bytes.count == 20)
            #expect((bytes.first ?? 0xff) < 0x80)
            #expect(bytes.first != 0)
        }
    }

    @Test("a client-only identity with no hosts gets no subjectAltName extension")
    func noHosts() throws {
        let authority = try CertificateAuthority.create()
        let certificate = try CertificateCoding.certificate(
            fromPEM: authority.issue(name: "operator", hosts: []).certificatePEM)
        #expect(try certificate.extensions.subjectAlternativeNames == nil)
        #expect(try CertificateIdentity.commonName(fromPEM: CertificateCoding.pem(of: certificate)) == "operator")
    }

    @Test("a leaf never outlives its CA, and an expired CA refuses to issue")
    func validityClamping() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let authority = try CertificateAuthority.create(validity: .seconds(86_400), now: now)
        let certificate = try CertificateCoding.certificate(
            fromPEM: authority.issue(name: "orders", hosts: [], now: now).certificatePEM)
        #expect(certificate.notValidAfter == now.addingTimeInterval(86_400))

        let expired = #expect(throws: PKIError.self) {
            try authority.issue(name: "orders", hosts: [], now: now.addingTimeInterval(2 * 86_400))
        }
        #expect(expired?.code == .invalidValidity)

        let zero = #expect(throws: PKIError.self) {
            try authority.issue(name: "orders", hosts: [], validity: .zero, now: now)
        }
        #expect(zero?.code == .invalidValidity)
        let negative = #expect(throws: PKIError.self) {
            try CertificateAuthority.create(validity: .seconds(-5))
        }
        #expect(negative?.code == .invalidValidity)

        // Absurd validities fail cleanly rather than trapping.
        let huge = #expect(throws: PKIError.self) {
            try CertificateAuthority.create(validity: .seconds(Int64.max))
        }
        #expect(huge?.code == .invalidValidity)
        let nonFinite = #expect(throws: PKIError.self) {
            try CertificateAuthority.create(now: Date(timeIntervalSince1970: .infinity))
        }
        #expect(nonFinite?.code == .invalidValidity)
        let tooEarly = #expect(throws: PKIError.self) {
            try CertificateAuthority.create(now: Date(timeIntervalSince1970: -1_000_000_000_000))
        }
        #expect(tooEarly?.code == .invalidValidity)
    }

    @Test(
        "valid names are accepted",
        arguments: [
            "orders", "payments", "inventory", "operator", "a", "a1", "svc-2", String(repeating: "x", count: 63),
        ]
    )
    func validNames(name: String) throws {
        try CertificateAuthority.validateName(name)
    }

    @Test(
        "invalid and reserved names are refused",
        arguments: [
            "", "Orders", "1orders", "-orders", "orders_1", "orders.x", "../etc", "orders/x", "or ders", "ordérs",
            "orders\n", String(repeating: "x", count: 64), "ca", "orders-key",
        ]
    )
    func invalidNames(name: String) throws {
        let authority = try CertificateAuthority.create()
        let error = #expect(throws: PKIError.self) {
            try authority.issue(name: name, hosts: [])
        }
        #expect(error?.code == .invalidName)
    }

    @Test(
        "invalid hosts are refused",
        arguments: [
            "", "local host", "-orders.internal", "orders-.internal", "orders..internal", "orders.internal.",
            "1.2.3", "256.1.1.1", "::1%lo", "[::1", "*.com", "a.*.com", "http://orders", "ordérs.internal",
            String(repeating: "a", count: 64) + ".internal",
        ]
    )
    func invalidHosts(host: String) throws {
        let authority = try CertificateAuthority.create()
        let error = #expect(throws: PKIError.self) {
            try authority.issue(name: "orders", hosts: ["localhost", host])
        }
        #expect(error?.code == .invalidHost)
    }

    @Test("invalid CA common names are refused")
    func invalidCommonNames() throws {
        for commonName in ["", String(repeating: "x", count: 65), "CA\u{0}", "CA\nname"] {
            let error = #expect(throws: PKIError.self) {
                try CertificateAuthority.create(commonName: commonName)
            }
            #expect(error?.code == .invalidName)
        }
    }

    @Test("CertificateIdentity refuses what is not a certificate, and certificates without exactly one CN")
    func identityErrors() throws {
        #expect(throws: PKIError.self) { try CertificateIdentity.commonName(fromDER: []) }
        #expect(throws: PKIError.self) { try CertificateIdentity.commonName(fromDER: [0x30, 0x03, 0x02, 0x01, 0x01]) }

        let key = try Certificate.PrivateKey(pemEncoded: CertificateAuthority.create().privateKeyPEM)
        func selfSigned(_ subject: DistinguishedName) throws -> [UInt8] {
            try CertificateCoding.derBytes(
                of:
                    Certificate(
                        version: .v3,
                        serialNumber: .init(),
                        publicKey: key.publicKey,
                        notValidBefore: Date(),
                        notValidAfter: Date().addingTimeInterval(60),
                        issuer: subject,
                        subject: subject,
                        extensions: .init(),
                        issuerPrivateKey: key
                    )
            )
        }
        let noCN = try selfSigned(try DistinguishedName { OrganizationName("Rescind") })
        #expect(throws: PKIError.self) { try CertificateIdentity.commonName(fromDER: noCN) }

        let twoCNs = try selfSigned(
            try DistinguishedName {
                CommonName("orders")
                CommonName("payments")
            }
        )
        let error = #expect(throws: PKIError.self) { try CertificateIdentity.commonName(fromDER: twoCNs) }
        #expect(error?.code == .invalidCertificate)

        let withOrganization = try selfSigned(
            try DistinguishedName {
                OrganizationName("Rescind")
                CommonName("inventory")
            }
        )
        #expect(try CertificateIdentity.commonName(fromDER: withOrganization) == "inventory")
    }

    @Test("PKIError describes itself with its code and message")
    func errorDescription() {
        let error = PKIError(.fileExists, "x.pem already exists")
        #expect(error.description == "fileExists: x.pem already exists")
        #expect(String(describing: error) == "fileExists: x.pem already exists")
    }

    // MARK: - Helpers

    /// Whether a public key is an ECDSA P-256 key: its key bits are a 65-byte uncompressed point
    /// (P-384 would be 97 bytes, P-521 133, Ed25519 32, and RSA a DER sequence).
    static func isP256(_ publicKey: Certificate.PublicKey) -> Bool {
        let bytes = publicKey.subjectPublicKeyInfoBytes
        return bytes.count == 65 && bytes.first == 0x04
    }

    /// The SEC1 (`EC PRIVATE KEY`, RFC 5915) PEM of a P-256 PKCS#8 PEM, to check that SEC1 keys load.
    ///
    /// A P-256 PKCS#8 key from swift-crypto is a fixed 29-byte header, then a SEC1 `ECPrivateKey`
    /// without the curve parameters: `30 6b 02 01 01 04 20 <32-byte key> a1 44 03 42 00 <65-byte point>`.
    /// The SEC1 form written by OpenSSL carries the curve (`[0] prime256v1`), so it is rebuilt with it.
    static func sec1PEM(fromPKCS8PEM pem: String) throws -> String {
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        let der = try #require(Data(base64Encoded: body).map { Array($0) })
        let header: [UInt8] = [
            0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
            0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d,
        ]
        try #require(der.count == header.count + 0x6d && Array(der.prefix(header.count)) == header)
        let inner = Array(der.dropFirst(header.count))
        try #require(Array(inner.prefix(7)) == [0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20])
        try #require(Array(inner[39..<44]) == [0xa1, 0x44, 0x03, 0x42, 0x00])
        let privateKey = inner[7..<39]
        let publicPoint = inner[44..<109]
        let sec1: [UInt8] =
            [0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20] + privateKey
            + [0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
            + [0xa1, 0x44, 0x03, 0x42, 0x00] + publicPoint
        let base64 = Data(sec1).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN EC PRIVATE KEY-----\n\(base64)\n-----END EC PRIVATE KEY-----\n"
    }
}
