import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Android)
    import Android
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small POSIX file helpers: exclusive creation with exact modes, atomic replacement, bounded reads.
enum FileIO {
    /// The largest file ``read(_:)`` accepts; PKI files are a few kilobytes.
    static let maximumReadSize = 1 << 20

    /// Whether something (a file, directory or symbolic link, even a dangling one) exists at `path`.
    static func exists(_ path: String) -> Bool {
        let info = UnsafeMutablePointer<stat>.allocate(capacity: 1)
        defer { info.deallocate() }
        return lstat(path, info) == 0
    }

    /// Creates `path` and any missing parents; directories created here get mode 0700.
    static func createDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw PKIError(.io, "\(path) exists and is not a directory")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: path,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        } catch {
            throw PKIError(.io, "could not create the directory \(path): \(error)")
        }
    }

    /// Creates a new file at `path` with exactly `mode` and writes `contents`, failing with
    /// ``PKIError/Code/fileExists`` if anything (even a symbolic link) is already there.
    static func createExclusive(_ path: String, contents: String, mode: mode_t) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard descriptor >= 0 else {
            let code = errno
            if code == EEXIST {
                throw PKIError(.fileExists, "\(path) already exists")
            }
            throw self.error(code, "could not create \(path)")
        }
        do {
            try self.write(contents, to: descriptor, path: path, mode: mode)
        } catch {
            self.remove(path)
            throw error
        }
    }

    /// Writes `contents` to a new temporary file with exactly `mode` in the directory of `path`, and returns its path.
    static func writeTemporary(besides path: String, contents: String, mode: mode_t) throws -> String {
        for _ in 0..<8 {
            let suffix = (0..<8).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
            let temporary = "\(path).tmp-\(suffix)"
            do {
                try self.createExclusive(temporary, contents: contents, mode: mode)
                return temporary
            } catch let error as PKIError where error.code == .fileExists {
                continue
            }
        }
        throw PKIError(.io, "could not create a temporary file next to \(path)")
    }

    /// Atomically renames `source` to `destination`, replacing whatever is at `destination`.
    static func rename(_ source: String, to destination: String) throws {
        guard posixRename(source, destination) == 0 else {
            throw self.error(errno, "could not move \(source) to \(destination)")
        }
    }

    /// Removes the file at `path`, ignoring errors.
    static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Reads a whole file as UTF-8 text.
    static func read(_ path: String) throws -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            if code == ENOENT {
                throw PKIError(.fileNotFound, "\(path) does not exist")
            }
            throw self.error(code, "could not open \(path)")
        }
        defer { _ = close(descriptor) }

        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { posixRead(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw self.error(code, "could not read \(path)")
            }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
            guard bytes.count <= self.maximumReadSize else {
                throw PKIError(.io, "\(path) is larger than \(self.maximumReadSize) bytes, too large for a PEM file")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw PKIError(.io, "\(path) is not UTF-8 text")
        }
        return text
    }

    private static func write(_ contents: String, to descriptor: Int32, path: String, mode: mode_t) throws {
        var closed = false
        defer {
            if !closed { _ = close(descriptor) }
        }
        // Set the exact mode: `open` applies the umask.
        guard fchmod(descriptor, mode) == 0 else {
            throw self.error(errno, "could not set the mode of \(path)")
        }
        let bytes = Array(contents.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { posixWrite(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                throw self.error(code, "could not write \(path)")
            }
            offset += written
        }
        guard fsync(descriptor) == 0 else {
            throw self.error(errno, "could not flush \(path)")
        }
        closed = true
        guard close(descriptor) == 0 else {
            throw self.error(errno, "could not close \(path)")
        }
    }

    private static func error(_ code: Int32, _ message: String) -> PKIError {
        PKIError(.io, "\(message): \(String(cString: strerror(code)))")
    }
}

// Inside `FileIO`, unqualified `read`, `write` and `rename` resolve to its own members; these reach the C functions.
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, buffer, count)
}

private func posixRename(_ source: String, _ destination: String) -> Int32 {
    rename(source, destination)
}
