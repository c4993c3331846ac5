import Foundation
import GRDB
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Customers reach their order with its customer token through the storefront's identity, and cancel it
    /// only as the store's policy allows: the same evaluation answers `can_cancel` and refuses the cancellation.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct CustomerTests {
        private func customer(_ client: any RPCCaller, _ token: String) async throws -> Order {
            try await client.call(
                CustomerMethods.getOrder, CustomerRequest(token: token), idempotencyKey: nil, timeout: nil)
        }

        @Test func theTokenOpensItsOrderOnlyUntilItIsRotatedAndIsNeverStored() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let key = UUID().uuidString
                let order = try await h.place([("MUG", 1, 1200)], key: key)
                let token = try #require(order.customerToken)
                #expect(token.count == 32)
                #expect(order.statusLink == "\(try h.storefrontURL().absoluteString)/o/\(token)")
                // A repeat of the placement answers without the link: it went out once.
                let repeated = try await h.place([("MUG", 1, 1200)], key: key)
                #expect(repeated.id == order.id)
                #expect(repeated.customerToken == nil)
                #expect(try await h.order(order.id).customerToken == nil)

                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                #expect(try await customer(storefront, token).id == order.id)
                let wrong = await refusal { try await customer(storefront, String(token.reversed())) }
                #expect(wrong?.code == "not_found")
                #expect(wrong?.reason == "unknown_token")
                let malformed = await refusal { try await customer(storefront, "x") }
                #expect(malformed?.reason == "unknown_token")
                // The storefront's certificate reaches customer methods only; the operator's, no customer method.
                let staffMethod = await refusal {
                    try await storefront.call(OrdersMethods.get, OrderRequest(orderID: order.id))
                }
                #expect(staffMethod?.code == "permission_denied")
                let operatorAsCustomer = await refusal { try await customer(h.orders, token) }
                #expect(operatorAsCustomer?.code == "permission_denied")

                // Rotated: the old link stops at once, the new one works.
                let rotated = try await h.orders.call(OrdersMethods.rotateToken, OrderRequest(orderID: order.id))
                let fresh = try #require(rotated.customerToken)
                #expect(fresh != token)
                #expect(await refusal { try await customer(storefront, token) }?.reason == "unknown_token")
                #expect(try await customer(storefront, fresh).id == order.id)

                // Only the hash is kept: once the confirmation (which carries the first link) is delivered, no row of
                // the Orders database holds either token.
                func rowsHolding(_ token: String) throws -> Int {
                    let queue = try DatabaseQueue(path: h.database(.orders).path)
                    defer { try? queue.close() }
                    return try queue.read { db in
                        var found = 0
                        for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                        {
                            for row in try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\"") {
                                found += row.databaseValues.filter { "\($0)".contains(token) }.count
                            }
                        }
                        return found
                    }
                }
                try await h.waitUntilNotified()
                #expect(try rowsHolding(token) == 0)
                #expect(try rowsHolding(fresh) == 0)
            }
        }

        @Test func aCustomerCancelsAsThePolicySaysAndOnlyThen() async throws {
            var options = RescindHarness.Options()
            options.store = ["customer_cancellations_max": 1, "time_zone": "Europe/Oslo"]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }

                // Tagged cannot-cancel: the customer is told why, and the same rule refuses the cancellation.
                let tagged = try await h.orders.call(
                    OrdersMethods.place,
                    PlaceOrderRequest(
                        customerEmail: "cy@example.com", currency: "USD",
                        lines: [.init(sku: "MUG", quantity: 1, unitPriceMinor: 1200)], paymentMethod: "pm_card_visa",
                        tags: ["cannot-cancel"]),
                    idempotencyKey: UUID().uuidString)
                let taggedToken = try #require(tagged.customerToken)
                let no = try await storefront.call(CustomerMethods.canCancel, CustomerRequest(token: taggedToken))
                #expect(!no.allowed)
                #expect(no.rules.first { !$0.passed }?.reason == "cannot_cancel_tag")
                let refused = await refusal {
                    try await storefront.call(CustomerMethods.cancel, CustomerCancelRequest(token: taggedToken))
                }
                #expect(refused?.code == "failed_precondition")
                #expect(refused?.reason == "cannot_cancel_tag")
                #expect(try await h.order(tagged.id).status == .open)
                // Staff may; `rescindctl orders can-cancel` says so, and untagging lets the customer.
                let staff = try await runRescindctl(
                    ["orders", "can-cancel", tagged.id.uuidString, "--dir", h.directory.path, "--json"])
                let staffDecision = try JSONSerialization.jsonObject(with: staff.output) as? [String: Any]
                #expect(staffDecision?["allowed"] as? Bool == true)
                _ = try await h.orders.call(
                    OrdersMethods.tag, TagOrderRequest(orderID: tagged.id, remove: ["cannot-cancel"]))

                // Allowed now, until the window closes; cancelled as the customer, refunded and notified.
                let yes = try await storefront.call(CustomerMethods.canCancel, CustomerRequest(token: taggedToken))
                #expect(yes.allowed)
                #expect(yes.until == tagged.createdAt.addingTimeInterval(3_600))
                let accepted = try await storefront.call(
                    CustomerMethods.cancel, CustomerCancelRequest(token: taggedToken, note: "ordered twice"),
                    idempotencyKey: UUID().uuidString)
                #expect(accepted.request == nil)
                #expect(try await h.waitForSaga(try #require(accepted.sagaID)).state == .completed)
                let cancellation = try #require(try await h.order(tagged.id).cancellation)
                #expect(cancellation.reason == .customer)
                #expect(cancellation.notify)
                #expect(cancellation.staffNote == "ordered twice")
                #expect(try await h.payment(tagged.id).amountRefunded == 1200)

                // The store allows one customer cancellation a month: the second is refused, and staff still may.
                let second = try await h.place([("MUG", 1, 1200)], customer: "cy@example.com")
                let limit = await refusal {
                    try await storefront.call(
                        CustomerMethods.cancel, CustomerCancelRequest(token: try #require(second.customerToken)))
                }
                #expect(limit?.reason == "cancellation_limit_reached")
                #expect(
                    try await h.waitForSaga(try await h.cancel(second.id, reason: .staff).sagaID).state == .completed)
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func aCustomerChangesQuantitiesAsThePolicySaysAndOnlyThen() async throws {
            var options = RescindHarness.Options()
            options.store = ["cannot_cancel_skus": ["PRINT"]]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                try await h.setStock("PRINT", at: "main", onHand: 10)
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                let order = try await h.place([("MUG", 2, 1200), ("PRINT", 1, 3000)])
                let token = try #require(order.customerToken)

                let may = try await storefront.call(CustomerMethods.canEdit, CustomerRequest(token: token))
                #expect(may.allowed)
                #expect(may.action == "edit")
                #expect(may.until == order.createdAt.addingTimeInterval(3_600))

                // One more mug: reserved, charged, and the edit recorded as the customer's.
                let edited = try await storefront.call(
                    CustomerMethods.edit,
                    CustomerEditRequest(
                        token: token, lines: [.init(sku: "MUG", quantity: 3)], note: "one for a friend"),
                    idempotencyKey: UUID().uuidString)
                #expect(edited.totalMinor == 6600)
                #expect(edited.edits?.last?.by == "customer")
                #expect(edited.edits?.last?.note == "one for a friend")
                #expect(try await h.stock("MUG", at: "main")?.reserved == 3)
                #expect(try await h.payment(order.id).amountCaptured == 6600)

                // The made-to-order print cannot be removed; a SKU the order does not have cannot be added.
                let print = await refusal {
                    try await storefront.call(
                        CustomerMethods.edit,
                        CustomerEditRequest(token: token, lines: [.init(sku: "PRINT", quantity: 0)]))
                }
                #expect(print?.code == "failed_precondition")
                #expect(print?.reason == "cannot_cancel_sku")
                let other = await refusal {
                    try await storefront.call(
                        CustomerMethods.edit, CustomerEditRequest(token: token, lines: [.init(sku: "TEA", quantity: 1)])
                    )
                }
                #expect(other?.reason == "not_on_order")
                // Tagged cannot-cancel by staff: the customer is told, and refused.
                _ = try await h.orders.call(
                    OrdersMethods.tag, TagOrderRequest(orderID: order.id, add: ["cannot-cancel"]))
                let tagged = try await storefront.call(CustomerMethods.canEdit, CustomerRequest(token: token))
                #expect(!tagged.allowed)
                #expect(tagged.rules.first { !$0.passed }?.rule == "cannot_cancel_tag")
                // The order page's one read answers as the three calls do.
                let view = try await storefront.call(CustomerMethods.view, CustomerRequest(token: token))
                #expect(
                    view.order == (try await storefront.call(CustomerMethods.getOrder, CustomerRequest(token: token))))
                #expect(view.canEdit == tagged)
                #expect(
                    view.canCancel
                        == (try await storefront.call(CustomerMethods.canCancel, CustomerRequest(token: token))))
                #expect(!view.canCancel.allowed)
                #expect(view.order.tags?.contains("cannot-cancel") == true)
                let refused = await refusal {
                    try await storefront.call(
                        CustomerMethods.edit, CustomerEditRequest(token: token, lines: [.init(sku: "MUG", quantity: 1)])
                    )
                }
                #expect(refused?.reason == "cannot_cancel_tag")
                let after = try await h.order(order.id)
                #expect(after.totalMinor == 6600)
                #expect(after.edits?.count == 1)
                #expect(try await h.stock("MUG", at: "main")?.reserved == 3)
                // A wrong token reaches nothing.
                let unknown = await refusal {
                    try await storefront.call(
                        CustomerMethods.edit,
                        CustomerEditRequest(
                            token: String(repeating: "A", count: 32), lines: [.init(sku: "MUG", quantity: 1)]))
                }
                #expect(unknown?.reason == "unknown_token")
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func inAnApprovalStoreTheCustomerAsksAndStaffDecide() async throws {
            var options = RescindHarness.Options()
            options.store = ["customer_cancel_approval": "always"]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                let order = try await h.place([("MUG", 2, 1200)])
                let token = try #require(order.customerToken)
                let before = try await storefront.call(CustomerMethods.canCancel, CustomerRequest(token: token))
                #expect(before.allowed)
                #expect(before.needsApproval == true)

                // Asked: a request, not a cancellation; nothing moves, and the order says where it stands.
                let asked = try await storefront.call(
                    CustomerMethods.cancel, CustomerCancelRequest(token: token, note: "wrong size"))
                #expect(asked.sagaID == nil)
                #expect(asked.request?.state == .pending)
                #expect(asked.order.status == .cancelRequested)
                let again = try await storefront.call(
                    CustomerMethods.cancel, CustomerCancelRequest(token: token, note: "wrong size"))
                #expect(again.request == asked.request)
                #expect(try await h.sagas(of: order.id).filter { $0.kind == .cancelOrder }.isEmpty)
                #expect(try await h.payment(order.id).amountRefunded == 0)
                let waiting = try await storefront.call(CustomerMethods.canCancel, CustomerRequest(token: token))
                #expect(waiting.rules.first { !$0.passed }?.reason == "cancel_requested")
                // Staff see it; fulfilment waits for their decision.
                let listed = try await runRescindctl(["requests", "list", "--dir", h.directory.path, "--json"])
                let requests = try JSONSerialization.jsonObject(with: listed.output) as? [String: [[String: Any]]]
                #expect(requests?["requests"]?.compactMap { $0["order_id"] as? String } == [order.id.uuidString])
                let fulfil = await refusal {
                    try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                }
                #expect(fulfil?.reason == "cancel_requested")

                // Declined, with why: the order is open again; a decline needs a note.
                let bare = await refusal {
                    try await h.orders.call(RequestMethods.decline, DecideRequest(orderID: order.id))
                }
                #expect(bare?.reason == "note_required")
                let declined = try await h.orders.call(
                    RequestMethods.decline, DecideRequest(orderID: order.id, note: "already packed"))
                #expect(declined.status == .open)
                #expect(declined.cancelRequest?.state == .declined)
                #expect(declined.cancelRequest?.decisionNote == "already packed")
                #expect(declined.cancelRequest?.decidedBy == "operator")

                // Asked again, then approved: the cancellation runs as the customer asked.
                _ = try await storefront.call(
                    CustomerMethods.cancel, CustomerCancelRequest(token: token, note: "please"))
                let approved = try await h.orders.call(RequestMethods.approve, DecideRequest(orderID: order.id))
                #expect(try await h.waitForSaga(approved.sagaID).state == .completed)
                let repeated = try await h.orders.call(RequestMethods.approve, DecideRequest(orderID: order.id))
                #expect(repeated.sagaID == approved.sagaID)
                let done = try await h.order(order.id)
                #expect(done.status == .cancelled)
                #expect(done.cancellation?.reason == .customer)
                #expect(done.cancellation?.staffNote == "please")
                #expect(done.cancelRequest?.state == .approved)
                #expect(done.cancelRequest?.sagaID == approved.sagaID)
                #expect(try await h.payment(order.id).amountRefunded == 2400)
                // The customer is told each time.
                let queue = try DatabaseQueue(path: h.database(.orders).path)
                let kinds = try await queue.read { db in
                    try String.fetchAll(
                        db, sql: "SELECT kind FROM outbox WHERE order_id = ? ORDER BY id",
                        arguments: [order.id.uuidString])
                }
                try queue.close()
                #expect(
                    kinds == [
                        "order_confirmed", "cancellation_requested", "cancellation_declined", "cancellation_requested",
                        "cancellation_approved", "order_cancelled",
                    ])
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func pastTheWindowOrTheLinksLifeTheCustomerIsRefused() async throws {
            var options = RescindHarness.Options()
            options.storeSeconds = ["cancellation_window_seconds": 0]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                let order = try await h.place([("MUG", 1, 1200)])
                let token = try #require(order.customerToken)
                let decision = try await storefront.call(CustomerMethods.canCancel, CustomerRequest(token: token))
                #expect(!decision.allowed)
                #expect(decision.rules.first { $0.rule == "cancellation_window" }?.passed == false)
                let late = await refusal {
                    try await storefront.call(CustomerMethods.cancel, CustomerCancelRequest(token: token))
                }
                #expect(late?.reason == "cancellation_window_closed")
                #expect(try await h.order(order.id).status == .open)
            }
            var expiring = RescindHarness.Options()
            expiring.store = ["customer_link_days": 0]
            try await RescindHarness.withSuite(options: expiring) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                let order = try await h.place([("MUG", 1, 1200)])
                let expired = await refusal {
                    try await storefront.call(
                        CustomerMethods.getOrder, CustomerRequest(token: try #require(order.customerToken)))
                }
                #expect(expired?.code == "permission_denied")
                #expect(expired?.reason == "token_expired")
            }
        }
    }
}
