import Foundation
import GRDB
import RescindAPI
import RescindTestSupport
import RescindTransport
import Testing

extension RealDaemons {
    /// The invariant checker finds each broken promise in databases a test breaks on purpose, and nothing in a
    /// suite that kept them.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct InvariantCheckerTests {
        /// A stopped suite with one cancelled order, one open order and one fulfilled order.
        private func stoppedSuite() async throws -> (RescindHarness, cancelled: UUID, open: UUID) {
            let h = try await RescindHarness.start()
            do {
                try await h.setStock("MUG", at: "main", onHand: 10)
                let cancelled = try await h.place([("MUG", 2, 1200)])
                let accepted = try await h.cancel(cancelled.id)
                _ = try await h.waitForSaga(accepted.sagaID)
                let open = try await h.place([("MUG", 1, 1200)])
                let fulfilled = try await h.place([("MUG", 3, 1200)])
                _ = try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: fulfilled.id))
                await h.stop(removeFiles: false)
                return (h, cancelled.id, open.id)
            } catch {
                await h.stop(removeFiles: false)
                throw error
            }
        }

        /// Changes a stopped suite's database. `pastChecks` breaks a rule the schema's CHECKs also guard, as a
        /// database written by a faulty build or edited by hand could: the checker must not rely on the schema.
        private func tamper(_ h: RescindHarness, _ daemon: Identity, _ sql: String, pastChecks: Bool = false) throws {
            let queue = try DatabaseQueue(path: h.database(daemon).path)
            try queue.writeWithoutTransaction { db in
                if pastChecks { try db.execute(sql: "PRAGMA ignore_check_constraints = ON") }
                try db.execute(sql: sql)
            }
            try queue.close()
        }

        private func rules(_ h: RescindHarness) throws -> Set<String> {
            Set(try h.check().violations.map(\.rule))
        }

        @Test func aSuiteThatKeptItsPromisesIsClean() async throws {
            let (h, _, _) = try await stoppedSuite()
            defer { try? FileManager.default.removeItem(at: h.directory) }
            let report = try h.check()
            #expect(report.violations.isEmpty, "\(report.violations)")
            #expect(report.orders == 3)
            #expect(
                report.sagas == ["place_order completed": 3, "cancel_order completed": 1, "fulfil_order completed": 1])
        }

        @Test func eachBrokenPromiseIsFoundWithItsRows() async throws {
            let (h, cancelled, open) = try await stoppedSuite()
            defer { try? FileManager.default.removeItem(at: h.directory) }

            try tamper(h, .inventory, "UPDATE stock SET on_hand = on_hand + 1")
            #expect(try rules(h) == ["stock_not_conserved"])
            try tamper(h, .inventory, "UPDATE stock SET on_hand = on_hand - 1")

            try tamper(
                h, .payments,
                """
                INSERT INTO payment_event (order_id, kind, amount, fee, at, idempotency_key)
                SELECT order_id, kind, amount, fee, at, idempotency_key FROM payment_event WHERE kind = 'refund'
                """)
            #expect(try rules(h) == ["refund_twice", "refund_events_disagree"])
            try tamper(h, .payments, "DELETE FROM payment_event WHERE id = (SELECT MAX(id) FROM payment_event)")
            #expect(try rules(h).isEmpty)

            try tamper(h, .orders, "UPDATE orders SET status = 'open' WHERE id = '\(cancelled.uuidString)'")
            let reopened = try h.check().violations
            // An open order may have been refunded (orders.refund), but not have a cancellation.
            #expect(Set(reopened.map(\.rule)) == ["order_unexplained", "stock_disagrees"])
            #expect(reopened.allSatisfy { $0.rows.contains { $0.contains(cancelled.uuidString) } })
            try tamper(h, .orders, "UPDATE orders SET status = 'cancelled' WHERE id = '\(cancelled.uuidString)'")

            try tamper(h, .orders, "UPDATE cancellation SET refunded = refunded - 1")
            #expect(try rules(h) == ["refunds_disagree"])
            try tamper(h, .orders, "UPDATE cancellation SET refunded = refunded + 1")

            try tamper(
                h, .inventory, "UPDATE reservation SET status = 'restocked' WHERE order_id = '\(open.uuidString)'")
            #expect(try rules(h) == ["stock_disagrees", "reserved_disagrees"])
            try tamper(
                h, .inventory, "UPDATE reservation SET status = 'reserved' WHERE order_id = '\(open.uuidString)'")

            // A unit said cancelled that Inventory still holds for the order; a total Payments does not hold.
            try tamper(h, .orders, "UPDATE order_line SET cancelled = 1 WHERE order_id = '\(open.uuidString)'")
            #expect(try rules(h) == ["stock_disagrees"])
            try tamper(h, .orders, "UPDATE order_line SET cancelled = 0 WHERE order_id = '\(open.uuidString)'")
            try tamper(h, .orders, "UPDATE orders SET total = total - 1 WHERE id = '\(open.uuidString)'")
            #expect(try rules(h) == ["payment_disagrees"])
            try tamper(h, .orders, "UPDATE orders SET total = total + 1 WHERE id = '\(open.uuidString)'")
            #expect(try rules(h).isEmpty)

            try tamper(h, .orders, "UPDATE saga SET state = 'running' WHERE kind = 'cancel_order'")
            #expect(try rules(h).contains("saga_unfinished"))
            #expect(try h.check(.init(quiet: false)).violations.allSatisfy { $0.rule != "saga_unfinished" })
            try tamper(h, .orders, "UPDATE saga SET state = 'completed' WHERE kind = 'cancel_order'")
            #expect(try rules(h).isEmpty)

            // A saga that stopped for a person: a violation once faults have stopped, unless expected.
            try tamper(h, .orders, "UPDATE saga SET state = 'failed' WHERE kind = 'fulfil_order'")
            let failed = try h.check().violations
            #expect(Set(failed.map(\.rule)).contains("saga_failed"))
            #expect(failed.contains { $0.rule == "saga_failed" && $0.rows.contains { $0.contains("fulfil_order") } })
            #expect(try h.check(.init(noneFailed: false)).violations.allSatisfy { $0.rule != "saga_failed" })
            try tamper(h, .orders, "UPDATE saga SET state = 'completed' WHERE kind = 'fulfil_order'")

            // More refunded to store credit than refunded; a balance its ledger does not add up to.
            try tamper(
                h, .payments,
                "UPDATE payment SET refunded_to_credit = amount_refunded + 1 WHERE order_id = '\(cancelled.uuidString)'"
            )
            let toCredit = try h.check().violations
            #expect(toCredit.map(\.rule) == ["refund_above_capture"])
            #expect(toCredit.first?.rows.contains { $0.contains(cancelled.uuidString) } == true)
            try tamper(h, .payments, "UPDATE payment SET refunded_to_credit = 0")
            try tamper(
                h, .payments,
                "INSERT INTO store_credit (customer, balance, updated_at) VALUES ('bo@example.org', 500, '2026-12-01')")
            let credit = try h.check().violations
            #expect(credit.map(\.rule) == ["store_credit_disagrees"])
            #expect(credit.first?.rows.contains { $0.contains("bo@example.org") } == true)
            try tamper(h, .payments, "DELETE FROM store_credit")
            #expect(try rules(h).isEmpty)
        }

        @Test func whatTheSchemaAlsoForbidsIsFoundInADatabaseThatAllowedIt() async throws {
            let (h, cancelled, _) = try await stoppedSuite()
            defer { try? FileManager.default.removeItem(at: h.directory) }

            // Refunded more than was captured: 2,400 captured and refunded; now 2,200 captured.
            try tamper(
                h, .payments,
                "UPDATE payment SET amount_captured = amount_captured - 200 WHERE order_id = '\(cancelled.uuidString)'",
                pastChecks: true)
            let refunds = try h.check().violations
            #expect(
                refunds.contains {
                    $0.rule == "refund_above_capture" && $0.rows.contains { $0.contains(cancelled.uuidString) }
                })
            try tamper(
                h, .payments,
                "UPDATE payment SET amount_captured = amount_captured + 200 WHERE order_id = '\(cancelled.uuidString)'",
                pastChecks: true)
            #expect(try rules(h).isEmpty)

            // Stock below zero.
            try tamper(h, .inventory, "UPDATE stock SET on_hand = -1, reserved = 0", pastChecks: true)
            let stock = try h.check().violations
            #expect(stock.contains { $0.rule == "negative_stock" && $0.rows.contains { $0.contains("MUG") } })
        }
    }
}
