import Foundation
import RescindAPI
import RescindWire
import Testing

@testable import RescindOrders

/// Each rule of the cancellation policy, on its own: what it explains is what it enforces (the same
/// evaluation), for staff and for the customer.
@Suite struct CancellationPolicyTests {
    /// 2026-03-02 09:00 UTC, a Monday: 10:00 in Oslo.
    static let placed = Date(timeIntervalSince1970: 1_772_442_000)

    private func order(status: OrderStatus = .open, mark: String? = nil, tags: [String] = []) -> OrderRecord {
        OrderRecord(
            id: "0F8FAD5B-D9CB-469F-A165-70867728950E", customerEmail: "ada@example.com", status: status,
            currency: "EUR", total: 3_000, amountRefunded: 0, paymentStatus: "captured", cardLast4: "4242",
            rejection: nil, idempotencyKey: nil, request: nil, createdAt: Self.placed, updatedAt: Self.placed,
            source: "online_store", archivedAt: nil, captureDueAt: nil, reorderOf: nil, fulfilmentInProgress: mark,
            tags: (try? JSON.encode(tags)) ?? "[]")
    }

    private func line(_ sku: String, _ quantity: Int64, fulfilled: Int64 = 0) -> OrderLineRecord {
        OrderLineRecord(
            orderID: "0F8FAD5B-D9CB-469F-A165-70867728950E", lineNo: 1, sku: sku, quantity: quantity, unitPrice: 1_000,
            fulfilled: fulfilled)
    }

    private func decide(
        _ order: OrderRecord, lines: [OrderLineRecord]? = nil, cancellations: Int = 0, minutes: Double,
        as actor: CancellationPolicy.Actor = .customer, store: StoreSettings = StoreSettings()
    ) -> CancelPolicyDecision {
        CancellationPolicy.evaluate(
            .init(
                order: order, lines: lines ?? [line("MUG", 3)], tags: order.tagList,
                customerCancellations: cancellations, now: Self.placed.addingTimeInterval(minutes * 60)),
            as: actor, store: store)
    }

    /// The rule `name` as the decision has it.
    private func rule(_ decision: CancelPolicyDecision, _ name: String) -> PolicyRule? {
        decision.rules.first { $0.rule == name }
    }

    /// The reason the decision's enforcement throws, or nil when it lets the cancellation through.
    private func enforced(_ decision: CancelPolicyDecision) -> String? {
        do {
            try decision.enforce("order")
            return nil
        } catch let error as RescindError {
            return error.reason
        } catch {
            return "\(error)"
        }
    }

    @Test func insideTheWindowACustomerMayCancelUntilItCloses() {
        let store = StoreSettings(cancellationWindowSeconds: 1_800, timeZone: "Europe/Oslo")
        let decision = decide(order(), minutes: 10, store: store)
        #expect(decision.allowed)
        #expect(decision.until == Self.placed.addingTimeInterval(1_800))
        #expect(rule(decision, "cancellation_window")?.detail == "you can cancel until 2026-03-02 10:30 Europe/Oslo")
        #expect(enforced(decision) == nil)

        let late = decide(order(), minutes: 31, store: store)
        #expect(!late.allowed)
        #expect(late.until == nil)
        #expect(rule(late, "cancellation_window")?.passed == false)
        #expect(enforced(late) == "cancellation_window_closed")
        // Staff may cancel whatever the window.
        let staff = decide(order(), minutes: 31, as: .staff, store: store)
        #expect(staff.allowed)
        #expect(staff.rules.map(\.rule) == ["order_status", "fulfilment_in_progress"])
    }

    @Test func theDailyCutOffInTheStoresTimeZoneEndsItFirst() {
        // Placed at 10:00 in Oslo; the cut-off is 11:00 there, before the two-hour window closes.
        let store = StoreSettings(cancellationWindowSeconds: 7_200, fulfilmentCutoff: "11:00", timeZone: "Europe/Oslo")
        let before = decide(order(), minutes: 30, store: store)
        #expect(before.allowed)
        #expect(before.until == Self.placed.addingTimeInterval(3_600))
        #expect(rule(before, "fulfilment_cutoff")?.until == Self.placed.addingTimeInterval(3_600))
        let after = decide(order(), minutes: 61, store: store)
        #expect(!after.allowed)
        #expect(enforced(after) == "fulfilment_cutoff_passed")
        // Placed after the day's cut-off: the next one is tomorrow's.
        let nextDay = StoreSettings(
            cancellationWindowSeconds: 86_400, fulfilmentCutoff: "09:30", timeZone: "Europe/Oslo")
        #expect(
            rule(decide(order(), minutes: 60, store: nextDay), "fulfilment_cutoff")?.until
                == Self.placed.addingTimeInterval(23.5 * 3_600))
    }

    @Test func tagsOnTheOrderOrOnAnOpenSKUStopTheCustomerOnly() {
        let store = StoreSettings(cannotCancelSKUs: ["ENGRAVED-RING"])
        let tagged = decide(order(tags: ["cannot-cancel"]), minutes: 1, store: store)
        #expect(enforced(tagged) == "cannot_cancel_tag")
        #expect(decide(order(tags: ["cannot-cancel"]), minutes: 1, as: .staff, store: store).allowed)
        let ring = decide(order(), lines: [line("MUG", 1), line("ENGRAVED-RING", 1)], minutes: 1, store: store)
        #expect(enforced(ring) == "cannot_cancel_sku")
        #expect(rule(ring, "cannot_cancel_sku")?.detail.contains("ENGRAVED-RING") == true)
        #expect(decide(order(tags: ["gift"]), minutes: 1, store: store).allowed)
    }

    @Test func shippedUnitsAndFulfilmentInProgressStopACancellation() {
        let shipped = decide(order(), lines: [line("MUG", 3, fulfilled: 1)], minutes: 1)
        #expect(enforced(shipped) == "order_partly_fulfilled")
        #expect(decide(order(), lines: [line("MUG", 3, fulfilled: 1)], minutes: 1, as: .staff).allowed)
        let picking = decide(order(mark: "picking"), minutes: 1, as: .staff)
        #expect(enforced(picking) == "fulfilment_in_progress")
        #expect(enforced(decide(order(status: .fulfilled), minutes: 1, as: .staff)) == "order_fulfilled")
        #expect(enforced(decide(order(status: .fulfilling), minutes: 1, as: .staff)) == "fulfilment_in_progress")
        #expect(enforced(decide(order(status: .cancelling), minutes: 1)) == "order_cancelling")
    }

    @Test func theAbuseLimitCountsTheCustomersRecentCancellations() {
        let store = StoreSettings(customerCancellationsMax: 2, customerCancellationsPeriodSeconds: 7 * 86_400)
        let second = decide(order(), cancellations: 1, minutes: 1, store: store)
        #expect(second.allowed)
        #expect(rule(second, "cancellation_limit")?.detail == "1 of 2 cancellations used in 7 days")
        let third = decide(order(), cancellations: 2, minutes: 1, store: store)
        #expect(enforced(third) == "cancellation_limit_reached")
        #expect(decide(order(), cancellations: 2, minutes: 1, as: .staff, store: store).allowed)
    }

    @Test func aRestockingFeeIsExplainedAndDoesNotStopTheCancellation() {
        let store = StoreSettings(restockingFeeFixedMinor: 200, restockingFeePercent: 10)
        let decision = decide(order(), minutes: 1, store: store)
        #expect(decision.allowed)
        #expect(rule(decision, "restocking_fee")?.detail.contains("500 EUR") == true)
        // An authorization never captured is voided: nothing is refunded, so nothing is kept.
        var authorized = order()
        authorized.paymentStatus = "authorized"
        #expect(rule(decide(authorized, minutes: 1, store: store), "restocking_fee") == nil)
    }

    /// A customer's change of quantities: `customer.can_edit` as it explains, and as it enforces given changes.
    private func decideEdit(
        _ order: OrderRecord, lines: [OrderLineRecord], changes: [LineChange]? = nil, minutes: Double = 10,
        store: StoreSettings = StoreSettings()
    ) -> CancelPolicyDecision {
        CancellationPolicy.evaluate(
            .init(
                order: order, lines: lines, tags: order.tagList, customerCancellations: 99,
                now: Self.placed.addingTimeInterval(minutes * 60), changes: changes),
            as: .customer, action: .edit, store: store)
    }

    @Test func aCustomerChangesQuantitiesInTheSameWindowWithoutTheLimit() {
        let store = StoreSettings(
            cancellationWindowSeconds: 1_800, restockingFeeFixedMinor: 500, timeZone: "Europe/Oslo",
            customerCancellationsMax: 1)
        let decision = decideEdit(order(), lines: [line("MUG", 3)], store: store)
        #expect(decision.allowed)
        #expect(decision.action == "edit")
        #expect(decision.until == Self.placed.addingTimeInterval(1_800))
        #expect(
            rule(decision, "cancellation_window")?.detail
                == "you can change quantities until 2026-03-02 10:30 Europe/Oslo")
        // Editing is not cancelling the order: 99 recent cancellations do not stop it. Removing units is cancelling
        // them: what a change gives back keeps the restocking fee.
        #expect(rule(decision, "cancellation_limit") == nil)
        #expect(
            rule(decision, "restocking_fee")?.detail
                == "what a change gives back keeps a restocking fee of 500 EUR minor units")
        let percent = StoreSettings(restockingFeeFixedMinor: 100, restockingFeePercent: 12.5)
        #expect(
            rule(decideEdit(order(), lines: [line("MUG", 3)], store: percent), "restocking_fee")?.detail
                == "what a change gives back keeps a restocking fee of 100 EUR minor units plus 12.5%")
        let late = decideEdit(
            order(), lines: [line("MUG", 3)], changes: [.init(sku: "MUG", quantity: 4)], minutes: 31, store: store)
        #expect(!late.allowed)
        #expect(enforced(late) == "cancellation_window_closed")
        #expect(
            rule(late, "cancellation_window")?.detail
                == "the window to change quantities closed at 2026-03-02 10:30 Europe/Oslo")
        let off = decideEdit(order(), lines: [line("MUG", 3)], store: StoreSettings(customerEdits: false))
        #expect(enforced(off) == "customer_edits_off")
        #expect(enforced(decideEdit(order(tags: ["cannot-cancel"]), lines: [line("MUG", 3)])) == "cannot_cancel_tag")
    }

    @Test func removingUnitsIsCancellingThemAddingIsNot() {
        let lines = [line("MUG", 3), line("PRINT", 1)]
        let store = StoreSettings(cannotCancelSKUs: ["PRINT"])
        // A made-to-order SKU does not stop the edit; removing its units does.
        let explained = decideEdit(order(), lines: lines, store: store)
        #expect(explained.allowed)
        #expect(rule(explained, "cannot_cancel_sku")?.detail == "PRINT cannot be reduced")
        #expect(
            enforced(decideEdit(order(), lines: lines, changes: [.init(sku: "MUG", quantity: 1)], store: store)) == nil)
        #expect(
            enforced(decideEdit(order(), lines: lines, changes: [.init(sku: "PRINT", quantity: 0)], store: store))
                == "cannot_cancel_sku")
        #expect(
            enforced(decideEdit(order(), lines: lines, changes: [.init(sku: "PRINT", quantity: 2)], store: store))
                == nil)
        // A store that approves cancellations first lets customers add units only.
        let approving = StoreSettings(customerCancelApproval: .always)
        let adding = decideEdit(order(), lines: lines, changes: [.init(sku: "MUG", quantity: 5)], store: approving)
        #expect(enforced(adding) == nil)
        #expect(adding.needsApproval == nil)
        #expect(
            enforced(decideEdit(order(), lines: lines, changes: [.init(sku: "MUG", quantity: 2)], store: approving))
                == "approval_required")
    }

    @Test func aStoreSectionWithABadCutOffOrTimeZoneIsRefused() throws {
        let decoder = JSONDecoder()
        #expect(throws: DecodingError.self) {
            try decoder.decode(StoreSettings.self, from: Data(#"{"fulfilment_cutoff": "25:00"}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try decoder.decode(StoreSettings.self, from: Data(#"{"time_zone": "Mars/Olympus"}"#.utf8))
        }
        let store = try decoder.decode(
            StoreSettings.self,
            from: Data(#"{"fulfilment_cutoff": "14:30", "time_zone": "Europe/Oslo", "cannot_cancel_skus": ["A"]}"#.utf8)
        )
        #expect(store.fulfilmentCutoff == "14:30")
        #expect(store.cannotCancelSKUs == ["A"])
    }
}
