import Foundation

/// Writing a PKI to a directory: `ca.pem`, `ca-key.pem`, `NAME.pem`, `NAME-key.pem`.
///
/// Private keys are written with mode `0600`, certificates with mode `0644` (exactly, whatever the
/// umask), and the directory, when this type creates it, with mode `0700`. An existing file is never
/// overwritten unless asked; files are created exclusively (`O_EXCL`), so a file or symbolic link that
/// appears concurrently is not followed or clobbered either. Replacements are written to a temporary
/// file in the same directory and renamed into place.
public struct PKIDirectory: Sendable {
    /// The directory holding the PKI files.
    public let url: URL

    /// Creates a value for the directory at `url`. Nothing is read or written until a method is called.
    public init(url: URL) {
        self.url = url
    }

    /// The path of the CA certificate, `ca.pem`.
    public var caCertificatePath: String {
        self.path(of: "ca.pem")
    }

    /// The path of the CA private key, `ca-key.pem`.
    public var caPrivateKeyPath: String {
        self.path(of: "ca-key.pem")
    }

    /// The path of the certificate of identity `name`, `NAME.pem`.
    ///
    /// `name` is not validated here: call ``CertificateAuthority/validateName(_:)`` first when it comes
    /// from input, as ``issue(name:hosts:overwrite:validity:)`` does.
    public func certificatePath(for name: String) -> String {
        self.path(of: "\(name).pem")
    }

    /// The path of the private key of identity `name`, `NAME-key.pem`.
    ///
    /// `name` is not validated here: call ``CertificateAuthority/validateName(_:)`` first when it comes
    /// from input, as ``issue(name:hosts:overwrite:validity:)`` does.
    public func privateKeyPath(for name: String) -> String {
        self.path(of: "\(name)-key.pem")
    }

    /// Creates the directory and the CA if they are absent, else loads the existing CA.
    ///
    /// When neither `ca.pem` nor `ca-key.pem` exists, a new CA is created with
    /// ``CertificateAuthority/create(commonName:validity:now:)`` and written. When both exist, they are
    /// loaded with ``loadAuthority()`` and `commonName` is ignored.
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/fileNotFound`` if only one of the two CA files
    ///   exists, ``PKIError/Code/io`` on a file system failure, or any error of
    ///   ``CertificateAuthority/create(commonName:validity:now:)`` or ``loadAuthority()``.
    @discardableResult
    public func initialize(commonName: String = "Rescind Development CA") throws -> CertificateAuthority {
        try FileIO.createDirectory(self.directoryPath)

        let certificateExists = FileIO.exists(self.caCertificatePath)
        let keyExists = FileIO.exists(self.caPrivateKeyPath)
        switch (certificateExists, keyExists) {
        case (true, true):
            return try self.loadAuthority()
        case (true, false):
            throw PKIError(
                .fileNotFound,
                "\(self.caCertificatePath) exists but its private key \(self.caPrivateKeyPath) does not; restore the key or remove the certificate"
            )
        case (false, true):
            throw PKIError(
                .fileNotFound,
                "\(self.caPrivateKeyPath) exists but its certificate \(self.caCertificatePath) does not; restore the certificate or remove the key"
            )
        case (false, false):
            let authority = try CertificateAuthority.create(commonName: commonName)
            try self.writePair(
                certificatePEM: authority.certificatePEM,
                certificatePath: self.caCertificatePath,
                privateKeyPEM: authority.privateKeyPEM,
                privateKeyPath: self.caPrivateKeyPath,
                overwrite: false
            )
            return authority
        }
    }

    /// Loads the CA from `ca.pem` and `ca-key.pem`, validated as by ``CertificateAuthority/init(certificatePEM:privateKeyPEM:)``.
    ///
    /// - Throws: ``PKIError`` with code ``PKIError/Code/fileNotFound`` if a file is missing,
    ///   ``PKIError/Code/io`` if one cannot be read, or ``PKIError/Code/invalidCertificate`` /
    ///   ``PKIError/Code/invalidPrivateKey`` if they are not a usable CA.
    public func loadAuthority() throws -> CertificateAuthority {
        let certificatePEM = try FileIO.read(self.caCertificatePath)
        let privateKeyPEM = try FileIO.read(self.caPrivateKeyPath)
        do {
            return try CertificateAuthority(certificatePEM: certificatePEM, privateKeyPEM: privateKeyPEM)
        } catch let error as PKIError {
            throw PKIError(error.code, "\(self.directoryPath): \(error.message)")
        }
    }

    /// Issues a certificate for identity `name` with the directory's CA and writes `NAME.pem` and `NAME-key.pem`.
    ///
    /// - Parameters:
    ///   - name: The identity; see ``CertificateAuthority/validateName(_:)``.
    ///   - hosts: DNS names and IP addresses; see ``CertificateAuthority/issue(name:hosts:validity:now:)``.
    ///   - overwrite: Whether to replace existing files for `name`. When false and either file exists,
    ///     nothing is written and ``PKIError/Code/fileExists`` is thrown.
    ///   - validity: How long the certificate is valid for.
    /// - Throws: ``PKIError`` with code ``PKIError/Code/invalidName``, ``PKIError/Code/fileExists``,
    ///   ``PKIError/Code/io``, or any error of ``loadAuthority()`` and ``CertificateAuthority/issue(name:hosts:validity:now:)``.
    @discardableResult
    public func issue(
        name: String,
        hosts: [String],
        overwrite: Bool = false,
        validity: Duration = CertificateAuthority.defaultLeafValidity
    ) throws -> IssuedCertificate {
        try CertificateAuthority.validateName(name)
        let certificatePath = self.certificatePath(for: name)
        let privateKeyPath = self.privateKeyPath(for: name)
        if !overwrite {
            let existing = [certificatePath, privateKeyPath].filter(FileIO.exists)
            guard existing.isEmpty else {
                throw PKIError(
                    .fileExists,
                    "\(existing.joined(separator: " and ")) already exist\(existing.count == 1 ? "s" : ""); pass overwrite to replace"
                )
            }
        }

        let authority = try self.loadAuthority()
        let issued = try authority.issue(name: name, hosts: hosts, validity: validity)
        try self.writePair(
            certificatePEM: issued.certificatePEM,
            certificatePath: certificatePath,
            privateKeyPEM: issued.privateKeyPEM,
            privateKeyPath: privateKeyPath,
            overwrite: overwrite
        )
        return issued
    }

    // MARK: - Helpers

    private var directoryPath: String {
        self.url.path
    }

    private func path(of file: String) -> String {
        let directory = self.directoryPath
        return directory.hasSuffix("/") ? directory + file : directory + "/" + file
    }

    /// Writes a private key (0600) and its certificate (0644), the key first, so that a certificate never
    /// appears without its key. Without `overwrite`, a failure to create the certificate removes the key
    /// that was just created.
    private func writePair(
        certificatePEM: String,
        certificatePath: String,
        privateKeyPEM: String,
        privateKeyPath: String,
        overwrite: Bool
    ) throws {
        if overwrite {
            let keyTemporary = try FileIO.writeTemporary(besides: privateKeyPath, contents: privateKeyPEM, mode: 0o600)
            let certificateTemporary: String
            do {
                certificateTemporary = try FileIO.writeTemporary(
                    besides: certificatePath,
                    contents: certificatePEM,
                    mode: 0o644
                )
            } catch {
                FileIO.remove(keyTemporary)
                throw error
            }
            do {
                try FileIO.rename(keyTemporary, to: privateKeyPath)
            } catch {
                FileIO.remove(keyTemporary)
                FileIO.remove(certificateTemporary)
                throw error
            }
            do {
                try FileIO.rename(certificateTemporary, to: certificatePath)
            } catch {
                FileIO.remove(certificateTemporary)
                throw error
            }
        } else {
            try FileIO.createExclusive(privateKeyPath, contents: privateKeyPEM, mode: 0o600)
            do {
                try FileIO.createExclusive(certificatePath, contents: certificatePEM, mode: 0o644)
            } catch {
                FileIO.remove(privateKeyPath)
                throw error
            }
        }
    }
}
