import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Archiving hides closed orders from the list; deleting removes staff and API orders for good, and each
    /// refusal names its rule.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct ArchiveAndDeleteTests {
        private func listed(_ h: RescindHarness, archived: Bool) async throws -> Set<UUID> {
            Set(
                try await h.orders.call(OrdersMethods.list, ListOrdersRequest(archived: archived)).orders.map(\.id))
        }

        @Test func closedOrdersAreArchivedAndOnlyStaffAndApiOrdersAreDeleted() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let online = try await h.place([("MUG", 1, 1200)], source: .onlineStore)
                let staff = try await h.place([("MUG", 2, 1200)], source: .staff)
                let open = try await h.place([("MUG", 1, 1200)])
                #expect(online.source == .onlineStore)
                #expect(staff.source == .staff)
                #expect(open.source == .api)  // absent from the request

                // An open order is neither archived nor deleted, and stays as it was.
                let archiveOpen = await refusal {
                    try await h.orders.call(OrdersMethods.archive, OrderRequest(orderID: open.id))
                }
                #expect(archiveOpen?.code == "failed_precondition")
                #expect(archiveOpen?.reason == "order_not_closed")
                let deleteOpen = await refusal {
                    try await h.orders.call(OrdersMethods.delete, OrderRequest(orderID: open.id))
                }
                #expect(deleteOpen?.reason == "order_not_cancelled_or_archived")
                #expect(try await h.order(open.id).archivedAt == nil)

                for order in [online, staff] {
                    #expect(try await h.waitForSaga(try await h.cancel(order.id).sagaID).state == .completed)
                }

                // Archived: gone from the list, in the archived list; a repeat changes nothing; unarchived: back.
                let archived = try await h.orders.call(OrdersMethods.archive, OrderRequest(orderID: online.id))
                let archivedAt = try #require(archived.archivedAt)
                #expect(try await listed(h, archived: false) == [staff.id, open.id])
                #expect(try await listed(h, archived: true) == [online.id])
                let again = try await h.orders.call(OrdersMethods.archive, OrderRequest(orderID: online.id))
                #expect(again.archivedAt == archivedAt)

                // An online store order is never deleted, archived or not.
                let deleteOnline = await refusal {
                    try await h.orders.call(OrdersMethods.delete, OrderRequest(orderID: online.id))
                }
                #expect(deleteOnline?.code == "failed_precondition")
                #expect(deleteOnline?.reason == "order_source_not_deletable")
                #expect(try await h.order(online.id).status == .cancelled)

                let unarchived = try await h.orders.call(OrdersMethods.unarchive, OrderRequest(orderID: online.id))
                #expect(unarchived.archivedAt == nil)
                #expect(try await listed(h, archived: false) == [online.id, staff.id, open.id])

                // A cancelled staff order is deleted; its payment keeps its history; a repeat answers the same.
                // Deletion waits for the customer's notices to go out (notification_pending, retryable).
                try await h.waitUntilNotified()
                let deleted = try await h.orders.call(OrdersMethods.delete, OrderRequest(orderID: staff.id))
                #expect(deleted.orderID == staff.id)
                #expect(deleted.source == .staff)
                #expect(deleted.deletedBy == "operator")
                let gone = await refusal { try await h.order(staff.id) }
                #expect(gone?.code == "not_found")
                #expect(gone?.reason == "order_deleted")
                #expect(try await h.sagas(of: staff.id).isEmpty)
                let payment = try await h.payment(staff.id)
                #expect(payment.amountRefunded == 2400)
                #expect(try await h.orders.call(OrdersMethods.delete, OrderRequest(orderID: staff.id)) == deleted)
                #expect(try await listed(h, archived: false) == [online.id, open.id])

                // The databases still agree: stock conserved, every payment consistent.
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aLateRepeatOfADeletedOrdersPlacementDoesNotPlaceItAgain() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)], source: .staff, key: "draft-42")
                #expect(try await h.waitForSaga(try await h.cancel(order.id).sagaID).state == .completed)
                try await h.waitUntilNotified()
                _ = try await h.orders.call(OrdersMethods.delete, OrderRequest(orderID: order.id))

                let repeated = await refusal { try await h.place([("MUG", 1, 1200)], source: .staff, key: "draft-42") }
                #expect(repeated?.code == "failed_precondition")
                #expect(repeated?.reason == "order_deleted")
                #expect(try await listed(h, archived: false).isEmpty)
                let stock = try await h.inventory.call(InventoryMethods.listStock, ListStockRequest(sku: "MUG"))
                #expect(stock.levels.map(\.available) == [10])
            }
        }

        @Test func theCommandLineArchivesListsAndRefusesWithTheRule() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let placed = try await runRescindctl(
                    [
                        "orders", "place", "--customer", "ada@example.com", "--line", "MUG:1:1200", "--source",
                        "online_store", "--dir", h.directory.path, "--json",
                    ])
                #expect(placed.status == 0)
                let fields = try JSONSerialization.jsonObject(with: placed.output) as? [String: Any]
                #expect(fields?["source"] as? String == "online_store")
                let id = try #require(UUID(uuidString: fields?["id"] as? String ?? ""))
                #expect(try await h.waitForSaga(try await h.cancel(id).sagaID).state == .completed)

                let archived = try await runRescindctl(
                    ["orders", "archive", id.uuidString, "--dir", h.directory.path, "--json"])
                #expect(archived.status == 0)
                let list = try await runRescindctl([
                    "orders", "list", "--archived", "--dir", h.directory.path, "--json",
                ])
                let rows = try JSONSerialization.jsonObject(with: list.output) as? [String: Any]
                let ids = (rows?["orders"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
                #expect(ids == [id.uuidString])

                let refused = try await runRescindctl(
                    ["orders", "delete", id.uuidString, "--dir", h.directory.path, "--json"])
                #expect(refused.status != 0)
                let failure = try JSONSerialization.jsonObject(with: refused.output) as? [String: Any]
                let error = failure?["error"] as? [String: Any]
                #expect(error?["reason"] as? String == "order_source_not_deletable")
            }
        }
    }
}
