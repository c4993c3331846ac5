import Foundation
import Histogram
import RescindAPI
import RescindSuite
import RescindTransport
import RescindWire
import Synchronization

/// A load generator against the real daemons: places orders, then cancels them (refund and restock), from
/// many connections, with durability on (every daemon answers only once its transaction is fsynced). It
/// counts sagas that ended, not requests sent, and measures latency with HdrHistogram: a placement from
/// request to answer, a cancellation from its acceptance to its terminal state (`sagas.wait`).
///
/// Closed loop: `concurrency` clients, each starting its next operation when the last one ended. Open
/// loop (`offeredRate`): operations start on a fixed schedule whatever the answers, and latency counts from
/// the scheduled start, so a slow system cannot hide its queueing (no coordinated omission).
public struct LoadRun: Sendable {
    public struct Configuration: Sendable {
        public var directory: URL
        /// Orders placed, then cancelled.
        public var orders = 2_000
        /// Clients at once (closed loop), or the most operations in flight (open loop).
        public var concurrency = 32
        /// Connections to each daemon, shared by the clients in turn.
        public var connections = 8
        /// Operations started per second (open loop); nil for a closed loop.
        public var offeredRate: Double?
        /// Also measure a restart: this many cancellations in flight (their refunds failing) when Orders is
        /// killed; then the time from its restart until every one has ended.
        public var resume: Int?
        /// Names this run's idempotency keys, so that a run on a suite that already holds orders (a grown
        /// one, to measure cost as data grows) repeats none of an earlier run's.
        public var runTag = String(UUID().uuidString.prefix(8)).lowercased()
        /// Where the daemons keep their data (PostgreSQL: a server of the run's own, from Debian's binaries).
        public var backend: RescindHarness.Backend = .sqlite
        /// Replicas of each daemon (PostgreSQL only); the clients spread their calls over them.
        public var replicas = 1

        public init(directory: URL) {
            self.directory = directory
        }
    }

    /// Latency percentiles in milliseconds.
    public struct Latency: Codable, Sendable {
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var p999: Double
        public var max: Double
        public var mean: Double

        init(_ histogram: Histogram<UInt64>) {
            func ms(_ micros: UInt64) -> Double { Double(micros) / 1_000 }
            p50 = ms(histogram.valueAtPercentile(50))
            p90 = ms(histogram.valueAtPercentile(90))
            p99 = ms(histogram.valueAtPercentile(99))
            p999 = ms(histogram.valueAtPercentile(99.9))
            max = ms(histogram.max)
            mean = histogram.mean / 1_000
        }
    }

    /// One phase: placements or cancellations.
    public struct Phase: Codable, Sendable {
        public var name: String
        public var started: Int
        /// Sagas that ended as asked: orders open, cancellations completed.
        public var completed: Int
        /// Operations that failed or whose saga ended otherwise, by error code or final state.
        public var failures: [String: Int]
        public var seconds: Double
        public var perSecond: Double
        public var latency: Latency
        /// For cancellations: how long `orders.cancel` took to answer (accepted).
        public var acceptLatency: Latency?
        /// CPU time each daemon spent per completed saga in this phase (user + system), in milliseconds.
        public var cpuMillisPerSaga: [String: Double] = [:]
    }

    /// Orders killed with cancellations in flight, then restarted.
    public struct Resume: Codable, Sendable {
        public var sagas: Int
        /// From kill -9 to Orders answering `health` again.
        public var restartSeconds: Double
        /// From Orders answering again to every saga ended.
        public var secondsToAllTerminal: Double
        public var completed: Int
    }

    public struct Report: Codable, Sendable {
        public var orders: Int
        public var concurrency: Int
        public var connections: Int
        public var offeredRate: Double?
        public var phases: [Phase]
        public var resume: Resume?
        /// Peak resident memory of each daemon (VmHWM), in MiB.
        public var peakResidentMiB: [String: Double]
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// Starts a suite in the directory, runs both phases, stops the suite.
    /// - Throws: if the suite cannot start.
    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        var options = RescindHarness.Options()
        options.proxies = false
        // Only the restart measurement makes the processor fail, to hold sagas in flight.
        options.processorFaults = configuration.resume != nil
        options.logLevel = "info"
        options.sagas = [:]
        options.replicas = configuration.replicas
        if configuration.backend == .postgres { options.postgres = try await PostgresServer.shared() }
        let h = try await RescindHarness.start(directory: configuration.directory, options: options)
        var opened: [SuiteConnection] = []
        do {
            let manifest = try SuiteManifest.load(h.suite.layout)
            let connections = try (0..<max(1, configuration.connections)).map { _ in
                try SuiteConnection(manifest: manifest)
            }
            opened = connections
            let skus = (0..<50).map { "LOAD-\($0)" }
            for sku in skus { try await h.setStock(sku, at: "main", onHand: 1_000_000) }

            // CPU per process: each replica of each daemon, and PostgreSQL's server with its backends.
            var meters: [String: @Sendable () -> Double] = [:]
            for process in [Identity.orders, .payments, .inventory].flatMap(h.suite.processes) {
                if let pid = h.suite.runningPID(process) { meters[process.rawValue] = { Self.cpuSeconds(pid) } }
            }
            if let server = h.postgresServer, let pid = server.processID {
                meters["postgresql"] = {
                    ([pid] + ProcessBox.children(of: pid)).map(Self.cpuSeconds).reduce(0, +)
                }
            }
            let pids = meters
            let placed = Placed()
            let tag = configuration.runTag
            let extra = configuration.resume ?? 0
            let place = try await phase(
                "place", count: configuration.orders + extra, connections: connections, pids: pids, progress: progress
            ) { index, c in
                let sku = skus[index % skus.count]
                let order = try await c.orders.call(
                    OrdersMethods.place,
                    PlaceOrderRequest(
                        customerEmail: "load\(index)@example.com", currency: "USD",
                        lines: [.init(sku: sku, quantity: 1, unitPriceMinor: 2_500)], paymentMethod: "pm_card_visa"),
                    idempotencyKey: "load-\(tag)-place-\(index)", timeout: .seconds(60))
                guard order.status == .open else { return .failed("order \(order.status)") }
                placed.add(order.id)
                return .completed
            }
            let orders = Array(placed.ids.dropLast(extra))
            let held = Array(placed.ids.suffix(extra))
            let cancel = try await phase(
                "cancel", count: orders.count, connections: connections, pids: pids, progress: progress
            ) { index, c in
                let accepted = try await c.orders.call(
                    OrdersMethods.cancel,
                    CancelOrderRequest(orderID: orders[index], reason: .customer, refund: true, restock: true),
                    idempotencyKey: "load-\(tag)-cancel-\(index)", timeout: .seconds(60))
                let acceptedAt = ContinuousClock.now
                let saga = try await c.orders.call(
                    OrdersMethods.waitSaga, WaitSagaRequest(sagaID: accepted.sagaID, timeoutMillis: 60_000),
                    timeout: .seconds(70))
                return saga.state == .completed ? .completed(acceptedAt: acceptedAt) : .failed("saga \(saga.state)")
            }
            var peak: [String: Double] = [:]
            for daemon in [Identity.orders, .payments, .inventory].flatMap(h.suite.processes) {
                if let pid = h.suite.runningPID(daemon) { peak[daemon.rawValue] = Self.peakResidentMiB(pid) }
            }
            let resume =
                held.isEmpty
                ? nil : try await Self.resume(h, held, connection: connections[0], tag: tag, progress: progress)
            await Self.close(connections)
            await h.stop(removeFiles: false)
            return Report(
                orders: configuration.orders, concurrency: configuration.concurrency,
                connections: configuration.connections, offeredRate: configuration.offeredRate,
                phases: [place, cancel], resume: resume, peakResidentMiB: peak)
        } catch {
            await Self.close(opened)
            await h.stop(removeFiles: false)
            throw error
        }
    }

    private static func close(_ connections: [SuiteConnection]) async {
        for connection in connections { await connection.shutdown() }
    }

    /// Cancels `orders` while the processor refuses every refund, kills Orders, lets the processor work again,
    /// restarts Orders and times it until every cancellation has ended.
    private static func resume(
        _ h: RescindHarness, _ orders: [UUID], connection: SuiteConnection, tag: String,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> Resume {
        try await h.setProcessorFaults(ProcessorFaults(mode: .unavailable))
        // Accepted together, so that none has been failing (and backing off) much longer than the others.
        let sagas = try await withThrowingTaskGroup(of: UUID.self) { group in
            for (index, order) in orders.enumerated() {
                group.addTask {
                    try await connection.orders.call(
                        OrdersMethods.cancel, CancelOrderRequest(orderID: order, reason: .customer),
                        idempotencyKey: "load-\(tag)-resume-\(index)", timeout: .seconds(60)
                    ).sagaID
                }
            }
            return try await group.reduce(into: [UUID]()) { $0.append($1) }
        }
        progress("resume: \(sagas.count) cancellations in flight; killing Orders")
        await h.crash(.orders)
        let killed = ContinuousClock.now
        try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
        try await h.restart()
        let restarted = ContinuousClock.now
        try await h.waitUntilQuiet(timeout: .seconds(300))
        let quiet = ContinuousClock.now
        var completed = 0
        for saga in sagas {
            let state = try await h.orders.call(OrdersMethods.getSaga, SagaRequest(sagaID: saga)).state
            if state == .completed { completed += 1 }
        }
        return Resume(
            sagas: sagas.count, restartSeconds: (restarted - killed).seconds,
            secondsToAllTerminal: (quiet - restarted).seconds, completed: completed)
    }

    /// How one operation ended.
    enum Outcome: Sendable {
        /// The saga ended as asked; for a cancellation, when it was accepted.
        case completed(acceptedAt: ContinuousClock.Instant? = nil)
        case failed(String)

        static var completed: Outcome { .completed(acceptedAt: nil) }
    }

    /// Runs `count` operations (closed loop, or open loop at the offered rate) and measures them.
    private func phase(
        _ name: String, count: Int? = nil, connections: [SuiteConnection], pids: [String: @Sendable () -> Double],
        progress: @escaping @Sendable (String) -> Void,
        operation: @escaping @Sendable (Int, SuiteConnection) async throws -> Outcome
    ) async throws -> Phase {
        let total = count ?? configuration.orders
        let tally = PhaseTally()
        let cpuBefore = pids.mapValues { $0() }
        let start = ContinuousClock.now
        let concurrency = max(1, configuration.concurrency)
        let rate = configuration.offeredRate
        let reporter = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let (done, failed) = tally.counts
                let elapsed = (ContinuousClock.now - start).seconds
                progress(
                    "\(name): \(done + failed)/\(total) ended, \(failed) failed, "
                        + "\(Int(Double(done) / max(elapsed, 0.001)))/s")
            }
        }
        defer { reporter.cancel() }
        // One operation, timed from `scheduled` (open loop) or from its own start (closed loop).
        @Sendable func run(_ index: Int, scheduled: ContinuousClock.Instant?) async {
            let begin = scheduled ?? ContinuousClock.now
            let connection = connections[index % connections.count]
            do {
                switch try await operation(index, connection) {
                case .completed(let acceptedAt):
                    let end = ContinuousClock.now
                    if let acceptedAt {
                        tally.completed(latency: end - acceptedAt, accept: acceptedAt - begin)
                    } else {
                        tally.completed(latency: end - begin, accept: nil)
                    }
                case .failed(let why):
                    tally.failed(why)
                }
            } catch {
                tally.failed(
                    (error as? RescindError).map { "\($0.code)\($0.reason.map { "/\($0)" } ?? "")" } ?? "\(error)")
            }
        }
        if let rate {
            let interval = Duration.seconds(1 / rate)
            await withDiscardingTaskGroup { group in
                let gate = InFlight(limit: max(concurrency, 1))
                for index in 0..<total {
                    let scheduled = start + interval * index
                    try? await Task.sleep(until: scheduled)
                    await gate.enter()
                    group.addTask {
                        await run(index, scheduled: scheduled)
                        await gate.leave()
                    }
                }
            }
        } else {
            let next = Ticket()
            await withDiscardingTaskGroup { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        while true {
                            let index = next.take()
                            guard index < total else { return }
                            await run(index, scheduled: nil)
                        }
                    }
                }
            }
        }
        let seconds = (ContinuousClock.now - start).seconds
        var result = tally.phase(name, started: total, seconds: seconds)
        for (daemon, meter) in pids {
            let spent = meter() - (cpuBefore[daemon] ?? 0)
            result.cpuMillisPerSaga[daemon] = spent * 1_000 / Double(max(result.completed, 1))
        }
        return result
    }

    /// User plus system CPU time of a process so far, in seconds (Linux: /proc/PID/stat, 100 ticks a second).
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // After the command name: state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / 100
    }

    /// VmHWM of a process, in MiB (Linux).
    static func peakResidentMiB(_ pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes / 1024
    }
}

/// Hands out 0, 1, 2, ... to the clients of a closed loop.
private final class Ticket: Sendable {
    private let next = Mutex(0)
    func take() -> Int {
        next.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}

/// Orders placed in the first phase, for the second.
private final class Placed: Sendable {
    private let state = Mutex<[UUID]>([])
    func add(_ id: UUID) { state.withLock { $0.append(id) } }
    var ids: [UUID] { state.withLock { $0 } }
}

/// The histograms and counts of one phase, filled by many tasks.
private final class PhaseTally: Sendable {
    private struct State {
        /// Microseconds, from 1 µs to an hour, 3 significant digits.
        var latency = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var accept = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var completed = 0
        var failures: [String: Int] = [:]
    }

    private let state = Mutex(State())

    var counts: (completed: Int, failed: Int) {
        state.withLock { ($0.completed, $0.failures.values.reduce(0, +)) }
    }

    func completed(latency: Duration, accept: Duration?) {
        state.withLock { state in
            state.completed += 1
            _ = state.latency.record(Self.micros(latency))
            if let accept { _ = state.accept.record(Self.micros(accept)) }
        }
    }

    func failed(_ why: String) {
        state.withLock { $0.failures[why, default: 0] += 1 }
    }

    func phase(_ name: String, started: Int, seconds: Double) -> LoadRun.Phase {
        state.withLock { state in
            LoadRun.Phase(
                name: name, started: started, completed: state.completed, failures: state.failures, seconds: seconds,
                perSecond: Double(state.completed) / max(seconds, 0.001), latency: .init(state.latency),
                acceptLatency: state.accept.totalCount > 0 ? .init(state.accept) : nil)
        }
    }

    private static func micros(_ duration: Duration) -> UInt64 {
        UInt64(max(1, duration.seconds * 1_000_000))
    }
}

/// At most `limit` operations in flight in an open loop: past it, the schedule waits (and the latency of
/// what waits counts from its scheduled start).
private actor InFlight {
    private let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func enter() async {
        if running < limit {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
