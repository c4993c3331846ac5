// swift-tools-version: 6.1
// Benchmarks of the wire codec, kept in a package of their own so that the main package and
// its CI never build the benchmark tool or its malloc interposer. Run from this directory:
//
//     swift package --allow-writing-to-package-directory benchmark
//
// See README.md here for the recorded figures.
import PackageDescription

let package = Package(
    name: "RescindBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Rescind", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CodecBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RescindWire", package: "Rescind"),
                .product(name: "RescindAPI", package: "Rescind"),
            ],
            path: "CodecBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        )
    ]
)
