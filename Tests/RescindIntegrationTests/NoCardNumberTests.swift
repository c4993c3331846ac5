import Foundation
import RescindAPI
import RescindPayments
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// No card number is accepted, stored or logged anywhere: orders of every kind are placed with payment method
    /// references, a request that still carries a card number is refused, and then no file of the suite (the
    /// three databases, the processor's, their WALs, every log) holds the number of any test card.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct NoCardNumberTests {
        /// `orders.place` as it was before payment methods: a card number.
        struct LegacyPlaceRequest: Codable, Sendable {
            var customer_email = "ada@example.com"
            var currency = "USD"
            var lines = [PlaceOrderRequest.Line(sku: "MUG", quantity: 1, unitPriceMinor: 1200)]
            var card_number = SimulatedProcessor.testCards["pm_card_visa"]?.number ?? ""
        }

        @Test func noFileOfTheSuiteHoldsACardNumber() async throws {
            var options = RescindHarness.Options()
            options.capture = "at_fulfilment"
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 50)
                // A card number is refused, naming what to send instead, and nothing is placed.
                let legacy = RescindAPI.Method<LegacyPlaceRequest, Order>("orders.place", callers: [.operator])
                let refused = await #expect(throws: RescindError.self) {
                    try await h.orders.call(legacy, LegacyPlaceRequest(), idempotencyKey: "legacy")
                }
                #expect(refused?.reason == "card_number_refused")
                #expect(refused?.message.contains("payment_method") == true)
                #expect(try await h.orders.call(OrdersMethods.list, ListOrdersRequest()).orders.isEmpty)

                // Every test payment method, through every kind of payment change.
                for method in SimulatedProcessor.testCards.keys.sorted() {
                    guard let order = try? await h.place([("MUG", 1, 1200)], paymentMethod: method) else { continue }
                    _ = try? await h.orders.call(
                        OrdersMethods.edit,
                        EditOrderRequest(orderID: order.id, changes: [.init(sku: "MUG", quantity: 2)]),
                        idempotencyKey: UUID().uuidString)
                    _ = try? await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                    _ = try? await h.orders.call(
                        OrdersMethods.reorder, ReorderRequest(orderID: order.id), idempotencyKey: UUID().uuidString)
                }
                let placed = try await h.orders.call(OrdersMethods.list, ListOrdersRequest()).orders
                #expect(placed.count >= SimulatedProcessor.testCards.count)
                for order in placed where order.status == .open {
                    _ = try? await h.cancel(order.id)
                }
                try await h.waitUntilQuiet()

                let numbers = Set(SimulatedProcessor.testCards.values.map(\.number))
                let files = try FileManager.default.subpathsOfDirectory(atPath: h.directory.path)
                    .map { h.directory.appendingPathComponent($0) }
                    .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
                #expect(files.contains { $0.lastPathComponent == "payments-processor.sqlite" })
                #expect(files.contains { $0.pathExtension == "log" })
                for file in files {
                    let bytes = try Data(contentsOf: file)
                    for number in numbers {
                        #expect(bytes.range(of: Data(number.utf8)) == nil, "\(file.path) holds \(number)")
                    }
                }
            }
        }
    }
}
