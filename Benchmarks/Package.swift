// swift-tools-version: 6.1
// Benchmarks, kept in a package of their own so that the main package and its CI never build the benchmark
// tool, its malloc interposer or gRPC. Run from this directory (README.md here has the recorded figures):
//
//     swift package --allow-writing-to-package-directory benchmark    # codec, and allocations per call
//     swift run -c release RPCBench                                    # RPC: Rescind, gRPC, the echo floor
import PackageDescription

let swiftSettings: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "RescindBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Rescind", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // The fixed values every benchmark codes or sends.
        .target(
            name: "Fixtures",
            dependencies: [
                .product(name: "RescindCBOR", package: "Rescind"),
                .product(name: "RescindWire", package: "Rescind"),
                .product(name: "RescindAPI", package: "Rescind"),
            ],
            path: "Fixtures",
            swiftSettings: swiftSettings
        ),
        // One call three ways: Rescind's RPC, grpc-swift-2, a NIO TLS echo.
        .target(
            name: "RPCTransports",
            dependencies: [
                "Fixtures",
                .product(name: "RescindCBOR", package: "Rescind"),
                .product(name: "RescindWire", package: "Rescind"),
                .product(name: "RescindAPI", package: "Rescind"),
                .product(name: "RescindPKI", package: "Rescind"),
                .product(name: "RescindTransport", package: "Rescind"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "RPCTransports",
            swiftSettings: swiftSettings
        ),
        // Requests/s and latency percentiles, closed loop, the three transports in one run.
        .executableTarget(
            name: "RPCBench",
            dependencies: [
                "RPCTransports",
                .product(name: "RescindTransport", package: "Rescind"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "RPCBench",
            swiftSettings: swiftSettings
        ),
        // Allocations per call through each transport, checked against Thresholds/.
        .executableTarget(
            name: "RPCBenchmarks",
            dependencies: [
                "RPCTransports",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "RPCBenchmarks",
            swiftSettings: swiftSettings,
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        ),
        .executableTarget(
            name: "CodecBenchmarks",
            dependencies: [
                "Fixtures",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RescindCBOR", package: "Rescind"),
                .product(name: "RescindWire", package: "Rescind"),
                .product(name: "RescindAPI", package: "Rescind"),
            ],
            path: "CodecBenchmarks",
            swiftSettings: swiftSettings,
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        ),
    ]
)
