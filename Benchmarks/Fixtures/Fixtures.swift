import Foundation
import RescindAPI
import RescindCBOR
import RescindWire

/// Fixed values shaped like what the daemons send: no `Date()` or `UUID()` per iteration.
/// Dates carry milliseconds, as the stores keep them, so both codecs write them as floats.
public enum Fixtures {
    public static func uuid(_ n: Int) -> UUID {
        let node = String(0x1d2e_3f40_0000 + n, radix: 16, uppercase: true)
        return UUID(uuidString: "6F1C2A4E-9B3D-4C5E-8A7F-" + String(repeating: "0", count: 12 - node.count) + node)!
    }

    public static let t0 = Date(timeIntervalSince1970: 1_767_225_600.123)

    public static func at(_ seconds: Double) -> Date {
        Date(timeIntervalSince1970: t0.timeIntervalSince1970 + seconds)
    }

    public static let lines: [Order.Line] = [
        .init(sku: "TEE-BLK-M", quantity: 2, unitPriceMinor: 2_500),
        .init(sku: "TEE-WHT-L", quantity: 1, unitPriceMinor: 2_500),
        .init(sku: "MUG-CERAMIC-350", quantity: 4, unitPriceMinor: 1_200),
        .init(sku: "POSTER-A2-SUNSET", quantity: 1, unitPriceMinor: 1_850),
        .init(sku: "STICKER-PACK-12", quantity: 3, unitPriceMinor: 499),
    ]

    public static let placeOrderRequest = PlaceOrderRequest(
        customerEmail: "ada.lovelace@example.com",
        currency: "EUR",
        lines: lines,
        paymentMethod: "pm_card_visa"
    )

    public static let cancelOrderRequest = CancelOrderRequest(
        orderID: uuid(1),
        reason: .customer,
        refund: true,
        restock: true,
        notify: true,
        staffNote: "Customer asked by phone; wrong size ordered."
    )

    /// The answer to `cancelOrderRequest`: the saga that cancels, and the order.
    public static let cancelAccepted = CancelAccepted(sagaID: uuid(90), order: order)

    public static let requestEnvelope = RequestEnvelope(
        method: OrdersMethods.cancel.name,
        deadlineMillis: 1_767_225_630_123,
        idempotencyKey: "cancel-6f1c2a4e-9b3d-4c5e-8a7f-1d2e3f400001",
        payload: Data(try! CBOREncoder().encode(cancelOrderRequest))
    )

    public static let order = Order(
        id: uuid(1),
        customerEmail: "ada.lovelace@example.com",
        status: .cancelled,
        currency: "EUR",
        totalMinor: 14_647,
        amountRefundedMinor: 14_207,
        lines: lines,
        cardLast4: "4242",
        createdAt: t0,
        updatedAt: at(3_600.456),
        cancellation: Cancellation(
            sagaID: uuid(2),
            reason: .customer,
            staffNote: "Customer asked by phone; wrong size ordered.",
            refundedMinor: 14_207,
            feeKeptMinor: 440,
            voided: false,
            unitsRestocked: 11,
            notify: true,
            cancelledAt: at(3_600.456)
        )
    )

    public static let saga: Saga = {
        let names = ["hold_order", "release_stock", "refund_payment", "release_order", "notify_customer"]
        let steps = names.enumerated().map { index, name in
            Saga.Step(
                seq: index + 1,
                name: name,
                direction: .forward,
                status: .succeeded,
                attempt: index == 2 ? 2 : 1,
                idempotencyKey: "saga-6f1c2a4e-9b3d-4c5e-8a7f-1d2e3f400002-\(index + 1)",
                detail: index == 2 ? "refunded 14207 of 14647 EUR; fee 440 kept" : nil,
                error: nil,
                startedAt: at(3_600.2 + Double(index)),
                finishedAt: at(3_600.3 + Double(index))
            )
        }
        return Saga(
            id: uuid(2),
            kind: .cancelOrder,
            orderID: uuid(1),
            state: .completed,
            steps: steps,
            error: nil,
            createdAt: at(3_600.1),
            updatedAt: at(3_605.3)
        )
    }()

    public static let stockReport: StockReport = {
        let locations = ["WH-BERLIN", "WH-LYON", "STORE-AMS", "STORE-MAD", "WH-DUBLIN"]
        let levels = (0..<50).map { n in
            StockLevel(
                sku: "SKU-\(1_000 + n / 5)-\(["XS", "S", "M", "L", "XL"][n % 5])",
                location: locations[n % locations.count],
                onHand: Int64(20 + (n * 37) % 400),
                reserved: Int64((n * 11) % 20)
            )
        }
        return StockReport(levels: levels, locations: locations.map { Location(id: $0, active: $0 != "WH-DUBLIN") })
    }()
}
