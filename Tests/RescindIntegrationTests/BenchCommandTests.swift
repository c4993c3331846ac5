import Foundation
import Testing

extension RealDaemons {
    /// `rescindctl bench` counts what ended, not what was sent (speed itself is measured in BENCHMARKS.md).
    @Suite(.serialized, .timeLimit(.minutes(3))) struct BenchCommandTests {
        @Test(arguments: [[], ["--rate", "200"]])
        func theLoadGeneratorPlacesAndCancelsEveryOrder(extra: [String]) async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "rescind-bench-test-\(UUID().uuidString.prefix(8))")
            defer { try? FileManager.default.removeItem(at: directory) }
            let (status, output) = try await runRescindctl(
                ["bench", "--dir", directory.path, "--orders", "40", "--concurrency", "4", "--json"] + extra)
            #expect(status == 0)
            let report = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
            let phases = try #require(report["phases"] as? [[String: Any]])
            #expect(phases.map { $0["name"] as? String } == ["place", "cancel"])
            for phase in phases {
                #expect(phase["completed"] as? Int == 40)
                #expect((phase["failures"] as? [String: Any])?.isEmpty == true)
                let latency = try #require(phase["latency"] as? [String: Double])
                #expect((latency["p50"] ?? 0) > 0)
                #expect((latency["p50"] ?? 0) <= (latency["p99"] ?? 0))
            }
            let memory = try #require(report["peakResidentMiB"] as? [String: Double])
            #expect(Set(memory.keys) == ["orders", "payments", "inventory"])
        }

        @Test func aRestartWithCancellationsInFlightEndsThemAll() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "rescind-bench-test-\(UUID().uuidString.prefix(8))")
            defer { try? FileManager.default.removeItem(at: directory) }
            let (status, output) = try await runRescindctl(
                ["bench", "--dir", directory.path, "--orders", "10", "--concurrency", "4", "--resume", "30", "--json"])
            #expect(status == 0)
            let report = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
            let resume = try #require(report["resume"] as? [String: Any])
            #expect(resume["sagas"] as? Int == 30)
            #expect(resume["completed"] as? Int == 30)
        }
    }
}
