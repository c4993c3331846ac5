import Foundation
import Logging
import RescindAPI
import RescindStorage
import RescindWire
import ServiceLifecycle

/// Captures authorizations when they fall due: the store's `capture` timing writes each open order's due time
/// (`orders.capture_due_at`) when it opens, and this service starts a `CapturePaymentSaga` for every order
/// whose time has come.
///
/// The timer is the column, not memory: after a restart (or a crash at any point) the next look finds every
/// order that fell due meanwhile. Two replicas cannot both start one: the saga's start refuses an order another
/// saga holds, in its transaction. An order that a cancellation or a fulfilment holds is skipped (the void or
/// the fulfilment's own capture takes over); one that already has a capture saga is left to it.
struct CaptureScheduler: Service {
    let service: OrdersService
    /// Of several replicas, the one that holds `capture_scheduler` looks (two would start the same capture, and
    /// one of them be refused).
    let lease: LeaseKeeper

    func run() async {
        await lease.runPasses(
            every: .seconds(service.configuration.pollIntervalSeconds), logger: service.logger,
            failure: "capture scheduler failed"
        ) { _ in try await startDueCaptures(now: Date()) }
    }

    /// Starts a capture saga for each open order due by `now` that no other saga holds (at most 100 a turn, oldest
    /// due first). An order whose capture saga failed waits for a person, and does not hold up the others.
    func startDueCaptures(now: Date) async throws {
        let due = try await service.database.read { db in
            try db.query(
                """
                SELECT id FROM orders
                WHERE capture_due_at IS NOT NULL AND capture_due_at <= ? AND status = 'open'
                    AND NOT EXISTS (SELECT 1 FROM saga WHERE saga.order_id = orders.id
                        AND saga.state IN ('running', 'compensating', 'failed'))
                ORDER BY capture_due_at LIMIT 100
                """, [now]
            ).map { try $0["id"] as String }
        }
        for id in due {
            guard let orderID = UUID(uuidString: id) else { continue }
            let saga: StartedSaga
            do {
                saga = try await service.start(CapturePaymentSaga.self, orderID)
            } catch let error as RescindError where Self.notNow.contains(error.reason ?? "") {
                // Changed since the look: another saga of the order goes first (a cancellation's void, a
                // fulfilment's capture, an earlier capture), or there is nothing left to capture.
                continue
            } catch {
                // One order's trouble does not hold up the others; it is looked at again next turn.
                service.logger.error(
                    "capture could not start; will retry", metadata: ["order_id": "\(id)", "error": "\(error)"])
                continue
            }
            service.logger.info("capture due", metadata: ["order_id": "\(id)", "saga_id": "\(saga.id)"])
        }
    }

    /// Why a capture that fell due does not start now.
    private static let notNow: Set<String> = [
        "order_busy", "capture_in_progress", "capture_failed", "nothing_to_capture",
    ]
}
