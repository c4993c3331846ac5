import Foundation
import Testing

/// Runs the built `rescindctl` as a user does; returns its exit status and standard output.
/// - Throws: if the binary is not built or cannot start.
func runRescindctl(_ arguments: [String]) throws -> (status: Int32, output: Data) {
    let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("rescindctl")
    try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build first: swift build")
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    let stdout = Pipe()
    process.standardOutput = stdout
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, data)
}
