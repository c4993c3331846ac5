import Foundation
import Logging
import RescindAPI
import RescindStorage
import RescindSuite
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// The real daemons with their data in PostgreSQL (Debian's server, started by the test): the cancellation
    /// story over TLS, and a saga that Orders' death interrupts finished by the next Orders.
    @Suite(.serialized, .timeLimit(.minutes(5)), .enabled(if: PostgresServer.isAvailable))
    struct PostgresTests {
        private func options() async throws -> RescindHarness.Options {
            var options = RescindHarness.Options()
            options.postgres = try await PostgresServer.shared()
            return options
        }

        @Test func anOrderIsPlacedAndCancelledWithEveryDaemonOnPostgres() async throws {
            try await RescindHarness.withSuite(options: try await options()) { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 2, 1200)])
                #expect(order.status == .open)
                let accepted = try await h.cancel(order.id)
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                #expect(try await h.order(order.id).status == .cancelled)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                let level = try #require(try await h.stock("MUG", at: "main"))
                #expect((level.onHand, level.reserved) == (5, 0))
                // No SQLite file was made: the data is in PostgreSQL, and every invariant holds there.
                #expect(!FileManager.default.fileExists(atPath: h.database(.orders).path))
                let report = try await h.checkWithProcessor()
                #expect(report.violations.isEmpty, "\(report.violations)")
                #expect(report.orders == 1 && report.payments == 1)
                // rescindctl check finds the suite's databases in its configurations.
                let (status, output) = try await runRescindctl(["check", "--dir", h.directory.path])
                #expect(status == 0, "\(String(decoding: output, as: UTF8.self))")
                #expect(String(decoding: output, as: UTF8.self).contains("checked 1 orders"))
                // And it sees a broken promise there: the payment no longer says what was refunded.
                let payments = PostgresDatabase(
                    try #require(h.postgresDatabases[.payments]), connections: 1,
                    logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
                _ = try await payments.write { tx in try tx.execute("UPDATE payment SET amount_refunded = 0") }
                await payments.close()
                let broken = try await h.checkWithProcessor()
                #expect(!broken.violations.isEmpty)
                #expect(try await runRescindctl(["check", "--dir", h.directory.path]).status == 1)
            }
        }

        @Test func aSagaOrdersDiedInIsFinishedByTheNextOrders() async throws {
            let crash = ["RESCIND_CRASH_POINT": "cancel_order/refund/forward/after"]
            try await RescindHarness.withSuite(options: try await options(), environment: [.orders: crash]) { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 1, 1200)])
                let accepted = try await h.cancel(order.id)
                #expect(await h.waitForExit(.orders))
                #expect(h.log(.orders).contains { $0.contains("crash point reached") })
                try await h.restart(environment: [.orders: [:]])
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                // Refunded once: Orders died after recording the refund, before the restock began.
                #expect(try await h.payment(order.id).amountRefunded == 1200)
                #expect(try await h.order(order.id).status == .cancelled)
                let report = try await h.checkWithProcessor()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aSagaWhoseReplicaDiesIsFinishedByTheOtherWithinTheLease() async throws {
            // Only the first Orders replica dies, just before it sends the refund.
            let crash = ["RESCIND_CRASH_POINT": "cancel_order/refund/forward/before"]
            try await RescindHarness.withSuite(backend: .postgres, replicas: 2, environment: [.orders: crash]) { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let order = try await h.place([("MUG", 1, 1200)])
                // The cancellation goes to the first replica, which starts the saga and holds its lease.
                let first = try h.client(.orders)
                defer { Task { await first.shutdown() } }
                let accepted = try await first.call(
                    OrdersMethods.cancel, CancelOrderRequest(orderID: order.id, reason: .customer),
                    idempotencyKey: "cancel-\(order.id)")
                #expect(await h.waitForExit(.orders))
                #expect(h.log(.orders).contains { $0.contains("crash point reached") })
                // The second replica claims it once the lease (2 s) runs out, and finishes it: clients reach it
                // through the group, which passes over the dead replica.
                let saga = try await h.waitForSaga(accepted.sagaID)
                #expect(saga.state == .completed)
                #expect(h.log(.orders.replica(2)).contains { $0.contains("claimed sagas whose lease ran out") })
                #expect(saga.steps.first { $0.name == "refund" }?.attempt == 2)
                #expect(try await h.payment(order.id).amountRefunded == 1200)
                #expect(try await h.order(order.id).status == .cancelled)
                let report = try await h.checkWithProcessor()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func rescindctlUpRunsReplicasOnPostgresAndCheckFindsThem() async throws {
            let server = try await PostgresServer.shared()
            let base = server.location("s_" + UUID().uuidString.prefix(8).lowercased()).url
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rescind-up-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let up = try await runRescindctl(["up", "--dir", dir, "--postgres", base, "--replicas", "2"])
            #expect(up.status == 0, "\(String(decoding: up.output, as: UTF8.self))")
            // Two replicas of each daemon, each answering for itself.
            let health = try await runRescindctl(["health", "--dir", dir, "--json"])
            #expect(health.status == 0, "\(String(decoding: health.output, as: UTF8.self))")
            let rows = try JSONSerialization.jsonObject(with: health.output) as? [[String: Any]] ?? []
            #expect(rows.count == 6)
            #expect(Set(rows.compactMap { $0["endpoint"] as? String }).count == 6)
            #expect(rows.allSatisfy { $0["health"] != nil })
            let check = try await runRescindctl(["check", "--postgres", base, "--json"])
            let down = try await runRescindctl(["down", "--dir", dir, "--json"])
            #expect(String(decoding: down.output, as: UTF8.self).contains("orders-2"))
            #expect(check.status == 0, "\(String(decoding: check.output, as: UTF8.self))")
            // The databases were made, and nothing was kept in SQLite files.
            #expect(String(decoding: check.output, as: UTF8.self).contains("\"orders\""))
            #expect(!FileManager.default.fileExists(atPath: dir + "/data/orders.sqlite"))
        }
    }
}
