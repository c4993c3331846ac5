import Foundation
import Testing

extension RealDaemons {
    /// `rescindctl demo`, the README's first command, run as a user runs it.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct DemoCommandTests {
        @Test func theDemoShowsTheThreeOutcomesAndStopsTheSuite() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "rescind-demo-test-\(UUID().uuidString.prefix(8))")
            defer { try? FileManager.default.removeItem(at: directory) }
            let (exitStatus, data) = try await runRescindctl(["demo", "--dir", directory.path, "--json"])
            #expect(exitStatus == 0)

            let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let scenarios = try #require(report["scenarios"] as? [[String: Any]])
            let byName = Dictionary(
                uniqueKeysWithValues: scenarios.compactMap { s in (s["name"] as? String).map { ($0, s) } })
            func state(_ name: String) -> String? { (byName[name]?["saga"] as? [String: Any])?["state"] as? String }
            func status(_ name: String) -> String? { (byName[name]?["order"] as? [String: Any])?["status"] as? String }
            #expect(state("cancelled") == "completed")
            #expect(status("cancelled") == "cancelled")
            #expect(state("refund_declined") == "compensated")
            #expect(status("refund_declined") == "open")
            #expect(state("restock_failed") == "compensated")
            #expect(status("restock_failed") == "open")
            #expect(status("card_declined") == "rejected")
            // Inside the window: a void, no fee, and the fee a capture would have cost; after it: a refund, the
            // processor's fee kept.
            func payment(_ name: String) -> [String: Any]? { byName[name]?["payment"] as? [String: Any] }
            func cancellation(_ name: String) -> [String: Any]? {
                (byName[name]?["order"] as? [String: Any])?["cancellation"] as? [String: Any]
            }
            #expect(state("voided_in_window") == "completed")
            #expect(payment("voided_in_window")?["status"] as? String == "voided")
            #expect(payment("voided_in_window")?["fee"] as? Int == 0)
            let saved = payment("voided_in_window")?["fee_saved"] as? Int
            #expect((saved ?? 0) > 0)
            #expect(cancellation("voided_in_window")?["fee_saved"] as? Int == saved)
            #expect(cancellation("voided_in_window")?["voided"] as? Bool == true)
            #expect(payment("cancelled")?["status"] as? String == "refunded")
            #expect((payment("cancelled")?["fee"] as? Int ?? 0) > 0)
            #expect(cancellation("cancelled")?["fee_kept"] as? Int == payment("cancelled")?["fee"] as? Int)
            // One T-shirt of two cancelled (its 2500 voided inside the window, or refunded on a slow machine that
            // captured first), the order open with the rest; then a poster added by an edit.
            #expect(state("partially_cancelled") == "completed")
            #expect(status("partially_cancelled") == "open")
            let partly = byName["partially_cancelled"]?["order"] as? [String: Any]
            let lineCancellation = (partly?["line_cancellations"] as? [[String: Any]])?.first
            #expect(lineCancellation?["voided_amount"] as? Int == 2500 || lineCancellation?["refunded"] as? Int == 2500)
            #expect((partly?["lines"] as? [[String: Any]])?.first?["cancelled"] as? Int == 1)
            let edited = byName["edited"]?["order"] as? [String: Any]
            #expect(
                (edited?["lines"] as? [[String: Any]])?.compactMap { $0["sku"] as? String } == [
                    "TSHIRT", "MUG", "POSTER",
                ])
            #expect((edited?["edits"] as? [[String: Any]])?.first?["amount"] as? Int == 1800)
            let editedPayment = payment("edited")
            #expect(
                (editedPayment?["amount_authorized"] as? Int ?? 0) + (editedPayment?["credit_applied"] as? Int ?? 0)
                    == edited?["total"] as? Int)
            // Placed again, linked to the first, paid with its saved card.
            let reordered = byName["reordered"]?["order"] as? [String: Any]
            #expect(reordered?["status"] as? String == "open")
            #expect(
                reordered?["reorder_of"] as? String == (byName["cancelled"]?["order"] as? [String: Any])?["id"]
                    as? String)
            // Authorized at once; captured when the demo store's window closes, which a slow machine may reach.
            #expect(["authorized", "captured"].contains(payment("reordered")?["status"] as? String ?? ""))
            #expect(payment("reordered")?["card_last4"] as? String == payment("cancelled")?["card_last4"] as? String)
            // A customer cancelled through the storefront with their link.
            #expect(state("customer_cancelled") == "completed")
            #expect(status("customer_cancelled") == "cancelled")
            #expect(cancellation("customer_cancelled")?["reason"] as? String == "customer")
            // Archived, and the delete refused with its rule.
            #expect((byName["archived_not_deleted"]?["order"] as? [String: Any])?["archived_at"] != nil)
            #expect(byName["archived_not_deleted"]?["refusal"] as? String == "order_source_not_deletable")
            // The suite was stopped: no pid file is left.
            let pids =
                (try? FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("run").path))
                ?? []
            #expect(pids.isEmpty)
        }
    }
}
