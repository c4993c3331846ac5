import ArgumentParser
import Foundation
import Logging
import RescindAPI
import RescindDaemon
import RescindMail
import RescindPayments
import RescindTransport
import ServiceLifecycle

/// The Payments daemon: authorizes, captures, voids and refunds through the store's processor (the simulator).
@main
struct PaymentsDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescind-payments",
        abstract:
            "Rescind's Payments daemon: payments per order through the store's processor (the simulator, or Stripe)."
    )

    @Option(help: "Path of the daemon's JSON configuration file.")
    var config: String

    /// The Payments section of the configuration file.
    struct Settings: Decodable {
        var processor: ProcessorSettings?
        /// The store's mail server and staff address: processor events a person must act on are mailed there.
        var mail: MailSettings?
    }

    func run() async throws {
        let common = try DaemonConfiguration.load(DaemonConfiguration.self, from: config)
        let settings = try DaemonConfiguration.load(Settings.self, from: config)
        Daemon.bootstrapLogging(level: common.logLevel)
        let logger = Logger(label: "rescind.payments")
        let crashPoint = ProcessInfo.processInfo.environment["RESCIND_CRASH_POINT"]
        if let crashPoint { logger.warning("test crash point set", metadata: ["crash_point": "\(crashPoint)"]) }
        let processorSettings = settings.processor ?? .init()
        let storage = try common.storage
        let processor = try await processorSettings.makeProcessor(payments: storage, logger: logger)
        // A test's fault mode from the start (a restarted Payments' first call included); fault_injection only.
        if let mode = ProcessInfo.processInfo.environment["RESCIND_PROCESSOR_FAULTS"],
            let simulator = processor as? SimulatedProcessor
        {
            try simulator.setFaults(ProcessorFaults(mode: .init(rawValue: mode)))
            logger.warning("processor fault mode set", metadata: ["mode": "\(mode)"])
        }
        logger.info("processor", metadata: ["kind": "\(processorSettings.kind)"])
        let service = try await PaymentsService(
            storage: storage, processor: processor, fees: processorSettings.fees, crashPoint: crashPoint,
            logger: logger)
        let age = processorSettings.abandonAuthorizationsAfterSeconds
        let sweeper = AbandonedAuthorizationSweeper(
            payments: service, age: age, interval: .milliseconds(Int64(min(60, max(age / 4, 0.1)) * 1000)),
            holder: common.leaseHolder)
        var background: [any Service] = [sweeper]
        if let webhooks = processorSettings.webhooks {
            let endpoint = ProcessorWebhooks(
                payments: service, secret: try webhooks.signingSecret(), tolerance: webhooks.toleranceSeconds,
                logger: logger)
            background.append(
                try endpoint.application(
                    settings: webhooks, certificate: webhooks.certificate ?? common.tls.certificatePath,
                    privateKey: webhooks.privateKey ?? common.tls.privateKeyPath))
        }
        if let mail = settings.mail, let staff = mail.staff {
            background.append(
                ProcessorEventMailer(
                    payments: service, client: try SMTPClient(settings: mail.smtp),
                    from: mail.from ?? "payments@rescind.localhost", staff: staff, holder: common.leaseHolder))
        }
        try await Daemon.run(
            configuration: common, logger: logger, background: background,
            health: { $0.processorEvents = try await service.eventHealth() }
        ) { router in
            service.register(into: &router)
        }
    }
}
