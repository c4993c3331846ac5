import ArgumentParser
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOSSL
import RescindAPI
import RescindDaemon
import RescindStorefront
import RescindTransport
import ServiceLifecycle
import UnixSignals

/// The storefront daemon: customers' order pages and JSON API over HTTP (or HTTPS with a certificate), calling
/// Orders over the Rescind protocol as `storefront`.
@main
struct StorefrontDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescind-storefront",
        abstract: "Rescind's storefront: the customer's order page and JSON API, over Orders' customer methods."
    )

    @Option(help: "Path of the daemon's JSON configuration file.")
    var config: String

    func run() async throws {
        let configuration = try DaemonConfiguration.load(StorefrontConfiguration.self, from: config)
        Daemon.bootstrapLogging(level: configuration.logLevel)
        let logger = Logger(label: "rescind.storefront")
        let orders = try RPCClientGroup(
            endpoints: configuration.orders.all,
            configuration: .init(
                endpoint: configuration.orders.all[0], expectedServer: .orders, agent: "rescind-storefront"),
            tls: configuration.tls, logger: logger)
        let storefront = try Storefront(configuration: configuration, orders: orders, logger: logger)
        if configuration.csrfKeyFile == nil {
            logger.notice("no csrf_key_file: this process draws its own key; replicas behind a proxy need one key")
        }
        var server = HTTPServerBuilder.http1()
        if let https = configuration.https {
            let tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(https.certificatePath).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: https.privateKeyPath, format: .pem)))
            server = try .tls(.http1(), tlsConfiguration: tls)
        }
        let listen = configuration.listen
        let application = Application(
            router: storefront.router(), server: server,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "rescind-storefront"),
            onServerRunning: { channel in
                logger.info(
                    "storefront serving",
                    metadata: [
                        "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                        "orders": "\(configuration.orders)",
                    ])
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: application)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await orders.shutdown()
    }
}
