import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// A saga a request started, or the one a repeat of it found.
struct StartedSaga: Sendable {
    var id: String
    var orderID: String
    /// Whether this request started it.
    var isNew: Bool
}

extension OrdersService {
    /// Starts a saga of kind `D` for `request`: the one way every caller starts one (the methods, an approval,
    /// the capture scheduler). In one transaction, `D.begin` decides, the plan's first step runs and the saga is
    /// written (and `started` runs with its id); the runner drives it once that is durable. A repeat answers with
    /// the saga it started.
    /// - Throws: what `D.begin` or the first step throws (nothing is written), or a database error.
    func start<D: SagaDefinition>(
        _ definition: D.Type, _ request: D.Request, idempotencyKey: String? = nil, rawRequest: [UInt8] = [],
        then started: (@Sendable (any SQLTransaction, String) throws -> Void)? = nil
    ) async throws -> StartedSaga {
        let now = Date()
        let start = SagaStart(
            sagaID: UUID.timeOrdered(at: now).uuidString, now: now, store: store, requestKey: idempotencyKey,
            requestFingerprint: idempotencyKey.map { _ in IdempotencyStore.fingerprint(rawRequest) })
        let lease = runner.lease
        let saga = try await database.write { db in
            switch try D.begin(db, request, start) {
            case .existing(let id, let orderID):
                return StartedSaga(id: id, orderID: orderID, isNew: false)
            case .new(let orderID, let context):
                try SagaStore.start(
                    db, D.self, id: start.sagaID, orderID: orderID, context: context, lease: lease,
                    requestKey: start.requestKey,
                    requestFingerprint: start.requestFingerprint)
                try started?(db, start.sagaID)
                return StartedSaga(id: start.sagaID, orderID: orderID.uuidString, isNew: true)
            }
        }
        if saga.isNew { runner.submit(saga.id) }
        return saga
    }
}

extension SagaStart {
    /// The saga this request's idempotency key started, if it did: a repeat of that request.
    /// - Throws: `conflict/idempotency_key_reused` when the key came with another request (`what`), or for another
    ///   order than `orderID`.
    func repeated<Context>(_ db: any SQLTransaction, orderID: UUID?, what: String) throws -> SagaBeginning<Context>? {
        guard let key = requestKey,
            let previous = try db.fetchOne(SagaRecord.self, "SELECT * FROM saga WHERE request_key = ?", [key])
        else { return nil }
        guard previous.requestFingerprint == requestFingerprint,
            orderID.map({ $0.uuidString == previous.orderID }) ?? true
        else {
            throw RescindError.conflict(
                "idempotency key \(key) was first used for another \(what)", reason: "idempotency_key_reused")
        }
        return .existing(sagaID: previous.id, orderID: previous.orderID)
    }
}

extension SagaStore {
    /// Refuses a change of the order while another saga holds it (one unfinished saga per order): a capture
    /// (`capture_in_progress`, retryable, or `capture_failed`), or any other saga (`conflict/order_busy`, naming
    /// it; retryable unless it failed and needs a person). One indexed read.
    static func refuseWhileBusy(_ db: any SQLTransaction, _ orderID: String) throws {
        guard
            let busy = try db.fetchOne(
                SagaRecord.self,
                "SELECT * FROM saga WHERE order_id = ? AND state IN ('running', 'compensating', 'failed') LIMIT 1",
                [orderID])
        else { return }
        if busy.kind == .capturePayment {
            if busy.state == .failed {
                throw RescindError.failedPrecondition(
                    "order \(orderID)'s capture saga \(busy.id) failed and needs a person (sagas retry or settle)",
                    reason: "capture_failed")
            }
            throw RescindError(
                .unavailable, "order \(orderID)'s payment is being captured by saga \(busy.id); try again in a moment",
                reason: "capture_in_progress", retryable: true)
        }
        throw RescindError(
            .conflict,
            "order \(orderID) is held by saga \(busy.id) (\(busy.kind.rawValue), \(busy.state.rawValue))"
                + (busy.state == .failed ? ": it needs a person (sagas retry or settle)" : ""),
            reason: "order_busy", retryable: busy.state != .failed)
    }

    /// The order's saga of `kind` that has not ended (running, compensating or failed), if any.
    static func unfinishedSaga(_ db: any SQLTransaction, _ orderID: String, kind: Saga.Kind) throws -> SagaRecord? {
        try db.fetchOne(
            SagaRecord.self,
            "SELECT * FROM saga WHERE order_id = ? AND kind = ? AND state IN ('running', 'compensating', 'failed')",
            [orderID, kind.rawValue])
    }
}
