import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RescindMail
import RescindStorage
import RescindTransport
import RescindWire
import ServiceLifecycle

/// Where customer notifications go: the store's configuration (`notifications` in Orders' file).
public struct NotificationSettings: Codable, Sendable, Hashable {
    /// An HTTP endpoint the relay POSTs each message to, signed (`Rescind-Signature`, `WebhookSignature`).
    public struct Webhook: Codable, Sendable, Hashable {
        public var url: String
        /// The shared secret of the HMAC-SHA256 signature.
        public var secret: String
        public var timeoutSeconds: Double

        public init(url: String, secret: String, timeoutSeconds: Double = 5) {
            self.url = url
            self.secret = secret
            self.timeoutSeconds = timeoutSeconds
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            url = try c.decode(String.self, forKey: .url)
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? "") else {
                throw DecodingError.dataCorruptedError(
                    forKey: .url, in: c, debugDescription: "webhook.url must be http(s)")
            }
            secret = try c.decode(String.self, forKey: .secret)
            guard secret.utf8.count >= 16 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .secret, in: c, debugDescription: "webhook.secret must be at least 16 bytes")
            }
            timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? 5
        }

        enum CodingKeys: String, CodingKey {
            case url, secret
            case timeoutSeconds = "timeout_seconds"
        }
    }

    /// A JSON-lines file every message is appended to (the default sink).
    public var file: String?
    public var webhook: Webhook?
    /// The store's SMTP server: the customers' emails and the staff's are submitted to it.
    public var mail: MailSettings?
    /// How long the relay waits at most between two attempts of a message that failed.
    public var maxBackoffSeconds: Double
    /// A folder customer emails are rendered into (`new/`), for the store's mailer; `nil`: no emails.
    public var mailDrop: String?
    /// The emails' language (`en` or `nb`), sender and signature.
    public var language: String
    public var mailFrom: String
    public var storeName: String

    public init(
        file: String? = nil, webhook: Webhook? = nil, maxBackoffSeconds: Double = 60, mailDrop: String? = nil,
        language: String = "en", mailFrom: String = "store@example.com", storeName: String = "Rescind store",
        mail: MailSettings? = nil
    ) {
        self.mail = mail
        self.file = file
        self.webhook = webhook
        self.maxBackoffSeconds = maxBackoffSeconds
        self.mailDrop = mailDrop
        self.language = language
        self.mailFrom = mailFrom
        self.storeName = storeName
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        file = try c.decodeIfPresent(String.self, forKey: .file)
        webhook = try c.decodeIfPresent(Webhook.self, forKey: .webhook)
        mail = try c.decodeIfPresent(MailSettings.self, forKey: .mail)
        maxBackoffSeconds = try c.decodeIfPresent(Double.self, forKey: .maxBackoffSeconds) ?? 60
        mailDrop = try c.decodeIfPresent(String.self, forKey: .mailDrop)
        language = try c.decodeIfPresent(String.self, forKey: .language) ?? "en"
        guard language == "en" || language == "nb" else {
            throw DecodingError.dataCorruptedError(
                forKey: .language, in: c, debugDescription: "language must be en or nb")
        }
        mailFrom = try c.decodeIfPresent(String.self, forKey: .mailFrom) ?? "store@example.com"
        storeName = try c.decodeIfPresent(String.self, forKey: .storeName) ?? "Rescind store"
    }

    enum CodingKeys: String, CodingKey {
        case file, webhook, language, mail
        case maxBackoffSeconds = "max_backoff_seconds"
        case mailDrop = "mail_drop"
        case mailFrom = "mail_from"
        case storeName = "store_name"
    }
}

/// A message as the sinks receive it.
struct OutboxMessage: Sendable {
    var id: Int64
    var kind: String
    var orderID: String
    var createdAt: Date
    /// The message's own fields, a JSON object.
    var payload: String
    /// The customer's language, as the order was placed (`nil`: the store's).
    var language: String? = nil

    /// `{"id", "kind", "order_id", "created_at", "data"}` as one line of JSON, as the file and the webhook carry it.
    func json() throws -> Data {
        var object: [String: Any] = [
            "id": id, "kind": kind, "order_id": orderID, "created_at": createdAt.formatted(.iso8601),
            "data": try JSONSerialization.jsonObject(with: Data(payload.utf8)),
        ]
        object["language"] = language
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }
}

/// Somewhere a message is delivered.
protocol NotificationSink: Sendable {
    var name: String { get }
    /// Delivers the message, or throws to have it retried (later messages of the same order wait for it).
    func deliver(_ message: OutboxMessage) async throws
    /// Makes what `deliver` took durable; the relay calls it once per pass, before it marks the pass's messages
    /// delivered. Throws to have them all delivered again.
    func flush() async throws
}

extension NotificationSink {
    func flush() async throws {}
}

/// Appends each message as a line of JSON to a file; the pass's lines reach the disk together (`flush`).
struct FileSink: NotificationSink {
    let path: String
    var name: String { "file" }

    func deliver(_ message: OutboxMessage) async throws {
        var line = try message.json()
        line.append(0x0A)
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.createDirectory(
                at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
    }

    /// One fsync for every line the pass appended (fsync writes the file's data whichever descriptor wrote it).
    func flush() async throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.synchronize()
    }
}

/// POSTs each message as JSON, signed with HMAC-SHA256 over the timestamp and the body; any status but 2xx is
/// a failure, retried.
struct WebhookSink: NotificationSink {
    let webhook: NotificationSettings.Webhook
    var name: String { "webhook" }

    struct Refused: Error, CustomStringConvertible {
        var status: Int
        var description: String { "the webhook answered HTTP \(status)" }
    }

    func deliver(_ message: OutboxMessage) async throws {
        let body = try message.json()
        var request = HTTPClientRequest(url: webhook.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(
            name: "Rescind-Signature", value: WebhookSignature.sign(body, secret: webhook.secret, at: Date()))
        request.headers.add(name: "Rescind-Message-Id", value: "\(message.id)")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(
            request, timeout: .milliseconds(Int64(webhook.timeoutSeconds * 1_000)))
        // Read (and dropped), so that the connection goes back to the pool.
        _ = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(Int(response.status.code)) else { throw Refused(status: Int(response.status.code)) }
    }
}

/// Delivers queued customer notifications to every configured sink, at least once each, in order per order:
/// a message that fails is retried with backoff, and later messages of its order wait for it. A message is
/// marked delivered after every sink took it, so a crash in between delivers it again (receivers deduplicate
/// by `id`). Of several replicas, the one that holds the lease `outbox_relay` delivers, so that order holds
/// across them too.
struct OutboxRelay: Service {
    let database: any SQLDatabase
    let sinks: [any NotificationSink]
    let maxBackoff: Double
    let logger: Logger
    /// The relay's lease (`outbox_relay`) among the replicas.
    let lease: LeaseKeeper

    func run() async {
        await lease.runPasses(every: .milliseconds(200), logger: logger, failure: "outbox relay failed") { held in
            try await deliverDue(under: held)
        }
    }

    /// Messages for the store's staff only.
    static let staffOnly: Set<String> = ["saga_failed"]

    /// A failed message waits as a saga step does: from half a second, doubling up to `maxBackoff`, jittered;
    /// it is tried for as long as it takes.
    var retry: RetryPolicy {
        RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(500), maxDelay: .seconds(maxBackoff))
    }

    /// One pass over the messages not delivered yet, oldest first; what it records, it records only while the
    /// lease it works under (if any) is still held.
    /// - Throws: `LeaseLost`, database errors, a sink's `flush` error.
    func deliverDue(now: Date = Date(), under held: Lease.Held? = nil) async throws {
        let pending = try await database.read { db in
            try db.query(
                """
                SELECT outbox.*, orders.status AS order_status, orders.language AS order_language
                FROM outbox JOIN orders ON orders.id = outbox.order_id
                WHERE outbox.delivered_at IS NULL ORDER BY outbox.id LIMIT 500
                """
            ).map { row in
                (
                    try db.record(OutboxRecord.self, row), try row["order_status"] as String,
                    try row["order_language"] as String?
                )
            }
        }
        var waiting: Set<String> = []
        // Marked delivered together at the end of the pass, once every sink made them durable: one fsync of the
        // file and one commit for many messages, instead of one each.
        var delivered: [OutboxMessage] = []
        for (message, status, language) in pending {
            // In order per order: nothing after a message of the same order that is still to be delivered.
            guard !waiting.contains(message.orderID) else { continue }
            // An order being placed confirms nothing yet; one that was never placed, never. (What the staff must
            // act on goes out whatever the order's state: a placement that failed, say.)
            if status == "pending", !Self.staffOnly.contains(message.kind) {
                waiting.insert(message.orderID)
                continue
            }
            if status == "rejected", message.kind == "order_confirmed" || message.kind == "reorder_placed" {
                let payload = OutboxRecord.withoutStatusLink(message.payload)
                _ = try await database.write { db in
                    try held?.check(db)
                    return try db.execute(
                        """
                        UPDATE outbox SET delivered_at = ?, payload = ?, last_error = 'not sent: the order was not placed'
                        WHERE id = ?
                        """, [Date(), payload, message.id])
                }
                continue
            }
            if let due = message.nextAttemptAt, due > now {
                waiting.insert(message.orderID)
                continue
            }
            guard let id = message.id else { continue }
            let outgoing = OutboxMessage(
                id: id, kind: message.kind, orderID: message.orderID, createdAt: message.createdAt,
                payload: message.payload, language: language)
            do {
                for sink in sinks { try await sink.deliver(outgoing) }
                delivered.append(outgoing)
            } catch {
                waiting.insert(message.orderID)
                let attempts = message.attempts + 1
                let delay = retry.delay(afterAttempt: attempts, sample: Double.random(in: 0..<1))
                _ = try await database.write { db in
                    try held?.check(db)
                    return try db.execute(
                        "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                        [attempts, now.addingTimeInterval(delay.seconds), "\(error)", id])
                }
                logger.warning(
                    "notification not delivered; will retry",
                    metadata: [
                        "order_id": "\(message.orderID)", "kind": "\(message.kind)", "attempt": "\(attempts)",
                        "error": "\(error)",
                    ])
            }
        }
        guard !delivered.isEmpty else { return }
        for sink in sinks { try await sink.flush() }
        let done = delivered
        try await database.write { db in
            try held?.check(db)
            // Delivered: the order-status link leaves the database with it.
            let at = Date()
            for message in done {
                try db.execute(
                    "UPDATE outbox SET delivered_at = ?, last_error = NULL, payload = ? WHERE id = ?",
                    [at, OutboxRecord.withoutStatusLink(message.payload), message.id])
            }
        }
        for message in done {
            logger.info(
                "customer notified",
                metadata: [
                    "order_id": "\(message.orderID)", "kind": "\(message.kind)", "message_id": "\(message.id)",
                ])
        }
    }
}
