import Foundation

/// A test peer that is a Python program nobody on this project wrote (localstripe, aiosmtpd), run by a short
/// script that binds a free loopback port, prints it, and serves.
struct PythonPeer {
    let process: Process
    let port: Int

    /// Whether `module` can be imported, or `RESCIND_REQUIRE_PEERS` is set (CI), so that a missing peer fails
    /// the tests that need it instead of skipping them.
    static func available(_ module: String) -> Bool {
        if ProcessInfo.processInfo.environment["RESCIND_REQUIRE_PEERS"] != nil { return true }
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", "import \(module)"]
        check.standardOutput = FileHandle.nullDevice
        check.standardError = FileHandle.nullDevice
        guard (try? check.run()) != nil else { return false }
        check.waitUntilExit()
        return check.terminationStatus == 0
    }

    /// Runs `script` with `arguments` and reads the port it prints first (blocking until it comes or the process
    /// ends).
    /// - Throws: `PeerError` naming `package` if the port never comes.
    init(script: String, arguments: [String] = [], environment: [String: String] = [:], package: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        let handle = output.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let text = String(data: line, encoding: .utf8)?.split(separator: "\n").first, let port = Int(text) else {
            process.terminate()
            throw PeerError(message: "\(package) did not start (pip install \(package))")
        }
        self.process = process
        self.port = port
    }

    /// Stops it with SIGKILL (an aiohttp server's graceful shutdown can wait for ever; nothing of it is kept).
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}
