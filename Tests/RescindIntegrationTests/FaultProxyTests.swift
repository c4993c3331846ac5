import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Each mode of the fault proxy, seen by a real client calling the real Payments daemon through it.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct FaultProxyTests {
        private func health(_ client: RPCClient, timeout: Duration = .seconds(2)) async throws -> HealthStatus {
            try await client.call(CommonMethods.health, Empty(), timeout: timeout)
        }

        private func error(_ body: () async throws -> Void) async -> RescindError? {
            do {
                try await body()
                return nil
            } catch {
                return error as? RescindError
            }
        }

        @Test func eachModeDoesToTheLinkWhatItSays() async throws {
            try await RescindHarness.withSuite { h in
                let proxy = try h.proxy(.payments)
                let client = try h.clientThroughProxy(.payments)

                // pass: calls go through.
                #expect(try await health(client).service == "payments")

                // delay: still through, never sooner than the delay (a round trip crosses it twice).
                proxy.set(.delay(.milliseconds(150)))
                let start = ContinuousClock.now
                #expect(try await health(client).service == "payments")
                #expect(ContinuousClock.now - start >= .milliseconds(300))

                // blackhole: the connection stays, nothing comes back: the call runs to its deadline.
                proxy.set(.blackhole)
                let held = await error { _ = try await health(client, timeout: .milliseconds(300)) }
                #expect(held?.code == .deadlineExceeded)

                // drop: connections are closed; a new one is closed on arrival.
                proxy.set(.drop)
                let accepted = proxy.connectionsAccepted
                let dropped = await error { _ = try await health(client) }
                #expect(dropped?.code == .unavailable)
                let redialled = await error { _ = try await health(client) }
                #expect(redialled?.code == .unavailable)
                #expect(proxy.connectionsAccepted > accepted)

                // reset: the same, with a RST.
                proxy.set(.reset)
                let reset = await error { _ = try await health(client) }
                #expect(reset?.code == .unavailable)

                // lose answers: what comes back is thrown away and the connection reset.
                proxy.set(.loseAnswers)
                let lost = await error { _ = try await health(client) }
                #expect(lost?.code == .unavailable)
                #expect(proxy.answersLost > 0)

                // pass again: the client reconnects and calls go through.
                proxy.set(.pass)
                let deadline = ContinuousClock.now + .seconds(10)
                var healed: HealthStatus?
                while healed == nil, ContinuousClock.now < deadline {
                    healed = try? await health(client)
                }
                #expect(healed?.service == "payments")
                await client.shutdown()
            }
        }
    }
}
