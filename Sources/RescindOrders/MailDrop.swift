import Foundation
import Logging
import RescindAPI
import RescindMail

/// Customer emails, rendered into a mail drop folder that the store's mailer picks up: one RFC 5322 message
/// per notification, text and HTML (multipart/alternative), in the customer's language when the order has one
/// the store writes (English or Norwegian Bokmål), else the store's. Written Maildir-style: into `tmp/`, then
/// renamed into `new/`, so a mailer never reads half a message.
struct MailDropSink: NotificationSink {
    let directory: String
    let mail: CustomerMail
    var name: String { "mail_drop" }

    func deliver(_ message: OutboxMessage) async throws {
        guard let mail = mail.render(message) else { return }  // nothing for the customer in this message
        let root = URL(fileURLWithPath: directory)
        let tmp = root.appendingPathComponent("tmp")
        let new = root.appendingPathComponent("new")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: new, withIntermediateDirectories: true)
        // The same name for a redelivery: the mailer sees one message, however often the relay tries.
        let file = "\(message.id)-\(message.kind).eml"
        let staged = tmp.appendingPathComponent(file)
        try mail.rfc5322.write(to: staged, options: .atomic)
        let target = new.appendingPathComponent(file)
        if FileManager.default.fileExists(atPath: target.path) { try FileManager.default.removeItem(at: target) }
        try FileManager.default.moveItem(at: staged, to: target)
    }
}

/// Submits each message for a person to the store's SMTP server: the customer's emails, and the staff's (a
/// cancellation request to decide, a saga that failed) to the store's staff address. A refused or dropped
/// submission throws, and the relay sends the message again later with the same Message-ID. A message the
/// server refuses for good (a 5xx to its recipient or its content: no such mailbox) is logged and not tried
/// again: it would hold up the order's later messages for ever. A refusal of the store's settings (a wrong
/// password) is retried until someone fixes them.
struct SMTPSink: NotificationSink {
    let client: SMTPClient
    let mail: CustomerMail
    let staff: String?
    let logger: Logger
    var name: String { "smtp" }

    func deliver(_ message: OutboxMessage) async throws {
        var outgoing: [MailMessage] = []
        if let customer = mail.render(message) { outgoing.append(customer) }
        if let staff, let text = StaffMailText(kind: message.kind, payload: message.payload) {
            outgoing.append(
                MailMessage(
                    from: mail.from, to: staff, subject: text.subject, text: text.text,
                    html: MailMessage.html(paragraphs: text.paragraphs, title: text.subject, language: "en"),
                    date: message.createdAt, messageID: MailMessage.messageID("staff-\(message.id)", from: mail.from)))
        }
        for mail in outgoing {
            do {
                try await client.send(from: MailMessage.address(mail.from), to: [mail.to], message: mail.rfc5322)
            } catch let error as SMTPError where error.messageRejected {
                logger.error(
                    "the mail server refused a message for good; not sent",
                    metadata: [
                        "order_id": "\(message.orderID)", "kind": "\(message.kind)", "message_id": "\(mail.messageID)",
                        "error": "\(error)",
                    ])
            }
        }
    }

}

/// What the customer is sent for a notification, in their language.
struct CustomerMail: Sendable {
    let language: String
    let from: String
    let storeName: String

    /// The email for a message, or `nil` when it is not for the customer.
    func render(_ message: OutboxMessage) -> MailMessage? {
        guard let data = try? JSONSerialization.jsonObject(with: Data(message.payload.utf8)) as? [String: Any],
            let to = data["customer_email"] as? String
        else { return nil }
        let nb = language(of: message) == "nb"
        guard let text = MailText(kind: message.kind, data: data, nb: nb, storeName: storeName) else { return nil }
        return MailMessage(
            from: from, to: to, subject: text.subject, text: text.text, html: text.html, date: message.createdAt,
            messageID: MailMessage.messageID("notification-\(message.id)", from: from))
    }

    /// The order's language if the mails are written in it, else the store's.
    func language(of message: OutboxMessage) -> String {
        guard let customer = message.language, ["en", "nb"].contains(customer) else { return language }
        return customer
    }
}

/// What the store's staff are sent: the messages a person must act on.
struct StaffMailText {
    var subject: String
    var paragraphs: [String]
    var text: String { paragraphs.joined(separator: "\n\n") + "\n" }

    /// `nil` for a message no person needs to act on.
    init?(kind: String, payload: String) {
        guard let data = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else {
            return nil
        }
        let order = data["order_id"] as? String ?? "?"
        switch kind {
        case "cancellation_requested":
            subject = "A customer asks to cancel order \(order.prefix(8))"
            paragraphs = [
                "\(data["customer_email"] as? String ?? "The customer") asks to cancel order \(order).",
                "Approve or decline it: rescindctl requests approve \(order), or rescindctl requests decline \(order) "
                    + "--note \"...\"",
            ]
        case "saga_failed":
            subject = "A \(data["saga_kind"] as? String ?? "saga") of order \(order.prefix(8)) needs a person"
            paragraphs = [
                "Saga \(data["saga_id"] as? String ?? "?") (\(data["saga_kind"] as? String ?? "?")) of order \(order) "
                    + "stopped at step \(data["step"] as? String ?? "?"): \(data["error"] as? String ?? "").",
                "Money may have moved. Look at it with rescindctl sagas show \(data["saga_id"] as? String ?? ""), then "
                    + "retry it (rescindctl sagas retry) or settle it (rescindctl sagas settle).",
            ]
        default:
            return nil
        }
    }
}

/// A notification's words for the customer: subject, text and HTML.
struct MailText {
    var subject: String
    var text: String
    var html: String

    /// `nil` for a message that is not for the customer.
    init?(kind: String, data: [String: Any], nb: Bool, storeName: String) {
        func pick(_ en: String, _ nbText: String) -> String { nb ? nbText : en }
        let number = String(((data["order_id"] as? String) ?? "").prefix(8))
        let currency = data["currency"] as? String ?? ""
        func money(_ key: String) -> String? {
            guard let minor = (data[key] as? NSNumber)?.int64Value else { return nil }
            return Money.text(minor, currency, decimalSeparator: nb ? "," : ".")
        }
        let note = (data["note"] as? String).map { "\n\n" + pick("The store's note: ", "Butikkens merknad: ") + $0 }
        var paragraphs: [String]
        switch kind {
        case "order_confirmed", "reorder_placed":
            subject = pick("Your order \(number) is confirmed", "Bestilling \(number) er bekreftet")
            paragraphs = [
                pick("Thank you for your order \(number)", "Takk for bestillingen \(number)")
                    + (money("total").map { pick(", \($0) in all.", ", \($0) totalt.") } ?? "."),
                pick(
                    "See your order, and cancel it while the store allows, here:",
                    "Se bestillingen, og kanseller den så lenge butikken tillater det, her:"),
            ]
            if let link = data["status_link"] as? String { paragraphs.append(link) }
        case "cancellation_requested":
            subject = pick(
                "We got your request to cancel order \(number)", "Vi har fått forespørselen om å kansellere \(number)")
            paragraphs = [pick("The store will answer soon.", "Butikken svarer snart.")]
        case "cancellation_approved":
            subject = pick("Your order \(number) will be cancelled", "Bestilling \(number) blir kansellert")
            paragraphs = [pick("The store approved your request to cancel.", "Butikken godkjente forespørselen.")]
        case "cancellation_declined":
            subject = pick("Your request to cancel order \(number)", "Forespørselen om å kansellere \(number)")
            paragraphs = [
                pick("The store declined your request to cancel.", "Butikken avslo forespørselen.") + (note ?? "")
            ]
        case "order_cancelled", "lines_cancelled":
            subject =
                kind == "order_cancelled"
                ? pick("Your order \(number) is cancelled", "Bestilling \(number) er kansellert")
                : pick("Part of your order \(number) is cancelled", "Deler av bestilling \(number) er kansellert")
            if let refunded = money("refunded"), (data["refunded"] as? NSNumber)?.int64Value ?? 0 > 0 {
                paragraphs = [
                    data["refund_to"] as? String == "store_credit"
                        ? pick(
                            "\(refunded) is on your store credit now, for your next order.",
                            "\(refunded) er på tilgodelappen din nå, til neste bestilling.")
                        : pick(
                            "\(refunded) is refunded to your card; it usually arrives within 5 to 10 business days.",
                            "\(refunded) er refundert til kortet ditt; det kommer vanligvis innen 5 til 10 virkedager.")
                ]
            } else if data["voided"] as? Bool == true {
                paragraphs = [
                    pick(
                        "Nothing was charged for it: the card's reservation is released.",
                        "Du ble ikke belastet: reservasjonen på kortet er frigitt.")
                ]
            } else {
                // Cancelled without a refund (the store chose so): say nothing of money that did move.
                paragraphs = [
                    pick(
                        "No refund was made for it; the store will tell you why if you ask.",
                        "Det ble ikke refundert noe for den; butikken forklarer hvorfor om du spør.")
                ]
            }
        default:
            return nil
        }
        paragraphs.append(storeName)
        text = paragraphs.joined(separator: "\n\n") + "\n"
        html = MailMessage.html(paragraphs: paragraphs, title: subject, language: nb ? "nb" : "en")
    }
}
