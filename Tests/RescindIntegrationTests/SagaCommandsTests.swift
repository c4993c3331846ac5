import Foundation
import RescindAPI
import RescindTestSupport
import RescindTransport
import Testing

extension RealDaemons {
    /// A failed saga found, read, retried and settled with `rescindctl`, as an operator does it.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct SagaCommandsTests {
        /// Runs `rescindctl ARGUMENTS --dir DIR --json` and returns its exit status and parsed output.
        private func rescindctl(_ arguments: [String], dir: URL) async throws -> (status: Int32, json: Any?) {
            let (status, output) = try await runRescindctl(arguments + ["--dir", dir.path, "--json"])
            return (status, try? JSONSerialization.jsonObject(with: output))
        }

        /// A cancellation whose refund cannot get through ends `failed`.
        private func failedCancellation(_ h: RescindHarness) async throws -> (order: UUID, saga: UUID) {
            let order = try await h.place([("MUG", 1, 1200)])
            try await h.setProcessorFaults(ProcessorFaults(mode: .unavailable))
            let saga = try await h.cancel(order.id).sagaID
            #expect(try await h.waitForSaga(saga).state == .failed)
            try await h.setProcessorFaults(ProcessorFaults(mode: .normal))
            return (order.id, saga)
        }

        @Test func aFailedSagaIsFoundReadRetriedAndSettledFromTheCommandLine() async throws {
            try await RescindHarness.withSuite { h in
                try await h.setStock("MUG", at: "main", onHand: 5)
                let first = try await failedCancellation(h)
                let second = try await failedCancellation(h)

                // Found: health counts them, `sagas list --stuck` lists them.
                let health = try await rescindctl(["health"], dir: h.directory)
                #expect(health.status == 0)
                let rows = try #require(health.json as? [[String: Any]])
                let orders = try #require(rows.first { $0["daemon"] as? String == "orders" })
                let sagas = (orders["health"] as? [String: Any])?["sagas"] as? [String: Any]
                #expect(sagas?["failed"] as? Int == 2)
                let stuck = try await rescindctl(["sagas", "list", "--stuck"], dir: h.directory)
                let listed = ((stuck.json as? [String: Any])?["sagas"] as? [[String: Any]])?.compactMap {
                    $0["id"] as? String
                }
                #expect(Set(listed ?? []) == [first.saga.uuidString, second.saga.uuidString])

                // Read: the step log says which step gave up and why.
                let shown = try await rescindctl(["sagas", "show", first.saga.uuidString], dir: h.directory)
                let steps = (shown.json as? [String: Any])?["steps"] as? [[String: Any]] ?? []
                let refund = steps.first { $0["name"] as? String == "refund" }
                #expect(refund?["status"] as? String == "failed")

                // Retried: it completes, refunding once.
                let retried = try await rescindctl(
                    ["sagas", "retry", first.saga.uuidString, "--wait"], dir: h.directory)
                #expect(retried.status == 0)
                #expect((retried.json as? [String: Any])?["state"] as? String == "completed")
                #expect(try await h.payment(first.order).amountRefunded == 1200)

                // Settled: a person says what the order is now and why; the lock is released.
                let note = "refunded by bank transfer, ticket 4711"
                let settled = try await rescindctl(
                    ["sagas", "settle", second.saga.uuidString, "--as", "cancelled", "--note", note], dir: h.directory)
                #expect(settled.status == 0)
                let settlement = (settled.json as? [String: Any])?["settlement"] as? [String: Any]
                #expect(settlement?["by"] as? String == "operator")
                #expect(settlement?["note"] as? String == note)
                #expect(try await h.order(second.order).status == .cancelled)

                // Refused, with the reason, for a saga that is not failed.
                let again = try await rescindctl(
                    ["sagas", "settle", second.saga.uuidString, "--as", "open", "--note", "again"], dir: h.directory)
                #expect(again.status == 1)
                #expect(
                    ((again.json as? [String: Any])?["error"] as? [String: Any])?["reason"] as? String
                        == "saga_not_failed")
                let clean = try await rescindctl(["sagas", "list", "--stuck"], dir: h.directory)
                #expect(((clean.json as? [String: Any])?["sagas"] as? [Any])?.isEmpty == true)

                let report = try h.check()
                #expect(report.violations.isEmpty, "\(report.violations)")
            }
        }
    }
}
