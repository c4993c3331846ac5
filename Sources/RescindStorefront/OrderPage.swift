import Foundation
import Mustache
import RescindAPI

/// The languages the storefront speaks.
public enum Language: String, Sendable, CaseIterable {
    case en, nb

    /// The browser's most preferred language the storefront speaks (Accept-Language, by q-value; `no` and `nn`
    /// read as Bokmål), else `fallback`.
    static func preferred(_ acceptLanguage: String?, fallback: Language) -> Language {
        guard let acceptLanguage else { return fallback }
        let ranked = acceptLanguage.split(separator: ",").enumerated().compactMap {
            index, part -> (tag: String, q: Double, index: Int)? in
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let tag = pieces.first?.lowercased(), !tag.isEmpty else { return nil }
            let q = pieces.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return (tag, q, index)
        }
        for candidate in ranked.sorted(by: { $0.q != $1.q ? $0.q > $1.q : $0.index < $1.index }) where candidate.q > 0 {
            let primary = candidate.tag.split(separator: "-").first.map(String.init) ?? candidate.tag
            switch primary {
            case "en": return .en
            case "nb", "no", "nn": return .nb
            default: continue
            }
        }
        return fallback
    }
}

extension Order {
    /// Open units per SKU (an order may have several lines of one SKU).
    var openUnits: [String: Int64] {
        lines.reduce(into: [:]) { units, line in units[line.sku, default: 0] += line.open }
    }
}

/// The order page: the order, its timeline, and what the store's policy lets the customer do now.
struct OrderPage {
    /// The Edit form's field of a SKU: `quantity.SKU`.
    static let quantityField = "quantity."

    var order: Order
    var decision: CancelPolicyDecision?
    /// What the policy says of changing quantities now.
    var editDecision: CancelPolicyDecision?
    var language: Language
    var storeName: String
    var timeZone: TimeZone
    var token: String
    var csrf: String
    var reorderCSRF: String
    var editCSRF: String
    /// A message after an action (`cancelling`).
    var notice: String?

    static let template: MustacheTemplate = {
        do {
            return try MustacheTemplate(string: templateText)
        } catch {
            preconditionFailure("the order page template does not parse: \(error)")
        }
    }()

    func render() -> String {
        Self.template.render(context)
    }

    /// The values the template reads.
    var context: [String: Any] {
        let text = Strings(language)
        var values: [String: Any] = [
            "lang": language.rawValue,
            "storeName": storeName,
            "title": text.order + " " + String(order.id.uuidString.prefix(8)),
            "status": text.status(order.status),
            "statusKey": order.status.rawValue,
            "placedLabel": text.placed,
            "placed": time(order.createdAt),
            "itemsLabel": text.items,
            "totalLabel": text.total,
            "total": money(order.totalMinor),
            "refundedLabel": text.refunded,
            "refunded": money(order.amountRefundedMinor),
            "hasRefund": order.amountRefundedMinor > 0,
            "timelineLabel": text.timeline,
            "lines": order.lines.map { line -> [String: Any] in
                var notes: [String] = []
                if let cancelled = line.cancelled { notes.append(text.cancelledUnits(cancelled)) }
                if let fulfilled = line.fulfilled { notes.append(text.shippedUnits(fulfilled)) }
                return [
                    "sku": line.sku, "quantity": line.quantity, "price": money(line.unitPriceMinor),
                    "note": notes.joined(separator: ", "),
                ]
            },
            "timeline": timeline(text),
        ]
        if let notice { values["notice"] = text.notice(notice) }
        if order.status != .pending, order.status != .rejected {
            values["reorder"] = [
                "action": "/o/\(token)/reorder", "csrf": reorderCSRF, "requestID": UUID().uuidString,
                "button": text.reorderButton,
            ]
        }
        if let editDecision, editDecision.allowed, order.status == .open {
            let open = order.openUnits
            values["canEdit"] = [
                "heading": text.editHeading,
                "deadline": editDecision.until.map { text.editUntil(time($0)) } ?? "",
                "note": editDecision.rules.contains { $0.rule == "approval" } ? text.editAddOnly : "",
                "action": "/o/\(token)/edit", "csrf": editCSRF, "requestID": UUID().uuidString,
                "lines": open.keys.sorted().filter { open[$0, default: 0] > 0 }.map { sku -> [String: Any] in
                    ["sku": sku, "field": Self.quantityField + sku, "open": open[sku, default: 0]]
                },
                "button": text.editButton,
            ]
        }
        if let request = order.cancelRequest, request.state == .declined, order.status == .open {
            values["declined"] = text.declined(request.decisionNote)
        }
        if let decision {
            if decision.allowed, order.status == .open {
                values["canCancel"] = [
                    "deadline": decision.until.map { text.cancelUntil(time($0)) } ?? text.cancelAnyTime,
                    "action": "/o/\(token)/cancel", "csrf": csrf, "requestID": UUID().uuidString,
                    "reasonLabel": text.reasonLabel,
                    "button": decision.needsApproval == true ? text.requestButton : text.cancelButton,
                    "approval": decision.needsApproval == true ? text.approvalNote : "",
                ]
            } else if order.status == .open || order.status == .cancelRequested,
                let failed = decision.rules.first(where: { !$0.passed })
            {
                values["cannotCancel"] = text.why(failed, order: order)
            }
        }
        return values
    }

    private func timeline(_ text: Strings) -> [[String: String]] {
        var events: [(Date, String)] = [(order.createdAt, text.eventPlaced(money(order.totalMinor)))]
        for cancellation in (order.lineCancellations ?? []) + (order.cancellation.map { [$0] } ?? []) {
            let what = cancellation.lines.map { lines in
                lines.map { "\($0.quantity) × \($0.sku)" }.joined(separator: ", ")
            }
            events.append(
                (
                    cancellation.cancelledAt,
                    text.eventCancelled(what)
                        + text.money(
                            refunded: cancellation.refundedMinor > 0 ? money(cancellation.refundedMinor) : nil,
                            to: cancellation.refundTo, voided: cancellation.voided,
                            feeKept: cancellation.restockingFeeMinor.map(money))
                ))
        }
        for refund in order.refunds ?? [] { events.append((refund.at, text.eventRefunded(money(refund.amountMinor)))) }
        for edit in order.edits ?? [] {
            let refunded = edit.payment == "refund" && edit.amountMinor < 0 ? money(-edit.amountMinor) : nil
            events.append(
                (
                    edit.at,
                    text.eventEdited(edit.changes.map { "\($0.sku) → \($0.quantity)" })
                        + text.money(
                            refunded: refunded, to: nil, voided: edit.payment == "void",
                            feeKept: edit.restockingFeeMinor.map(money))
                ))
        }
        if order.status == .fulfilled { events.append((order.updatedAt, text.eventShipped)) }
        return events.sorted { $0.0 < $1.0 }.map { ["when": time($0.0), "text": $0.1] }
    }

    func money(_ minor: Int64) -> String {
        Money.text(minor, order.currency, decimalSeparator: language == .nb ? "," : ".")
    }

    func time(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: language == .nb ? "nb_NO" : "en_GB")
        formatter.timeZone = timeZone
        formatter.dateFormat = "d MMM yyyy HH:mm"
        return formatter.string(from: date)
    }

    static let templateText = """
        <!doctype html>
        <html lang="{{lang}}">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>{{title}} · {{storeName}}</title>
        <style>
        body{font-family:system-ui,sans-serif;max-width:40rem;margin:0 auto;padding:1rem;line-height:1.45;color:#1b1b1b}
        h1{font-size:1.4rem;margin:.2rem 0}
        .status{display:inline-block;padding:.15rem .6rem;border-radius:1rem;background:#eef;font-weight:600}
        table{width:100%;border-collapse:collapse;margin:1rem 0}td,th{padding:.4rem;border-bottom:1px solid #ddd;text-align:left}
        .notice{background:#e8f6e8;padding:.7rem;border-radius:.4rem}
        .why{background:#fbeeee;padding:.7rem;border-radius:.4rem}
        .deadline{font-weight:600}
        textarea{width:100%;min-height:4rem;box-sizing:border-box}
        input[type=number]{width:5rem;font-size:1rem;padding:.3rem}
        button{font-size:1rem;padding:.6rem 1.2rem;margin-top:.5rem}
        ol{padding-left:1.2rem}
        </style>
        </head>
        <body>
        <p>{{storeName}}</p>
        <h1>{{title}}</h1>
        <p><span class="status" id="status" data-status="{{statusKey}}">{{status}}</span> · {{placedLabel}} {{placed}}</p>
        {{#notice}}<p class="notice" id="notice">{{notice}}</p>{{/notice}}
        <table>
        <tr><th>{{itemsLabel}}</th><th></th><th></th></tr>
        {{#lines}}<tr><td>{{sku}}</td><td>{{quantity}} × {{price}}</td><td>{{note}}</td></tr>
        {{/lines}}
        </table>
        <p>{{totalLabel}}: <strong id="total">{{total}}</strong>{{#hasRefund}} · {{refundedLabel}}: <strong id="refunded">{{refunded}}</strong>{{/hasRefund}}</p>
        {{#canCancel}}
        <form method="post" action="{{action}}" id="cancel">
        <p class="deadline" id="deadline">{{deadline}}</p>
        {{#approval}}<p id="approval">{{approval}}</p>{{/approval}}
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="request_id" value="{{requestID}}">
        <label for="reason">{{reasonLabel}}</label>
        <textarea id="reason" name="reason" maxlength="255"></textarea>
        <button type="submit">{{button}}</button>
        </form>
        {{/canCancel}}
        {{#canEdit}}
        <form method="post" action="{{action}}" id="edit">
        <h2>{{heading}}</h2>
        {{#deadline}}<p id="edit-deadline">{{deadline}}</p>{{/deadline}}
        {{#note}}<p id="edit-note">{{note}}</p>{{/note}}
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="request_id" value="{{requestID}}">
        {{#lines}}<p><label for="{{field}}">{{sku}}</label> <input type="number" id="{{field}}" name="{{field}}" value="{{open}}" min="0" max="1000000" inputmode="numeric"></p>
        {{/lines}}
        <button type="submit">{{button}}</button>
        </form>
        {{/canEdit}}
        {{#declined}}<p class="why" id="declined">{{declined}}</p>{{/declined}}
        {{#cannotCancel}}<p class="why" id="why">{{cannotCancel}}</p>{{/cannotCancel}}
        {{#reorder}}
        <form method="post" action="{{action}}" id="reorder">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="request_id" value="{{requestID}}">
        <button type="submit">{{button}}</button>
        </form>
        {{/reorder}}
        <h2>{{timelineLabel}}</h2>
        <ol id="timeline">
        {{#timeline}}<li>{{when}}: {{text}}</li>
        {{/timeline}}
        </ol>
        </body>
        </html>
        """
}

/// The page's words, in English and Norwegian Bokmål.
struct Strings {
    let language: Language
    init(_ language: Language) { self.language = language }

    private func pick(_ en: String, _ nb: String) -> String { language == .nb ? nb : en }

    var order: String { pick("Order", "Bestilling") }
    var placed: String { pick("placed", "bestilt") }
    var items: String { pick("Items", "Varer") }
    var total: String { pick("Total", "Sum") }
    var refunded: String { pick("Refunded", "Refundert") }
    var timeline: String { pick("What happened", "Hva som har skjedd") }
    var reasonLabel: String { pick("Why do you want to cancel? (optional)", "Hvorfor vil du kansellere? (valgfritt)") }
    var cancelButton: String { pick("Cancel order", "Kanseller bestillingen") }
    var requestButton: String { pick("Ask to cancel", "Be om kansellering") }
    var reorderButton: String { pick("Order again", "Bestill på nytt") }
    var editHeading: String { pick("Change quantities", "Endre antall") }
    var editButton: String { pick("Save changes", "Lagre endringene") }
    var editAddOnly: String {
        pick(
            "You can add units here; to remove some, ask to cancel them.",
            "Her kan du legge til; for å fjerne noe, be om kansellering.")
    }

    func editUntil(_ time: String) -> String {
        pick("You can change quantities until \(time).", "Du kan endre antall frem til \(time).")
    }
    var approvalNote: String {
        pick(
            "The store approves cancellations first: you will hear from it.",
            "Butikken godkjenner kanselleringer først: du får svar.")
    }

    func declined(_ note: String?) -> String {
        pick("The store declined your request to cancel", "Butikken avslo forespørselen om kansellering")
            + (note.map { ": \($0)" } ?? ".")
    }
    var cancelAnyTime: String { pick("You can cancel this order.", "Du kan kansellere denne bestillingen.") }
    var eventShipped: String { pick("Shipped", "Sendt") }

    func cancelUntil(_ time: String) -> String {
        pick("You can cancel until \(time).", "Du kan kansellere frem til \(time).")
    }

    func status(_ status: Order.Status) -> String {
        switch status {
        case .open: pick("Open", "Åpen")
        case .cancelling: pick("Being cancelled", "Kanselleres")
        case .cancelled: pick("Cancelled", "Kansellert")
        case .fulfilled: pick("Shipped", "Sendt")
        case .pending: pick("Being placed", "Registreres")
        case .rejected: pick("Not placed", "Ikke registrert")
        case .cancelRequested: pick("Cancellation requested", "Kansellering forespurt")
        default: status.rawValue
        }
    }

    func cancelledUnits(_ units: Int64) -> String { pick("\(units) cancelled", "\(units) kansellert") }
    func shippedUnits(_ units: Int64) -> String { pick("\(units) shipped", "\(units) sendt") }
    func eventPlaced(_ total: String) -> String { pick("Ordered, \(total)", "Bestilt, \(total)") }
    func eventRefunded(_ amount: String) -> String { pick("Refunded \(amount)", "Refundert \(amount)") }

    func eventEdited(_ changes: [String]) -> String {
        pick("Changed: ", "Endret: ") + changes.joined(separator: ", ")
    }

    func eventCancelled(_ what: String?) -> String {
        what.map { pick("Cancelled \($0)", "Kansellert \($0)") } ?? pick("Cancelled", "Kansellert")
    }

    /// What a cancellation or an edit gave back and to what (the card, or store credit), that nothing was charged
    /// when the authorization was voided instead, and the restocking fee the store kept.
    func money(refunded: String?, to destination: RefundDestination?, voided: Bool, feeKept: String?) -> String {
        var text = ""
        if let refunded {
            text +=
                destination == .storeCredit
                ? pick(", \(refunded) refunded to your store credit", ", \(refunded) refundert til tilgodelappen din")
                : pick(", \(refunded) refunded to your card", ", \(refunded) refundert til kortet ditt")
        } else if voided {
            text += pick(", nothing was charged for it", ", du ble ikke belastet for det")
        }
        if let feeKept { text += pick(", \(feeKept) restocking fee kept", ", \(feeKept) i returgebyr beholdt") }
        return text
    }

    func notice(_ key: String) -> String {
        switch key {
        case "cancelling":
            pick(
                "Your cancellation is under way: the money goes back to your card.",
                "Kanselleringen er i gang: pengene går tilbake til kortet ditt.")
        case "reordered":
            pick(
                "Your new order is placed: its link is in the confirmation we sent you.",
                "Den nye bestillingen er registrert: lenken står i bekreftelsen vi sendte deg.")
        case "edited":
            pick(
                "Your order is changed: any difference is charged to or refunded to your card.",
                "Bestillingen er endret: en eventuell differanse belastes eller refunderes på kortet ditt.")
        case "unchanged":
            pick("Nothing was changed.", "Ingenting ble endret.")
        case "requested":
            pick(
                "Your request to cancel was sent: the store will answer soon.",
                "Forespørselen om kansellering er sendt: butikken svarer snart.")
        default: key
        }
    }

    /// Why the customer cannot cancel, from the rule that said no.
    func why(_ rule: PolicyRule, order: Order) -> String {
        switch rule.rule {
        case "order_status":
            return pick(
                "This order is \(status(order.status).lowercased()).",
                "Denne bestillingen er \(status(order.status).lowercased()).")
        case "fulfilment_in_progress":
            return pick("This order is being packed.", "Bestillingen blir pakket.")
        case "nothing_shipped":
            return pick("This order has shipped.", "Denne bestillingen er sendt.")
        case "cancellation_window":
            return pick(
                "The time to cancel this order has run out.", "Fristen for å kansellere denne bestillingen har gått ut."
            )
        case "fulfilment_cutoff":
            return pick("This order has gone to be packed.", "Bestillingen har gått til pakking.")
        case "cannot_cancel_tag", "cannot_cancel_sku":
            return pick(
                "This order cannot be cancelled online; please contact the store.",
                "Denne bestillingen kan ikke kanselleres på nett; kontakt butikken.")
        case "request_pending":
            return pick(
                "Your request to cancel was sent: the store will answer soon.",
                "Forespørselen om kansellering er sendt: butikken svarer snart.")
        case "cancellation_limit":
            return pick(
                "You have cancelled several orders recently; please contact the store.",
                "Du har kansellert flere bestillinger nylig; kontakt butikken.")
        default:
            return rule.detail
        }
    }
}
