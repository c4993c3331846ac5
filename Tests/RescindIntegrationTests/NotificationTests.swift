import Foundation
import GRDB
import Hummingbird
import RescindAPI
import RescindStorage
import RescindTestSupport
import RescindTransport
import Synchronization
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

extension RealDaemons {
    /// Customer notifications delivered for real: to a signed webhook (which the test's receiver checks, every
    /// signature, and refuses at first, so that the relay retries), in order per order, at least once, and to the
    /// JSON-lines file; the order-status link leaves the database once the confirmation is delivered.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct NotificationTests {
        /// What the receiver got: each body, whether its signature verified, and how many it refused first.
        final class Received: Sendable {
            let state = Mutex<(messages: [[String: Any]], badSignatures: Int, refusals: Int)>(([], 0, 0))
            /// The receiver's port, once it listens, and each message it accepts: the events the test waits for.
            let listening = AsyncStream.makeStream(of: Int.self)
            let accepted = AsyncStream.makeStream(of: Void.self)
        }

        static let secret = "a-shared-secret-of-the-store"

        /// A webhook receiver on a free port that answers 503 to its first `refuse` requests.
        private func receiver(refuse: Int, _ received: Received) -> Application<RouterResponder<BasicRequestContext>> {
            let router = Router()
            router.post("/hook") { request, _ -> Response in
                let buffer = try await request.body.collect(upTo: 1 << 20)
                let body = Data(buffer.readableBytesView)
                let signed =
                    request.headers.first { "\($0.name)".lowercased() == "rescind-signature" }?.value ?? ""
                let refused = received.state.withLock { state -> Bool in
                    if state.refusals < refuse {
                        state.refusals += 1
                        return true
                    }
                    if !WebhookSignature.verify(signed, body: body, secret: Self.secret) { state.badSignatures += 1 }
                    if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] {
                        state.messages.append(object)
                    }
                    return false
                }
                if !refused { received.accepted.continuation.yield() }
                return Response(status: refused ? .serviceUnavailable : .noContent)
            }
            return Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: { channel in received.listening.continuation.yield(channel.localAddress?.port ?? 0) })
        }

        @Test func messagesReachASignedWebhookInOrderAfterRetries() async throws {
            let received = Received()
            let app = receiver(refuse: 2, received)
            let server = Task { try await app.run() }
            defer { server.cancel() }
            var ports = received.listening.stream.makeAsyncIterator()
            let port = try #require(await ports.next())
            let maildrop = FileManager.default.temporaryDirectory.appendingPathComponent(
                "maildrop-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: maildrop) }
            var options = RescindHarness.Options()
            options.notifications = [
                "webhook": ["url": "http://127.0.0.1:\(port)/hook", "secret": Self.secret],
                "max_backoff_seconds": 0.5, "mail_drop": maildrop.path,
            ]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.place([("MUG", 1, 1200)])
                let link = try #require(order.statusLink)
                let accepted = try await h.orders.call(
                    OrdersMethods.cancel, CancelOrderRequest(orderID: order.id, reason: .customer, notify: true))
                #expect(try await h.waitForSaga(accepted.sagaID).state == .completed)

                // Both arrive, the confirmation first, each signed; the first two attempts were refused.
                var arrivals = received.accepted.stream.makeAsyncIterator()
                for _ in 0..<2 { _ = await arrivals.next() }
                let (kinds, firstLink, orders, bad, refusals) = received.state.withLock { state in
                    (
                        state.messages.compactMap { $0["kind"] as? String },
                        (state.messages.first?["data"] as? [String: Any])?["status_link"] as? String,
                        state.messages.compactMap { $0["order_id"] as? String }, state.badSignatures, state.refusals
                    )
                }
                #expect(refusals == 2)
                #expect(bad == 0)
                #expect(kinds == ["order_confirmed", "order_cancelled"])
                #expect(firstLink == link)
                #expect(orders == [order.id.uuidString, order.id.uuidString])
                // A signature under another secret, or an old one, does not verify.
                let body = Data(#"{"kind":"order_cancelled"}"#.utf8)
                #expect(
                    !WebhookSignature.verify(
                        WebhookSignature.sign(body, secret: "another-secret-entirely", at: Date()), body: body,
                        secret: Self.secret))
                #expect(
                    !WebhookSignature.verify(
                        WebhookSignature.sign(body, secret: Self.secret, at: Date() - 3_600), body: body,
                        secret: Self.secret))

                // The file sink has them too, and the link is gone from the database once delivered.
                let file = h.database(.orders).deletingLastPathComponent().appendingPathComponent("notifications.jsonl")
                let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
                #expect(lines.count >= 2)
                let queue = try DatabaseQueue(path: h.database(.orders).path)
                let payloads = try await queue.read { db in try String.fetchAll(db, sql: "SELECT payload FROM outbox") }
                try queue.close()
                #expect(payloads.allSatisfy { !$0.contains(link) })
                // And an email each, rendered for the store's mailer (once every sink has it).
                try await h.waitUntilNotified()
                let mails = try FileManager.default.contentsOfDirectory(
                    atPath: maildrop.appendingPathComponent("new").path)
                #expect(mails.filter { $0.hasSuffix("-order_confirmed.eml") }.count == 1)
                #expect(mails.filter { $0.hasSuffix("-order_cancelled.eml") }.count == 1)
            }
        }

        @Test func aCustomerWhoOrderedInBokmalIsWrittenToInBokmal() async throws {
            let maildrop = FileManager.default.temporaryDirectory.appendingPathComponent(
                "maildrop-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: maildrop) }
            var options = RescindHarness.Options()
            options.notifications = ["mail_drop": maildrop.path, "language": "en"]
            try await RescindHarness.withSuite(options: options) { h in
                try await h.setStock("MUG", at: "main", onHand: 10)
                let order = try await h.orders.call(
                    OrdersMethods.place,
                    PlaceOrderRequest(
                        customerEmail: "ola@example.no", currency: "NOK",
                        lines: [.init(sku: "MUG", quantity: 1, unitPriceMinor: 12_000)], paymentMethod: "pm_card_visa",
                        language: "nb"),
                    idempotencyKey: UUID().uuidString)
                #expect(order.language == "nb")
                let english = try await h.place([("MUG", 1, 1200)])
                try await h.waitUntilNotified()
                // The store writes in English; this customer ordered in Bokmål, and reads Bokmål.
                func subject(of order: Order) throws -> String? {
                    let new = maildrop.appendingPathComponent("new")
                    let name = try FileManager.default.contentsOfDirectory(atPath: new.path).first {
                        $0.hasSuffix("-order_confirmed.eml")
                            && (try? String(contentsOf: new.appendingPathComponent($0), encoding: .utf8))?
                                .contains("To: \(order.customerEmail)") == true
                    }
                    let mail = try String(contentsOf: new.appendingPathComponent(try #require(name)), encoding: .utf8)
                    return mail.split(separator: "\r\n").first { $0.hasPrefix("Subject: ") }.map {
                        String($0.dropFirst("Subject: ".count))
                    }
                }
                let short = String(order.id.uuidString.prefix(8))
                #expect(try subject(of: order) == "Bestilling \(short) er bekreftet")
                #expect(try subject(of: english)?.hasPrefix("Your order") == true)
                // Their page too, when the browser takes any language.
                var request = URLRequest(url: try #require(order.statusLink.flatMap(URL.init(string:))))
                request.setValue("*", forHTTPHeaderField: "Accept-Language")
                let (page, _) = try await URLSession.shared.data(for: request)
                #expect(String(decoding: page, as: UTF8.self).contains("<html lang=\"nb\">"))
                // A language that is not a code is refused, and nothing is placed.
                let refused = await refusal {
                    try await h.orders.call(
                        OrdersMethods.place,
                        PlaceOrderRequest(
                            customerEmail: "x@example.com", currency: "EUR",
                            lines: [.init(sku: "MUG", quantity: 1, unitPriceMinor: 100)],
                            paymentMethod: "pm_card_visa", language: "Norsk"))
                }
                #expect(refused?.reason == "bad_language")
            }
        }
    }
}
