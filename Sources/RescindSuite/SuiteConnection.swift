import Foundation
import Logging
import RescindAPI
import RescindTransport

/// Operator clients of the three daemons, found through `suite.json` or given explicitly.
public struct SuiteConnection: Sendable {
    public let orders: RPCClient
    public let payments: RPCClient
    public let inventory: RPCClient

    /// Clients for explicit endpoints and the operator's TLS files.
    /// - Throws: `TransportError` if the TLS files cannot be loaded.
    public init(
        orders: Endpoint, payments: Endpoint, inventory: Endpoint, tls: TLSFiles,
        logger: Logger = Logger(label: "rescind.client", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws {
        func client(_ endpoint: Endpoint, _ identity: Identity) throws -> RPCClient {
            try RPCClient(
                configuration: .init(
                    endpoint: endpoint, expectedServer: identity, agent: "rescindctl/\(rescindVersion)"),
                tls: tls, logger: logger
            )
        }
        self.orders = try client(orders, .orders)
        self.payments = try client(payments, .payments)
        self.inventory = try client(inventory, .inventory)
    }

    /// Clients for the suite a manifest describes.
    /// - Throws: `SuiteError` or `TransportError`.
    public init(manifest: SuiteManifest) throws {
        try self.init(
            orders: try manifest.endpoint(.orders),
            payments: try manifest.endpoint(.payments),
            inventory: try manifest.endpoint(.inventory),
            tls: manifest.operatorTLS
        )
    }

    /// The client of one daemon.
    public func client(_ daemon: Identity) -> RPCClient {
        switch daemon {
        case .orders: orders
        case .payments: payments
        default: inventory
        }
    }

    /// Closes the connections.
    public func shutdown() async {
        await orders.shutdown()
        await payments.shutdown()
        await inventory.shutdown()
    }
}
