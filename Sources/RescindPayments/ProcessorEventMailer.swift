import Foundation
import Logging
import RescindMail
import RescindStorage
import ServiceLifecycle

/// Mails the store's staff each processor event a person must act on (a refund that failed, a dispute, money
/// moved outside Rescind), once it is recorded: at least once, with the same Message-ID on a resend, retried
/// with backoff while the mail server refuses or cannot be reached. Of several replicas, the one that holds the
/// lease `processor_event_mailer` mails.
public struct ProcessorEventMailer: Service {
    let payments: PaymentsService
    let client: SMTPClient
    let from: String
    let staff: String
    let interval: Duration
    let lease: LeaseKeeper

    public init(
        payments: PaymentsService, client: SMTPClient, from: String, staff: String, interval: Duration = .seconds(1),
        holder: LeaseHolder = .process, lease: Duration = .seconds(10)
    ) {
        self.payments = payments
        self.client = client
        self.from = from
        self.staff = staff
        self.interval = interval
        self.lease = LeaseKeeper(
            Lease("processor_event_mailer", holder: holder, duration: lease), database: payments.database)
    }

    public func run() async throws {
        await lease.runPasses(
            every: interval, maxBackoff: .seconds(60), logger: payments.logger,
            failure: "processor events not mailed to the staff"
        ) { held in try await mailDue(under: held) }
    }

    /// Mails every event that needs a person and was not mailed yet, oldest first.
    /// - Throws: `SMTPError` (the rest wait for the next pass), database errors.
    func mailDue(under held: Lease.Held? = nil) async throws {
        let due = try await payments.database.read { db in
            try db.fetchAll(
                ProcessorEventRecord.self,
                """
                SELECT * FROM processor_event WHERE needs_attention = TRUE AND staff_notified_at IS NULL
                ORDER BY received_at LIMIT 50
                """)
        }
        for event in due {
            let mail = message(event)
            do {
                try await client.send(from: MailMessage.address(from), to: [staff], message: mail.rfc5322)
            } catch let error as SMTPError where error.messageRejected {
                payments.logger.error(
                    "the mail server refused a staff message for good; not sent",
                    metadata: ["event": "\(event.id)", "error": "\(error)"])
            }
            _ = try await payments.database.write { db in
                try held?.check(db)
                return try db.execute(
                    "UPDATE processor_event SET staff_notified_at = ? WHERE id = ?", [Date(), event.id])
            }
            payments.logger.info(
                "staff mailed about a processor event",
                metadata: ["event": "\(event.id)", "kind": "\(event.kind)", "order_id": "\(event.orderID ?? "")"])
        }
    }

    func message(_ event: ProcessorEventRecord) -> MailMessage {
        let order = event.orderID ?? "no order"
        let subject =
            "The processor reports \(event.kind.replacingOccurrences(of: "_", with: " ")) on order \(order.prefix(8))"
        let paragraphs = [
            "The card processor sent \(event.type) (\(event.id)) about charge \(event.chargeID ?? "?") of order "
                + "\(order)" + (event.amount.map { ", amount \($0) in minor units" } ?? "") + ".",
            event.detail ?? "",
            "See it with rescindctl payments attention; once dealt with: rescindctl payments resolve \(event.id) "
                + "--note \"what you did\".",
        ].filter { !$0.isEmpty }
        return MailMessage(
            from: from, to: staff, subject: subject, text: paragraphs.joined(separator: "\n\n") + "\n",
            html: MailMessage.html(paragraphs: paragraphs, title: subject, language: "en"), date: event.receivedAt,
            messageID: MailMessage.messageID("processor-event-\(event.id)", from: from))
    }
}
