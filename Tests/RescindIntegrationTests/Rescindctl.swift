import Foundation
import Testing

/// Runs the built `rescindctl` as a user does; returns its exit status and standard output.
///
/// The output goes to a file, not a pipe: a pipe ends only when every process holding it has closed it, so a
/// daemon that outlived the command would keep the test waiting. The wait is for the command's exit; if the
/// test is cancelled meanwhile (its time limit passed), the command is killed.
/// - Throws: if the binary is not built or cannot start, or the test was cancelled before the command ended.
func runRescindctl(_ arguments: [String]) async throws -> (status: Int32, output: Data) {
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

    let pid = process.processIdentifier
    let status = await withTaskCancellationHandler {
        var statuses = exited.makeAsyncIterator()
        return await statuses.next()
    } onCancel: {
        kill(pid, SIGKILL)
    }
    guard let status else { throw CancellationError() }
    return (status, try Data(contentsOf: outputFile))
}
