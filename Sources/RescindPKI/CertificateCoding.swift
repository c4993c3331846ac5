import SwiftASN1
import X509

/// Converting certificates between PEM, DER and swift-certificates' `Certificate`, with ``PKIError``s.
///
/// Modules that do not import SwiftASN1 themselves (which, under `MemberImportVisibility`, is needed
/// to call `Certificate(pemEncoded:)` or `Certificate(derEncoded:)` directly) can use these instead.
public enum CertificateCoding {
    /// Parses the first `CERTIFICATE` block of a PEM string.
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidCertificate``.
    public static func certificate(fromPEM pem: String) throws -> Certificate {
        do {
            return try Certificate(pemEncoded: pem)
        } catch {
            throw PKIError(.invalidCertificate, "not a valid PEM X.509 certificate: \(error)")
        }
    }

    /// Parses a DER-encoded certificate.
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidCertificate``.
    public static func certificate(fromDER der: [UInt8]) throws -> Certificate {
        do {
            return try Certificate(derEncoded: der)
        } catch {
            throw PKIError(.invalidCertificate, "not a valid DER X.509 certificate: \(error)")
        }
    }

    /// The DER encoding of a certificate.
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidCertificate``.
    public static func derBytes(of certificate: Certificate) throws -> [UInt8] {
        do {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        } catch {
            throw PKIError(.invalidCertificate, "could not encode the certificate as DER: \(error)")
        }
    }

    /// The PEM encoding of a certificate (`-----BEGIN CERTIFICATE-----`).
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidCertificate``.
    public static func pem(of certificate: Certificate) throws -> String {
        do {
            return try certificate.serializeAsPEM().pemString
        } catch {
            throw PKIError(.invalidCertificate, "could not encode the certificate as PEM: \(error)")
        }
    }
}
