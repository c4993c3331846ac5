// Allocations (malloc calls, servers and client together) and time of one call through each transport of
// RPCTransports, one call in flight on one connection. The figures of requests/s and latency under
// concurrency come from RPCBench; this one counts allocations, which do not depend on the machine's load, and
// checks them against the thresholds in Thresholds/ (README.md here: "Allocation thresholds").

import Benchmark
import RPCTransports

let benchmarks: @Sendable () -> Void = {
    for transport in Transport.allCases {
        let state = SetupState()
        Benchmark(
            "RPC_\(transport)_call",
            configuration: .init(
                metrics: [.wallClock, .mallocCountTotal, .throughput],
                timeUnits: .microseconds,
                warmupIterations: 100,
                maxDuration: .seconds(3),
                maxIterations: 20_000,
                thresholds: [.mallocCountTotal: .init(absolute: [.p50: 2, .p90: 4])]
            ),
            closure: { (benchmark: Benchmark, client: any BenchClient) async in
                for _ in benchmark.scaledIterations {
                    try? await client.call()
                }
            },
            setup: {
                let pki = try BenchPKI()
                let setup = try await BenchSetup.start(transport, connections: 1, pki: pki)
                state.stop = {
                    await setup.shutdown()
                    pki.remove()
                }
                return setup.clients[0] as any BenchClient
            },
            teardown: { await state.stop?() }
        )
    }
}

/// What a benchmark's teardown stops (the framework hands the setup's result to the closure only).
final class SetupState: @unchecked Sendable {
    var stop: (@Sendable () async -> Void)?
}
