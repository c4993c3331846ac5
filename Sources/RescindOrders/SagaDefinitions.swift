import Foundation
import RescindAPI

/// The steps of Rescind's two sagas and the data they carry.
enum SagaDefinitions {
    /// Placing an order: `create` (done with the saga) → `reserve` → `authorize` → `capture` (pivot) → `open`.
    /// Undo, in reverse: `void`, `release`, `reject`.
    static let placeOrder: [PlannedStep] = [
        PlannedStep(name: "create", compensation: "reject"),
        PlannedStep(name: "reserve", compensation: "release"),
        PlannedStep(name: "authorize", compensation: "void"),
        PlannedStep(name: "capture", pivot: true),
        PlannedStep(name: "open"),
    ]

    /// Cancelling an order: `lock` (done with the saga) → `restock` → `refund` or `void` (pivot) →
    /// `finalize`. Undo, in reverse: `take_back`, `unlock`.
    static func cancelOrder(_ options: CancelOptions) -> [PlannedStep] {
        var plan = [PlannedStep(name: "lock", compensation: "unlock")]
        if options.restock { plan.append(PlannedStep(name: "restock", compensation: "take_back")) }
        switch options.payment {
        case .refund: plan.append(PlannedStep(name: "refund", pivot: true))
        case .void: plan.append(PlannedStep(name: "void", pivot: true))
        case .keep: break
        }
        plan.append(PlannedStep(name: "finalize"))
        return plan
    }

    /// Steps that change only the Orders database; they run in one transaction with their log entry.
    static let localSteps: Set<String> = ["create", "lock", "open", "reject", "finalize", "unlock"]
}

/// What a cancellation was asked to do, kept with its saga.
struct CancelOptions: Codable, Sendable {
    enum PaymentAction: String, Codable, Sendable {
        /// Refund captured money (the fee is kept by the processor).
        case refund
        /// Void an authorization that was never captured.
        case void
        /// Leave the money where it is (`refund: false` on a captured payment).
        case keep
    }

    var reason: CancelReason
    var restock: Bool
    var notify: Bool
    var staffNote: String?
    var payment: PaymentAction
}

/// What the remote steps of a saga answered, for the steps after them.
struct SagaResults: Codable, Sendable {
    var refunded: Int64 = 0
    var feeKept: Int64 = 0
    var voided = false
    var unitsRestocked: Int64 = 0
    var paymentStatus: String?
}

enum JSON {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}
