import Foundation
import GRDB
import RescindAPI
import RescindStorage
import RescindWire
import Testing

@testable import RescindOrders

/// A saga kind as an earlier build had it: three local steps, and a context of the words they wrote.
private enum NoteSagaV1: SagaDefinition {
    struct Context: Codable, Sendable {
        var orderID: UUID
        var words: [String]
    }

    static let kind = Saga.Kind("test_note")
    static let steps: [SagaStep<Context>] = [first, middle, last]

    static func begin(_ db: any SQLTransaction, _ orderID: UUID, _ start: SagaStart) throws -> SagaBeginning<Context> {
        .new(orderID: orderID, context: .init(orderID: orderID, words: []))
    }

    static func plan(_ context: Context) -> [SagaStep<Context>] { [first, middle, last] }

    static let first = word("first")
    static let middle = word("middle")
    static let last = word("last")

    static func word(_ name: String) -> SagaStep<Context> {
        .local(name, role: .retriable) { _, context, _ in
            context.words.append(name)
            return name
        }
    }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    { "settled" }
}

/// The same kind in the next build: its context counts the words (version 2, read from a version 1 context), and
/// its plan has `second` where it had `middle`, which stays among its steps for the sagas planned with it.
private enum NoteSagaV2: SagaDefinition {
    struct Context: Codable, Sendable {
        var orderID: UUID
        var words: [String]
        var count: Int
    }

    static let kind = Saga.Kind("test_note")
    static let contextVersion = 2
    static let steps: [SagaStep<Context>] = [first, middle, second, last]

    static func context(from stored: String, version: Int) throws -> Context {
        switch version {
        case 1:
            let earlier = try JSON.decode(NoteSagaV1.Context.self, stored)
            return Context(orderID: earlier.orderID, words: earlier.words, count: earlier.words.count)
        case 2:
            return try JSON.decode(Context.self, stored)
        default:
            throw RescindError.internalError("no test_note context version \(version)")
        }
    }

    static func begin(_ db: any SQLTransaction, _ orderID: UUID, _ start: SagaStart) throws -> SagaBeginning<Context> {
        .new(orderID: orderID, context: .init(orderID: orderID, words: [], count: 0))
    }

    static func plan(_ context: Context) -> [SagaStep<Context>] { [first, second, last] }

    static let first = word("first")
    static let middle = word("middle")
    static let second = word("second")
    static let last = word("last")

    static func word(_ name: String) -> SagaStep<Context> {
        .local(name, role: .retriable) { _, context, _ in
            context.words.append(name)
            context.count += 1
            return name
        }
    }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    { "settled" }
}

/// The next build without `middle`: a saga planned with it cannot run here.
private enum NoteSagaV3: SagaDefinition {
    typealias Context = NoteSagaV2.Context
    static let kind = NoteSagaV2.kind
    static let contextVersion = 2
    static let steps: [SagaStep<Context>] = [NoteSagaV2.first, NoteSagaV2.second, NoteSagaV2.last]

    static func context(from stored: String, version: Int) throws -> Context {
        try NoteSagaV2.context(from: stored, version: version)
    }

    static func begin(_ db: any SQLTransaction, _ orderID: UUID, _ start: SagaStart) throws -> SagaBeginning<Context> {
        try NoteSagaV2.begin(db, orderID, start)
    }

    static func plan(_ context: Context) -> [SagaStep<Context>] { steps }

    static func settle(_ db: any SQLTransaction, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo)
        throws
        -> String
    { "settled" }
}

/// A saga started by one build and finished by the next: it runs the plan it was stored with, its context read
/// at the version it was written.
@Suite(.timeLimit(.minutes(1))) struct SagaUpgradeTests {
    /// Writes a saga as the earlier build starts one (its first step run, its plan and context stored), and
    /// leaves it for the runner of `f`, the next build.
    private func startedByTheEarlierBuild(_ f: ServiceFixture) async throws -> (saga: String, order: UUID) {
        try await f.setStock("MUG", "main", 5)
        let order = try await f.place([("MUG", 1, 1200)])
        let id = UUID.timeOrdered().uuidString
        _ = try await f.orders.database.write { db in
            try SagaStore.start(
                db, NoteSagaV1.self, id: id, orderID: order.id, context: .init(orderID: order.id, words: []),
                lease: f.orders.runner.lease)
        }
        return (id, order.id)
    }

    @Test func aSagaOfTheEarlierBuildFinishesWithItsPlanAndItsContextUpgraded() async throws {
        let f = try ServiceFixture(registry: SagaRegistry.standard.registering(NoteSagaV2.self))
        defer { f.stop() }
        let (id, _) = try await startedByTheEarlierBuild(f)
        f.orders.runner.submit(id)
        let saga = try await f.waitForSaga(try #require(UUID(uuidString: id)))
        #expect(saga.state == .completed)
        // The plan it was stored with, `middle` included, not the plan this build makes.
        #expect(saga.steps.map(\.name) == ["first", "middle", "last"])
        let stored = try await f.orders.database.read { db in try #require(try SagaRecord.find(db, id)) }
        #expect(stored.contextVersion == 2)
        let context = try JSON.decode(NoteSagaV2.Context.self, stored.context)
        #expect(context.words == ["first", "middle", "last"])
        // Counted from the version 1 context's one word, then once by each step this build ran.
        #expect(context.count == 3)
    }

    @Test func aSagaPlannedWithAStepThisBuildNoLongerHasStopsForAPerson() async throws {
        let f = try ServiceFixture(registry: SagaRegistry.standard.registering(NoteSagaV3.self))
        defer { f.stop() }
        let (id, order) = try await startedByTheEarlierBuild(f)
        f.orders.runner.submit(id)
        let saga = try await f.waitForSaga(try #require(UUID(uuidString: id)))
        #expect(saga.state == .failed)
        #expect(saga.error?.message.contains("planned with step middle") == true)
        // It holds its order until a person settles it; the other sagas of the store go on.
        #expect(try await f.orders.sagaHealth().failed == 1)
        #expect(try await f.orders.order(order).status == .open)
    }
}
