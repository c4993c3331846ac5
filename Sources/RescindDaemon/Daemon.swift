import Foundation
import Logging
import NIOPosix
import RescindAPI
import RescindPKI
import RescindTransport
import RescindWire
import ServiceLifecycle
import UnixSignals

/// Runs a daemon: the RPC server with the daemon's methods and `health`, plus its background services,
/// under a service group that drains in reverse order on SIGTERM or SIGINT.
public enum Daemon {
    /// Sets up JSON logging at the configured level. Call once, first thing in `main`.
    public static func bootstrapLogging(level: String) {
        let parsed = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = JSONLogHandler(label: label)
            handler.logLevel = parsed
            return handler
        }
    }

    /// Binds the server and runs until a shutdown signal.
    /// - Parameters:
    ///   - background: services that run beside the server (a saga runner); started before it, stopped after it.
    ///   - health: what the daemon adds to `health` (Orders its sagas, Payments the processor's events).
    /// - Throws: `TransportError` if the server cannot start.
    public static func run(
        configuration: DaemonConfiguration,
        logger: Logger,
        background: [any Service] = [],
        health: (@Sendable (inout HealthStatus) async throws -> Void)? = nil,
        register: (inout RPCRouter) -> Void
    ) async throws {
        let started = ContinuousClock.now
        let service = configuration.identity
        try checkIdentity(configuration)
        var router = RPCRouter()
        register(&router)
        router.register(CommonMethods.health) { _, _ in
            var status = HealthStatus(
                service: service, status: "serving", version: rescindVersion, pid: getpid(),
                uptimeSeconds: (ContinuousClock.now - started).components.seconds)
            try await health?(&status)
            return status
        }
        let server = try await RPCServer.bind(
            configuration: configuration.listen,
            identity: Identity(configuration.identity),
            tls: configuration.tls,
            router: router,
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: background.map { .init(service: $0) } + [.init(service: ServerService(server: server))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info("started", metadata: ["port": "\(server.port)", "pid": "\(getpid())"])
        try await group.run()
        logger.info("stopped")
    }
}

/// Refuses to start a daemon whose certificate names another identity than its configuration.
private func checkIdentity(_ configuration: DaemonConfiguration) throws {
    let pem: String
    do {
        pem = try String(contentsOfFile: configuration.tls.certificatePath, encoding: .utf8)
    } catch {
        throw ConfigurationError(message: "cannot read certificate \(configuration.tls.certificatePath): \(error)")
    }
    let name = try CertificateIdentity.commonName(fromPEM: pem)
    guard name == configuration.identity else {
        throw ConfigurationError(
            message:
                "certificate \(configuration.tls.certificatePath) is for '\(name)', configuration says '\(configuration.identity)'"
        )
    }
}

/// The RPC server as a lifecycle service: serves until graceful shutdown.
struct ServerService: Service {
    let server: RPCServer

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            Task { await server.shutdownGracefully() }
        }
    }
}
