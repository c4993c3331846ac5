import ArgumentParser
import Foundation
import RescindAPI
import RescindSuite
import RescindTransport
import RescindWire

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One command, no set-up: a suite in a fresh folder, a small catalogue, orders placed and cancelled,
/// and the two cancellations that fail and are compensated, each shown as a saga timeline. The demo store
/// captures cards when its cancellation window (two seconds here) closes: a cancellation inside the window
/// is a free void, one after it a refund that costs the processor's fee. It cancels one line of an order and
/// edits it, places a cancelled order again, and ends with an archive and a delete that is refused, as it is
/// for every online store order.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run the whole suite on an embedded catalogue: place, cancel (void or refund, whole or some lines), edit, refund declined, restock failed, reorder, archive."
    )

    @Option(help: "Directory for the demo suite (default: a new temporary folder).")
    var dir: String?
    @Flag(help: "Leave the suite running afterwards.")
    var keep = false
    @OptionGroup var output: OutputOptions

    /// What the demo saw, for `--json` and for tests.
    struct Report: Encodable {
        struct Scenario: Encodable {
            var name: String
            var order: Order
            var saga: Saga?
            var payment: Payment?
            var stock: StockReport
            /// A refusal the scenario shows: the error's reason.
            var refusal: String?
        }

        var directory: String
        var scenarios: [Scenario] = []
    }

    func run() async throws {
        let directory =
            dir
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "rescind-demo-\(UUID().uuidString.prefix(8))"
            ).path
        let suite = LocalSuite(layout: SuiteLayout(path: directory))
        try suite.prepare()
        try suite.patchStore(["capture": "when_window_closes", "cancellation_window_seconds": Self.windowSeconds])
        say("▶ starting a suite in \(directory)")
        let (manifest, _) = try await suite.up(progress: { line in say("  \(line)") })
        let connection = try SuiteConnection(manifest: manifest)
        var report = Report(directory: directory)
        do {
            try await scenarios(connection, &report)
            try await customerScenario(connection, storefront: manifest.storefrontURL, &report)
        } catch {
            await connection.shutdown()
            if !keep { _ = await suite.down() }
            throw error
        }
        await connection.shutdown()
        if keep {
            say(
                "▶ the suite keeps running: rescindctl orders list --dir \(directory); rescindctl down --dir \(directory)"
            )
        } else {
            say("▶ stopping the suite")
            _ = await suite.down(progress: { line in say("  \(line)") })
        }
        if output.json { printLine(try Output.json(report)) }
    }

    /// The demo store's cancellation window: short, so that the demo shows a capture without waiting long.
    static let windowSeconds = 2.0

    private func say(_ text: String) {
        Self.say(text, json: output.json)
    }

    private static func say(_ text: String, json: Bool) {
        if json {
            FileHandle.standardError.write(Data("\(text)\n".utf8))
        } else {
            printLine(text)
        }
    }

    private func scenarios(_ c: SuiteConnection, _ report: inout Report) async throws {
        say("\n▶ catalogue: TSHIRT and MUG at 'main', POSTER at 'backroom'")
        for (sku, location, units) in [("TSHIRT", "main", 10), ("MUG", "main", 5), ("POSTER", "backroom", 3)] {
            _ = try await c.inventory.call(
                InventoryMethods.setStock, SetStockRequest(sku: sku, location: location, onHand: Int64(units))
            )
        }
        say(Render.stock(try await stock(c)))

        say(
            "\n▶ this store captures a card when its \(Int(Self.windowSeconds))-second cancellation window closes, "
                + "or at fulfilment")

        // 0. Cancelled inside the window: the authorization is voided; no money moved, no fee.
        say("\n▶ 0. order a T-shirt and cancel it at once, inside the cancellation window")
        let early = try await place(
            c, lines: [("TSHIRT", 1, 2500)], paymentMethod: "pm_card_visa", source: .onlineStore, capture: false)
        try await scenario(
            "voided_in_window", c, &report, order: early,
            cancel: CancelOrderRequest(orderID: early.id, reason: .customer, notify: true))

        // 0b. Some lines: one T-shirt of two cancelled inside the window (its share voided), the rest stays open;
        // then the customer adds a poster (an edit: reserved, the authorization raised).
        say("\n▶ 0b. order 2 T-shirts and a mug, cancel one T-shirt at once, then add a poster to the order")
        let partly = try await place(
            c, lines: [("TSHIRT", 2, 2500), ("MUG", 1, 1200)], paymentMethod: "pm_card_visa", source: .onlineStore,
            capture: false)
        try await scenario(
            "partially_cancelled", c, &report, order: partly,
            cancel: CancelOrderRequest(
                orderID: partly.id, reason: .customer, lines: [LineQuantity(sku: "TSHIRT", quantity: 1)]))
        let edited = try await c.orders.call(
            OrdersMethods.edit,
            EditOrderRequest(
                orderID: partly.id, changes: [LineChange(sku: "POSTER", quantity: 1, unitPriceMinor: 1800)],
                note: "the customer added a poster"),
            idempotencyKey: "demo-\(UUID().uuidString)", timeout: .seconds(40))
        say(Render.order(edited))
        report.scenarios.append(
            .init(
                name: "edited", order: edited, saga: nil,
                payment: try await c.payments.call(PaymentsMethods.get, PaymentRequest(orderID: edited.id)),
                stock: try await stock(c)))

        // 1. A cancellation that works: refund (fee kept), restock, notify.
        say("\n▶ 1. order 2 T-shirts and a mug, wait for the capture, then cancel it (customer changed their mind)")
        let first = try await place(
            c, lines: [("TSHIRT", 2, 2500), ("MUG", 1, 1200)], paymentMethod: "pm_card_visa", source: .onlineStore)
        try await scenario(
            "cancelled", c, &report, order: first,
            cancel: CancelOrderRequest(orderID: first.id, reason: .customer, notify: true, staffNote: "asked by phone")
        )

        // 2. The refund is declined: the restock is taken back and the order is open again.
        say("\n▶ 2. order a mug with the card whose refunds are declined (pm_card_refundFail), then cancel")
        let second = try await place(c, lines: [("MUG", 1, 1200)], paymentMethod: "pm_card_refundFail")
        try await scenario(
            "refund_declined", c, &report, order: second,
            cancel: CancelOrderRequest(orderID: second.id, reason: .customer)
        )

        // 3. The restock fails: the location was deactivated; nothing is refunded, the order is open again.
        say("\n▶ 3. order a poster from 'backroom', deactivate 'backroom', then cancel")
        let third = try await place(c, lines: [("POSTER", 1, 1800)], paymentMethod: "pm_card_visa")
        _ = try await c.inventory.call(InventoryMethods.deactivateLocation, LocationRequest(location: "backroom"))
        try await scenario(
            "restock_failed", c, &report, order: third,
            cancel: CancelOrderRequest(orderID: third.id, reason: .inventory)
        )

        // 4. A declined card never becomes an order: the reservation is released.
        say("\n▶ 4. a declined card (pm_card_visa_chargeDeclined): placement is rejected and the stock released")
        do {
            _ = try await place(c, lines: [("TSHIRT", 1, 2500)], paymentMethod: "pm_card_visa_chargeDeclined")
        } catch let error as RescindError {
            say("  rejected: \(error.code)/\(error.reason ?? ""): \(error.message)")
        }
        let rejected = try await c.orders.call(OrdersMethods.list, ListOrdersRequest(status: .rejected, limit: 1))
        if let order = rejected.orders.first {
            let sagas = try await c.orders.call(OrdersMethods.listSagas, ListSagasRequest(orderID: order.id))
            if let saga = sagas.sagas.first { say(Render.saga(saga)) }
            report.scenarios.append(
                .init(
                    name: "card_declined", order: order, saga: sagas.sagas.first, payment: nil,
                    stock: try await stock(c))
            )
        }
        // 5. The customer cancelled by mistake: the order is placed again, charged to the card saved with it.
        say("\n▶ 5. the customer of order 1 cancelled by mistake: place it again (reorder)")
        let again = try await c.orders.call(
            OrdersMethods.reorder, ReorderRequest(orderID: first.id), idempotencyKey: "demo-\(UUID().uuidString)",
            timeout: .seconds(40))
        say(Render.order(again))
        report.scenarios.append(
            .init(
                name: "reordered", order: again, saga: nil,
                payment: try await c.payments.call(PaymentsMethods.get, PaymentRequest(orderID: again.id)),
                stock: try await stock(c)))

        // 6. Archive the cancelled online order; deleting it is refused: online orders are never deleted.
        say("\n▶ 6. archive the cancelled online order, then try to delete it")
        let archived = try await c.orders.call(OrdersMethods.archive, OrderRequest(orderID: first.id))
        say(Render.order(archived))
        var refusal: String?
        do {
            _ = try await c.orders.call(OrdersMethods.delete, OrderRequest(orderID: first.id))
        } catch let error as RescindError {
            refusal = error.reason
            say("  delete refused: \(error.code)/\(error.reason ?? ""): \(error.message)")
        }
        report.scenarios.append(
            .init(
                name: "archived_not_deleted", order: archived, saga: nil, payment: nil, stock: try await stock(c),
                refusal: refusal))

        say("\n▶ stock at the end")
        say(Render.stock(try await stock(c)))
    }

    /// 7. A customer cancels through the storefront, with the link their order came with: the same JSON API a
    /// store's own front end uses (`protocol/storefront/openapi.json`).
    private func customerScenario(_ c: SuiteConnection, storefront: String?, _ report: inout Report) async throws {
        guard storefront != nil else { return }
        say("\n▶ 7. a customer opens their order-status link and cancels through the storefront")
        let order = try await place(
            c, lines: [("MUG", 1, 1200)], paymentMethod: "pm_card_visa", source: .onlineStore, capture: false)
        guard let link = order.statusLink, let token = order.customerToken,
            let base = URL(string: link)?.deletingLastPathComponent().deletingLastPathComponent()
        else { throw RescindError.internalError("the placement answered without an order-status link") }
        say("  the customer's link: \(link)  (open it in a browser while the suite runs: demo --keep)")
        let api = base.appendingPathComponent("api/orders").appendingPathComponent(token)
        let (decision, _) = try await Self.http(api.appendingPathComponent("can-cancel"))
        say("  GET /api/orders/TOKEN/can-cancel → \(String(decoding: decision, as: UTF8.self).prefix(160))…")
        let (body, status) = try await Self.http(
            api.appendingPathComponent("cancel"), post: Data(#"{"note": "found it cheaper elsewhere"}"#.utf8))
        say("  POST /api/orders/TOKEN/cancel → \(status)")
        struct Accepted: Decodable {
            var sagaID: UUID?
            enum CodingKeys: String, CodingKey { case sagaID = "saga_id" }
        }
        guard let sagaID = try JSONDecoder().decode(Accepted.self, from: body).sagaID else {
            throw RescindError.internalError("the storefront did not start a cancellation")
        }
        let saga = try await waitForSaga(sagaID, connection: c, output: output, showProgress: false)
        say(Render.saga(saga))
        let after = try await c.orders.call(OrdersMethods.get, OrderRequest(orderID: order.id))
        say(Render.order(after))
        report.scenarios.append(
            .init(
                name: "customer_cancelled", order: after, saga: saga,
                payment: try await c.payments.call(PaymentsMethods.get, PaymentRequest(orderID: order.id)),
                stock: try await stock(c)))
    }

    /// One HTTP request to the storefront: the body and status.
    private static func http(_ url: URL, post body: Data? = nil) async throws -> (Data, Int) {
        var request = URLRequest(url: url)
        if let body {
            request.httpMethod = "POST"
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return (data, (response as? HTTPURLResponse)?.statusCode ?? 0)
    }

    /// Places an order; unless `capture` is false, waits until the window closes and the card is captured.
    private func place(
        _ c: SuiteConnection, lines: [(String, Int64, Int64)], paymentMethod: String, source: Order.Source = .staff,
        capture: Bool = true
    ) async throws -> Order {
        let order = try await c.orders.call(
            OrdersMethods.place,
            PlaceOrderRequest(
                customerEmail: "ada@example.com", currency: "USD",
                lines: lines.map { .init(sku: $0.0, quantity: $0.1, unitPriceMinor: $0.2) },
                paymentMethod: paymentMethod,
                source: source
            ),
            idempotencyKey: "demo-\(UUID().uuidString)", timeout: .seconds(40)
        )
        say(Render.order(order))
        guard capture, order.status == .open else { return order }
        say("  … waiting for the cancellation window to close and the card to be captured")
        let deadline = ContinuousClock.now + .seconds(60)
        while try await c.payments.call(PaymentsMethods.get, PaymentRequest(orderID: order.id)).status == .authorized {
            guard ContinuousClock.now < deadline else {
                throw RescindError(.deadlineExceeded, "order \(order.id) was not captured within 60 s")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await c.orders.call(OrdersMethods.get, OrderRequest(orderID: order.id))
    }

    private func scenario(
        _ name: String, _ c: SuiteConnection, _ report: inout Report, order: Order, cancel: CancelOrderRequest
    ) async throws {
        let accepted = try await c.orders.call(OrdersMethods.cancel, cancel)
        say("  cancellation accepted: saga \(accepted.sagaID)")
        let saga = try await waitForSaga(accepted.sagaID, connection: c, output: output, showProgress: false)
        say(Render.saga(saga))
        let after = try await c.orders.call(OrdersMethods.get, OrderRequest(orderID: order.id))
        let payment = try await c.payments.call(PaymentsMethods.get, PaymentRequest(orderID: order.id))
        say(Render.order(after))
        say(Render.payment(payment))
        let stock = try await stock(c)
        report.scenarios.append(.init(name: name, order: after, saga: saga, payment: payment, stock: stock))
    }

    private func stock(_ c: SuiteConnection) async throws -> StockReport {
        try await c.inventory.call(InventoryMethods.listStock, ListStockRequest())
    }
}
