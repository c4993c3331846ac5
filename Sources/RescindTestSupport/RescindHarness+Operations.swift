import Foundation
import RescindAPI
import RescindTransport
import RescindWire

/// The operations a test or a chaos run performs most, as the operator.
extension RescindHarness {
    /// Sets the units on hand of a SKU at a location.
    /// - Throws: `RescindError`.
    public func setStock(_ sku: String, at location: String, onHand: Int64) async throws {
        _ = try await inventory.call(
            InventoryMethods.setStock, SetStockRequest(sku: sku, location: location, onHand: onHand))
    }

    /// Places an order of `lines` (SKU, quantity, unit price) with a fresh idempotency key.
    /// - Throws: `RescindError`: the rejection, or a transport error.
    public func place(
        _ lines: [(sku: String, quantity: Int64, unitPrice: Int64)], paymentMethod: String = "pm_card_visa",
        customer: String = "ada@example.com", source: Order.Source? = nil, key: String = UUID().uuidString,
        useStoreCredit: Bool? = nil, timeout: Duration = .seconds(30)
    ) async throws -> Order {
        try await orders.call(
            OrdersMethods.place,
            PlaceOrderRequest(
                customerEmail: customer, currency: "USD",
                lines: lines.map { .init(sku: $0.sku, quantity: $0.quantity, unitPriceMinor: $0.unitPrice) },
                paymentMethod: paymentMethod, source: source, useStoreCredit: useStoreCredit),
            idempotencyKey: key, timeout: timeout)
    }

    /// Starts a cancellation.
    /// - Throws: `RescindError`.
    public func cancel(
        _ orderID: UUID, reason: CancelReason = .customer, refund: Bool = true, restock: Bool = true,
        key: String? = nil
    ) async throws -> CancelAccepted {
        try await orders.call(
            OrdersMethods.cancel,
            CancelOrderRequest(orderID: orderID, reason: reason, refund: refund, restock: restock),
            idempotencyKey: key)
    }

    /// An order as Orders has it.
    /// - Throws: `RescindError`.
    public func order(_ id: UUID) async throws -> Order {
        try await orders.call(OrdersMethods.get, OrderRequest(orderID: id))
    }

    /// An order's payment as Payments has it.
    /// - Throws: `RescindError`.
    public func payment(_ orderID: UUID) async throws -> Payment {
        try await payments.call(PaymentsMethods.get, PaymentRequest(orderID: orderID))
    }

    /// The sagas of an order, oldest first.
    /// - Throws: `RescindError`.
    public func sagas(of orderID: UUID) async throws -> [Saga] {
        try await orders.call(OrdersMethods.listSagas, ListSagasRequest(orderID: orderID)).sagas.reversed()
    }
}

extension RescindHarness {
    /// Waits until the capture saga of an order (started by Orders when the capture falls due) has ended.
    /// The capture happens in another process at a time of its own: this polls the order's sagas with a deadline.
    /// - Throws: `RescindError` `deadline_exceeded` after `timeout`.
    public func waitForCapture(of orderID: UUID, timeout: Duration = .seconds(60)) async throws -> Saga {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let capture = try await sagas(of: orderID).first(where: { $0.kind == .capturePayment }) {
                return try await waitForSaga(capture.id, timeout: deadline - ContinuousClock.now)
            }
            guard ContinuousClock.now < deadline else {
                throw RescindError(.deadlineExceeded, "no capture of order \(orderID) after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

extension Saga {
    /// The log row of a step, going forward or undoing.
    public func step(_ name: String, _ direction: Step.Direction = .forward) -> Step? {
        steps.first { $0.name == name && $0.direction == direction }
    }
}

extension RescindHarness {
    /// Waits until Payments has received a processor event of `kind` about an order. The processor sends it from
    /// another process when it likes (localstripe waits a second): this polls Payments' events with a deadline.
    /// - Throws: `RescindError` `deadline_exceeded` after `timeout`.
    public func waitForProcessorEvent(
        _ kind: ProcessorEvent.Kind, of orderID: UUID, timeout: Duration = .seconds(30)
    ) async throws -> ProcessorEvent {
        var found: ProcessorEvent?
        try await waitUntil("a \(kind) event of order \(orderID) received", timeout: timeout) {
            let list = try await payments.call(
                PaymentsMethods.events, ProcessorEventsRequest(all: true, orderID: orderID))
            found = list.events.first { $0.kind == kind }
            return found != nil
        }
        guard let found else { throw RescindError.internalError("no \(kind) event of order \(orderID)") }
        return found
    }
}
