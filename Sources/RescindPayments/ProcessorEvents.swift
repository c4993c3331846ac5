import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// An event the processor sent on its own, in Payments' terms, before it is applied.
public struct IncomingProcessorEvent: Sendable, Hashable {
    /// What happened at the processor.
    public enum Happening: Sendable, Hashable {
        case captured
        case cancelled
        case refundFailed
        case disputeOpened
        case disputeClosed(won: Bool)
        /// Anything else (Rescind records it and does nothing).
        case other
    }

    public var id: String
    public var type: String
    public var happening: Happening
    public var occurredAt: Date
    /// The charge (`pi_...`) it is about, when it is about one.
    public var charge: String?
    public var amountMinor: Int64?
    public var detail: String?
    /// The charge's metadata when the event carries it (Rescind's key and order).
    public var metadata: [String: String]

    public init(
        id: String, type: String, happening: Happening, occurredAt: Date, charge: String? = nil,
        amountMinor: Int64? = nil, detail: String? = nil, metadata: [String: String] = [:]
    ) {
        self.id = id
        self.type = type
        self.happening = happening
        self.occurredAt = occurredAt
        self.charge = charge
        self.amountMinor = amountMinor
        self.detail = detail
        self.metadata = metadata
    }
}

/// Stripe's event objects (`{"id": "evt_...", "type": ..., "created": ..., "data": {"object": {...}}}`).
public enum StripeEvent {
    /// Reads a webhook's body. Only what Rescind acts on is kept: ids, amounts, statuses, reasons (a Stripe event
    /// never carries a card number; its card details are not read either).
    /// - Throws: `invalid_argument/bad_event` when the body is not a Stripe event.
    public static func parse(_ body: Data) throws -> IncomingProcessorEvent {
        struct Event: Decodable {
            struct Payload: Decodable { var object: Object }
            var id: String
            var type: String
            var created: Int64
            var data: Payload
        }
        struct Object: Decodable {
            var object: String?
            var id: String?
            var amount: Int64?
            var amountReceived: Int64?
            var status: String?
            var paymentIntent: String?
            var reason: String?
            var failureReason: String?
            var metadata: [String: String]?

            enum CodingKeys: String, CodingKey {
                case object, id, amount, status, reason, metadata
                case amountReceived = "amount_received"
                case paymentIntent = "payment_intent"
                case failureReason = "failure_reason"
            }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                object = try? c.decodeIfPresent(String.self, forKey: .object)
                id = try? c.decodeIfPresent(String.self, forKey: .id)
                amount = try? c.decodeIfPresent(Int64.self, forKey: .amount)
                amountReceived = try? c.decodeIfPresent(Int64.self, forKey: .amountReceived)
                status = try? c.decodeIfPresent(String.self, forKey: .status)
                paymentIntent = try? c.decodeIfPresent(String.self, forKey: .paymentIntent)
                reason = try? c.decodeIfPresent(String.self, forKey: .reason)
                failureReason = try? c.decodeIfPresent(String.self, forKey: .failureReason)
                metadata = try? c.decodeIfPresent([String: String].self, forKey: .metadata)
            }
        }
        let event: Event
        do {
            event = try JSONDecoder().decode(Event.self, from: body)
        } catch {
            throw RescindError.invalidArgument("the body is not a Stripe event", reason: "bad_event")
        }
        let object = event.data.object
        let charge = object.object == "payment_intent" ? object.id : object.paymentIntent
        var happening = IncomingProcessorEvent.Happening.other
        var detail: String?
        switch event.type {
        case "payment_intent.succeeded":
            happening = .captured
        case "payment_intent.canceled":
            happening = .cancelled
        case "charge.refund.updated", "refund.updated", "refund.failed":
            if object.status == "failed" {
                happening = .refundFailed
                detail = "refund \(object.id ?? "?") failed: \(object.failureReason ?? "no reason given")"
            }
        case "charge.dispute.created":
            happening = .disputeOpened
            detail = "dispute \(object.id ?? "?"): \(object.reason ?? "no reason given")"
        case "charge.dispute.closed":
            happening = .disputeClosed(won: object.status == "won")
            detail = "dispute \(object.id ?? "?") \(object.status ?? "closed")"
        default:
            break
        }
        return IncomingProcessorEvent(
            id: event.id, type: event.type, happening: happening,
            occurredAt: Date(timeIntervalSince1970: TimeInterval(event.created)), charge: charge,
            amountMinor: object.amountReceived.flatMap { $0 > 0 ? $0 : nil } ?? object.amount, detail: detail,
            metadata: object.metadata ?? [:])
    }
}

/// `processor_event`: an event as Payments applied it.
struct ProcessorEventRecord: SQLRecord {
    static let table = "processor_event"
    static let primaryKey = ["id"]
    var id: String
    var type: String
    var kind: String
    var orderID: String?
    var chargeID: String?
    var amount: Int64?
    var detail: String?
    var occurredAt: Date
    var receivedAt: Date
    var needsAttention: Bool
    var resolvedAt: Date?
    var resolvedBy: String?
    var resolution: String?

    enum CodingKeys: String, CodingKey {
        case id, type, kind, amount, detail, resolution
        case orderID = "order_id"
        case chargeID = "charge_id"
        case occurredAt = "occurred_at"
        case receivedAt = "received_at"
        case needsAttention = "needs_attention"
        case resolvedAt = "resolved_at"
        case resolvedBy = "resolved_by"
    }

    var api: ProcessorEvent {
        ProcessorEvent(
            id: id, type: type, kind: .init(rawValue: kind), orderID: orderID.flatMap(UUID.init(uuidString:)),
            charge: chargeID, amountMinor: amount, detail: detail, occurredAt: occurredAt, receivedAt: receivedAt,
            needsAttention: needsAttention, resolvedAt: resolvedAt, resolvedBy: resolvedBy, resolution: resolution)
    }
}

extension PaymentsService {
    /// Applies an event once: a repeat of an event already received (the processor delivers at least once)
    /// answers what was recorded the first time, with `duplicate`.
    ///
    /// What it means is decided against Payments' records of the charge: a capture or cancellation Payments made
    /// (or is making: its call is pending) is `confirmed`; one Payments did not make is money moved outside
    /// Rescind, for a person. A refund that failed after it was accepted and a dispute are for a person too. No
    /// record changes but the event's own: what the money is now is for the person to decide.
    /// - Throws: database errors.
    public func receive(_ event: IncomingProcessorEvent) async throws -> (event: ProcessorEvent, duplicate: Bool) {
        try await database.write { db in
            if let known = try db.find(ProcessorEventRecord.self, key: [event.id]) { return (known.api, true) }
            let charge = try event.charge.flatMap { try db.find(ProcessorChargeRecord.self, key: [$0]) }
            func pending(_ kind: ProcessorCall.Kind) throws -> Bool {
                guard let id = event.charge else { return false }
                return try db.scalar(
                    Int64.self,
                    "SELECT COUNT(*) FROM processor_call WHERE charge_id = ? AND kind = ? AND state = 'pending'",
                    [id, kind.rawValue]) ?? 0 > 0
            }
            // A charge Payments has no record of: made under one of its calls' keys (an authorization in flight, or
            // abandoned and cancelled by the sweeper), or naming one of Rescind's orders or keys.
            let madeByACall = try event.metadata["rescind_key"].flatMap { try ProcessorCallRecord.byKey(db, $0) } != nil
            let forAnOrder = event.metadata["order_id"] != nil || event.metadata["rescind_key"] != nil
            var kind = ProcessorEvent.Kind.ignored
            var detail = event.detail
            switch event.happening {
            case .captured:
                if let charge {
                    kind = try charge.status == .captured || pending(.capture) ? .confirmed : .capturedOutside
                } else if madeByACall {
                    kind = .confirmed
                } else if forAnOrder {
                    kind = .unknownCharge
                }
            case .cancelled:
                if let charge {
                    kind = try charge.status == .voided || pending(.void) ? .confirmed : .cancelledOutside
                } else if madeByACall {
                    kind = .confirmed
                }
            case .refundFailed:
                kind = charge != nil || forAnOrder ? .refundFailed : .ignored
            case .disputeOpened:
                kind = charge != nil || forAnOrder ? .disputeOpened : .ignored
            case .disputeClosed:
                kind = charge != nil || forAnOrder ? .disputeClosed : .ignored
            case .other:
                kind = .ignored
            }
            if kind == .capturedOutside {
                detail = "captured at the processor while Payments holds it \(charge?.status.rawValue ?? "?")"
            } else if kind == .cancelledOutside {
                detail = "cancelled at the processor while Payments holds it \(charge?.status.rawValue ?? "?")"
            }
            let attention: Bool =
                switch event.happening {
                case .disputeClosed(let won): kind == .disputeClosed && !won
                default:
                    [.refundFailed, .disputeOpened, .capturedOutside, .cancelledOutside, .unknownCharge].contains(kind)
                }
            let record = ProcessorEventRecord(
                id: event.id, type: event.type, kind: kind.rawValue,
                orderID: charge?.orderID ?? event.metadata["order_id"], chargeID: event.charge,
                amount: event.amountMinor, detail: detail, occurredAt: event.occurredAt, receivedAt: Date(),
                needsAttention: attention)
            try db.insert(record)
            return (record.api, false)
        }
    }

    /// The events waiting for a person (or all, or one order's), oldest first.
    public func events(_ request: ProcessorEventsRequest) async throws -> ProcessorEventList {
        let limit = min(max(request.limit ?? 500, 1), 5_000)
        let filters =
            (request.all == true ? [] : ["needs_attention = TRUE AND resolved_at IS NULL"])
            + (request.orderID == nil ? [] : ["order_id = ?"])
        let sql =
            "SELECT * FROM processor_event" + (filters.isEmpty ? "" : " WHERE " + filters.joined(separator: " AND "))
            + " ORDER BY received_at, id LIMIT \(limit)"
        let arguments: SQLArguments = request.orderID.map { [$0.uuidString] } ?? []
        return try await database.read { db in
            ProcessorEventList(events: try db.fetchAll(ProcessorEventRecord.self, sql, arguments).map(\.api))
        }
    }

    /// Records who dealt with an event, and how.
    /// - Throws: `not_found/unknown_event`; `failed_precondition/nothing_to_resolve` for an event no person had to
    ///   act on; `invalid_argument/bad_note`.
    func resolveEvent(_ request: ResolveEventRequest, by person: String) async throws -> ProcessorEvent {
        let note = request.note.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !note.isEmpty, note.count <= 500 else {
            throw RescindError.invalidArgument("a resolution needs a note of 1 to 500 characters", reason: "bad_note")
        }
        return try await database.write { db in
            guard var record = try db.find(ProcessorEventRecord.self, key: [request.eventID]) else {
                throw RescindError.notFound("no processor event \(request.eventID)", reason: "unknown_event")
            }
            guard record.needsAttention else {
                throw RescindError.failedPrecondition(
                    "event \(request.eventID) (\(record.kind)) needs no one", reason: "nothing_to_resolve")
            }
            if record.resolvedAt == nil {
                record.resolvedAt = Date()
                record.resolvedBy = person
                record.resolution = note
                try db.update(record)
            }
            return record.api
        }
    }

    /// What `health` says of the processor's events.
    public func eventHealth() async throws -> ProcessorEventHealth {
        try await database.read { db in
            ProcessorEventHealth(
                needsAttention: Int(
                    try db.scalar(
                        Int64.self,
                        "SELECT COUNT(*) FROM processor_event WHERE needs_attention = TRUE AND resolved_at IS NULL")
                        ?? 0),
                received: Int(try db.scalar(Int64.self, "SELECT COUNT(*) FROM processor_event") ?? 0))
        }
    }

    /// An order's events, oldest first (for `payments.get`).
    static func events(_ db: any SQLTransaction, of orderID: UUID) throws -> [ProcessorEvent] {
        try db.fetchAll(
            ProcessorEventRecord.self, "SELECT * FROM processor_event WHERE order_id = ? ORDER BY received_at, id",
            [orderID.uuidString]
        ).map(\.api)
    }

    /// Compares Payments' charges created since `since` with what the processor holds, and the processor's
    /// charges for Rescind's orders with Payments' records. A charge with a call still pending is in flight and
    /// left out.
    /// - Throws: the processor's errors (`unavailable`), database errors.
    public func reconcile(since: Date?) async throws -> ReconcileReport {
        let (ours, calling) = try await database.read { db in
            let ours = try db.fetchAll(
                ProcessorChargeRecord.self, "SELECT * FROM processor_charge WHERE created_at >= ? ORDER BY created_at",
                [since ?? Date.distantPast])
            let calling = Set(
                try db.query("SELECT charge_id FROM processor_call WHERE state = 'pending' AND charge_id IS NOT NULL")
                    .map { try $0["charge_id"] as String })
            return (ours, calling)
        }
        // Listed a minute earlier than asked: the processor's clock and Payments' may differ a little.
        let theirs = try await processor.charges(since: since.map { $0.addingTimeInterval(-60) })
        var byID = Dictionary(theirs.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var differences: [ReconcileReport.Difference] = []
        var checked = 0
        for charge in ours where !calling.contains(charge.id) {
            checked += 1
            let order = UUID(uuidString: charge.orderID)
            var state = byID.removeValue(forKey: charge.id)
            if state == nil { state = try await processor.charge(charge.id) }
            guard let state else {
                differences.append(
                    .init(
                        orderID: order, charge: charge.id, field: "missing_at_processor",
                        rescind: charge.status.rawValue, processor: nil))
                continue
            }
            let fields: [(String, String, String)] = [
                ("status", charge.status.rawValue, state.status),
                ("amount", "\(charge.amount)", "\(state.amountMinor)"),
                ("captured", "\(charge.amountCaptured)", "\(state.capturedMinor)"),
                ("refunded", "\(charge.amountRefunded)", "\(state.refundedMinor)"),
            ]
            for (field, rescind, processor) in fields where rescind != processor {
                differences.append(
                    .init(orderID: order, charge: charge.id, field: field, rescind: rescind, processor: processor))
            }
        }
        // What is left is the processor's charges that Payments did not list: recorded before `since`, an
        // authorization still in flight or abandoned (nothing held), or unknown to Payments.
        let rest = byID.values.sorted { $0.createdAt < $1.createdAt }
        let unrecorded = try await database.read { db in
            try rest.filter { state in
                guard try db.find(ProcessorChargeRecord.self, key: [state.id]) == nil else { return false }
                let pending =
                    try db.scalar(
                        Int64.self, "SELECT COUNT(*) FROM processor_call WHERE order_id = ? AND state = 'pending'",
                        [state.orderID?.uuidString]) ?? 0
                guard pending == 0 else { return false }
                return state.status != "voided"
            }
        }
        for state in unrecorded {
            differences.append(
                .init(
                    orderID: state.orderID, charge: state.id, field: "unrecorded", rescind: nil,
                    processor: "\(state.status) \(state.amountMinor)"))
        }
        return ReconcileReport(checked: checked, differences: differences)
    }
}
