import Foundation
import GRDB
import RescindAPI
import RescindTransport
import RescindWire

/// What a remote step answered, to be kept for the steps after it.
struct StepResult: Sendable {
    var detail: String?
    var apply: @Sendable (inout SagaResults) -> Void = { _ in }

    func apply(_ results: inout SagaResults) { apply(&results) }
}

/// The effect of each saga step: calls to Inventory and Payments, and changes to the Orders database.
struct SagaSteps: Sendable {
    let inventory: any RPCCaller
    let payments: any RPCCaller
    let database: DatabasePool

    // MARK: Remote steps

    func performRemote(
        saga: SagaRecord, step: String, direction: Saga.Step.Direction, key: String, card: String?,
        timeout: Duration
    ) async -> Result<StepResult, RescindError> {
        guard let orderID = UUID(uuidString: saga.orderID) else {
            return .failure(.internalError("saga \(saga.id) has an invalid order id"))
        }
        do {
            let result = try await remote(step, orderID: orderID, key: key, card: card, timeout: timeout)
            return .success(result)
        } catch let error as RescindError {
            // Undoing something that never happened is done.
            if direction == .compensate, error.code == .notFound {
                return .success(StepResult(detail: "nothing to undo: \(error.message)"))
            }
            return .failure(error)
        } catch {
            return .failure(RescindError(.unavailable, "step \(step) failed: \(error)"))
        }
    }

    private func remote(_ step: String, orderID: UUID, key: String, card: String?, timeout: Duration) async throws
        -> StepResult
    {
        let order = OrderStockRequest(orderID: orderID)
        let payment = PaymentRequest(orderID: orderID)
        switch step {
        case "reserve":
            let lines = try await orderLines(orderID)
            let reservation = try await inventory.call(
                InventoryMethods.reserve,
                ReserveRequest(orderID: orderID, lines: lines.map { .init(sku: $0.sku, quantity: $0.quantity) }),
                idempotencyKey: key, timeout: timeout
            )
            return StepResult(detail: "reserved \(Self.describe(reservation))")
        case "release":
            let reservation = try await inventory.call(
                InventoryMethods.release, order, idempotencyKey: key, timeout: timeout)
            return StepResult(detail: "released \(reservation.units) units")
        case "restock":
            let reservation = try await inventory.call(
                InventoryMethods.restock, order, idempotencyKey: key, timeout: timeout)
            let units = reservation.units
            return StepResult(detail: "restocked \(Self.describe(reservation))") { $0.unitsRestocked = units }
        case "take_back":
            let reservation = try await inventory.call(
                InventoryMethods.takeBack, order, idempotencyKey: key, timeout: timeout)
            return StepResult(detail: "took back \(reservation.units) units") { $0.unitsRestocked = 0 }
        case "authorize":
            guard let card else { throw RescindError.internalError("no card for authorize") }
            let (amount, currency) = try await orderAmount(orderID)
            let result = try await payments.call(
                PaymentsMethods.authorize,
                AuthorizeRequest(orderID: orderID, amountMinor: amount, currency: currency, cardNumber: card),
                idempotencyKey: key, timeout: timeout
            )
            return StepResult(
                detail:
                    "authorized \(result.amountAuthorized) \(result.currency) minor units on card ending \(result.cardLast4)"
            ) {
                $0.paymentStatus = result.status.rawValue
            }
        case "capture":
            let result = try await payments.call(
                PaymentsMethods.capture, payment, idempotencyKey: key, timeout: timeout)
            return StepResult(
                detail: "captured \(result.amountCaptured) \(result.currency) minor units, fee \(result.fee)"
            ) {
                $0.paymentStatus = result.status.rawValue
            }
        case "void":
            let result = try await payments.call(PaymentsMethods.void, payment, idempotencyKey: key, timeout: timeout)
            return StepResult(
                detail: "voided the authorization of \(result.amountAuthorized) \(result.currency) minor units"
            ) {
                $0.voided = true
                $0.paymentStatus = result.status.rawValue
            }
        case "refund":
            let result = try await payments.call(
                PaymentsMethods.refund, RefundRequest(orderID: orderID), idempotencyKey: key, timeout: timeout
            )
            return StepResult(
                detail:
                    "refunded \(result.refundedMinor) \(result.payment.currency) minor units; the processor kept its fee of \(result.feeKeptMinor)"
            ) {
                $0.refunded = result.refundedMinor
                $0.feeKept = result.feeKeptMinor
                $0.paymentStatus = result.payment.status.rawValue
            }
        default:
            throw RescindError.internalError("unknown saga step \(step)")
        }
    }

    private static func describe(_ reservation: Reservation) -> String {
        reservation.allocations.map { "\($0.quantity) \($0.sku) at \($0.location)" }.joined(separator: ", ")
    }

    private func orderLines(_ orderID: UUID) async throws -> [OrderLineRecord] {
        try await database.read { db in
            try OrderLineRecord.filter(OrderLineRecord.Columns.orderID == orderID.uuidString)
                .order(OrderLineRecord.Columns.lineNo).fetchAll(db)
        }
    }

    private func orderAmount(_ orderID: UUID) async throws -> (Int64, String) {
        try await database.read { db in
            guard let order = try OrderRecord.fetchOne(db, key: orderID.uuidString) else {
                throw RescindError.notFound("no order \(orderID)")
            }
            return (order.total, order.currency)
        }
    }

    // MARK: Local steps

    /// Performs a local step inside the caller's transaction; returns a line for the step log.
    func performLocal(_ db: Database, saga: SagaRecord, step: String) throws -> String {
        guard var order = try OrderRecord.fetchOne(db, key: saga.orderID) else {
            throw RescindError.internalError("saga \(saga.id) refers to a missing order")
        }
        let results = try JSON.decode(SagaResults.self, saga.results)
        let now = Date()
        order.updatedAt = now
        let detail: String
        switch step {
        case "open":
            order.status = .open
            order.paymentStatus = results.paymentStatus
            detail = "order open"
        case "reject":
            order.status = .rejected
            order.rejection = saga.errorMessage ?? "placement failed"
            order.paymentStatus = results.paymentStatus
            detail = "order rejected; nothing held or charged"
        case "unlock":
            order.status = .open
            if let status = results.paymentStatus { order.paymentStatus = status }
            detail = "order open again; the failed attempt is recorded"
        case "finalize":
            let options = try JSON.decode(CancelOptions.self, saga.options)
            order.status = .cancelled
            order.amountRefunded += results.refunded
            if let status = results.paymentStatus { order.paymentStatus = status }
            try CancellationRecord(
                orderID: order.id, sagaID: saga.id, reason: options.reason, staffNote: options.staffNote,
                refunded: results.refunded, feeKept: results.feeKept, voided: results.voided,
                unitsRestocked: results.unitsRestocked, notify: options.notify, cancelledAt: now
            ).insert(db)
            if options.notify {
                let notice = CancellationNotice(
                    orderID: order.id, customerEmail: order.customerEmail, reason: options.reason.rawValue,
                    refunded: results.refunded, currency: order.currency
                )
                var outbox = OutboxRecord(
                    id: nil, orderID: order.id, kind: "order_cancelled", payload: try JSON.encode(notice),
                    createdAt: now, deliveredAt: nil
                )
                try outbox.insert(db)
            }
            var parts = ["cancelled"]
            if results.voided { parts.append("authorization voided") }
            if results.refunded > 0 { parts.append("refunded \(results.refunded), fee kept \(results.feeKept)") }
            parts.append("\(results.unitsRestocked) units restocked")
            if options.notify { parts.append("customer notification queued") }
            detail = parts.joined(separator: "; ")
        default:
            throw RescindError.internalError("unknown local step \(step)")
        }
        try order.update(db)
        return detail
    }
}

/// The message queued for the customer when a cancellation completes with `notify`.
struct CancellationNotice: Codable, Sendable {
    var orderID: String
    var customerEmail: String
    var reason: String
    var refunded: Int64
    var currency: String
}
