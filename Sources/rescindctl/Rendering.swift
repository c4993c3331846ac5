import Foundation
import RescindAPI

/// Text renderings for people; `--json` prints the values themselves.
enum Render {
    /// Minor units as a decimal amount (two decimals; zero-decimal currencies show as such).
    static func money(_ minor: Int64, _ currency: String) -> String { Money.text(minor, currency) }

    static func time(_ date: Date) -> String {
        date.formatted(.iso8601.time(includingFractionalSeconds: true))
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    static func order(_ order: Order) -> String {
        var lines = [
            "order \(order.id)  \(order.status.rawValue.uppercased())"
                + (order.archivedAt.map { "  (archived \(time($0)))" } ?? "")
                + (order.source.map { "  from \($0.rawValue)" } ?? ""),
            "  customer  \(order.customerEmail)   card ••••\(order.cardLast4)",
            "  total     \(money(order.totalMinor, order.currency))   refunded \(money(order.amountRefundedMinor, order.currency))",
        ]
        for line in order.lines {
            var text = "  - \(pad(line.sku, 12)) \(line.quantity) × \(money(line.unitPriceMinor, order.currency))"
            if let fulfilled = line.fulfilled { text += "   \(fulfilled) fulfilled" }
            if let cancelled = line.cancelled { text += "   \(cancelled) cancelled" }
            lines.append(text)
        }
        if let progress = order.fulfilmentInProgress {
            lines.append("  fulfilment in progress: \(progress.rawValue) (cancellation refused until cleared)")
        }
        if let tags = order.tags { lines.append("  tags: \(tags.joined(separator: ", "))") }
        if let risk = order.risk, risk.level != .low || risk.held {
            lines.append(
                "  risk \(risk.level.rawValue)\(risk.held ? ", HELD (orders release)" : ""): "
                    + risk.reasons.joined(separator: "; "))
        }
        if let request = order.cancelRequest {
            lines.append(
                "  customer's request to cancel: \(request.state.rawValue) (asked \(time(request.requestedAt)))"
                    + (request.decisionNote.map { ": \($0)" } ?? ""))
        }
        if let link = order.statusLink { lines.append("  order-status link: \(link)") }
        if let first = order.reorderOf { lines.append("  placed again from order \(first)") }
        for next in order.reorders ?? [] { lines.append("  placed again as order \(next)") }
        if let due = order.captureDueAt {
            lines.append("  payment authorized; captured at \(time(due)) unless fulfilled or cancelled first")
        }
        if let rejection = order.rejection { lines.append("  rejected: \(rejection)") }
        for c in (order.lineCancellations ?? []) + (order.cancellation.map { [$0] } ?? []) {
            let units = c.lines?.map { "\($0.quantity) × \($0.sku)" }.joined(separator: ", ")
            var text = "  cancelled\(units.map { " \($0)" } ?? "") (\(c.reason.rawValue)): "
            text +=
                c.voided
                ? (c.voidedAmountMinor.map { "\(money($0, order.currency)) of the authorization voided" }
                    ?? "authorization voided") + ", no fee (fee saved \(money(c.feeSavedMinor ?? 0, order.currency)))"
                : "refunded \(money(c.refundedMinor, order.currency)), fee kept by the processor \(money(c.feeKeptMinor, order.currency))"
            if c.refundTo == .storeCredit { text += " to store credit" }
            if let fee = c.restockingFeeMinor { text += ", restocking fee \(money(fee, order.currency)) kept" }
            text += ", \(c.unitsRestocked) units restocked"
            if c.notify { text += ", customer notified" }
            lines.append(text)
            if let note = c.staffNote { lines.append("  staff note: \(note)") }
        }
        for edit in order.edits ?? [] {
            let changes = edit.changes.map { "\($0.sku) to \($0.quantity)" }.joined(separator: ", ")
            let moved =
                edit.amountMinor == 0
                ? "no money moved"
                : "\(edit.payment ?? "") \(money(abs(edit.amountMinor), order.currency))"
            let fee = edit.restockingFeeMinor.map { ", restocking fee \(money($0, order.currency)) kept" } ?? ""
            lines.append("  edited at \(time(edit.at)) by \(edit.by): \(changes); \(moved)\(fee)")
        }
        for refund in order.refunds ?? [] {
            lines.append(
                "  refunded \(money(refund.amountMinor, order.currency)) at \(time(refund.at)) by \(refund.by): \(refund.reason)"
            )
        }
        for failed in order.failedCancellations {
            lines.append(
                "  failed cancellation \(failed.sagaID): \(failed.failedStep) — \(failed.error.code)\(failed.error.reason.map { "/\($0)" } ?? ""): \(failed.error.message)"
            )
        }
        return lines.joined(separator: "\n")
    }

    static func decision(_ decision: CancelPolicyDecision) -> String {
        var lines = [
            (decision.allowed ? "YES: can be cancelled" : "NO: cannot be cancelled") + " (rules for \(decision.actor))"
                + (decision.until.map { " until \(time($0))" } ?? "")
        ]
        for rule in decision.rules {
            lines.append("  \(rule.passed ? "✔" : "✘") \(pad(rule.rule, 24)) \(rule.detail)")
        }
        return lines.joined(separator: "\n")
    }

    static func orderRow(_ order: Order) -> String {
        "\(order.id)  \(pad(order.status.rawValue, 11)) \(pad(money(order.totalMinor, order.currency), 14)) refunded \(pad(money(order.amountRefundedMinor, order.currency), 14)) \(order.customerEmail)"
    }

    /// A saga as a timeline: one line per step, then the outcome.
    static func saga(_ saga: Saga) -> String {
        var lines = [
            "saga \(saga.id)  \(saga.kind.rawValue)  order \(saga.orderID)  → \(saga.state.rawValue.uppercased())"
        ]
        for step in saga.steps {
            let arrow = step.direction == .forward ? "→" : "↩"
            var line =
                "  \(step.seq). \(Render.time(step.startedAt))  \(arrow) \(pad(step.name, 10)) \(pad(step.status.rawValue, 10))"
            if step.attempt > 1 { line += "(attempt \(step.attempt)) " }
            if let error = step.error {
                line += "\(error.code)\(error.reason.map { "/\($0)" } ?? ""): \(error.message)"
            } else if let detail = step.detail {
                line += detail
            }
            lines.append(line)
        }
        if let error = saga.error, saga.state != .completed {
            lines.append("  why: \(error.code)\(error.reason.map { "/\($0)" } ?? ""): \(error.message)")
        }
        if let settled = saga.settlement {
            lines.append(
                "  settled as \(settled.outcome) by \(settled.by) at \(Render.time(settled.at)): \(settled.note)")
        } else if saga.state == .failed {
            lines.append(
                "  needs a person: rescindctl sagas retry \(saga.id), or sagas settle \(saga.id) --as ... --note ...")
        }
        return lines.joined(separator: "\n")
    }

    static func stock(_ report: StockReport) -> String {
        var lines = ["\(pad("SKU", 14))\(pad("LOCATION", 14))\(pad("ON HAND", 9))\(pad("RESERVED", 10))AVAILABLE"]
        for level in report.levels {
            lines.append(
                "\(pad(level.sku, 14))\(pad(level.location, 14))\(pad(String(level.onHand), 9))\(pad(String(level.reserved), 10))\(level.available)"
            )
        }
        let locations = report.locations.map { "\($0.id)\($0.active ? "" : " (deactivated)")" }
        lines.append("locations: \(locations.joined(separator: ", "))")
        return lines.joined(separator: "\n")
    }

    /// One processor event on one line: when, what, and whether it waits for a person.
    static func processorEvent(_ event: ProcessorEvent, currency: String? = nil) -> String {
        var text = "processor \(time(event.occurredAt))  \(event.kind.rawValue) (\(event.type))"
        if let amount = event.amountMinor { text += "  \(currency.map { money(amount, $0) } ?? "\(amount)")" }
        if let detail = event.detail { text += ": \(detail)" }
        if let resolved = event.resolvedAt {
            text += "  [resolved \(time(resolved)) by \(event.resolvedBy ?? "?"): \(event.resolution ?? "")]"
        } else if event.needsAttention {
            text += "  [NEEDS A PERSON: rescindctl payments resolve \(event.id) --note ...]"
        }
        return text
    }

    static func payment(_ payment: Payment) -> String {
        var lines = [
            "payment for order \(payment.orderID)  \(payment.status.rawValue.uppercased())  card ••••\(payment.cardLast4)",
            "  authorized \(money(payment.amountAuthorized, payment.currency))  captured \(money(payment.amountCaptured, payment.currency))  refunded \(money(payment.amountRefunded, payment.currency))",
        ]
        if let applied = payment.creditAppliedMinor {
            lines.append("  paid by store credit \(money(applied, payment.currency)); the card paid the rest")
        }
        if let credit = payment.refundedToCreditMinor {
            lines.append(
                "  of which refunded to store credit \(money(credit, payment.currency)) (no money left the store)")
        }
        if let saved = payment.feeSaved, payment.status == .voided {
            lines.append(
                "  voided before capture: no money moved, no fee; fee saved \(money(saved, payment.currency))")
        } else {
            if let saved = payment.feeSaved {
                lines.append(
                    "  part voided before capture (cancelled lines, edits): fee saved \(money(saved, payment.currency))"
                )
            }
            lines.append(
                "  processor fee \(money(payment.fee, payment.currency)) (kept on refund)  store nets \(money(payment.net, payment.currency))"
            )
        }
        lines += (payment.processorEvents ?? []).map { "  " + processorEvent($0, currency: payment.currency) }
        return lines.joined(separator: "\n")
    }
}
