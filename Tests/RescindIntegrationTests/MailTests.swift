import Foundation
import RescindAPI
import RescindMail
import RescindPKI
import RescindSuite
import RescindTestSupport
import RescindTransport
import RescindWire
import Testing

extension RealDaemons {
    /// Mail over SMTP to a real server (aiosmtpd): STARTTLS and AUTH required, its certificate from the suite's
    /// CA. What the server received is read back as Python's `email` package decodes it: the customer's emails in
    /// their language, the staff's at the staff address, the same Message-ID on a resend, and a message whose
    /// submission was refused or dropped mid-message received again later, once.
    @Suite(
        .serialized, .timeLimit(.minutes(5)),
        .enabled(if: SMTPTestServer.available, "aiosmtpd is not installed: pip install aiosmtpd"))
    struct MailTests {
        static let staff = "staff@store.example"

        /// A suite whose Orders submits its mail to an SMTP server started first (its certificate is issued by
        /// the suite's CA, which Orders trusts for it).
        private func start(_ options: RescindHarness.Options = .init()) async throws -> (RescindHarness, SMTPTestServer)
        {
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("rescind-mail-\(UUID().uuidString.prefix(8))")
            let layout = SuiteLayout(directory: directory)
            try LocalSuite(layout: layout).prepare()
            let pki = PKIDirectory(url: layout.pki)
            _ = try pki.issue(name: "smtp", hosts: ["127.0.0.1", "localhost"])
            let smtp = try SMTPTestServer(
                certificate: pki.certificatePath(for: "smtp"), privateKey: pki.privateKeyPath(for: "smtp"),
                username: "rescind", password: "mail-password-1")
            let passwordFile = directory.appendingPathComponent("config/smtp-password")
            try Data("mail-password-1\n".utf8).write(to: passwordFile)
            var options = options
            options.notifications["mail"] =
                [
                    "smtp": [
                        "host": "127.0.0.1", "port": smtp.port, "username": "rescind",
                        "password_file": passwordFile.path, "ca_file": pki.caCertificatePath,
                    ] as [String: any Sendable],
                    "from": "Rescind store <orders@store.example>", "staff": Self.staff,
                ] as [String: any Sendable]
            options.notifications["max_backoff_seconds"] = 0.5
            return (try await RescindHarness.start(directory: directory, options: options), smtp)
        }

        private func place(_ h: RescindHarness, language: String?, customer: String) async throws -> Order {
            try await h.orders.call(
                OrdersMethods.place,
                PlaceOrderRequest(
                    customerEmail: customer, currency: "NOK",
                    lines: [.init(sku: "MUG", quantity: 2, unitPriceMinor: 12_500)],
                    paymentMethod: "pm_card_visa", language: language),
                idempotencyKey: UUID().uuidString)
        }

        /// A staff cancellation that tells the customer.
        private func cancel(_ h: RescindHarness, _ order: Order) async throws -> Saga {
            let accepted = try await h.orders.call(
                OrdersMethods.cancel, CancelOrderRequest(orderID: order.id, reason: .customer, notify: true),
                idempotencyKey: UUID().uuidString)
            return try await h.waitForSaga(accepted.sagaID)
        }

        @Test func customersAndStaffGetTheirMailOverSMTP() async throws {
            var options = RescindHarness.Options()
            options.sagas["max_attempts"] = 2
            // Customers ask; staff decide (staff cancellations are not asked).
            options.store = ["customer_cancel_approval": "always"]
            let (h, smtp) = try await start(options)
            defer { smtp.stop() }
            do {
                try await h.setStock("MUG", at: "main", onHand: 20)
                // In English and in Norwegian: a confirmation, then a cancellation with its refund.
                let english = try await place(h, language: "en", customer: "ada@example.com")
                let norwegian = try await place(h, language: "nb", customer: "kari@example.no")
                for order in [english, norwegian] {
                    #expect(try await cancel(h, order).state == .completed)
                }
                let mail = try await smtp.waitForMessages(4)
                #expect(mail.allSatisfy { $0.tls && $0.login == "rescind" })
                #expect(mail.allSatisfy { $0.mailFrom == "orders@store.example" })
                let ada = mail.filter { $0.rcptTos == ["ada@example.com"] }
                let kari = mail.filter { $0.rcptTos == ["kari@example.no"] }
                #expect(
                    ada.map(\.subject).sorted() == [
                        "Your order \(english.id.uuidString.prefix(8)) is cancelled",
                        "Your order \(english.id.uuidString.prefix(8)) is confirmed",
                    ])
                #expect(
                    ada.first { $0.subject.hasSuffix("cancelled") }?.text?.contains("250.00 NOK is refunded") == true)
                #expect(
                    kari.map(\.subject).sorted() == [
                        "Bestilling \(norwegian.id.uuidString.prefix(8)) er bekreftet",
                        "Bestilling \(norwegian.id.uuidString.prefix(8)) er kansellert",
                    ])
                #expect(
                    kari.first { $0.subject.hasSuffix("kansellert") }?.text?.contains(
                        "250,00 NOK er refundert til kortet") == true)
                #expect(mail.allSatisfy { $0.messageID?.hasSuffix("@store.example>") == true })
                #expect(Set(mail.compactMap(\.messageID)).count == 4)

                // The server drops the connection once the next message is in, then refuses the one after: each
                // message is received again later, once, under the same Message-ID.
                try smtp.dropNext(1)
                let dropped = try await place(h, language: "en", customer: "grace@example.com")
                try await smtp.waitForMessages(5)
                try smtp.refuseNext(1)
                #expect(try await cancel(h, dropped).state == .completed)
                let after = try await smtp.waitForMessages(6)
                #expect(smtp.attempts().filter { $0 == "dropped" }.count == 1)
                #expect(smtp.attempts().filter { $0 == "refused" }.count == 1)
                let grace = after.filter { $0.rcptTos == ["grace@example.com"] }
                #expect(grace.count == 2, "\(grace.map(\.subject))")
                #expect(Set(grace.compactMap(\.messageID)).count == 2)

                // A saga that stops for a person: the staff are told at the staff address.
                let stuck = try await place(h, language: "en", customer: "alan@example.com")
                _ = try await h.payments.call(PaymentsMethods.setProcessorFaults, ProcessorFaults(mode: .unavailable))
                #expect(try await cancel(h, stuck).state == .failed)
                _ = try await h.payments.call(PaymentsMethods.setProcessorFaults, ProcessorFaults(mode: .normal))
                let staffMail = try await smtp.waitForMessages(8).filter { $0.rcptTos == [Self.staff] }
                #expect(staffMail.count == 1)
                #expect(staffMail.first?.subject.contains("needs a person") == true)
                #expect(staffMail.first?.text?.contains(stuck.id.uuidString) == true)
                #expect(staffMail.first?.text?.contains("rescindctl sagas retry") == true)

                // A customer asks to cancel: they hear the request was received, in their language, and the staff
                // are asked to decide.
                let asking = try await place(h, language: "nb", customer: "ola@example.no")
                let storefront = try h.storefrontClient()
                defer { Task { await storefront.shutdown() } }
                let asked = try await storefront.call(
                    CustomerMethods.cancel,
                    CustomerCancelRequest(token: try #require(asking.customerToken), note: "feil størrelse"))
                #expect(asked.request?.state == .pending)
                let last = try await smtp.waitForMessages(11)
                let request = last.filter { $0.rcptTos == [Self.staff] && $0.subject.contains("asks to cancel") }
                #expect(request.count == 1)
                #expect(request.first?.text?.contains("rescindctl requests approve \(asking.id)") == true)
                #expect(
                    last.contains {
                        $0.rcptTos == ["ola@example.no"] && $0.subject.hasPrefix("Vi har fått forespørselen")
                    })
                await h.stop()
            } catch {
                await h.stop(removeFiles: false)
                throw error
            }
        }

        /// The client on its own against the same server: it refuses a server whose certificate it cannot trust,
        /// and a server that demands STARTTLS refuses a client configured without it; a wrong password is refused
        /// for good (5xx). Nothing is accepted by any of them.
        @Test func theClientChecksTheServerAndTheServerChecksTheClient() async throws {
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("rescind-mail-\(UUID().uuidString.prefix(8))")
            defer { try? FileManager.default.removeItem(at: directory) }
            let pki = PKIDirectory(url: directory)
            _ = try pki.initialize(commonName: "Mail Test CA")
            _ = try pki.issue(name: "smtp", hosts: ["127.0.0.1"])
            let smtp = try SMTPTestServer(
                certificate: pki.certificatePath(for: "smtp"), privateKey: pki.privateKeyPath(for: "smtp"),
                username: "rescind", password: "right")
            defer { smtp.stop() }
            let passwordFile = directory.appendingPathComponent("password")
            func client(password: String, ca: String?, starttls: Bool = true) throws -> SMTPClient {
                try Data(password.utf8).write(to: passwordFile)
                return try SMTPClient(
                    settings: SMTPSettings(
                        host: "127.0.0.1", port: smtp.port, starttls: starttls, username: "rescind",
                        passwordFile: passwordFile.path, caFile: ca, timeoutSeconds: 10))
            }
            let message = Data("Subject: test\r\n\r\n.a line that starts with a dot\r\n".utf8)
            func send(_ client: SMTPClient) async -> SMTPError? {
                do {
                    try await client.send(from: "orders@store.example", to: ["ada@example.com"], message: message)
                    return nil
                } catch {
                    return error as? SMTPError ?? SMTPError(code: -1, message: "\(error)")
                }
            }
            // The system's roots do not know the suite's CA: the TLS handshake fails before AUTH.
            let untrusted = await send(try client(password: "right", ca: nil))
            #expect(untrusted?.code == 0, "\(String(describing: untrusted))")
            // Without STARTTLS, the server refuses AUTH (530: encryption required first).
            let plain = await send(try client(password: "right", ca: nil, starttls: false))
            #expect(plain?.permanent == true && plain?.messageRejected == false, "\(String(describing: plain))")
            // A wrong password: 535, for good.
            let wrong = await send(try client(password: "wrong", ca: pki.caCertificatePath))
            #expect(wrong?.code == 535, "\(String(describing: wrong))")
            #expect(smtp.received().isEmpty)
            // And right: accepted once, the dot-stuffed line arrives as it was written.
            #expect(await send(try client(password: "right", ca: pki.caCertificatePath)) == nil)
            let received = try await smtp.waitForMessages(1)
            #expect(received.count == 1)
            #expect(received.first?.tls == true)
            #expect(received.first?.text?.hasPrefix(".a line that starts with a dot") == true)
        }
    }
}
