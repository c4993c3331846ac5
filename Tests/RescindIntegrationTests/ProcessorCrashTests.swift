import Foundation
import RescindAPI
import RescindPayments
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Payments killed (SIGKILL, at a crash point) on each side of every kind of processor call: once the call is
    /// recorded and before it is made, and once the processor answered and before the answer is recorded.
    /// Restarted with a processor that ignores idempotency keys (the simulator told to, or localstripe, which always
    /// does), Payments finds out what the processor did by the call's key instead of asking again: every charge,
    /// capture, void and refund happens once, and Payments' records and the processor's agree amount for amount.
    @Suite(.serialized, .timeLimit(.minutes(10))) struct ProcessorCrashTests {
        enum Scenario: String, Sendable {
            /// Placing an order: an authorization, then its capture.
            case place
            /// In a store that captures at fulfilment, cancelling: the authorization is voided.
            case cancelAuthorized
            /// In a store that captures at fulfilment, an edit that adds a unit: the authorization is raised.
            case growAuthorized
            /// Cancelling a captured order: a refund.
            case cancelCaptured
        }

        struct Case: Sendable, CustomTestStringConvertible {
            var call: String
            var phase: String
            var scenario: Scenario
            /// Against localstripe instead of the simulator.
            var stripe: Bool
            var point: String { "payments/\(call)/\(phase)_call" }
            var testDescription: String { point + (stripe ? " (localstripe)" : "") }
        }

        static let cases: [Case] = [
            ("authorize", Scenario.place), ("capture", .place), ("void", .cancelAuthorized),
            ("authorize_more", .growAuthorized), ("refund", .cancelCaptured),
        ].flatMap { call, scenario in
            [false, true].flatMap { stripe in
                ["before", "after"].map { Case(call: call, phase: $0, scenario: scenario, stripe: stripe) }
            }
        }.filter { !$0.stripe || LocalstripeServer.available }

        /// A charge as the processor holds it, Stripe's names for its status.
        struct Held {
            var status: String
            var amount: Int64
            var captured: Int64
            var refunds: Int
            var refunded: Int64
        }

        /// What the processor holds for an order: the simulator's database, or localstripe's intents with the
        /// order's id in their metadata (a capture of less than was authorized shows there as a refund without
        /// Rescind's key: released, not refunded).
        private func held(_ h: RescindHarness, _ stripe: LocalstripeServer?, _ order: UUID) async throws -> [Held] {
            guard let stripe else {
                return try h.processorCharges(of: order).map {
                    Held(
                        status: $0.status, amount: $0.amount, captured: $0.amountCaptured, refunds: $0.refunds,
                        refunded: $0.amountRefunded)
                }
            }
            return try await stripe.intents(ofOrder: order).map {
                Held(
                    status: $0.status, amount: $0.amount, captured: $0.captured, refunds: $0.refunds,
                    refunded: $0.refunded)
            }
        }

        @Test(arguments: cases)
        func paymentsKilledAroundAProcessorCallMakesItOnce(_ crash: Case) async throws {
            let stripe = crash.stripe ? try LocalstripeServer() : nil
            defer { stripe?.stop() }
            var options = RescindHarness.Options()
            options.stripeAPIBase = stripe?.apiBase
            if crash.scenario == .cancelAuthorized || crash.scenario == .growAuthorized {
                options.capture = "at_fulfilment"
            }
            let crashing: [Identity: [String: String]] = [.payments: ["RESCIND_CRASH_POINT": crash.point]]
            // The crash point is set from the call it is about: a placement's when it is the authorization or its
            // capture, else the later call's (Payments is restarted with it before that).
            try await RescindHarness.withSuite(
                options: options, environment: crash.scenario == .place ? crashing : [:]
            ) { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                // What Payments is doing when it dies: the saga's call loses its connection, and Orders retries it
                // with the same key once Payments is back.
                let started: Task<Order?, Never>
                if crash.scenario == .place {
                    started = Task { try? await h.place([("MUG", 2, 1200)], key: "place") }
                } else {
                    let order = try await h.place([("MUG", 2, 1200)])
                    await h.crash(.payments)
                    try await h.restart(environment: crashing)
                    started = Task {
                        if crash.scenario == .growAuthorized {
                            _ = try? await h.orders.call(
                                OrdersMethods.edit,
                                EditOrderRequest(orderID: order.id, changes: [.init(sku: "MUG", quantity: 3)]),
                                idempotencyKey: "grow")
                        } else {
                            _ = try? await h.cancel(order.id)
                        }
                        return order
                    }
                }
                // It died, and where the test says.
                #expect(await h.waitForExit(.payments))
                #expect(h.log(.payments).contains { $0.contains("crash point reached: \(crash.point)") })

                try await h.restart(environment: [.payments: ["RESCIND_PROCESSOR_FAULTS": "ignore_idempotency"]])
                _ = await started.value
                let orders = try await h.orders.call(OrdersMethods.list, ListOrdersRequest())
                let order = try #require(orders.orders.first)
                let saga = try #require(try await h.sagas(of: order.id).last)
                let ended = try await h.waitForSaga(saga.id)
                #expect(ended.state == .completed, "\(ended.steps.map { "\($0.name):\($0.status)" })")
                // localstripe refuses to raise an authorization: nothing was done to find.
                if crash.phase == "after", !(crash.stripe && crash.scenario == .growAuthorized) {
                    // Made before the crash, found by its key after it.
                    #expect(h.log(.payments).contains { $0.contains("processor call found done by its key") })
                }

                let payment = try await h.payment(order.id)
                let charges = try await held(h, stripe, order.id)
                // localstripe cannot raise an authorization: an increase is a second intent there.
                #expect(charges.count == (crash.scenario == .growAuthorized && crash.stripe ? 2 : 1), "\(charges)")
                let charge = try #require(charges.first)
                switch crash.scenario {
                case .place:
                    #expect(payment.status == .captured)
                    #expect(charge.status == "succeeded")
                    #expect(charge.captured == 2400)
                case .cancelAuthorized:
                    #expect(payment.status == .voided)
                    #expect(charge.status == "canceled")
                case .growAuthorized:
                    #expect(payment.amountAuthorized == 3600)
                    #expect(charges.reduce(0) { $0 + $1.amount } == 3600)
                case .cancelCaptured:
                    #expect(payment.status == .refunded)
                    #expect(charge.refunds == 1)
                    #expect(charge.refunded == 2400)
                }
                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
