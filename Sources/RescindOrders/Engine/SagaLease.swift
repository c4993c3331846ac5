import Foundation
import RescindStorage

/// How this replica holds the sagas it drives, when several Orders replicas share one database.
///
/// A saga is driven by the replica that holds its lease (`saga.lease_holder` until `lease_expires_at`): the one
/// that started it, or the one that claimed it once its holder stopped renewing. Each new holder takes the next
/// `lease_token`, and every step commits only if the saga still has the token its driver loaded (`SagaStore.save`
/// and `markStarted` are the fence), so a replica that lost a saga (paused, cut off from the database) records
/// nothing more of it; what it may have sent meanwhile went out with the step's idempotency key, which the new
/// holder sends again.
struct SagaLease: Sendable {
    /// This replica in this run.
    var holder: LeaseHolder
    /// How long a lease runs unrenewed: how soon another replica takes the sagas of one that died.
    var duration: TimeInterval

    func expiry(from now: Date) -> Date { now.addingTimeInterval(duration) }

    /// The unfinished sagas due by `now` that this replica may drive: those it holds, and those whose lease ran
    /// out (or was let go), oldest due first.
    func due(_ db: any SQLTransaction, now: Date, limit: Int) throws -> (held: [String], free: Bool) {
        let rows = try db.query(
            """
            SELECT id, lease_holder FROM saga
            WHERE state IN ('running', 'compensating') AND next_attempt_at <= ?
                AND (lease_holder = ? OR lease_expires_at IS NULL OR lease_expires_at < ?)
            ORDER BY next_attempt_at LIMIT ?
            """, [now, holder.description, now, limit])
        var held: [String] = []
        var free = false
        for row in rows {
            if try row["lease_holder"] as String? == holder.description {
                held.append(try row["id"])
            } else {
                free = true
            }
        }
        return (held, free)
    }

    /// Claims up to `limit` due sagas whose lease ran out, each with the next token; returns their ids. Rows
    /// another replica is claiming at the same moment are skipped, not waited for (`FOR UPDATE SKIP LOCKED`).
    func claim(_ db: any SQLTransaction, now: Date, limit: Int) throws -> [String] {
        try db.query(
            """
            UPDATE saga SET lease_holder = ?, lease_token = lease_token + 1, lease_expires_at = ?
            WHERE id IN (
                SELECT id FROM saga
                WHERE state IN ('running', 'compensating') AND next_attempt_at <= ?
                    AND (lease_expires_at IS NULL OR lease_expires_at < ?)
                    AND (lease_holder IS NULL OR lease_holder <> ?)
                ORDER BY next_attempt_at LIMIT ?\(db.forUpdateSkipLocked))
            RETURNING id
            """, [holder.description, expiry(from: now), now, now, holder.description, limit]
        ).map { try $0["id"] }
    }

    /// Renews the leases of this replica's unfinished sagas that have run a third of their time (a step renews
    /// its saga's as it commits; this keeps the others: a long call, a retry waiting its turn). Returns how many.
    @discardableResult
    func renew(_ db: any SQLTransaction, now: Date) throws -> Int {
        try db.execute(
            """
            UPDATE saga SET lease_expires_at = ?
            WHERE lease_holder = ? AND state IN ('running', 'compensating') AND lease_expires_at < ?
            """, [expiry(from: now), holder.description, now.addingTimeInterval(duration * 2 / 3)])
    }

    /// Lets this replica's unfinished sagas go (a graceful stop): another replica claims them at once instead of
    /// when their leases run out. Their tokens stay, so the next holder's is greater still.
    func releaseAll(_ db: any SQLTransaction) throws {
        try db.execute(
            """
            UPDATE saga SET lease_holder = NULL, lease_expires_at = NULL
            WHERE lease_holder = ? AND state IN ('running', 'compensating')
            """, [holder.description])
    }

    /// Takes, with the next tokens, the unfinished sagas an earlier run of this replica held when it stopped
    /// without letting them go (it crashed): they need not wait for their leases to run out. Returns how many.
    @discardableResult
    func takeOverEarlierRuns(_ db: any SQLTransaction, now: Date) throws -> Int {
        try db.execute(
            """
            UPDATE saga SET lease_holder = ?, lease_token = lease_token + 1, lease_expires_at = ?
            WHERE substr(lease_holder, 1, length(?)) = ? AND lease_holder <> ?
                AND state IN ('running', 'compensating')
            """,
            [holder.description, expiry(from: now), holder.predecessors, holder.predecessors, holder.description])
    }

    /// Makes this replica the saga's holder in the caller's transaction (a person's retry of a failed saga), with
    /// the next token if another replica held it.
    func take(_ record: inout SagaRecord, now: Date) {
        if record.leaseHolder != holder.description { record.leaseToken += 1 }
        record.leaseHolder = holder.description
        record.leaseExpiresAt = expiry(from: now)
    }
}
