import ArgumentParser
import Foundation
import Logging
import RescindAPI
import RescindDaemon
import RescindOrders
import RescindStorage
import RescindTransport

/// The Orders daemon: places orders and runs cancellations as durable sagas.
@main
struct OrdersDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescind-orders",
        abstract: "Rescind's Orders daemon: orders and their placement and cancellation sagas."
    )

    @Option(help: "Path of the daemon's JSON configuration file.")
    var config: String

    /// The Orders section of the configuration file.
    struct Settings: Codable {
        /// Inventory's and Payments' replicas: an endpoint each, or a list.
        struct Peers: Codable {
            var inventory: Endpoints
            var payments: Endpoints
        }

        var peers: Peers
        var sagas: OrdersService.Configuration?
        /// How the store runs its money (capture timing).
        var store: StoreSettings?
        /// Where customer notifications go (a JSON-lines file beside the database when absent).
        var notifications: NotificationSettings?
    }

    /// The configured sinks; without a file, the default: `notifications.jsonl` beside the database.
    /// The configured notifications; with a SQLite database and no sink named, a JSON-lines file beside it.
    func notifications(_ configured: NotificationSettings?, storage: StorageLocation) -> NotificationSettings {
        var settings = configured ?? .init()
        if settings.file == nil, case .sqlite(let database) = storage {
            settings.file =
                URL(fileURLWithPath: database).deletingLastPathComponent()
                .appendingPathComponent("notifications.jsonl").path
        }
        return settings
    }

    func run() async throws {
        let common = try DaemonConfiguration.load(DaemonConfiguration.self, from: config)
        let settings = try DaemonConfiguration.load(Settings.self, from: config)
        Daemon.bootstrapLogging(level: common.logLevel)
        let logger = Logger(label: "rescind.orders")
        func peer(_ endpoints: Endpoints, _ identity: Identity) throws -> RPCClientGroup {
            try RPCClientGroup(
                endpoints: endpoints.all,
                configuration: .init(endpoint: endpoints.all[0], expectedServer: identity, agent: "rescind-orders"),
                tls: common.tls, logger: logger)
        }
        let inventory = try peer(settings.peers.inventory, .inventory)
        let payments = try peer(settings.peers.payments, .payments)
        let crashPoint = CrashPoint.fromEnvironment
        if let crashPoint { logger.warning("test crash point set", metadata: ["crash_point": "\(crashPoint)"]) }
        let storage = try common.storage
        let service = try await OrdersService(
            storage: storage, inventory: inventory, payments: payments,
            configuration: settings.sagas ?? .init(), store: settings.store ?? .init(),
            notifications: notifications(settings.notifications, storage: storage), crashPoint: crashPoint,
            leaseHolder: common.leaseHolder, logger: logger
        )
        try await Daemon.run(
            configuration: common, logger: logger, background: service.services,
            health: { $0.sagas = try await service.sagaHealth() }
        ) { router in
            service.register(into: &router)
        }
    }
}
