// swift-tools-version: 6.1
// libFuzzer targets for the frame decoder and the CBOR decoder. See README.md for the commands.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "RescindFuzz",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "FuzzFrames", targets: ["FuzzFrames"]),
        .executable(name: "FuzzCBOR", targets: ["FuzzCBOR"]),
        .executable(name: "FuzzSeeds", targets: ["FuzzSeeds"]),
    ],
    dependencies: [
        .package(name: "Rescind", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver, which each target's main calls.
        .target(name: "CLibFuzzer"),
        // The decode paths of a server and a client, and the invariants checked on what they accept.
        .target(
            name: "FuzzSupport",
            dependencies: [
                .product(name: "RescindCBOR", package: "Rescind"),
                .product(name: "RescindWire", package: "Rescind"),
                .product(name: "RescindAPI", package: "Rescind"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // libFuzzer entry point: an arbitrary byte stream through FrameDecoder and the server's handling of frames.
        .executableTarget(
            name: "FuzzFrames",
            dependencies: [
                "CLibFuzzer", "FuzzSupport",
                .product(name: "RescindCBOR", package: "Rescind"),
                .product(name: "RescindWire", package: "Rescind"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // libFuzzer entry point: arbitrary bytes as a CBOR body of every type a server or a client decodes.
        .executableTarget(
            name: "FuzzCBOR",
            dependencies: [
                "CLibFuzzer", "FuzzSupport",
                .product(name: "RescindCBOR", package: "Rescind"),
                .product(name: "RescindWire", package: "Rescind"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Writes the seed corpus (corpus/frames, corpus/cbor) from real encodings and protocol/vectors.
        .executableTarget(
            name: "FuzzSeeds",
            dependencies: [
                "FuzzSupport",
                .product(name: "RescindCBOR", package: "Rescind"),
                .product(name: "RescindWire", package: "Rescind"),
                .product(name: "RescindAPI", package: "Rescind"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
