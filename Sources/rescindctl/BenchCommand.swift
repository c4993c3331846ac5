import ArgumentParser
import Foundation
import RescindTestSupport

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load the real daemons: place orders, then cancel them, and measure sagas per second and latency.",
        discussion: """
            Starts a fresh suite in --dir (or, with --existing, the one there) (production saga settings, durable commits), places --orders orders from \
            --concurrency clients over --connections connections per daemon, then cancels each with refund and \
            restock. Counts sagas that ended, not requests sent; latency of a cancellation runs from its \
            acceptance to its terminal state. With --rate, operations start on a fixed schedule (open loop) and \
            latency counts from the scheduled start. BENCHMARKS.md has figures from this machine.
            """
    )

    @Option(help: "A new directory for the suite; kept afterwards, with its logs and databases.")
    var dir: String
    @Option(help: "Orders to place, then cancel.")
    var orders = 2_000
    @Option(help: "Clients at once (closed loop), or the most operations in flight (open loop).")
    var concurrency = 32
    @Option(help: "Connections to each daemon.")
    var connections = 8
    @Option(help: "Operations started per second (open loop); without it, a closed loop.")
    var rate: Double?
    @Option(help: "Also kill Orders with this many cancellations in flight and time its recovery.")
    var resume: Int?
    @Flag(help: "Run on the suite already in --dir, whose orders stay (one grown by Benchmarks/grow.py, say).")
    var existing = false
    @Option(
        help: "Where the daemons keep their data: sqlite, or postgres (a server the run starts from Debian's binaries)."
    )
    var backend = "sqlite"
    @Option(help: "Replicas of each daemon (postgres only); the clients spread their calls over them.")
    var replicas = 1
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard let backend = RescindHarness.Backend(rawValue: backend) else {
            throw ValidationError("--backend is sqlite or postgres")
        }
        if replicas != 1, backend != .postgres || !(1...9).contains(replicas) {
            throw ValidationError("--replicas is 1 to 9, with --backend postgres")
        }
    }

    func run() async throws {
        let directory = URL(fileURLWithPath: dir)
        let exists = FileManager.default.fileExists(atPath: directory.appendingPathComponent("suite.json").path)
        if exists && !existing {
            throw ValidationError("\(dir) already holds a suite; bench starts from a new directory (or --existing)")
        }
        if !exists && existing { throw ValidationError("\(dir) holds no suite to run on") }
        var configuration = LoadRun.Configuration(directory: directory)
        configuration.orders = orders
        configuration.concurrency = concurrency
        configuration.connections = connections
        configuration.offeredRate = rate
        configuration.resume = resume
        configuration.backend = RescindHarness.Backend(rawValue: backend) ?? .sqlite
        configuration.replicas = replicas
        let report = try await LoadRun(configuration).run(progress: output.progress)
        try output.emit(report, text: Self.render)
        let resumed = report.resume.map { $0.completed == $0.sagas } ?? true
        if report.phases.contains(where: { !$0.failures.isEmpty }) || !resumed { throw ExitCode(1) }
    }

    static func render(_ report: LoadRun.Report) -> String {
        func row(_ name: String, _ l: LoadRun.Latency) -> String {
            "  \(Render.pad(name, 22)) p50 \(l.p50) ms  p90 \(l.p90)  p99 \(l.p99)  p99.9 \(l.p999)  max \(l.max)"
        }
        var lines = [
            "\(report.orders) orders, \(report.concurrency) clients, \(report.connections) connections per daemon, "
                + (report.offeredRate.map { "open loop at \($0)/s" } ?? "closed loop")
        ]
        for phase in report.phases {
            lines.append(
                "\(phase.name): \(phase.completed)/\(phase.started) in \(String(format: "%.1f", phase.seconds)) s, "
                    + "\(String(format: "%.0f", phase.perSecond)) per second")
            lines.append(row(phase.name == "cancel" ? "accepted → terminal" : "request → answer", phase.latency))
            if let accept = phase.acceptLatency { lines.append(row("request → accepted", accept)) }
            lines.append(
                "  CPU per saga: "
                    + phase.cpuMillisPerSaga.sorted { $0.key < $1.key }
                    .map { "\($0.key) \(String(format: "%.2f", $0.value)) ms" }.joined(separator: ", "))
            for (why, count) in phase.failures.sorted(by: { $0.key < $1.key }) {
                lines.append("  failed \(count): \(why)")
            }
        }
        if let resume = report.resume {
            lines.append(
                "resume: Orders killed with \(resume.sagas) cancellations in flight; back in "
                    + "\(String(format: "%.1f", resume.restartSeconds)) s; all ended "
                    + "\(String(format: "%.1f", resume.secondsToAllTerminal)) s later (\(resume.completed) completed)")
        }
        lines.append(
            "peak resident memory: "
                + report.peakResidentMiB.sorted { $0.key < $1.key }.map { "\($0.key) \(Int($0.value)) MiB" }
                .joined(separator: ", "))
        return lines.joined(separator: "\n")
    }
}
