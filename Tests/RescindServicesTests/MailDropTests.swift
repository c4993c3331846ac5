import Foundation
import RescindMail
import Testing

@testable import RescindOrders

/// The customer's emails: the words of each message in English and Bokmål, and the files a mailer picks up.
@Suite struct MailDropTests {
    @Test func eachMessageReadsInBothLanguages() throws {
        let confirmed: [String: Any] = [
            "order_id": "0F8FAD5B-D9CB-469F-A165-70867728950E", "customer_email": "ada@example.com", "total": 2_500,
            "currency": "EUR", "status_link": "https://shop.example.com/o/abc",
        ]
        let en = try #require(MailText(kind: "order_confirmed", data: confirmed, nb: false, storeName: "Shop"))
        #expect(en.subject == "Your order 0F8FAD5B is confirmed")
        #expect(en.text.contains("25.00 EUR in all"))
        #expect(en.text.contains("https://shop.example.com/o/abc"))
        #expect(en.html.contains("<a href=\"https://shop.example.com/o/abc\">"))
        let nb = try #require(MailText(kind: "order_confirmed", data: confirmed, nb: true, storeName: "Shop"))
        #expect(nb.subject == "Bestilling 0F8FAD5B er bekreftet")
        #expect(nb.text.contains("25,00 EUR totalt"))
        #expect(nb.html.contains("lang=\"nb\""))

        var cancelled: [String: Any] = [
            "order_id": "0F8FAD5B", "customer_email": "ada@example.com", "refunded": 1_200, "currency": "EUR",
        ]
        #expect(
            MailText(kind: "order_cancelled", data: cancelled, nb: false, storeName: "Shop")?.text
                .contains("12.00 EUR is refunded to your card; it usually arrives within 5 to 10 business days") == true
        )
        cancelled["refund_to"] = "store_credit"
        #expect(
            MailText(kind: "order_cancelled", data: cancelled, nb: true, storeName: "Shop")?.text
                .contains("12,00 EUR er på tilgodelappen din nå") == true)
        // A void: nothing was charged. No refund of captured money (the store chose none): not "nothing charged".
        cancelled["refunded"] = 0
        cancelled["voided"] = true
        #expect(
            MailText(kind: "order_cancelled", data: cancelled, nb: false, storeName: "Shop")?.text
                .contains("Nothing was charged") == true)
        cancelled["voided"] = nil
        let unrefunded = try #require(MailText(kind: "order_cancelled", data: cancelled, nb: false, storeName: "Shop"))
        #expect(!unrefunded.text.contains("Nothing was charged"))
        #expect(unrefunded.text.contains("No refund was made"))
        let declined: [String: Any] = ["order_id": "0F8FAD5B", "note": "already <packed>"]
        let html = try #require(MailText(kind: "cancellation_declined", data: declined, nb: false, storeName: "S")).html
        #expect(html.contains("already &lt;packed&gt;"))
        #expect(MailText(kind: "something_internal", data: declined, nb: false, storeName: "S") == nil)
    }

    @Test func eachCustomerReadsTheirOwnLanguageWhenTheStoreWritesIt() {
        let mail = CustomerMail(language: "en", from: "shop@example.com", storeName: "Shop")
        func message(_ language: String?) -> OutboxMessage {
            OutboxMessage(
                id: 1, kind: "order_confirmed", orderID: "0F8FAD5B", createdAt: Date(), payload: "{}",
                language: language)
        }
        #expect(mail.language(of: message("nb")) == "nb")
        #expect(mail.language(of: message(nil)) == "en")
        // A language the store does not write: the store's.
        #expect(mail.language(of: message("de")) == "en")
        #expect(
            CustomerMail(language: "nb", from: "s@example.no", storeName: "S").language(of: message("en")) == "en")
    }

    @Test func aMessageBecomesOneFileInNewWithTextAndHTML() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("maildrop-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let sink = MailDropSink(
            directory: folder.path, mail: CustomerMail(language: "nb", from: "butikk@example.no", storeName: "Butikken")
        )
        let message = OutboxMessage(
            id: 7, kind: "order_cancelled", orderID: "0F8FAD5B-D9CB-469F-A165-70867728950E",
            createdAt: Date(timeIntervalSince1970: 1_767_225_600),
            payload:
                #"{"order_id": "0F8FAD5B-D9CB-469F-A165-70867728950E", "customer_email": "ola@example.no", "refunded": 1200, "currency": "NOK"}"#
        )
        try await sink.deliver(message)
        try await sink.deliver(message)  // delivered again: still one message
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("new").path)
        #expect(files == ["7-order_cancelled.eml"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("tmp").path).isEmpty)
        let mail = try String(contentsOf: folder.appendingPathComponent("new/7-order_cancelled.eml"), encoding: .utf8)
        #expect(mail.contains("To: ola@example.no\r\n"))
        #expect(mail.contains("Subject: Bestilling 0F8FAD5B er kansellert\r\n"))
        // A subject beyond ASCII is an RFC 2047 encoded word.
        #expect(
            MailMessage.encodedWord("Forespørsel") == "=?utf-8?B?\(Data("Forespørsel".utf8).base64EncodedString())?=")
        #expect(mail.contains("Content-Type: text/plain; charset=utf-8"))
        #expect(mail.contains("Content-Type: text/html; charset=utf-8"))
        #expect(mail.contains("Date: Thu, 01 Jan 2026 00:00:00 +0000"))
        // The text part, decoded, is the Bokmål notice.
        let parts = mail.components(separatedBy: "Content-Transfer-Encoding: base64\r\n\r\n")
        let encoded = try #require(parts.dropFirst().first?.components(separatedBy: "\r\n--").first)
        let text = String(
            decoding: Data(base64Encoded: encoded.replacingOccurrences(of: "\r\n", with: "")) ?? Data(), as: UTF8.self)
        #expect(text.contains("12,00 NOK er refundert til kortet ditt"))
    }
}
