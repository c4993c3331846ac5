import Foundation
import GRDB
import Logging
import ServiceLifecycle

/// Delivers queued customer notifications. This build has no mail gateway: delivering means logging the
/// notice for the operator and marking it delivered, once.
struct OutboxRelay: Service {
    let database: DatabasePool
    let logger: Logger

    func run() async {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                let pending = try await database.read { db in
                    try OutboxRecord.filter(Column("delivered_at") == nil).order(Column("id")).limit(100).fetchAll(db)
                }
                for var message in pending {
                    logger.info(
                        "customer notified", metadata: ["order_id": "\(message.orderID)", "kind": "\(message.kind)"])
                    message.deliveredAt = Date()
                    let delivered = message
                    try await database.write { db in try delivered.update(db) }
                }
            } catch {
                logger.error("outbox relay failed; will retry", metadata: ["error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return
            }
        }
    }
}
