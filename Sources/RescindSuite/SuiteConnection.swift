import Foundation
import Logging
import RescindAPI
import RescindTransport

/// Operator clients of the three daemons (each a group over the daemon's replicas), found through `suite.json`
/// or given explicitly.
public struct SuiteConnection: Sendable {
    public let orders: RPCClientGroup
    public let payments: RPCClientGroup
    public let inventory: RPCClientGroup

    /// Clients for explicit endpoints (each daemon's replicas) and the operator's TLS files.
    /// - Throws: `TransportError` if the TLS files cannot be loaded.
    public init(
        orders: [Endpoint], payments: [Endpoint], inventory: [Endpoint], tls: TLSFiles,
        logger: Logger = Logger(label: "rescind.client", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws {
        func client(_ endpoints: [Endpoint], _ identity: Identity) throws -> RPCClientGroup {
            try RPCClientGroup(
                endpoints: endpoints,
                configuration: .init(
                    endpoint: endpoints[0], expectedServer: identity, agent: "rescindctl/\(rescindVersion)"),
                tls: tls, logger: logger)
        }
        self.orders = try client(orders, .orders)
        self.payments = try client(payments, .payments)
        self.inventory = try client(inventory, .inventory)
    }

    /// Clients for the suite a manifest describes.
    /// - Throws: `SuiteError` or `TransportError`.
    public init(manifest: SuiteManifest) throws {
        try self.init(
            orders: try manifest.endpoints(.orders),
            payments: try manifest.endpoints(.payments),
            inventory: try manifest.endpoints(.inventory),
            tls: manifest.operatorTLS
        )
    }

    /// The client of one daemon.
    public func client(_ daemon: Identity) -> RPCClientGroup {
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
