import Foundation
import RescindAPI
import RescindStorage
import RescindWire

/// The store's cancellation policy, evaluated by one function that both explains (`orders.can_cancel`, the
/// customer's order page) and enforces (`orders.cancel`, a customer's cancellation): what it says is what it does.
///
/// Staff may cancel any order that is open and not being fulfilled, whatever the window. A customer also needs:
/// nothing shipped, the cancellation window open, the day's fulfilment cut-off not passed, no `cannot-cancel` tag
/// on the order nor a SKU the store marks so, and fewer than the store's limit of cancellations recently.
///
/// A customer's change of quantities (`edit`) obeys the same window and rules, since removing units is cancelling
/// them, except the cancellation limit; it also needs the store to allow edits, and when it removes units, that
/// none is of a `cannot-cancel` SKU and that the store does not approve cancellations first. What an edit gives
/// back keeps the restocking fee, as a cancellation's refund does.
enum CancellationPolicy {
    enum Actor: String, Sendable {
        case staff, customer
    }

    /// What is asked.
    enum Action: String, Sendable {
        case cancel, edit

        var verb: String { self == .cancel ? "cancel" : "change quantities" }
        var window: String { self == .cancel ? "cancellation window" : "window to change quantities" }
    }

    /// What the rules look at.
    struct Facts: Sendable {
        var order: OrderRecord
        var lines: [OrderLineRecord] = []
        var tags: [String] = []
        /// The customer's own cancellations (reason `customer`) within the store's period, this order's excluded.
        var customerCancellations = 0
        var now: Date
        /// The order's cancellation request, if the customer made one.
        var request: CancelRequest?
        /// For an edit being enforced: the changes asked for (absent when only explaining).
        var changes: [LineChange]?

        /// The SKUs the changes take units away from.
        var reducedSKUs: Set<String> {
            Set(
                (changes ?? []).filter { change in
                    change.quantity < lines.filter { $0.sku == change.sku }.reduce(Int64(0)) { $0 + $1.open }
                }.map(\.sku))
        }

        /// Reads what the customer's rules need.
        static func read(_ db: any SQLTransaction, _ order: OrderRecord, store: StoreSettings, now: Date) throws
            -> Facts
        {
            let count = try CancellationPolicy.customerCancellations(
                db, of: order.customerEmail, besides: order.id,
                since: now.addingTimeInterval(-store.customerCancellationsPeriodSeconds))
            return Facts(
                order: order, lines: try OrderLineRecord.of(db, order.id), tags: order.tagList,
                customerCancellations: count, now: now,
                request: try db.find(CancelRequestRecord.self, key: [order.id])?.api)
        }
    }

    /// The cancellations a customer (by email) made themselves (reason `customer`, whole orders or lines) since
    /// `since`, order `besides` left out.
    static func customerCancellations(_ db: any SQLTransaction, of email: String, besides orderID: String, since: Date)
        throws
        -> Int
    {
        let whole =
            try db.scalar(
                Int64.self,
                """
                SELECT COUNT(*) FROM cancellation c JOIN orders o ON o.id = c.order_id
                WHERE o.customer_email = ? AND o.id <> ? AND c.reason = 'customer' AND c.cancelled_at >= ?
                """, [email, orderID, since]) ?? 0
        // Cancellations of some lines keep their reason in the record's JSON: read in Swift, which both backends
        // allow (no JSON functions in the SQL).
        let lines = try db.query(
            """
            SELECT l.cancellation FROM line_cancellation l JOIN orders o ON o.id = l.order_id
            WHERE o.customer_email = ? AND o.id <> ? AND l.cancelled_at >= ?
            """, [email, orderID, since]
        ).filter { row in try JSON.decode(Cancellation.self, try row["cancellation"]).reason == .customer }
        return Int(whole) + lines.count
    }

    /// Every rule that applies to `actor` doing `action`, in order, and the verdict.
    static func evaluate(_ facts: Facts, as actor: Actor, action: Action = .cancel, store: StoreSettings)
        -> CancelPolicyDecision
    {
        var rules = statusRules(facts.order)
        if actor == .customer {
            rules += action == .cancel ? customerRules(facts, store: store) : customerEditRules(facts, store: store)
        }
        let allowed = rules.allSatisfy(\.passed)
        let approval = actor == .customer && action == .cancel && store.needsApproval(total: facts.order.total)
        return CancelPolicyDecision(
            allowed: allowed, until: allowed ? rules.compactMap(\.until).min() : nil, actor: actor.rawValue,
            rules: rules, needsApproval: actor == .customer && action == .cancel ? approval : nil,
            action: action == .edit ? action.rawValue : nil)
    }

    /// The order's status and fulfilment: what staff's cancellations obey too.
    static func statusRules(_ order: OrderRecord) -> [PolicyRule] {
        let status: PolicyRule =
            switch order.status {
            case .open, .fulfilling:
                PolicyRule(rule: "order_status", passed: true, detail: "the order is open")
            case .cancelling:
                PolicyRule(
                    rule: "order_status", passed: false, detail: "the order is being cancelled",
                    reason: "order_cancelling")
            case .cancelled, .fulfilled, .rejected, .pending:
                PolicyRule(
                    rule: "order_status", passed: false, detail: "the order is \(order.status.rawValue)",
                    reason: "order_\(order.status.rawValue)")
            }
        var progress = PolicyRule(rule: "fulfilment_in_progress", passed: true, detail: "fulfilment has not begun")
        if order.status == .fulfilling {
            progress = PolicyRule(
                rule: "fulfilment_in_progress", passed: false, detail: "the order is being fulfilled",
                reason: "fulfilment_in_progress")
        } else if let mark = order.fulfilmentInProgress {
            let what =
                mark == FulfilmentProgress.labelPurchased.rawValue
                ? "a shipping label was bought" : "picking has started"
            progress = PolicyRule(
                rule: "fulfilment_in_progress", passed: false,
                detail: "fulfilment is in progress (\(what)); staff clear the mark first",
                reason: "fulfilment_in_progress")
        }
        return [status, progress]
    }

    /// The rules of time and shipping a customer's cancellation and edit both obey.
    static func timeRules(_ facts: Facts, _ action: Action, store: StoreSettings) -> [PolicyRule] {
        let order = facts.order
        var rules: [PolicyRule] = []
        let shipped = facts.lines.reduce(Int64(0)) { $0 + $1.fulfilled }
        rules.append(
            shipped == 0
                ? PolicyRule(rule: "nothing_shipped", passed: true, detail: "nothing has shipped")
                : PolicyRule(
                    rule: "nothing_shipped", passed: false,
                    detail: "part of this order has shipped (\(shipped) units); ask the store",
                    reason: "order_partly_fulfilled"))

        let closes = order.createdAt.addingTimeInterval(store.cancellationWindowSeconds)
        rules.append(
            facts.now < closes
                ? PolicyRule(
                    rule: "cancellation_window", passed: true,
                    detail: "you can \(action.verb) until \(store.describe(closes))", until: closes)
                : PolicyRule(
                    rule: "cancellation_window", passed: false,
                    detail: "the \(action.window) closed at \(store.describe(closes))",
                    reason: "cancellation_window_closed"))

        if let cutoff = store.nextCutoff(after: order.createdAt) {
            rules.append(
                facts.now < cutoff
                    ? PolicyRule(
                        rule: "fulfilment_cutoff", passed: true,
                        detail: "the order goes to be packed at \(store.describe(cutoff))", until: cutoff)
                    : PolicyRule(
                        rule: "fulfilment_cutoff", passed: false,
                        detail: "the order went to be packed at \(store.describe(cutoff))",
                        reason: "fulfilment_cutoff_passed"))
        }

        rules.append(
            facts.tags.contains(store.cannotCancelTag)
                ? PolicyRule(
                    rule: "cannot_cancel_tag", passed: false,
                    detail: "the store marked this order \(store.cannotCancelTag)", reason: "cannot_cancel_tag")
                : PolicyRule(
                    rule: "cannot_cancel_tag", passed: true,
                    detail: action == .cancel ? "no tag stops a cancellation" : "no tag stops a change"))
        return rules
    }

    /// The holds a customer's cancellation and edit both obey: a fraud hold, a request waiting for staff.
    static func holdRules(_ facts: Facts) -> [PolicyRule] {
        var rules: [PolicyRule] = []
        if facts.order.riskHeld {
            rules.append(
                PolicyRule(
                    rule: "risk_hold", passed: false,
                    detail: "the store is checking this order; it will contact you", reason: "risk_hold"))
        }
        if facts.request?.state == .pending {
            rules.append(
                PolicyRule(
                    rule: "request_pending", passed: false,
                    detail: "a request to cancel this order is waiting for the store", reason: "cancel_requested"))
        }
        return rules
    }

    /// The rules a customer's change of quantities obeys besides the order's status.
    static func customerEditRules(_ facts: Facts, store: StoreSettings) -> [PolicyRule] {
        var rules = [
            store.customerEdits
                ? PolicyRule(rule: "customer_edits", passed: true, detail: "the store lets customers change quantities")
                : PolicyRule(
                    rule: "customer_edits", passed: false,
                    detail: "the store does not let customers change orders online", reason: "customer_edits_off")
        ]
        rules += timeRules(facts, .edit, store: store)
        let reduced = facts.reducedSKUs
        let fixed = Set(facts.lines.filter { $0.open > 0 }.map(\.sku)).intersection(store.cannotCancelSKUs).sorted()
        let refused = fixed.filter(reduced.contains)
        rules.append(
            !refused.isEmpty
                ? PolicyRule(
                    rule: "cannot_cancel_sku", passed: false,
                    detail: "\(refused.joined(separator: ", ")) cannot be reduced once ordered",
                    reason: "cannot_cancel_sku")
                : PolicyRule(
                    rule: "cannot_cancel_sku", passed: true,
                    detail: fixed.isEmpty
                        ? "every item can be reduced" : "\(fixed.joined(separator: ", ")) cannot be reduced"))
        rules += holdRules(facts)
        if store.needsApproval(total: facts.order.total) {
            rules.append(
                reduced.isEmpty
                    ? PolicyRule(
                        rule: "approval", passed: true,
                        detail: "the store approves cancellations first: units can be added, not removed")
                    : PolicyRule(
                        rule: "approval", passed: false,
                        detail: "the store approves cancellations first: ask to cancel the units instead",
                        reason: "approval_required"))
        }
        if let fee = restockingFeeRule(facts, .edit, store: store) { rules.append(fee) }
        return rules
    }

    /// What a customer's refund keeps for the store, said before it is asked: only a captured payment is refunded
    /// (a void moves no money and keeps nothing). `OrdersService` keeps `store.restockingFee(on:)` of the refund:
    /// for a cancellation of the whole order, the amount this names; for some lines, of their share; for an
    /// edit, of what it gives back.
    static func restockingFeeRule(_ facts: Facts, _ action: Action, store: StoreSettings) -> PolicyRule? {
        let order = facts.order
        let paid = [Payment.Status.captured.rawValue, Payment.Status.partiallyRefunded.rawValue]
        guard paid.contains(order.paymentStatus ?? ""),
            store.restockingFeeFixedMinor > 0 || store.restockingFeePercent > 0
        else { return nil }
        let refundable = order.total - order.amountRefunded
        switch action {
        case .cancel:
            // On what a cancellation refunds: the open units' money, at most what is not refunded yet.
            let open = facts.lines.reduce(Int64(0)) { $0 + $1.open * $1.unitPrice }
            let fee = store.restockingFee(on: min(open, refundable))
            guard fee > 0 else { return nil }
            return PolicyRule(
                rule: "restocking_fee", passed: true,
                detail: "a restocking fee of \(fee) \(order.currency) minor units is kept from the refund")
        case .edit:
            var terms: [String] = []
            if store.restockingFeeFixedMinor > 0 {
                terms.append("\(store.restockingFeeFixedMinor) \(order.currency) minor units")
            }
            if store.restockingFeePercent > 0 { terms.append(String(format: "%g%%", store.restockingFeePercent)) }
            return PolicyRule(
                rule: "restocking_fee", passed: true,
                detail: "what a change gives back keeps a restocking fee of \(terms.joined(separator: " plus "))")
        }
    }

    /// The rules only a customer's cancellation obeys.
    static func customerRules(_ facts: Facts, store: StoreSettings) -> [PolicyRule] {
        let order = facts.order
        var rules = timeRules(facts, .cancel, store: store)

        let blocked = Set(facts.lines.filter { $0.open > 0 }.map(\.sku)).intersection(store.cannotCancelSKUs).sorted()
        rules.append(
            blocked.isEmpty
                ? PolicyRule(rule: "cannot_cancel_sku", passed: true, detail: "every item can be cancelled")
                : PolicyRule(
                    rule: "cannot_cancel_sku", passed: false,
                    detail: "\(blocked.joined(separator: ", ")) cannot be cancelled once ordered",
                    reason: "cannot_cancel_sku"))

        if let max = store.customerCancellationsMax {
            let days = Int((store.customerCancellationsPeriodSeconds / 86_400).rounded())
            rules.append(
                facts.customerCancellations < max
                    ? PolicyRule(
                        rule: "cancellation_limit", passed: true,
                        detail: "\(facts.customerCancellations) of \(max) cancellations used in \(days) days")
                    : PolicyRule(
                        rule: "cancellation_limit", passed: false,
                        detail: "\(facts.customerCancellations) cancellations in the last \(days) days; the store "
                            + "allows \(max): ask the store", reason: "cancellation_limit_reached"))
        }

        rules += holdRules(facts)
        if store.needsApproval(total: order.total) {
            rules.append(
                PolicyRule(
                    rule: "approval", passed: true,
                    detail: "the store approves cancellations of this order first: it is a request"))
        }

        if let fee = restockingFeeRule(facts, .cancel, store: store) { rules.append(fee) }
        return rules
    }
}

extension CancelPolicyDecision {
    /// Throws the error of the first rule that failed: `conflict/order_cancelling` while another cancellation
    /// holds the order, `failed_precondition` with the rule's reason otherwise.
    func enforce(_ orderID: String) throws {
        guard let failed = rules.first(where: { !$0.passed }) else { return }
        if failed.reason == "order_cancelling" {
            throw RescindError.conflict("order \(orderID) is already being cancelled", reason: "order_cancelling")
        }
        let what = action == "edit" ? "changed" : "cancelled"
        throw RescindError.failedPrecondition(
            "order \(orderID) cannot be \(what): \(failed.detail)", reason: failed.reason ?? failed.rule)
    }
}

extension StoreSettings {
    /// A time as the store shows it: `2026-12-01 15:42 Europe/Oslo`.
    func describe(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: timeZone) ?? .gmt
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return "\(formatter.string(from: date)) \(timeZone)"
    }
}
