// Encoding and decoding the real request and response types with the wire codec (CBOR) and with
// Foundation's JSONEncoder/JSONDecoder, on the same fixed values. Compare the two as ratios within
// one run: absolute times on a shared 2-core machine move between runs.
//
// Each benchmark runs 1,000 operations per sample (`scalingFactor: .kilo`); the tool prints every
// time and allocation count per operation.

import Benchmark
import Fixtures
import Foundation
import RescindAPI
import RescindCBOR
import RescindWire

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        timeUnits: .nanoseconds,
        warmupIterations: 2,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000
    )

    register("PlaceOrderRequest", Fixtures.placeOrderRequest)
    register("CancelOrderRequest", Fixtures.cancelOrderRequest)
    register("RequestEnvelope", Fixtures.requestEnvelope)
    register("Order", Fixtures.order)
    register("Saga", Fixtures.saga)
    register("StockReport", Fixtures.stockReport)
}

/// Names have no spaces: the benchmark tool writes a name's thresholds file with "_" for " ", and looks for
/// it under the name as it is.
///
/// Registers CBOR encode, CBOR decode, JSON encode and JSON decode of `value`, after checking once
/// that both codecs give the value back unchanged (so no benchmark measures a broken path).
///
func register<T: Codable & Equatable & Sendable>(_ name: String, _ value: T) {
    let cbor = try! CBOREncoder().encode(value)
    let json = try! JSONEncoder().encode(value)
    precondition(try! CBORDecoder().decode(T.self, from: cbor) == value, "\(name): CBOR round trip changed the value")
    precondition(try! JSONDecoder().decode(T.self, from: json) == value, "\(name): JSON round trip changed the value")

    Benchmark("\(name)_CBOR_encode_(\(cbor.count)_B)") { benchmark in
        let encoder = CBOREncoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try! encoder.encode(value))
        }
    }
    Benchmark("\(name)_CBOR_decode_(\(cbor.count)_B)") { benchmark in
        let decoder = CBORDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try! decoder.decode(T.self, from: cbor))
        }
    }
    Benchmark("\(name)_JSON_encode_(\(json.count)_B)") { benchmark in
        let encoder = JSONEncoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try! encoder.encode(value))
        }
    }
    Benchmark("\(name)_JSON_decode_(\(json.count)_B)") { benchmark in
        let decoder = JSONDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try! decoder.decode(T.self, from: json))
        }
    }
}
