import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Orders killed (SIGKILL, at a crash point) at every step boundary of its sagas, going forward and undoing;
    /// restarted, it finishes each saga once, and the databases agree.
    @Suite(.serialized, .timeLimit(.minutes(10))) struct CrashPointTests {
        enum Scenario: Sendable {
            /// Place an order with a card, then cancel it.
            case cancel(card: String)
            /// Place an order, then cancel it without restocking: its units are written off.
            case cancelWithoutRestock
            /// In a store that captures at fulfilment, place an order, then cancel it: the authorization is voided.
            case cancelAuthorized
            /// Place an order with a card (the crash is during placement).
            case place(card: String)
            /// Place an order, then fulfil it.
            case fulfil
            /// In a store that captures at fulfilment, place an order with a card, then fulfil it (capturing first).
            case fulfilCapturing(card: String)

            /// The store's capture setting the scenario needs (`nil`: at placement, the default).
            var capture: String? {
                switch self {
                case .cancelAuthorized, .fulfilCapturing: "at_fulfilment"
                case .cancel, .cancelWithoutRestock, .place, .fulfil: nil
                }
            }
        }

        struct Case: Sendable, CustomTestStringConvertible {
            var point: String
            var scenario: Scenario
            var remote: Bool
            var ends: Saga.State

            var testDescription: String { point }
            var phase: String { String(point.split(separator: "/")[3]) }
            var step: String { String(point.split(separator: "/")[1]) }
            var direction: Saga.Step.Direction {
                Saga.Step.Direction(rawValue: String(point.split(separator: "/")[2])) ?? .forward
            }
        }

        static let good = "pm_card_visa"
        static let declined = "pm_card_visa_chargeDeclined"
        static let refundDeclined = "pm_card_refundFail"
        static let captureDeclined = "pm_card_captureDeclined"

        static let cases: [Case] = {
            var cases: [Case] = []
            func add(
                _ kind: String, _ step: String, _ direction: String, remote: Bool, _ scenario: Scenario,
                ends: Saga.State, phases: [String] = ["before", "after"]
            ) {
                for phase in phases {
                    cases.append(
                        Case(
                            point: "\(kind)/\(step)/\(direction)/\(phase)", scenario: scenario, remote: remote,
                            ends: ends)
                    )
                }
            }
            // Cancelling, forward.
            add("cancel_order", "prepare_restock", "forward", remote: true, .cancel(card: good), ends: .completed)
            add("cancel_order", "refund", "forward", remote: true, .cancel(card: good), ends: .completed)
            add("cancel_order", "restock", "forward", remote: true, .cancel(card: good), ends: .completed)
            add("cancel_order", "finalize", "forward", remote: false, .cancel(card: good), ends: .completed)
            add("cancel_order", "write_off", "forward", remote: true, .cancelWithoutRestock, ends: .completed)
            add("cancel_order", "void", "forward", remote: true, .cancelAuthorized, ends: .completed)
            // Cancelling, undoing a declined refund.
            add(
                "cancel_order", "take_back", "compensate", remote: true, .cancel(card: refundDeclined),
                ends: .compensated)
            add(
                "cancel_order", "unlock", "compensate", remote: false, .cancel(card: refundDeclined), ends: .compensated
            )
            // Placing, forward. The payment method is in the saga's context: an authorization cut short goes out
            // again with the same key once Orders is back.
            add("place_order", "reserve", "forward", remote: true, .place(card: good), ends: .completed)
            add("place_order", "authorize", "forward", remote: true, .place(card: good), ends: .completed)
            add("place_order", "capture", "forward", remote: true, .place(card: good), ends: .completed)
            add("place_order", "open", "forward", remote: false, .place(card: good), ends: .completed)
            // Placing, undoing a declined card.
            add("place_order", "release", "compensate", remote: true, .place(card: declined), ends: .compensated)
            add("place_order", "reject", "compensate", remote: false, .place(card: declined), ends: .compensated)
            // Placing, undoing an authorization whose capture was declined.
            add(
                "place_order", "void", "compensate", remote: true, .place(card: captureDeclined), ends: .compensated)
            // Fulfilling.
            add("fulfil_order", "commit", "forward", remote: true, .fulfil, ends: .completed)
            add("fulfil_order", "fulfilled", "forward", remote: false, .fulfil, ends: .completed)
            add("fulfil_order", "capture", "forward", remote: true, .fulfilCapturing(card: good), ends: .completed)
            // Fulfilling, undoing the lock when the capture was declined.
            add(
                "fulfil_order", "unlock", "compensate", remote: false, .fulfilCapturing(card: captureDeclined),
                ends: .compensated)
            return cases
        }()

        @Test(arguments: cases)
        func ordersKilledAtAStepBoundaryFinishesTheSagaOnce(_ crash: Case) async throws {
            var options = RescindHarness.Options()
            options.capture = crash.scenario.capture
            try await RescindHarness.withSuite(
                options: options, environment: [.orders: ["RESCIND_CRASH_POINT": crash.point]]
            ) { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                // What Orders is doing when it dies: the call that started the saga loses its connection.
                switch crash.scenario {
                case .cancel(let card):
                    let order = try await h.place([("MUG", 2, 1200)], paymentMethod: card)
                    _ = try? await h.cancel(order.id)
                case .cancelWithoutRestock:
                    let order = try await h.place([("MUG", 2, 1200)])
                    _ = try? await h.cancel(order.id, restock: false)
                case .cancelAuthorized:
                    let order = try await h.place([("MUG", 2, 1200)])
                    _ = try? await h.cancel(order.id)
                case .place(let card):
                    _ = try? await h.place([("MUG", 2, 1200)], paymentMethod: card)
                case .fulfil:
                    let order = try await h.place([("MUG", 2, 1200)])
                    _ = try? await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                case .fulfilCapturing(let card):
                    let order = try await h.place([("MUG", 2, 1200)], paymentMethod: card)
                    _ = try? await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: order.id))
                }
                // It died, and where the test says.
                #expect(await h.waitForExit(.orders))
                #expect(!h.isRunning(.orders))
                #expect(h.log(.orders).contains { $0.contains("crash point reached: \(crash.point)") })

                try await h.restart()
                let orders = try await h.orders.call(OrdersMethods.list, ListOrdersRequest())
                let order = try #require(orders.orders.first)
                let saga = try #require(try await h.sagas(of: order.id).last)
                let ended = try await h.waitForSaga(saga.id)
                #expect(ended.state == crash.ends, "\(ended.steps.map { "\($0.name):\($0.status)" })")
                let step = try #require(ended.step(crash.step, crash.direction))
                #expect(step.status == .succeeded)
                if crash.phase == "after" {
                    // Recorded before the crash: never done again.
                    #expect(step.attempt == 1)
                } else if crash.remote {
                    // Cut short by the crash, the attempt counts; the next went out with the same key.
                    #expect(step.attempt >= 2)
                    #expect(step.idempotencyKey == "\(saga.id.uuidString)/\(crash.step)")
                }
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
