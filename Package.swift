// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Rescind",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RescindCBOR", targets: ["RescindCBOR"]),
        .library(name: "RescindWire", targets: ["RescindWire"]),
        .library(name: "RescindAPI", targets: ["RescindAPI"]),
        .library(name: "RescindPKI", targets: ["RescindPKI"]),
        .library(name: "RescindTransport", targets: ["RescindTransport"]),
        .library(name: "RescindTestSupport", targets: ["RescindTestSupport"]),
        .executable(name: "rescind-orders", targets: ["rescind-orders"]),
        .executable(name: "rescind-payments", targets: ["rescind-payments"]),
        .executable(name: "rescind-inventory", targets: ["rescind-inventory"]),
        .executable(name: "rescind-storefront", targets: ["rescind-storefront"]),
        .executable(name: "rescindctl", targets: ["rescindctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // CBOR (RFC 8949) for Codable values: one encoder, one validating decoder. Foundation only.
        .target(
            name: "RescindCBOR",
            swiftSettings: swiftSettings
        ),
        // Wire format: frames, envelopes, error catalogue, on RescindCBOR. NIOCore only.
        .target(
            name: "RescindWire",
            dependencies: ["RescindCBOR", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // The methods of the three services and their request, response and record types.
        .target(
            name: "RescindAPI",
            dependencies: ["RescindWire"],
            swiftSettings: swiftSettings
        ),
        // Development and production PKI: a CA and per-identity ECDSA certificates.
        .target(
            name: "RescindPKI",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        // Sockets and TLS: the multiplexed RPC server and client.
        .target(
            name: "RescindTransport",
            dependencies: [
                "RescindCBOR", "RescindWire", "RescindAPI", "RescindPKI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The storage layer: SQL transactions as closures over SQLite (GRDB, group commit) or PostgreSQL
        // (postgres-nio), migrations for both, the idempotency-key store.
        .target(
            name: "RescindStorage",
            dependencies: [
                "RescindCBOR", "RescindWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Email: RFC 5322 messages and an SMTP client (STARTTLS, AUTH) over SwiftNIO.
        .target(
            name: "RescindMail",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RescindInventory",
            dependencies: [
                "RescindAPI", "RescindStorage", "RescindTransport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RescindPayments",
            dependencies: [
                "RescindAPI", "RescindCBOR", "RescindStorage", "RescindTransport", "RescindMail",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RescindOrders",
            dependencies: [
                "RescindAPI", "RescindStorage", "RescindTransport", "RescindMail",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // What every daemon shares: configuration files, logging bootstrap, the service group.
        .target(
            name: "RescindDaemon",
            dependencies: [
                "RescindTransport", "RescindAPI", "RescindPKI", "RescindStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The customer-facing storefront: HTTP (Hummingbird) pages and a JSON API over Orders' customer methods.
        .target(
            name: "RescindStorefront",
            dependencies: [
                "RescindAPI", "RescindTransport", "RescindWire",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // A local suite on disk: PKI, configuration, processes, suite.json; and clients to reach it.
        .target(
            name: "RescindSuite",
            dependencies: [
                "RescindPKI", "RescindTransport", "RescindAPI", "RescindDaemon",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The harness that starts the real daemons for tests, a store's included.
        .target(
            name: "RescindTestSupport",
            dependencies: [
                "RescindSuite", "RescindAPI", "RescindTransport", "RescindWire", "RescindPayments", "RescindStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rescind-orders",
            dependencies: [
                "RescindOrders", "RescindDaemon", "RescindTransport", "RescindAPI", "RescindStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rescind-payments",
            dependencies: [
                "RescindPayments", "RescindMail", "RescindDaemon", "RescindTransport", "RescindAPI", "RescindStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rescind-inventory",
            dependencies: [
                "RescindInventory", "RescindDaemon", "RescindTransport", "RescindAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rescind-storefront",
            dependencies: [
                "RescindStorefront", "RescindDaemon", "RescindTransport", "RescindAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rescindctl",
            dependencies: [
                "RescindSuite", "RescindAPI", "RescindPKI", "RescindTransport", "RescindTestSupport", "RescindStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RescindCBORTests",
            dependencies: ["RescindCBOR"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RescindWireTests",
            dependencies: [
                "RescindWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The golden frames of protocol/vectors against the Swift encoder and decoder.
        .testTarget(
            name: "RescindProtocolTests",
            dependencies: [
                "RescindWire", "RescindAPI",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RescindPKITests",
            dependencies: [
                "RescindPKI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RescindTransportTests",
            dependencies: [
                "RescindTransport", "RescindPKI", "RescindWire", "RescindAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RescindServicesTests",
            dependencies: [
                "RescindInventory", "RescindPayments", "RescindOrders", "RescindStorage", "RescindAPI", "RescindCBOR",
                "RescindMail", "RescindTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RescindIntegrationTests",
            dependencies: [
                "RescindTestSupport", "RescindAPI", "RescindStorage", "RescindPayments", "RescindSuite", "RescindPKI",
                "RescindMail",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
