import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

extension RealDaemons {
    /// The storefront daemon as a customer's browser and a store's front end reach it: the order page with
    /// its deadline and Cancel form, the JSON API, and the refusals (a wrong token, a form without its CSRF
    /// token, a flood), with the real storefront, Orders and the others behind it.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct StorefrontTests {
        struct Reply {
            var status: Int
            var headers: [String: String]
            var body: String

            func header(_ name: String) -> String? {
                headers.first { $0.key.caseInsensitiveCompare(name) == .orderedSame }?.value
            }
        }

        /// One HTTP request, redirects followed.
        private func fetch(
            _ url: URL, method: String = "GET", body: String? = nil, contentType: String? = nil,
            language: String? = nil
        ) async throws -> Reply {
            var request = URLRequest(url: url)
            request.httpMethod = method
            if let body { request.httpBody = Data(body.utf8) }
            if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
            if let language { request.setValue(language, forHTTPHeaderField: "Accept-Language") }
            let (data, response) = try await URLSession.shared.data(for: request)
            let http = try #require(response as? HTTPURLResponse)
            var headers: [String: String] = [:]
            for (key, value) in http.allHeaderFields {
                if let key = key as? String, let value = value as? String { headers[key] = value }
            }
            return Reply(status: http.statusCode, headers: headers, body: String(decoding: data, as: UTF8.self))
        }

        /// The value of the hidden input `name` in a page.
        private func hidden(_ name: String, in page: String) -> String? {
            guard let range = page.range(of: "name=\"\(name)\" value=\"") else { return nil }
            return String(page[range.upperBound...].prefix { $0 != "\"" })
        }

        private func form(_ fields: [String: String]) -> String {
            fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }
                .joined(separator: "&")
        }

        @Test func theOrderPageShowsTheDeadlineAndCancelsWithItsForm() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200)])
                let link = try #require(order.statusLink.flatMap(URL.init(string:)))
                #expect(link.absoluteString.hasPrefix(try h.storefrontURL().absoluteString))

                let page = try await fetch(link)
                #expect(page.status == 200)
                #expect(page.body.contains("You can cancel until"))
                #expect(page.body.contains("<form method=\"post\""))
                #expect(page.body.contains("MUG"))
                // The token is in the URL: no referrer leaves the page, nothing is cached, nothing runs.
                #expect(page.header("Referrer-Policy") == "no-referrer")
                #expect(page.header("Cache-Control") == "no-store")
                #expect(page.header("Content-Security-Policy")?.contains("default-src 'none'") == true)
                let norwegian = try await fetch(link, language: "nb-NO, en;q=0.5")
                #expect(norwegian.body.contains("Du kan kansellere frem til"))
                #expect(norwegian.body.contains("<html lang=\"nb\">"))

                // Without its CSRF token the form is refused and nothing changes.
                let cancelURL = link.appendingPathComponent("cancel")
                let forged = try await fetch(
                    cancelURL, method: "POST", body: form(["reason": "x"]),
                    contentType: "application/x-www-form-urlencoded")
                #expect(forged.status == 403)
                #expect(try await h.order(order.id).status == .open)

                let csrf = try #require(hidden("csrf", in: page.body))
                let requestID = try #require(hidden("request_id", in: page.body))
                let done = try await fetch(
                    cancelURL, method: "POST",
                    body: form(["csrf": csrf, "request_id": requestID, "reason": "ordered twice"]),
                    contentType: "application/x-www-form-urlencoded")
                #expect(done.status == 200)
                #expect(done.body.contains("Your cancellation is under way"))
                let saga = try #require(try await h.sagas(of: order.id).first { $0.kind == .cancelOrder })
                #expect(try await h.waitForSaga(saga.id).state == .completed)
                let cancelled = try await h.order(order.id)
                #expect(cancelled.cancellation?.reason == .customer)
                #expect(cancelled.cancellation?.staffNote == "ordered twice")
                // The page now says so, with the refund, and offers no Cancel.
                let after = try await fetch(link)
                #expect(after.body.contains("data-status=\"cancelled\""))
                #expect(after.body.contains("id=\"refunded\">24.00 USD"))
                #expect(
                    !after.body.contains(
                        "<form method=\"post\" action=\"/o/\(try #require(order.customerToken))/cancel\""))
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        /// What the customer is told is what happened: a void charged nothing; a refund names where it went.
        @Test func thePageSaysNothingWasChargedForAVoidAndWhereARefundWent() async throws {
            var options = RescindHarness.Options()
            options.capture = "at_fulfilment"
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let authorized = try await h.place([("MUG", 1, 1200)])
                #expect(try await h.waitForSaga(try await h.cancel(authorized.id).sagaID).state == .completed)
                let voided = try await fetch(try #require(authorized.statusLink.flatMap(URL.init(string:))))
                #expect(voided.body.contains("Cancelled, nothing was charged for it"))
                #expect(!voided.body.contains("refunded"))

                // Captured at fulfilment of one unit, the other cancelled to store credit.
                let credited = try await h.place([("MUG", 2, 1200)])
                _ = try await h.orders.call(
                    OrdersMethods.fulfill,
                    FulfilOrderRequest(orderID: credited.id, lines: [.init(sku: "MUG", quantity: 1)]))
                _ = try await h.waitForSaga(try #require(try await h.sagas(of: credited.id).last).id)
                let accepted = try await h.orders.call(
                    OrdersMethods.cancel,
                    CancelOrderRequest(orderID: credited.id, reason: .customer, refundTo: .storeCredit),
                    idempotencyKey: UUID().uuidString)
                #expect(try await h.waitForSaga(accepted.sagaID).state == .completed)
                let page = try await fetch(try #require(credited.statusLink.flatMap(URL.init(string:))))
                #expect(page.body.contains("Cancelled 1 × MUG, 12.00 USD refunded to your store credit"))
            }
        }

        @Test func thePageSaysWhatWasRefundedAndWhatRestockingFeeWasKept() async throws {
            var options = RescindHarness.Options()
            options.storeSeconds = ["restocking_fee_fixed": 100, "restocking_fee_percent": 10]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200)])
                let link = try #require(order.statusLink.flatMap(URL.init(string:)))
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                _ = try await storefront.call(
                    CustomerMethods.edit,
                    CustomerEditRequest(
                        token: try #require(order.customerToken), lines: [.init(sku: "MUG", quantity: 1)]),
                    idempotencyKey: UUID().uuidString)
                let page = try await fetch(link)
                #expect(
                    page.body.contains("Changed: MUG → 1, 9.80 USD refunded to your card, 2.20 USD restocking fee kept")
                )
                let norwegian = try await fetch(link, language: "nb")
                #expect(
                    norwegian.body.contains(
                        "Endret: MUG → 1, 9,80 USD refundert til kortet ditt, 2,20 USD i returgebyr beholdt"))
            }
        }

        @Test func inAnApprovalStoreThePageSaysTheRequestWasSentUntilStaffApprove() async throws {
            var options = RescindHarness.Options()
            options.store = ["customer_cancel_approval": "always"]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)])
                let link = try #require(order.statusLink.flatMap(URL.init(string:)))
                let page = try await fetch(link)
                #expect(page.body.contains("Ask to cancel"))
                #expect(page.body.contains("The store approves cancellations first"))
                let sent = try await fetch(
                    link.appendingPathComponent("cancel"), method: "POST",
                    body: form([
                        "csrf": try #require(hidden("csrf", in: page.body)),
                        "request_id": try #require(hidden("request_id", in: page.body)),
                        "reason": "too late to need it",
                    ]), contentType: "application/x-www-form-urlencoded")
                #expect(sent.body.contains("Your request to cancel was sent"))
                #expect(sent.body.contains("data-status=\"cancel_requested\""))
                #expect(!sent.body.contains("id=\"cancel\""))
                // Until staff decide, the page says so on every visit.
                #expect(try await fetch(link).body.contains("Your request to cancel was sent"))
                let approved = try await h.orders.call(RequestMethods.approve, DecideRequest(orderID: order.id))
                #expect(try await h.waitForSaga(approved.sagaID).state == .completed)
                let after = try await fetch(link)
                #expect(after.body.contains("data-status=\"cancelled\""))
                #expect(after.body.contains("id=\"refunded\">12.00 USD"))
            }
        }

        @Test func aCustomerOrdersAgainFromThePageOrTheAPI() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200)], source: .onlineStore)
                let link = try #require(order.statusLink.flatMap(URL.init(string:)))
                let page = try await fetch(link)
                #expect(page.body.contains("Order again"))
                let reorderForm = try #require(page.body.range(of: "id=\"reorder\"")).upperBound
                let form = String(page.body[reorderForm...])
                // The button opens the new order's page: another order, open, the same lines.
                let placed = try await fetch(
                    link.appendingPathComponent("reorder"), method: "POST",
                    body: self.form([
                        "csrf": try #require(hidden("csrf", in: form)),
                        "request_id": try #require(hidden("request_id", in: form)),
                    ]), contentType: "application/x-www-form-urlencoded")
                #expect(placed.status == 200)
                #expect(placed.body.contains("data-status=\"open\""))
                // The new order's page: its forms post to its own link, not the first order's.
                #expect(placed.body.contains("/reorder\""))
                #expect(!placed.body.contains(try #require(order.customerToken)))
                let reorders = try #require(try await h.order(order.id).reorders)
                #expect(reorders.count == 1)
                let again = try await h.order(try #require(reorders.first))
                #expect(again.lines.map(\.quantity) == [2])
                #expect(again.source == .onlineStore)
                // Without its CSRF token, nothing is placed.
                let forged = try await fetch(
                    link.appendingPathComponent("reorder"), method: "POST", body: "",
                    contentType: "application/x-www-form-urlencoded")
                #expect(forged.status == 403)
                // The API answers 201 with the new order and, once, its link.
                let api = try h.storefrontURL().appendingPathComponent("api/orders")
                    .appendingPathComponent(try #require(order.customerToken)).appendingPathComponent("reorder")
                let created = try await fetch(api, method: "POST", body: "{}", contentType: "application/json")
                #expect(created.status == 201)
                let body = try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any]
                #expect((body?["status_link"] as? String)?.contains("/o/") == true)
                #expect(try await h.order(order.id).reorders?.count == 2)
            }
        }

        @Test func aCustomerChangesQuantitiesWithThePagesFormOrTheAPI() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                try await h.setStock("TEA", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 2, 1200), ("TEA", 1, 500)])
                let link = try #require(order.statusLink.flatMap(URL.init(string:)))
                let page = try await fetch(link)
                #expect(page.body.contains("You can change quantities until"))
                let editForm = String(page.body[try #require(page.body.range(of: "id=\"edit\"")).upperBound...])
                #expect(editForm.contains("name=\"quantity.MUG\" value=\"2\""))
                let fields = [
                    "csrf": try #require(hidden("csrf", in: editForm)),
                    "request_id": try #require(hidden("request_id", in: editForm)),
                    "quantity.MUG": "3", "quantity.TEA": "1",
                ]
                // Without its CSRF token, nothing changes.
                var forged = fields
                forged["csrf"] = nil
                let refused = try await fetch(
                    link.appendingPathComponent("edit"), method: "POST", body: form(forged),
                    contentType: "application/x-www-form-urlencoded")
                #expect(refused.status == 403)
                #expect(try await h.order(order.id).totalMinor == 2900)

                // Only the changed SKU is an edit: one more mug, charged; the page says so with the new total.
                let done = try await fetch(
                    link.appendingPathComponent("edit"), method: "POST", body: form(fields),
                    contentType: "application/x-www-form-urlencoded")
                #expect(done.status == 200)
                #expect(done.body.contains("Your order is changed"))
                #expect(done.body.contains("id=\"total\">41.00 USD"))
                #expect(done.body.contains("Changed: MUG → 3"))
                let edited = try await h.order(order.id)
                #expect(edited.edits?.map(\.changes) == [[LineChange(sku: "MUG", quantity: 3)]])
                #expect(try await h.stock("MUG", at: "main")?.reserved == 3)

                // The API: can-edit explains, edit answers with the order; a refusal carries the CLI's code.
                let api = try h.storefrontURL().appendingPathComponent("api/orders")
                    .appendingPathComponent(try #require(order.customerToken))
                let may = try await fetch(api.appendingPathComponent("can-edit"))
                let decision = try JSONSerialization.jsonObject(with: Data(may.body.utf8)) as? [String: Any]
                #expect(decision?["allowed"] as? Bool == true)
                #expect(decision?["action"] as? String == "edit")
                let fewer = try await fetch(
                    api.appendingPathComponent("edit"), method: "POST",
                    body: #"{"lines":[{"sku":"TEA","quantity":0}],"note":"no tea"}"#, contentType: "application/json")
                #expect(fewer.status == 200)
                let body = try JSONSerialization.jsonObject(with: Data(fewer.body.utf8)) as? [String: Any]
                // Paid already: the tea's 5.00 is refunded, as the total stays what was charged.
                #expect(body?["amount_refunded"] as? Int == 500)
                #expect((body?["lines"] as? [[String: Any]])?.compactMap { $0["sku"] as? String } == ["MUG"])
                #expect(try await h.payment(order.id).amountRefunded == 500)
                let none = try await fetch(
                    api.appendingPathComponent("edit"), method: "POST",
                    body: #"{"lines":[{"sku":"MUG","quantity":0}]}"#, contentType: "application/json")
                #expect(none.status == 409)
                let error = try JSONSerialization.jsonObject(with: Data(none.body.utf8)) as? [String: Any]
                #expect((error?["error"] as? [String: Any])?["reason"] as? String == "edit_empties_order")
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }

        @Test func theJSONAPIAnswersWithTheCodesTheCLIPrints() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)])
                let token = try #require(order.customerToken)
                let api = try h.storefrontURL().appendingPathComponent("api/orders")
                let shown = try await fetch(api.appendingPathComponent(token))
                #expect(shown.status == 200)
                #expect(shown.header("Content-Type") == "application/json")
                let object = try JSONSerialization.jsonObject(with: Data(shown.body.utf8)) as? [String: Any]
                #expect(object?["id"] as? String == order.id.uuidString)
                let can = try await fetch(api.appendingPathComponent(token).appendingPathComponent("can-cancel"))
                let decision = try JSONSerialization.jsonObject(with: Data(can.body.utf8)) as? [String: Any]
                #expect(decision?["allowed"] as? Bool == true)

                let wrong = try await fetch(api.appendingPathComponent(String(token.reversed())))
                #expect(wrong.status == 404)
                let error = try JSONSerialization.jsonObject(with: Data(wrong.body.utf8)) as? [String: [String: Any]]
                #expect(error?["error"]?["code"] as? String == "not_found")
                #expect(error?["error"]?["reason"] as? String == "unknown_token")
                #expect(error?["error"]?["retryable"] as? Bool == false)

                let accepted = try await fetch(
                    api.appendingPathComponent(token).appendingPathComponent("cancel"), method: "POST",
                    body: #"{"note": "changed my mind"}"#, contentType: "application/json")
                #expect(accepted.status == 202)
                let body = try JSONSerialization.jsonObject(with: Data(accepted.body.utf8)) as? [String: Any]
                let sagaText = try #require(body?["saga_id"] as? String)
                let sagaID = try #require(UUID(uuidString: sagaText))
                #expect(try await h.waitForSaga(sagaID).state == .completed)
                // Again: the order is cancelled, which the error says with the CLI's code and reason.
                let again = try await fetch(
                    api.appendingPathComponent(token).appendingPathComponent("cancel"), method: "POST", body: "{}",
                    contentType: "application/json")
                #expect(again.status == 409)
                #expect(again.body.contains("\"reason\":\"order_cancelled\""))
            }
        }

        @Test func aFloodGets429WithRetryAfterAndTheStorefrontStaysUp() async throws {
            var options = RescindHarness.Options()
            options.storefront = ["rate_limit": ["per_token_per_minute": 3, "per_address_per_minute": 1_000]]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let flooded = try await h.place([("MUG", 1, 1200)])
                let other = try await h.place([("MUG", 1, 1200)])
                let link = try #require(flooded.statusLink.flatMap(URL.init(string:)))
                var statuses: [Int] = []
                for _ in 0..<5 { statuses.append(try await fetch(link).status) }
                #expect(statuses == [200, 200, 200, 429, 429])
                let limited = try await fetch(link)
                #expect(limited.status == 429)
                #expect(Int(limited.header("Retry-After") ?? "") ?? 0 > 0)
                // Another order's link is not held back, and the storefront still answers.
                #expect(try await fetch(try #require(other.statusLink.flatMap(URL.init(string:)))).status == 200)
                #expect(try await fetch(try h.storefrontURL().appendingPathComponent("healthz")).status == 200)
            }
        }
    }
}
