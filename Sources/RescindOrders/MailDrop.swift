import Foundation
import RescindAPI

/// Customer emails, rendered into a mail drop folder that the store's mailer picks up: one RFC 5322 message
/// per notification, text and HTML (multipart/alternative), in the customer's language when the order has one
/// the store writes (English or Norwegian Bokmål), else the store's. Written Maildir-style: into `tmp/`, then renamed into `new/`, so a mailer never reads half a message.
struct MailDropSink: NotificationSink {
    let directory: String
    let language: String
    let from: String
    let storeName: String
    var name: String { "mail_drop" }

    func deliver(_ message: OutboxMessage) async throws {
        guard let data = try JSONSerialization.jsonObject(with: Data(message.payload.utf8)) as? [String: Any],
            let to = data["customer_email"] as? String,
            let mail = MailText(kind: message.kind, data: data, nb: language(of: message) == "nb", storeName: storeName)
        else { return }  // nothing for the customer in this message
        let root = URL(fileURLWithPath: directory)
        let tmp = root.appendingPathComponent("tmp")
        let new = root.appendingPathComponent("new")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: new, withIntermediateDirectories: true)
        let file = "\(message.id)-\(message.kind).eml"
        // The same name for a redelivery: the mailer sees one message, however often the relay tries.
        let boundary = "rescind-\(message.id)"
        let headerDate = Self.rfc5322(message.createdAt)
        let text = """
            From: \(from)\r
            To: \(to)\r
            Subject: \(Self.encodedWord(mail.subject))\r
            Date: \(headerDate)\r
            Message-ID: <notification-\(message.id)@rescind>\r
            MIME-Version: 1.0\r
            Content-Type: multipart/alternative; boundary="\(boundary)"\r
            \r
            --\(boundary)\r
            Content-Type: text/plain; charset=utf-8\r
            Content-Transfer-Encoding: base64\r
            \r
            \(Self.base64Lines(mail.text))\r
            --\(boundary)\r
            Content-Type: text/html; charset=utf-8\r
            Content-Transfer-Encoding: base64\r
            \r
            \(Self.base64Lines(mail.html))\r
            --\(boundary)--\r

            """
        let staged = tmp.appendingPathComponent(file)
        try Data(text.utf8).write(to: staged, options: .atomic)
        let target = new.appendingPathComponent(file)
        if FileManager.default.fileExists(atPath: target.path) { try FileManager.default.removeItem(at: target) }
        try FileManager.default.moveItem(at: staged, to: target)
    }

    /// The order's language if the mails are written in it, else the store's.
    func language(of message: OutboxMessage) -> String {
        guard let customer = message.language, ["en", "nb"].contains(customer) else { return language }
        return customer
    }

    static func rfc5322(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }

    /// A header's text as an RFC 2047 encoded word when it is not plain ASCII.
    static func encodedWord(_ text: String) -> String {
        text.allSatisfy(\.isASCII) ? text : "=?utf-8?B?\(Data(text.utf8).base64EncodedString())?="
    }

    static func base64Lines(_ text: String) -> String {
        let encoded = Data(text.utf8).base64EncodedString()
        return stride(from: 0, to: encoded.count, by: 76).map { start in
            let from = encoded.index(encoded.startIndex, offsetBy: start)
            let to = encoded.index(from, offsetBy: min(76, encoded.count - start))
            return String(encoded[from..<to])
        }.joined(separator: "\r\n")
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
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let body = paragraphs.map { paragraph in
            paragraph.hasPrefix("http")
                ? "<p><a href=\"\(escape(paragraph))\">\(escape(paragraph))</a></p>"
                : "<p>\(escape(paragraph).replacingOccurrences(of: "\n", with: "<br>"))</p>"
        }.joined(separator: "\n")
        html = """
            <!doctype html><html lang="\(nb ? "nb" : "en")"><head><meta charset="utf-8"><title>\(escape(subject))</title></head>
            <body>
            \(body)
            </body></html>
            """
    }
}
