import ArgumentParser
import Foundation
import Logging
import RescindDaemon
import RescindPayments

/// The Payments daemon: authorizes, captures, voids and refunds through the simulated processor.
@main
struct PaymentsDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescind-payments",
        abstract: "Rescind's Payments daemon: payments per order through a simulated card processor."
    )

    @Option(help: "Path of the daemon's JSON configuration file.")
    var config: String

    /// The Payments section of the configuration file.
    struct Settings: Codable {
        var processor: SimulatedProcessor.Configuration?
    }

    func run() async throws {
        let common = try DaemonConfiguration.load(DaemonConfiguration.self, from: config)
        let settings = try DaemonConfiguration.load(Settings.self, from: config)
        Daemon.bootstrapLogging(level: common.logLevel)
        let logger = Logger(label: "rescind.payments")
        let crashPoint = ProcessInfo.processInfo.environment["RESCIND_CRASH_POINT"]
        if let crashPoint { logger.warning("test crash point set", metadata: ["crash_point": "\(crashPoint)"]) }
        let service = try PaymentsService(
            databasePath: common.database,
            processor: SimulatedProcessor(configuration: settings.processor ?? .init()),
            crashPoint: crashPoint, logger: logger
        )
        try await Daemon.run(configuration: common, logger: logger) { router in
            service.register(into: &router)
        }
    }
}
