import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Sagas that a previous release started and did not finish are finished by this one.
    @Suite(.serialized, .timeLimit(.minutes(5))) struct UpgradeTests {
        /// The databases in `Tests/Fixtures/upgrade-from-6cb3458`, written by the release before issue 16 (commit
        /// 6cb3458) with its daemons killed mid-way (`writeUpgradeFixture`, run at that commit).
        static let fixture = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/upgrade-from-6cb3458")

        /// Writes the fixture: a burst of every kind of saga over slow links, and the three daemons killed with
        /// SIGKILL while sagas run forward, compensate, and wait for their participants. Run once, by hand, at the
        /// release the fixture is named for: `RESCIND_WRITE_UPGRADE_FIXTURE=DIR swift test --filter writeUpgradeFixture`.
        @Test(.enabled(if: ProcessInfo.processInfo.environment["RESCIND_WRITE_UPGRADE_FIXTURE"] != nil))
        func writeUpgradeFixture() async throws {
            let folder = URL(
                fileURLWithPath: try #require(ProcessInfo.processInfo.environment["RESCIND_WRITE_UPGRADE_FIXTURE"]))
            var options = RescindHarness.Options()
            options.sagas["max_attempts"] = 1000
            options.sagas["place_timeout_seconds"] = 0.2
            let h = try await RescindHarness.start(options: options)
            try await h.setStock("MUG", at: "main", onHand: 1000)
            try await h.setStock("TEE", at: "main", onHand: 1000)
            var orders: [UUID] = []
            for index in 0..<30 {
                let order = try await h.place(
                    [("MUG", 2, 1200), ("TEE", 1, 2500)],
                    paymentMethod: index % 6 == 5 ? FaultInjectionTests.refundDeclined : "pm_card_visa")
                orders.append(order.id)
            }
            // Every remote step now takes a while: the daemons die with sagas at every stage.
            for peer in [Identity.inventory, .payments] { try h.proxy(peer).set(.delay(.milliseconds(250))) }
            let calls = orders.enumerated().map { index, order in
                { @Sendable () async throws -> Void in
                    switch index % 6 {
                    case 0, 5:  // whole; a declined refund compensates
                        _ = try await h.cancel(order)
                    case 1:  // some lines
                        _ = try await h.orders.call(
                            OrdersMethods.cancel,
                            CancelOrderRequest(
                                orderID: order, reason: .customer, lines: [LineQuantity(sku: "MUG", quantity: 1)]))
                    case 2:
                        _ = try await h.orders.call(
                            OrdersMethods.refund,
                            RefundOrderRequest(orderID: order, amountMinor: 700, reason: "a scratched mug"),
                            idempotencyKey: UUID().uuidString)
                    case 3:
                        _ = try await h.orders.call(
                            OrdersMethods.edit,
                            EditOrderRequest(orderID: order, changes: [LineChange(sku: "MUG", quantity: 3)]),
                            idempotencyKey: UUID().uuidString)
                    default:
                        _ = try await h.orders.call(
                            OrdersMethods.fulfill,
                            FulfilOrderRequest(orderID: order, lines: [LineQuantity(sku: "TEE", quantity: 1)]))
                    }
                }
            }
            let placements = (0..<5).map { _ in
                { @Sendable () async throws -> Void in _ = try await h.place([("MUG", 1, 1200)]) }
            }
            let burst = Task {
                await withTaskGroup(of: Void.self) { group in
                    for call in calls + placements { group.addTask { try? await call() } }
                }
            }
            try await h.waitUntil("sagas compensating and running", timeout: .seconds(30)) {
                let compensating = try await h.orders.call(
                    OrdersMethods.listSagas, ListSagasRequest(state: .compensating))
                let running = try await h.orders.call(OrdersMethods.listSagas, ListSagasRequest(state: .running))
                return !compensating.sagas.isEmpty && running.sagas.count >= 15
            }
            async let killOrders: Void = h.crash(.orders)
            async let killPayments: Void = h.crash(.payments)
            async let killInventory: Void = h.crash(.inventory)
            _ = await (killOrders, killPayments, killInventory)
            burst.cancel()
            try h.snapshotDatabases(to: folder)
            await h.stop()
        }
    }
}

extension RealDaemons.UpgradeTests {
    @Test func sagasOfThePreviousReleaseFinish() async throws {
        var options = RescindHarness.Options()
        options.databases = Self.fixture
        try await RescindHarness.withSuite(options: options) { h in
            try await h.waitUntilQuiet()
            let sagas = try await h.orders.call(OrdersMethods.listSagas, ListSagasRequest(limit: 1000)).sagas
            #expect(sagas.count == 65)
            let unfinished = sagas.filter { !$0.state.isTerminal || $0.state == .failed }
            #expect(unfinished.isEmpty, "\(unfinished.map { "\($0.kind) \($0.id) \($0.state)" })")
            // The cancellation whose refund was declined was undone: its order is open again.
            let undone = sagas.filter { $0.state == .compensated }
            #expect(undone.count == 5 && undone.allSatisfy { $0.kind == .cancelOrder })
            let orders = try await h.orders.call(OrdersMethods.list, ListOrdersRequest(limit: 1000)).orders
            #expect(orders.count == 35)
            #expect(orders.allSatisfy { [.open, .cancelled, .fulfilled].contains($0.status) })
            let report = try await h.checkWithProcessor()
            #expect(report.violations.isEmpty, "\(report.violations)")
        }
    }
}
