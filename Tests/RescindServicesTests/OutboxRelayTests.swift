import Foundation
import GRDB
import Logging
import RescindStorage
import Synchronization
import Testing

@testable import RescindOrders

/// The relay marks a pass's messages delivered only once every sink made them durable: a flush that fails
/// leaves them to be delivered again (at least once), and the next pass marks them and drops the order link.
@Suite struct OutboxRelayTests {
    /// A sink that keeps what it was given, and fails its first flush.
    final class Recording: NotificationSink {
        let state = Mutex<(delivered: [Int64], flushes: Int)>(([], 0))
        var name: String { "recording" }

        struct FlushFailed: Error {}

        func deliver(_ message: OutboxMessage) async throws {
            state.withLock { $0.delivered.append(message.id) }
        }

        func flush() async throws {
            let first = state.withLock { state in
                state.flushes += 1
                return state.flushes == 1
            }
            if first { throw FlushFailed() }
        }
    }

    @Test func aFailedFlushDeliversThePassAgainAndTheNextMarksIt() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("relay-\(UUID().uuidString).sqlite")
        defer { try? FileManager.default.removeItem(at: path) }
        let database = try SQLiteDatabase(path: path.path, migrator: OrdersDatabase.migrator)
        let now = Date()
        let orderID = UUID().uuidString
        try await database.write { db in
            try db.insert(
                OrderRecord(
                    id: orderID, customerEmail: "ada@example.com", status: .open, currency: "EUR", total: 1_000,
                    amountRefunded: 0, paymentStatus: "captured", cardLast4: "4242", rejection: nil,
                    idempotencyKey: nil, request: nil, createdAt: now, updatedAt: now, source: "online_store",
                    archivedAt: nil, captureDueAt: nil, reorderOf: nil))
            for (kind, payload) in [
                ("order_confirmed", #"{"status_link": "https://shop.example.com/o/secret"}"#),
                ("order_cancelled", #"{"refunded": 1000}"#),
            ] {
                try db.insert(
                    OutboxRecord(
                        id: nil, orderID: orderID, kind: kind, payload: payload, createdAt: now, deliveredAt: nil))
            }
        }
        let sink = Recording()
        let relay = OutboxRelay(
            database: database, sinks: [sink], maxBackoff: 1,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            lease: LeaseKeeper(Lease("outbox_relay", holder: .process, duration: .seconds(10)), database: database))
        func undelivered() async throws -> Int {
            try await database.read { db in
                Int(try db.scalar(Int64.self, "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL") ?? -1)
            }
        }

        // The flush fails: both were handed over, in order, and neither is marked delivered.
        await #expect(throws: Recording.FlushFailed.self) { try await relay.deliverDue() }
        #expect(sink.state.withLock { $0.delivered } == [1, 2])
        #expect(try await undelivered() == 2)

        // The next pass hands them over again (receivers deduplicate by id), flushes once, and marks both.
        try await relay.deliverDue()
        #expect(sink.state.withLock { $0.delivered } == [1, 2, 1, 2])
        #expect(sink.state.withLock { $0.flushes } == 2)
        #expect(try await undelivered() == 0)
        let payloads = try await database.read { db in
            try db.query("SELECT payload FROM outbox").map { try $0["payload"] as String }
        }
        #expect(payloads.allSatisfy { !$0.contains("secret") })
        await database.close()
    }
}
