// One small real call (orders.cancel, 127-byte request, 680-byte answer) over mutual TLS on loopback,
// through Rescind's protocol, grpc-swift-2 and a raw NIO TLS echo of the same bytes, at 1, 16 and 256 calls
// in flight on one connection and across 8. A closed loop: each of the N callers makes its next call when
// the last is answered, for a fixed time after a warm-up. Servers and clients share this process (and its
// 2 cores), the same for all three; configurations take the three transports in turn, so that the ratios
// compare runs made a few seconds apart.
//
//     swift run -c release RPCBench [--duration 5] [--warmup 1] [--json rpc.json]
//
// Prints a markdown table: requests per second, latency percentiles (HdrHistogram, every call), and the
// process's CPU time per call (user + system, servers and clients together).

import Foundation
import Histogram
import RPCTransports
import RescindTransport

struct Options {
    var duration = 5.0
    var warmup = 1.0
    var json: String?
    var transports = Transport.allCases
    var inFlight = [1, 16, 256]
    var connections = [1, 8]

    init(_ arguments: [String]) {
        var rest = arguments.dropFirst()
        while let flag = rest.popFirst() {
            let value = rest.popFirst() ?? ""
            switch flag {
            case "--duration": duration = Double(value) ?? duration
            case "--warmup": warmup = Double(value) ?? warmup
            case "--json": json = value
            case "--transports": transports = value.split(separator: ",").compactMap { Transport(rawValue: String($0)) }
            case "--in-flight": inFlight = value.split(separator: ",").compactMap { Int($0) }
            case "--connections": connections = value.split(separator: ",").compactMap { Int($0) }
            default:
                FileHandle.standardError.write(Data("unknown option \(flag)\n".utf8))
                exit(2)
            }
        }
    }
}

struct Result: Codable {
    var transport: String
    var connections: Int
    var inFlight: Int
    var calls: Int
    var errors: Int
    var seconds: Double
    var requestsPerSecond: Double
    var p50Micros: Double
    var p99Micros: Double
    var p999Micros: Double
    var cpuMicrosPerCall: Double
}

/// User plus system CPU time of this process, in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// `inFlight` callers, caller i on connection i mod n, each calling again as soon as it is answered, until
/// `seconds` have passed.
func run(_ setup: BenchSetup, inFlight: Int, seconds: Double) async -> Result {
    let cpuBefore = cpuSeconds()
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    var latencies = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    var calls = 0
    var errors = 0
    await withTaskGroup(of: (Histogram<UInt64>, Int, Int).self) { group in
        for caller in 0..<inFlight {
            let client = setup.clients[caller % setup.clients.count]
            group.addTask {
                var mine = Histogram<UInt64>(
                    highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
                var calls = 0
                var errors = 0
                while ContinuousClock.now < end {
                    let sent = ContinuousClock.now
                    do {
                        try await client.call()
                        _ = mine.record(UInt64((ContinuousClock.now - sent).nanoseconds))
                        calls += 1
                    } catch {
                        errors += 1
                    }
                }
                return (mine, calls, errors)
            }
        }
        for await (histogram, n, failed) in group {
            latencies.add(histogram)
            calls += n
            errors += failed
        }
    }
    let elapsed = (ContinuousClock.now - start).seconds
    let cpu = cpuSeconds() - cpuBefore
    func micros(_ percentile: Double) -> Double { Double(latencies.valueAtPercentile(percentile)) / 1000 }
    return Result(
        transport: setup.transport.rawValue, connections: setup.clients.count, inFlight: inFlight, calls: calls,
        errors: errors, seconds: elapsed, requestsPerSecond: Double(calls) / elapsed, p50Micros: micros(50),
        p99Micros: micros(99), p999Micros: micros(99.9), cpuMicrosPerCall: calls > 0 ? cpu / Double(calls) * 1e6 : 0)
}

let options = Options(CommandLine.arguments)
let pki = try BenchPKI()
defer { pki.remove() }
var results: [Result] = []
print("| transport | connections | in flight | requests/s | p50 µs | p99 µs | p99.9 µs | CPU µs/call | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for connections in options.connections {
    for inFlight in options.inFlight {
        for transport in options.transports {
            let setup = try await BenchSetup.start(transport, connections: connections, pki: pki)
            _ = await run(setup, inFlight: inFlight, seconds: options.warmup)
            let result = await run(setup, inFlight: inFlight, seconds: options.duration)
            await setup.shutdown()
            results.append(result)
            print(
                "| \(transport) | \(connections) | \(inFlight) | \(Int(result.requestsPerSecond.rounded())) | "
                    + String(
                        format: "%.0f | %.0f | %.0f | %.1f | %d", result.p50Micros, result.p99Micros,
                        result.p999Micros, result.cpuMicrosPerCall, result.errors) + " |")
        }
    }
}
if let path = options.json {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(results).write(to: URL(fileURLWithPath: path))
}
