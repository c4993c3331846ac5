import Foundation
import GRDB
import RescindAPI
import RescindWire

/// Placing an order: `create` → `reserve` → `authorize` → `capture` (pivot) → `open`.
/// Undo, in reverse: `void`, `release`, `reject`. The customer's card is the processor's payment method reference
/// (`pm_...`), kept in the context: no card number ever reaches Orders.
///
/// A store that captures later (`StoreSettings.capture`) places without `capture`: the order opens with its
/// payment authorized and a time at which `CaptureScheduler` captures it, unless fulfilment or a cancellation
/// (a void) comes first.
enum PlaceOrderSaga: SagaDefinition {
    struct Context: Codable, Sendable {
        var orderID: UUID
        var lines: [Order.Line]
        var amount: Int64
        var currency: String
        /// The payment's status as the last payment step answered.
        var paymentStatus: String?
        /// When the authorization is to be captured by the clock; `nil`: captured during placement.
        var captureDueAt: Date?
        /// The processor's reference to the customer's payment method (`nil` for a reorder).
        var paymentMethod: String?
        /// A reorder: charge the payment method saved with this earlier order's payment.
        var savedCardOf: UUID?
        /// The card's last four digits, as the processor answered the authorization.
        var cardLast4: String?
        /// Spend this customer's store credit first.
        var spendCreditOf: String?
        /// The processor's fraud screening of the card, from its authorization (`nil`: normal).
        var riskSignal: String?
        /// The processor's fingerprint of the card, and its failed address check, from its authorization.
        var cardFingerprint: String?
        var addressCheck: String?
        /// The store's risk rules when the order was placed (`nil` in sagas from before them).
        var risk: RiskRules?
    }

    static let kind = Saga.Kind.placeOrder

    static func plan(_ context: Context) -> [SagaStep<Context>] {
        context.captureDueAt == nil ? [create, reserve, authorize, capture, open] : [create, reserve, authorize, open]
    }

    /// The order and its lines were written with the saga, in `OrdersService.place`.
    static let create = SagaStep<Context>.local("create", role: .compensatable(undo: reject)) { db, context, _ in
        _ = try OrderRecord.load(db, context.orderID)
        return "order of \(context.amount) \(context.currency), \(context.lines.count) lines"
    }

    static let reject = SagaStep<Context>.local("reject", role: .retriable) { db, context, info in
        try OrderRecord.change(db, context.orderID, at: info.now) { order in
            order.status = .rejected
            order.rejection = info.error?.message ?? "placement failed"
            order.paymentStatus = context.paymentStatus
            order.cardLast4 = context.cardLast4 ?? order.cardLast4
        }
        return "order rejected; nothing held or charged"
    }

    static let reserve = SagaStep<Context>.remote(
        "reserve", .inventory, InventoryMethods.reserve, role: .compensatable(undo: release),
        request: { context in
            ReserveRequest(
                orderID: context.orderID, lines: context.lines.map { .init(sku: $0.sku, quantity: $0.quantity) })
        },
        answered: { reservation, _ in "reserved \(reservation.describedAllocations)" }
    )

    static let release = SagaStep<Context>.remote(
        "release", .inventory, InventoryMethods.release, role: .retriable,
        request: { context in OrderStockRequest(orderID: context.orderID) },
        answered: { reservation, _ in "released \(reservation.units) units" }
    )

    static let authorize = SagaStep<Context>.remote(
        "authorize", .payments, PaymentsMethods.authorize, role: .compensatable(undo: void),
        request: { context in
            var request =
                if let earlier = context.savedCardOf {
                    AuthorizeRequest(
                        orderID: context.orderID, amountMinor: context.amount, currency: context.currency,
                        savedCardOf: earlier)
                } else {
                    AuthorizeRequest(
                        orderID: context.orderID, amountMinor: context.amount, currency: context.currency,
                        paymentMethod: context.paymentMethod ?? "")
                }
            request.spendStoreCreditOf = context.spendCreditOf
            return request
        },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            context.riskSignal = payment.riskSignal
            context.cardFingerprint = payment.cardFingerprint
            context.addressCheck = payment.addressCheck
            context.cardLast4 = payment.cardLast4
            return
                "authorized \(payment.amountAuthorized) \(payment.currency) minor units on card ending \(payment.cardLast4)"
        }
    )

    static let void = SagaStep<Context>.remote(
        "void", .payments, PaymentsMethods.void, role: .retriable,
        request: { context in VoidRequest(orderID: context.orderID) },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            return "voided the authorization of \(payment.amountAuthorized) \(payment.currency) minor units"
        }
    )

    static let capture = SagaStep<Context>.remote(
        "capture", .payments, PaymentsMethods.capture, role: .pivot,
        request: { context in PaymentRequest(orderID: context.orderID) },
        answered: { payment, context in
            context.paymentStatus = payment.status.rawValue
            return "captured \(payment.amountCaptured) \(payment.currency) minor units, fee \(payment.fee)"
        }
    )

    static let open = SagaStep<Context>.local("open", role: .retriable) { db, context, info in
        let order = try OrderRecord.change(db, context.orderID, at: info.now) { order in
            order.status = .open
            order.paymentStatus = context.paymentStatus
            if context.paymentStatus == Payment.Status.authorized.rawValue {
                order.captureDueAt = context.captureDueAt
            }
            order.cardFingerprint = context.cardFingerprint
            order.cardLast4 = context.cardLast4 ?? order.cardLast4
            if let rules = context.risk {
                let risk = try rules.assess(
                    db, order,
                    card: .init(
                        signal: context.riskSignal, fingerprint: context.cardFingerprint,
                        addressCheck: context.addressCheck), now: info.now)
                order.riskLevel = risk.level.rawValue
                order.riskReasons = try JSON.encode(risk.reasons)
                order.riskHeld = risk.held
            }
        }
        if order.riskHeld {
            return "order open, held for its fraud risk (\(order.riskLevel ?? "")): staff release or cancel it"
        }
        if let due = context.captureDueAt, context.paymentStatus == Payment.Status.authorized.rawValue {
            return "order open; payment authorized, to be captured by \(due.formatted(.iso8601))"
        }
        return "order open"
    }

    static func settle(_ db: Database, _ context: Context, as outcome: SettleOutcome, info: LocalStepInfo) throws
        -> String
    {
        let order = try OrderRecord.change(db, context.orderID, at: info.now) { order in
            switch outcome {
            case .open:
                order.status = .open
            case .cancelled:
                order.status = .rejected
                order.rejection = "placement settled by hand"
            default:
                throw RescindError.invalidArgument(
                    "a placement settles as open or cancelled, not \(outcome)", reason: "bad_outcome")
            }
            order.paymentStatus = context.paymentStatus ?? order.paymentStatus
        }
        return "order \(order.status.rawValue)"
    }
}

extension Reservation {
    /// "2 A at east, 1 B at west".
    var describedAllocations: String {
        allocations.map { "\($0.quantity) \($0.sku) at \($0.location)" }.joined(separator: ", ")
    }
}
