import SwiftASN1
import X509

/// The identity a certificate carries: the subject common name. Used by the transport to authorise a TLS peer.
///
/// Call it only on a certificate that TLS has already verified against the suite's CA (for NIOSSL:
/// the peer certificate after the handshake completed with verification on); this type does not verify
/// anything, it only reads the name.
public enum CertificateIdentity {
    /// The subject common name of a DER-encoded X.509 certificate.
    ///
    /// - Parameter der: The certificate's DER bytes (for NIOSSL: `NIOSSLCertificate.toDERBytes()`).
    /// - Returns: The single common name (OID 2.5.4.3) in the certificate's subject, exactly as encoded.
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidCertificate`` if the bytes are not a
    ///   certificate, or if its subject has no common name, more than one (an ambiguous identity), or a
    ///   common name that is not a UTF8String, PrintableString or IA5String.
    public static func commonName(fromDER der: [UInt8]) throws -> String {
        try self.commonName(of: CertificateCoding.certificate(fromDER: der))
    }

    /// The subject common name of a swift-certificates `Certificate`.
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidCertificate``, as ``commonName(fromDER:)``.
    public static func commonName(of certificate: Certificate) throws -> String {
        let values = certificate.subject
            .flatMap { $0 }
            .filter { $0.type == .RDNAttributeType.commonName }
            .map(\.value)
        guard values.count == 1, let value = values.first else {
            throw PKIError(
                .invalidCertificate,
                values.isEmpty
                    ? "the certificate subject \(certificate.subject) has no common name"
                    : "the certificate subject \(certificate.subject) has \(values.count) common names, so its identity is ambiguous"
            )
        }
        guard let name = String(value) else {
            throw PKIError(
                .invalidCertificate,
                "the common name of the certificate subject \(certificate.subject) is not a text string"
            )
        }
        return name
    }

    /// The subject common name of a PEM-encoded X.509 certificate (the first `CERTIFICATE` block).
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidCertificate``, as ``commonName(fromDER:)``.
    public static func commonName(fromPEM pem: String) throws -> String {
        try self.commonName(of: CertificateCoding.certificate(fromPEM: pem))
    }
}
