import Foundation
import Testing

/// Runs the built `rescindctl` as a user does; returns its exit status and standard output.
///
/// The output goes to a file, not a pipe: a pipe ends only when every process holding it has closed it, so a
/// daemon that outlived the command would keep the test waiting. The command is killed after `timeout`.
/// - Throws: if the binary is not built or cannot start, or it has not finished within `timeout`.
func runRescindctl(
    _ arguments: [String], timeout: Duration = .seconds(120)
) async throws -> (status: Int32, output: Data) {
    let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("rescindctl")
    try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build first: swift build")
    let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent(
        "rescindctl-\(UUID().uuidString).out")
    try #require(FileManager.default.createFile(atPath: outputFile.path, contents: nil))
    defer { try? FileManager.default.removeItem(at: outputFile) }
    let output = try FileHandle(forWritingTo: outputFile)
    defer { try? output.close() }

    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    let (exited, exit) = AsyncStream.makeStream(of: Int32.self)
    process.terminationHandler = { exit.yield($0.terminationStatus) }
    try process.run()

    let status = try await withThrowingTaskGroup(of: Int32?.self) { group in
        group.addTask {
            for await status in exited { return status }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        return first
    }
    guard let status else {
        kill(process.processIdentifier, SIGKILL)
        throw RescindctlTimeout(arguments: arguments, timeout: timeout)
    }
    return (status, try Data(contentsOf: outputFile))
}

/// `rescindctl` did not finish in time.
struct RescindctlTimeout: Error, CustomStringConvertible {
    var arguments: [String]
    var timeout: Duration
    var description: String { "rescindctl \(arguments.joined(separator: " ")) did not finish within \(timeout)" }
}
