import Foundation

/// The `mail` section of a daemon's configuration: the store's SMTP server, who mail is from, and the store's
/// staff address (where the messages a person must act on go).
///
/// ```json
/// "mail": {"smtp": {"host": "smtp.store.example", "port": 587, "username": "rescind",
///                   "password_file": "/etc/rescind/smtp-password"},
///          "from": "orders@store.example", "staff": "staff@store.example"}
/// ```
public struct MailSettings: Codable, Sendable, Hashable {
    public var smtp: SMTPSettings
    public var from: String?
    public var staff: String?

    public init(smtp: SMTPSettings, from: String? = nil, staff: String? = nil) {
        self.smtp = smtp
        self.from = from
        self.staff = staff
    }
}

/// One email: text and HTML (multipart/alternative), rendered as RFC 5322 with CRLF line ends.
public struct MailMessage: Sendable, Hashable {
    public var from: String
    public var to: String
    public var subject: String
    public var text: String
    public var html: String
    public var date: Date
    /// `<...@...>`: the same for every resend of one notification, so a receiver sees one message.
    public var messageID: String

    public init(from: String, to: String, subject: String, text: String, html: String, date: Date, messageID: String) {
        self.from = from
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.date = date
        self.messageID = messageID
    }

    /// A Message-ID for `local` (unique in the store: `notification-42`) in the domain of `from`.
    public static func messageID(_ local: String, from: String) -> String {
        let domain = from.split(separator: "@").last.map(String.init) ?? "rescind.localhost"
        return "<\(local)@\(domain.trimmingCharacters(in: CharacterSet(charactersIn: "<> ")))>"
    }

    /// The address of a `Name <address>` header value (the value itself when it is a bare address).
    public static func address(_ header: String) -> String {
        guard let open = header.lastIndex(of: "<"), let close = header.lastIndex(of: ">"), open < close else {
            return header
        }
        return String(header[header.index(after: open)..<close])
    }

    /// The message as RFC 5322 text.
    public var rfc5322: Data {
        let boundary = "rescind-" + messageID.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        let text = """
            From: \(from)\r
            To: \(to)\r
            Subject: \(Self.encodedWord(subject))\r
            Date: \(Self.rfc5322(date))\r
            Message-ID: \(messageID)\r
            MIME-Version: 1.0\r
            Content-Type: multipart/alternative; boundary="\(boundary)"\r
            \r
            --\(boundary)\r
            Content-Type: text/plain; charset=utf-8\r
            Content-Transfer-Encoding: base64\r
            \r
            \(Self.base64Lines(self.text))\r
            --\(boundary)\r
            Content-Type: text/html; charset=utf-8\r
            Content-Transfer-Encoding: base64\r
            \r
            \(Self.base64Lines(html))\r
            --\(boundary)--\r

            """
        return Data(text.utf8)
    }

    /// A simple HTML body of paragraphs (a paragraph that is a link becomes one).
    public static func html(paragraphs: [String], title: String, language: String) -> String {
        let body = paragraphs.map { paragraph in
            paragraph.hasPrefix("http")
                ? "<p><a href=\"\(escape(paragraph))\">\(escape(paragraph))</a></p>"
                : "<p>\(escape(paragraph).replacingOccurrences(of: "\n", with: "<br>"))</p>"
        }.joined(separator: "\n")
        return """
            <!doctype html><html lang="\(language)"><head><meta charset="utf-8"><title>\(escape(title))</title></head>
            <body>
            \(body)
            </body></html>
            """
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func rfc5322(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }

    /// A header's text as an RFC 2047 encoded word when it is not plain ASCII.
    public static func encodedWord(_ text: String) -> String {
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
