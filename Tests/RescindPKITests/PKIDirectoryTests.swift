import Foundation
import RescindPKI
import Testing
import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite("PKIDirectory")
struct PKIDirectoryTests {
    @Test("initialize creates the directory (0700) and the CA files with 0644 / 0600 modes, then loads them")
    func initializeCreatesAndLoads() throws {
        try withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root.appendingPathComponent("nested/pki"))
            #expect(directory.caCertificatePath == root.path + "/nested/pki/ca.pem")
            #expect(directory.caPrivateKeyPath == root.path + "/nested/pki/ca-key.pem")

            let created = try withUmask(0o022) { try directory.initialize(commonName: "Suite CA") }
            #expect(try mode(of: root.path + "/nested/pki") == 0o700)
            #expect(try mode(of: directory.caCertificatePath) == 0o644)
            #expect(try mode(of: directory.caPrivateKeyPath) == 0o600)
            #expect(try String(contentsOfFile: directory.caCertificatePath, encoding: .utf8) == created.certificatePEM)
            #expect(try String(contentsOfFile: directory.caPrivateKeyPath, encoding: .utf8) == created.privateKeyPEM)
            #expect(try CertificateIdentity.commonName(fromPEM: created.certificatePEM) == "Suite CA")

            // A second initialize loads the same CA instead of replacing it.
            let again = try directory.initialize(commonName: "Another name")
            #expect(again.certificatePEM == created.certificatePEM)
            #expect(again.privateKeyPEM == created.privateKeyPEM)
            #expect(try directory.loadAuthority().certificatePEM == created.certificatePEM)
        }
    }

    @Test("modes are exact whatever the umask (0o077 here: it would make certificates 0600)")
    func modesIgnoreUmask() throws {
        try withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root)
            try withUmask(0o077) {
                try directory.initialize()
                try directory.issue(name: "orders", hosts: ["localhost"])
            }
            #expect(try mode(of: directory.caCertificatePath) == 0o644)
            #expect(try mode(of: directory.caPrivateKeyPath) == 0o600)
            #expect(try mode(of: directory.certificatePath(for: "orders")) == 0o644)
            #expect(try mode(of: directory.privateKeyPath(for: "orders")) == 0o600)
        }
    }

    @Test("issue writes NAME.pem (0644) and NAME-key.pem (0600), and refuses to overwrite unless asked")
    func issueWritesAndRefusesToOverwrite() throws {
        try withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root)
            try directory.initialize()

            let orders = try directory.issue(name: "orders", hosts: ["localhost", "127.0.0.1"])
            let certificatePath = directory.certificatePath(for: "orders")
            let keyPath = directory.privateKeyPath(for: "orders")
            #expect(certificatePath == root.path + "/orders.pem")
            #expect(keyPath == root.path + "/orders-key.pem")
            #expect(try mode(of: certificatePath) == 0o644)
            #expect(try mode(of: keyPath) == 0o600)
            #expect(try String(contentsOfFile: certificatePath, encoding: .utf8) == orders.certificatePEM)
            #expect(try String(contentsOfFile: keyPath, encoding: .utf8) == orders.privateKeyPEM)
            #expect(try CertificateIdentity.commonName(fromPEM: orders.certificatePEM) == "orders")

            let refused = #expect(throws: PKIError.self) {
                try directory.issue(name: "orders", hosts: ["localhost"])
            }
            #expect(refused?.code == .fileExists)
            #expect(try String(contentsOfFile: certificatePath, encoding: .utf8) == orders.certificatePEM)
            #expect(try String(contentsOfFile: keyPath, encoding: .utf8) == orders.privateKeyPEM)

            let replaced = try directory.issue(name: "orders", hosts: ["orders.internal"], overwrite: true)
            #expect(replaced.certificatePEM != orders.certificatePEM)
            #expect(try String(contentsOfFile: certificatePath, encoding: .utf8) == replaced.certificatePEM)
            #expect(try String(contentsOfFile: keyPath, encoding: .utf8) == replaced.privateKeyPEM)
            #expect(try mode(of: certificatePath) == 0o644)
            #expect(try mode(of: keyPath) == 0o600)

            // No temporary files are left behind.
            let files = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
            #expect(files == ["ca-key.pem", "ca.pem", "orders-key.pem", "orders.pem"])
        }
    }

    @Test("issue refuses when only the key file exists, and writes nothing")
    func issueRefusesWhenOneFileExists() throws {
        try withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root)
            try directory.initialize()
            try "keep me".write(toFile: directory.privateKeyPath(for: "payments"), atomically: false, encoding: .utf8)

            let refused = #expect(throws: PKIError.self) {
                try directory.issue(name: "payments", hosts: [])
            }
            #expect(refused?.code == .fileExists)
            #expect(!FileManager.default.fileExists(atPath: directory.certificatePath(for: "payments")))
            #expect(try String(contentsOfFile: directory.privateKeyPath(for: "payments"), encoding: .utf8) == "keep me")
        }
    }

    @Test("a symbolic link in place of a file is not followed")
    func symbolicLinkIsNotFollowed() throws {
        try withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root)
            try directory.initialize()
            let target = root.appendingPathComponent("target").path
            try FileManager.default.createSymbolicLink(
                atPath: directory.privateKeyPath(for: "orders"), withDestinationPath: target)

            let refused = #expect(throws: PKIError.self) {
                try directory.issue(name: "orders", hosts: [])
            }
            #expect(refused?.code == .fileExists)
            #expect(!FileManager.default.fileExists(atPath: target))
        }
    }

    @Test("issue validates the name before touching the file system")
    func issueValidatesNames() throws {
        try withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root)
            try directory.initialize()
            for name in ["../escape", "Orders", "ca", "orders-key", ""] {
                let error = #expect(throws: PKIError.self) {
                    try directory.issue(name: name, hosts: [], overwrite: true)
                }
                #expect(error?.code == .invalidName)
            }
            let files = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
            #expect(files == ["ca-key.pem", "ca.pem"])
        }
    }

    @Test("issue and loadAuthority without a CA fail with fileNotFound")
    func missingAuthority() throws {
        try withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root.appendingPathComponent("absent"))
            let load = #expect(throws: PKIError.self) { try directory.loadAuthority() }
            #expect(load?.code == .fileNotFound)
            let issue = #expect(throws: PKIError.self) { try directory.issue(name: "orders", hosts: []) }
            #expect(issue?.code == .fileNotFound)
        }
    }

    @Test("initialize refuses a half-present CA, and a corrupt CA fails to load")
    func inconsistentAuthority() throws {
        try withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root)
            let authority = try CertificateAuthority.create()
            try authority.certificatePEM.write(toFile: directory.caCertificatePath, atomically: false, encoding: .utf8)
            let halfPresent = #expect(throws: PKIError.self) { try directory.initialize() }
            #expect(halfPresent?.code == .fileNotFound)

            try "not a key".write(toFile: directory.caPrivateKeyPath, atomically: false, encoding: .utf8)
            let corrupt = #expect(throws: PKIError.self) { try directory.initialize() }
            #expect(corrupt?.code == .invalidPrivateKey)
        }
    }

    @Test("initialize refuses a path that is a file")
    func directoryIsAFile() throws {
        try withTemporaryDirectory { root in
            let file = root.appendingPathComponent("file")
            try "x".write(to: file, atomically: false, encoding: .utf8)
            let error = #expect(throws: PKIError.self) { try PKIDirectory(url: file).initialize() }
            #expect(error?.code == .io)
        }
    }

    @Test("certificates issued from a directory chain to the directory's CA")
    func issuedFromDirectoryChainsToCA() async throws {
        try await withTemporaryDirectory { root in
            let directory = PKIDirectory(url: root)
            let authority = try directory.initialize()
            let issued = try directory.issue(name: "inventory", hosts: ["localhost"])

            let ca = try CertificateCoding.certificate(fromPEM: authority.certificatePEM)
            let leaf = try CertificateCoding.certificate(fromPEM: issued.certificatePEM)
            var verifier = Verifier(rootCertificates: CertificateStore([ca])) {
                RFC5280Policy()
            }
            let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
            guard case .validCertificate(let chain) = result else {
                Issue.record("the chain did not validate: \(result)")
                return
            }
            #expect(Array(chain) == [leaf, ca])
        }
    }
}

// MARK: - Helpers

/// Runs `body` with a new empty temporary directory, removed afterwards.
func withTemporaryDirectory<T>(_ body: (URL) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("rescind-pki-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

/// Runs `body` with a new empty temporary directory, removed afterwards.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("rescind-pki-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

/// The permission bits of the file at `path`, not following symbolic links.
func mode(of path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    guard let permissions = attributes[.posixPermissions] as? Int else {
        throw PKIError(.io, "no permissions for \(path)")
    }
    return permissions & 0o7777
}

/// Serialises umask changes: the umask is process-wide and tests run in parallel.
private let umaskLock = NSLock()

/// Runs `body` with the process umask set to `mask`, restoring it afterwards.
func withUmask<T>(_ mask: mode_t, _ body: () throws -> T) rethrows -> T {
    umaskLock.lock()
    defer { umaskLock.unlock() }
    let previous = umask(mask)
    defer { umask(previous) }
    return try body()
}
