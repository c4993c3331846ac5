import RescindWire

import struct Foundation.Date
import struct Foundation.UUID

// Hand-written CBOR coding of the types that cross the wire most (see `CBORMessage`): the same
// bytes as their `Codable` conformances, several times faster. Each `encode(cbor:)` writes its
// keys in canonical order (shorter first, then bytewise), and each `init(cbor:)` reads the keys
// of the type's `CodingKeys`. `MessageCodingTests` checks both against the `Codable` path for
// every type here, including that no stored property is left out.

extension PlaceOrderRequest: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var customerEmail: String?
        var currency: String?
        var lines: [Line]?
        var cardNumber: String?
        while map.next() {
            switch map.key {
            case "lines": lines = try map.read([Line].self)
            case "currency": currency = try map.read(String.self)
            case "card_number": cardNumber = try map.read(String.self)
            case "customer_email": customerEmail = try map.read(String.self)
            default: break
            }
        }
        self.customerEmail = try map.required(customerEmail, "customer_email")
        self.currency = try map.required(currency, "currency")
        self.lines = try map.required(lines, "lines")
        self.cardNumber = try map.required(cardNumber, "card_number")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        try map.write("lines", lines)
        map.write("currency", currency)
        map.write("card_number", cardNumber)
        map.write("customer_email", customerEmail)
    }
}

extension Order.Line: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var sku: String?
        var quantity: Int64?
        var unitPriceMinor: Int64?
        while map.next() {
            switch map.key {
            case "sku": sku = try map.read(String.self)
            case "quantity": quantity = try map.read(Int64.self)
            case "unit_price": unitPriceMinor = try map.read(Int64.self)
            default: break
            }
        }
        self.sku = try map.required(sku, "sku")
        self.quantity = try map.required(quantity, "quantity")
        self.unitPriceMinor = try map.required(unitPriceMinor, "unit_price")
    }

    public func encode(cbor map: inout CBORMapWriter) {
        map.write("sku", sku)
        map.write("quantity", quantity)
        map.write("unit_price", unitPriceMinor)
    }
}

extension Order: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var id: UUID?
        var customerEmail: String?
        var status: Status?
        var currency: String?
        var totalMinor: Int64?
        var amountRefundedMinor: Int64?
        var lines: [Line]?
        var cardLast4: String?
        var createdAt: Date?
        var updatedAt: Date?
        var failedCancellations: [FailedCancellation]?
        rejection = nil
        cancellation = nil
        while map.next() {
            switch map.key {
            case "id": id = try map.read(UUID.self)
            case "lines": lines = try map.read([Line].self)
            case "total": totalMinor = try map.read(Int64.self)
            case "status": status = try map.read(Status.self)
            case "currency": currency = try map.read(String.self)
            case "rejection": rejection = map.isNull ? nil : try map.read(String.self)
            case "card_last4": cardLast4 = try map.read(String.self)
            case "created_at": createdAt = try map.read(Date.self)
            case "updated_at": updatedAt = try map.read(Date.self)
            case "cancellation": cancellation = map.isNull ? nil : try map.read(Cancellation.self)
            case "customer_email": customerEmail = try map.read(String.self)
            case "amount_refunded": amountRefundedMinor = try map.read(Int64.self)
            case "failed_cancellations": failedCancellations = try map.read([FailedCancellation].self)
            default: break
            }
        }
        self.id = try map.required(id, "id")
        self.customerEmail = try map.required(customerEmail, "customer_email")
        self.status = try map.required(status, "status")
        self.currency = try map.required(currency, "currency")
        self.totalMinor = try map.required(totalMinor, "total")
        self.amountRefundedMinor = try map.required(amountRefundedMinor, "amount_refunded")
        self.lines = try map.required(lines, "lines")
        self.cardLast4 = try map.required(cardLast4, "card_last4")
        self.createdAt = try map.required(createdAt, "created_at")
        self.updatedAt = try map.required(updatedAt, "updated_at")
        self.failedCancellations = try map.required(failedCancellations, "failed_cancellations")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        map.write("id", id)
        try map.write("lines", lines)
        map.write("total", totalMinor)
        map.write("status", status)
        map.write("currency", currency)
        if let rejection { map.write("rejection", rejection) }
        map.write("card_last4", cardLast4)
        try map.write("created_at", createdAt)
        try map.write("updated_at", updatedAt)
        if let cancellation { try map.write("cancellation", cancellation) }
        map.write("customer_email", customerEmail)
        map.write("amount_refunded", amountRefundedMinor)
        try map.write("failed_cancellations", failedCancellations)
    }
}

extension Cancellation: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var sagaID: UUID?
        var reason: CancelReason?
        var refundedMinor: Int64?
        var feeKeptMinor: Int64?
        var voided: Bool?
        var unitsRestocked: Int64?
        var notify: Bool?
        var cancelledAt: Date?
        staffNote = nil
        while map.next() {
            switch map.key {
            case "notify": notify = try map.read(Bool.self)
            case "reason": reason = try map.read(CancelReason.self)
            case "voided": voided = try map.read(Bool.self)
            case "saga_id": sagaID = try map.read(UUID.self)
            case "fee_kept": feeKeptMinor = try map.read(Int64.self)
            case "refunded": refundedMinor = try map.read(Int64.self)
            case "staff_note": staffNote = map.isNull ? nil : try map.read(String.self)
            case "cancelled_at": cancelledAt = try map.read(Date.self)
            case "units_restocked": unitsRestocked = try map.read(Int64.self)
            default: break
            }
        }
        self.sagaID = try map.required(sagaID, "saga_id")
        self.reason = try map.required(reason, "reason")
        self.refundedMinor = try map.required(refundedMinor, "refunded")
        self.feeKeptMinor = try map.required(feeKeptMinor, "fee_kept")
        self.voided = try map.required(voided, "voided")
        self.unitsRestocked = try map.required(unitsRestocked, "units_restocked")
        self.notify = try map.required(notify, "notify")
        self.cancelledAt = try map.required(cancelledAt, "cancelled_at")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        map.write("notify", notify)
        map.write("reason", reason)
        map.write("voided", voided)
        map.write("saga_id", sagaID)
        map.write("fee_kept", feeKeptMinor)
        map.write("refunded", refundedMinor)
        if let staffNote { map.write("staff_note", staffNote) }
        try map.write("cancelled_at", cancelledAt)
        map.write("units_restocked", unitsRestocked)
    }
}

extension FailedCancellation: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var sagaID: UUID?
        var failedStep: String?
        var error: RescindErrorSummary?
        var at: Date?
        while map.next() {
            switch map.key {
            case "at": at = try map.read(Date.self)
            case "error": error = try map.read(RescindErrorSummary.self)
            case "saga_id": sagaID = try map.read(UUID.self)
            case "failed_step": failedStep = try map.read(String.self)
            default: break
            }
        }
        self.sagaID = try map.required(sagaID, "saga_id")
        self.failedStep = try map.required(failedStep, "failed_step")
        self.error = try map.required(error, "error")
        self.at = try map.required(at, "at")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        try map.write("at", at)
        try map.write("error", error)
        map.write("saga_id", sagaID)
        map.write("failed_step", failedStep)
    }
}

extension RescindErrorSummary: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var code: String?
        var message: String?
        reason = nil
        while map.next() {
            switch map.key {
            case "code": code = try map.read(String.self)
            case "reason": reason = map.isNull ? nil : try map.read(String.self)
            case "message": message = try map.read(String.self)
            default: break
            }
        }
        self.code = try map.required(code, "code")
        self.message = try map.required(message, "message")
    }

    public func encode(cbor map: inout CBORMapWriter) {
        map.write("code", code)
        if let reason { map.write("reason", reason) }
        map.write("message", message)
    }
}

extension CancelOrderRequest: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var orderID: UUID?
        var reason: CancelReason?
        var refund: Bool?
        var restock: Bool?
        var notify: Bool?
        staffNote = nil
        while map.next() {
            switch map.key {
            case "notify": notify = try map.read(Bool.self)
            case "reason": reason = try map.read(CancelReason.self)
            case "refund": refund = try map.read(Bool.self)
            case "restock": restock = try map.read(Bool.self)
            case "order_id": orderID = try map.read(UUID.self)
            case "staff_note": staffNote = map.isNull ? nil : try map.read(String.self)
            default: break
            }
        }
        self.orderID = try map.required(orderID, "order_id")
        self.reason = try map.required(reason, "reason")
        self.refund = try map.required(refund, "refund")
        self.restock = try map.required(restock, "restock")
        self.notify = try map.required(notify, "notify")
    }

    public func encode(cbor map: inout CBORMapWriter) {
        map.write("notify", notify)
        map.write("reason", reason)
        map.write("refund", refund)
        map.write("restock", restock)
        map.write("order_id", orderID)
        if let staffNote { map.write("staff_note", staffNote) }
    }
}

extension CancelAccepted: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var sagaID: UUID?
        var order: Order?
        while map.next() {
            switch map.key {
            case "order": order = try map.read(Order.self)
            case "saga_id": sagaID = try map.read(UUID.self)
            default: break
            }
        }
        self.sagaID = try map.required(sagaID, "saga_id")
        self.order = try map.required(order, "order")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        try map.write("order", order)
        map.write("saga_id", sagaID)
    }
}

extension OrderList: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var orders: [Order]?
        while map.next() {
            switch map.key {
            case "orders": orders = try map.read([Order].self)
            default: break
            }
        }
        self.orders = try map.required(orders, "orders")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        try map.write("orders", orders)
    }
}

extension Saga: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var id: UUID?
        var kind: Kind?
        var orderID: UUID?
        var state: State?
        var steps: [Step]?
        var createdAt: Date?
        var updatedAt: Date?
        error = nil
        settlement = nil
        while map.next() {
            switch map.key {
            case "id": id = try map.read(UUID.self)
            case "kind": kind = try map.read(Kind.self)
            case "settlement": settlement = map.isNull ? nil : try map.read(Settlement.self)
            case "error": error = map.isNull ? nil : try map.read(RescindErrorSummary.self)
            case "state": state = try map.read(State.self)
            case "steps": steps = try map.read([Step].self)
            case "order_id": orderID = try map.read(UUID.self)
            case "created_at": createdAt = try map.read(Date.self)
            case "updated_at": updatedAt = try map.read(Date.self)
            default: break
            }
        }
        self.id = try map.required(id, "id")
        self.kind = try map.required(kind, "kind")
        self.orderID = try map.required(orderID, "order_id")
        self.state = try map.required(state, "state")
        self.steps = try map.required(steps, "steps")
        self.createdAt = try map.required(createdAt, "created_at")
        self.updatedAt = try map.required(updatedAt, "updated_at")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        map.write("id", id)
        map.write("kind", kind)
        if let error { try map.write("error", error) }
        map.write("state", state)
        try map.write("steps", steps)
        map.write("order_id", orderID)
        try map.write("created_at", createdAt)
        if let settlement { try map.write("settlement", settlement) }
        try map.write("updated_at", updatedAt)
    }
}

extension Saga.Settlement: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var by: String?
        var at: Date?
        var outcome: SettleOutcome?
        var note: String?
        while map.next() {
            switch map.key {
            case "as": outcome = try map.read(SettleOutcome.self)
            case "at": at = try map.read(Date.self)
            case "by": by = try map.read(String.self)
            case "note": note = try map.read(String.self)
            default: break
            }
        }
        self.by = try map.required(by, "by")
        self.at = try map.required(at, "at")
        self.outcome = try map.required(outcome, "as")
        self.note = try map.required(note, "note")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        map.write("as", outcome)
        try map.write("at", at)
        map.write("by", by)
        map.write("note", note)
    }
}

extension Saga.Step: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var seq: Int?
        var name: String?
        var direction: Direction?
        var status: Status?
        var attempt: Int?
        var startedAt: Date?
        idempotencyKey = nil
        detail = nil
        error = nil
        finishedAt = nil
        while map.next() {
            switch map.key {
            case "seq": seq = try map.read(Int.self)
            case "name": name = try map.read(String.self)
            case "error": error = map.isNull ? nil : try map.read(RescindErrorSummary.self)
            case "detail": detail = map.isNull ? nil : try map.read(String.self)
            case "status": status = try map.read(Status.self)
            case "attempt": attempt = try map.read(Int.self)
            case "direction": direction = try map.read(Direction.self)
            case "started_at": startedAt = try map.read(Date.self)
            case "finished_at": finishedAt = map.isNull ? nil : try map.read(Date.self)
            case "idempotency_key": idempotencyKey = map.isNull ? nil : try map.read(String.self)
            default: break
            }
        }
        self.seq = try map.required(seq, "seq")
        self.name = try map.required(name, "name")
        self.direction = try map.required(direction, "direction")
        self.status = try map.required(status, "status")
        self.attempt = try map.required(attempt, "attempt")
        self.startedAt = try map.required(startedAt, "started_at")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        map.write("seq", seq)
        map.write("name", name)
        if let error { try map.write("error", error) }
        if let detail { map.write("detail", detail) }
        map.write("status", status)
        map.write("attempt", attempt)
        map.write("direction", direction)
        try map.write("started_at", startedAt)
        if let finishedAt { try map.write("finished_at", finishedAt) }
        if let idempotencyKey { map.write("idempotency_key", idempotencyKey) }
    }
}

extension SagaList: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var sagas: [Saga]?
        while map.next() {
            switch map.key {
            case "sagas": sagas = try map.read([Saga].self)
            default: break
            }
        }
        self.sagas = try map.required(sagas, "sagas")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        try map.write("sagas", sagas)
    }
}

extension StockReport: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var levels: [StockLevel]?
        var locations: [Location]?
        while map.next() {
            switch map.key {
            case "levels": levels = try map.read([StockLevel].self)
            case "locations": locations = try map.read([Location].self)
            default: break
            }
        }
        self.levels = try map.required(levels, "levels")
        self.locations = try map.required(locations, "locations")
    }

    public func encode(cbor map: inout CBORMapWriter) throws {
        try map.write("levels", levels)
        try map.write("locations", locations)
    }
}

extension StockLevel: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var sku: String?
        var location: String?
        var onHand: Int64?
        var reserved: Int64?
        var available: Int64?
        while map.next() {
            switch map.key {
            case "sku": sku = try map.read(String.self)
            case "on_hand": onHand = try map.read(Int64.self)
            case "location": location = try map.read(String.self)
            case "reserved": reserved = try map.read(Int64.self)
            case "available": available = try map.read(Int64.self)
            default: break
            }
        }
        self.sku = try map.required(sku, "sku")
        self.location = try map.required(location, "location")
        self.onHand = try map.required(onHand, "on_hand")
        self.reserved = try map.required(reserved, "reserved")
        self.available = try map.required(available, "available")
    }

    public func encode(cbor map: inout CBORMapWriter) {
        map.write("sku", sku)
        map.write("on_hand", onHand)
        map.write("location", location)
        map.write("reserved", reserved)
        map.write("available", available)
    }
}

extension Location: CBORMessage {
    public init(cbor map: inout CBORMapReader) throws {
        var id: String?
        var active: Bool?
        while map.next() {
            switch map.key {
            case "id": id = try map.read(String.self)
            case "active": active = try map.read(Bool.self)
            default: break
            }
        }
        self.id = try map.required(id, "id")
        self.active = try map.required(active, "active")
    }

    public func encode(cbor map: inout CBORMapWriter) {
        map.write("id", id)
        map.write("active", active)
    }
}
