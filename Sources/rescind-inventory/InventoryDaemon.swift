import ArgumentParser
import Logging
import RescindDaemon
import RescindInventory

/// The Inventory daemon: stock per SKU and location, reservations per order.
@main
struct InventoryDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescind-inventory",
        abstract: "Rescind's Inventory daemon: stock per SKU and location, and each order's reservation."
    )

    @Option(help: "Path of the daemon's JSON configuration file.")
    var config: String

    func run() async throws {
        let common = try DaemonConfiguration.load(DaemonConfiguration.self, from: config)
        Daemon.bootstrapLogging(level: common.logLevel)
        let logger = Logger(label: "rescind.inventory")
        let service = try await InventoryService(storage: common.storage, logger: logger)
        try await Daemon.run(configuration: common, logger: logger) { router in
            service.register(into: &router)
        }
    }
}
