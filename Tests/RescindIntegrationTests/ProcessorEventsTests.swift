import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import RescindAPI
import RescindPKI
import RescindStorage
import RescindSuite
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// The processor's events reach Payments on its HTTPS endpoint: localstripe sends its own, signed, over TLS
    /// (trusting the suite's CA), and the test sends the ones localstripe cannot make (a failed refund, a dispute)
    /// as Stripe writes them. Each is applied once, what Payments did is told apart from what someone did at the
    /// processor, and the ones for a person are listed, counted by `health` and shown with the order's payment
    /// until someone resolves them; the reconciliation lists what differs.
    @Suite(
        .serialized, .timeLimit(.minutes(5)),
        .enabled(if: LocalstripeServer.available, "localstripe is not installed: pip install localstripe"),
        .enabled(if: SMTPTestServer.available, "aiosmtpd is not installed: pip install aiosmtpd"))
    struct ProcessorEventsTests {
        static let staff = "staff@store.example"
        /// A suite against a localstripe server that sends its events to Payments. localstripe reads the CA it
        /// trusts when it starts, so the suite's PKI is made first.
        /// Payments mails the staff through an SMTP server started first too (its certificate from the same CA).
        private func start(capture: String) async throws -> (RescindHarness, LocalstripeServer, SMTPTestServer) {
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("rescind-events-\(UUID().uuidString.prefix(8))")
            let layout = SuiteLayout(directory: directory)
            try LocalSuite(layout: layout).prepare()
            let pki = PKIDirectory(url: layout.pki)
            let stripe = try LocalstripeServer(trusting: pki.caCertificatePath)
            _ = try pki.issue(name: "smtp", hosts: ["127.0.0.1"])
            let smtp = try SMTPTestServer(
                certificate: pki.certificatePath(for: "smtp"), privateKey: pki.privateKeyPath(for: "smtp"),
                username: "payments", password: "mail-password-2")
            let passwordFile = directory.appendingPathComponent("config/smtp-password")
            try Data("mail-password-2\n".utf8).write(to: passwordFile)
            var options = RescindHarness.Options()
            options.stripeAPIBase = stripe.apiBase
            options.capture = capture
            options.payments["mail"] =
                [
                    "smtp": [
                        "host": "127.0.0.1", "port": smtp.port, "username": "payments",
                        "password_file": passwordFile.path, "ca_file": pki.caCertificatePath,
                    ] as [String: any Sendable],
                    "from": "payments@store.example", "staff": Self.staff,
                ] as [String: any Sendable]
            let h = try await RescindHarness.start(directory: directory, options: options)
            let webhook = try #require(h.stripeWebhook)
            try await stripe.sendEvents(to: webhook.url, secret: try secret(h))
            return (h, stripe, smtp)
        }

        private func secret(_ h: RescindHarness) throws -> String {
            try String(contentsOfFile: try #require(h.stripeWebhook).secretFile, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// The order's (first) charge at the processor.
        private func charge(_ stripe: LocalstripeServer, _ order: UUID) async throws -> String {
            try #require(try await stripe.intents(ofOrder: order).first).id
        }

        private func health(_ h: RescindHarness) async throws -> ProcessorEventHealth {
            try #require(try await h.payments.call(CommonMethods.health, Empty()).processorEvents)
        }

        /// Posts a body to Payments' webhook endpoint over HTTPS, trusting the suite's CA.
        private func deliver(_ h: RescindHarness, _ body: Data, signature: String?) async throws -> (
            status: Int, answer: [String: Any]
        ) {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(PKIDirectory(url: h.suite.layout.pki).caCertificatePath)
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
            do {
                let answer = try await deliver(
                    client, url: try #require(h.stripeWebhook).url, body, signature: signature)
                try await client.shutdown()
                return answer
            } catch {
                try? await client.shutdown()
                throw error
            }
        }

        private func deliver(_ client: HTTPClient, url: String, _ body: Data, signature: String?) async throws -> (
            status: Int, answer: [String: Any]
        ) {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            if let signature { request.headers.add(name: "Stripe-Signature", value: signature) }
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(request, timeout: .seconds(10))
            let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
            return (
                Int(response.status.code), (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            )
        }

        /// An event as Stripe writes one.
        private func event(_ id: String, _ type: String, _ object: [String: Any]) throws -> Data {
            try JSONSerialization.data(withJSONObject: [
                "id": id, "object": "event", "type": type, "created": Int(Date().timeIntervalSince1970),
                "livemode": false, "api_version": "2024-06-20", "data": ["object": object],
            ])
        }

        @Test func eventsFromTheProcessorAreAppliedOnceAndTheOnesForAPersonAreListed() async throws {
            let (h, stripe, smtp) = try await start(capture: "at_fulfilment")
            defer {
                stripe.stop()
                smtp.stop()
            }
            do {
                try await h.setStock("MUG", at: "main", onHand: 20)
                // Rescind captures one order (fulfilment): localstripe's payment_intent.succeeded confirms it.
                let ours = try await h.place([("MUG", 1, 1200)])
                _ = try await h.orders.call(OrdersMethods.fulfill, FulfilOrderRequest(orderID: ours.id))
                #expect(
                    try await h.waitForSaga(try #require(try await h.sagas(of: ours.id).last).id).state == .completed)
                let confirmed = try await h.waitForProcessorEvent(.confirmed, of: ours.id)
                #expect(confirmed.type == "payment_intent.succeeded")
                #expect(!confirmed.needsAttention)

                // Someone captures another order's intent in the processor's dashboard: Payments still holds it
                // authorized. The event is for a person, and the reconciliation shows the difference.
                let other = try await h.place([("MUG", 2, 1500)])
                let otherCharge = try await charge(stripe, other.id)
                try await stripe.post("/v1/payment_intents/\(otherCharge)/capture")
                let outside = try await h.waitForProcessorEvent(.capturedOutside, of: other.id)
                #expect(outside.needsAttention)
                #expect(outside.charge == otherCharge)
                #expect(try await health(h).needsAttention == 1)
                let shown = try await h.payment(other.id)
                #expect(shown.processorEvents?.map(\.kind) == [.capturedOutside])
                let report = try await h.payments.call(PaymentsMethods.reconcile, ReconcileRequest())
                #expect(
                    report.differences.map { "\($0.charge) \($0.field) \($0.rescind ?? "-") \($0.processor ?? "-")" }
                        == ["\(otherCharge) status authorized captured", "\(otherCharge) captured 0 3000"])

                // The ones localstripe cannot make, as Stripe writes them: a refund that failed after it was
                // accepted, a dispute opened and lost.
                let ourCharge = try await charge(stripe, ours.id)
                let secret = try secret(h)
                let failed = try event(
                    "evt_refund_failed_1", "charge.refund.updated",
                    [
                        "id": "re_1", "object": "refund", "amount": 500, "payment_intent": ourCharge,
                        "status": "failed", "failure_reason": "expired_or_canceled_card",
                    ])
                var answer = try await deliver(
                    h, failed, signature: WebhookSignature.sign(failed, secret: secret, at: Date()))
                #expect(answer.status == 200)
                #expect(answer.answer["kind"] as? String == "refund_failed")
                // Delivered again (Stripe delivers at least once): applied once.
                answer = try await deliver(
                    h, failed, signature: WebhookSignature.sign(failed, secret: secret, at: Date()))
                #expect(answer.status == 200)
                #expect(answer.answer["duplicate"] as? Bool == true)
                for (id, type, status) in [
                    ("evt_dispute_1", "charge.dispute.created", "needs_response"),
                    ("evt_dispute_2", "charge.dispute.closed", "lost"),
                ] {
                    let body = try event(
                        id, type,
                        [
                            "id": "dp_1", "object": "dispute", "amount": 1200, "payment_intent": ourCharge,
                            "reason": "fraudulent", "status": status,
                        ])
                    answer = try await deliver(
                        h, body, signature: WebhookSignature.sign(body, secret: secret, at: Date()))
                    #expect(answer.status == 200)
                }
                let events = try await h.payment(ours.id).processorEvents ?? []
                #expect(
                    events.map(\.kind) == [.confirmed, .refundFailed, .disputeOpened, .disputeClosed],
                    "\(events.map(\.kind))")
                #expect(events.filter(\.needsAttention).count == 3)
                #expect(try await health(h).needsAttention == 4)

                // Refused, recording nothing: another secret, a replay older than five minutes, no signature, a
                // body that is not an event.
                let before = try await h.payments.call(PaymentsMethods.events, ProcessorEventsRequest(all: true))
                let dispute = try event(
                    "evt_dispute_3", "charge.dispute.created",
                    ["id": "dp_2", "object": "dispute", "amount": 1200, "payment_intent": ourCharge])
                answer = try await deliver(
                    h, dispute, signature: WebhookSignature.sign(dispute, secret: "whsec_another", at: Date()))
                #expect(answer.status == 400)
                #expect((answer.answer["error"] as? [String: Any])?["reason"] as? String == "bad_signature")
                answer = try await deliver(
                    h, dispute, signature: WebhookSignature.sign(dispute, secret: secret, at: Date() - 600))
                #expect((answer.answer["error"] as? [String: Any])?["reason"] as? String == "signature_expired")
                answer = try await deliver(h, dispute, signature: nil)
                #expect(answer.status == 400)
                let junk = Data("not an event".utf8)
                answer = try await deliver(h, junk, signature: WebhookSignature.sign(junk, secret: secret, at: Date()))
                #expect((answer.answer["error"] as? [String: Any])?["reason"] as? String == "bad_event")
                let after = try await h.payments.call(PaymentsMethods.events, ProcessorEventsRequest(all: true))
                #expect(after.events.count == before.events.count)

                let waiting = try await h.payments.call(PaymentsMethods.events, ProcessorEventsRequest())
                #expect(waiting.events.count == 4)
                // The staff were mailed each event that needs a person, once.
                let staffMail = try await smtp.waitForMessages(4)
                #expect(staffMail.allSatisfy { $0.rcptTos == [Self.staff] && $0.tls })
                #expect(
                    Set(staffMail.compactMap(\.messageID))
                        == Set(waiting.events.map { "<processor-event-\($0.id)@store.example>" }))
                #expect(
                    staffMail.contains {
                        $0.subject.contains("captured outside") && $0.text?.contains(other.id.uuidString) == true
                    })

                // A person resolves what they dealt with: it leaves the list, once.
                for event in waiting.events {
                    let resolved = try await h.payments.call(
                        PaymentsMethods.resolveEvent, ResolveEventRequest(eventID: event.id, note: "handled in test"))
                    #expect(resolved.resolvedBy == "operator")
                }
                #expect(try await health(h).needsAttention == 0)
                #expect(try await h.payments.call(PaymentsMethods.events, ProcessorEventsRequest()).events.isEmpty)
                let nothing = await refusal {
                    try await h.payments.call(
                        PaymentsMethods.resolveEvent, ResolveEventRequest(eventID: confirmed.id, note: "?"))
                }
                #expect(nothing?.reason == "nothing_to_resolve")
                await h.stop()
            } catch {
                await h.stop(removeFiles: false)
                throw error
            }
        }
    }
}
