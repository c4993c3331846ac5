import Foundation

/// A real SMTP server for tests (PyPI `aiosmtpd`, which nobody on this project wrote) on a free loopback port:
/// STARTTLS required (with the certificate it is given), AUTH required over TLS (PLAIN and LOGIN, one user), and
/// every message it accepts kept as JSON in a folder, decoded by Python's own `email` package.
///
/// A test can make it misbehave for the next DATA commands: `refuse` answers 451 (try later), `drop` closes the
/// connection once the message is in, before answering: the message was not accepted, and the client must send
/// it again. Each DATA is logged with what the server did (`attempts`), so a test waits for a fault to happen.
public final class SMTPTestServer: @unchecked Sendable {
    public let port: Int
    /// `accepted/N.json` per message taken; `attempts.jsonl`; the fault files.
    public let directory: URL
    private let peer: PythonPeer

    /// Whether tests that need it run: aiosmtpd is installed, or `RESCIND_REQUIRE_PEERS` is set (CI).
    public static let available = PythonPeer.available("aiosmtpd")

    private static let script = """
        import asyncio, email, json, os, socket, ssl, sys
        from email import policy
        from aiosmtpd.smtp import SMTP, AuthResult
        cert, key, folder, user, password = sys.argv[1:6]
        os.makedirs(os.path.join(folder, "accepted"), exist_ok=True)
        def take(name):
            path = os.path.join(folder, name)
            try:
                left = int(open(path).read() or "0")
            except FileNotFoundError:
                return False
            if left <= 0:
                return False
            open(path, "w").write(str(left - 1))
            return True
        def log(outcome, envelope):
            with open(os.path.join(folder, "attempts.jsonl"), "a") as f:
                f.write(json.dumps({"outcome": outcome, "rcpt_tos": envelope.rcpt_tos}) + "\\n")
        class Handler:
            count = 0
            async def handle_DATA(self, server, session, envelope):
                if take("refuse"):
                    log("refused", envelope)
                    return "451 4.3.0 try again later"
                if take("drop"):
                    log("dropped", envelope)
                    server.transport.close()
                    return "421 closing"
                message = email.message_from_bytes(envelope.original_content, policy=policy.default)
                def part(kind):
                    body = message.get_body(preferencelist=(kind,))
                    return body.get_content() if body is not None else None
                Handler.count += 1
                record = {
                    "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "tls": session.ssl is not None,
                    "login": session.auth_data.decode() if session.auth_data else None,
                    "message_id": message["Message-ID"], "subject": str(message["Subject"]),
                    "from": str(message["From"]), "to": str(message["To"]),
                    "text": part("plain"), "html": part("html"),
                }
                path = os.path.join(folder, "accepted", "%06d.json" % Handler.count)
                json.dump(record, open(path + ".tmp", "w"))
                os.rename(path + ".tmp", path)
                log("accepted", envelope)
                return "250 2.0.0 OK"
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == user.encode() and auth_data.password == password.encode()
            return AuthResult(success=ok, handled=False, auth_data=auth_data.login)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(loop.create_server(
            lambda: SMTP(Handler(), hostname="mail.test", tls_context=context, require_starttls=True,
                         authenticator=authenticate, auth_required=True, auth_require_tls=True), sock=sock))
        print(sock.getsockname()[1], flush=True)
        loop.run_forever()
        """

    /// Starts a server that presents `certificate` (with `privateKey`, PEM files) and takes one user.
    /// - Throws: if python3 or aiosmtpd is missing, or the server does not say its port.
    public init(certificate: String, privateKey: String, username: String, password: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rescind-smtp-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        peer = try PythonPeer(
            script: Self.script, arguments: [certificate, privateKey, directory.path, username, password],
            package: "aiosmtpd")
        port = peer.port
    }

    public func stop() {
        peer.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    /// A message the server accepted, as Python's `email` package reads it.
    public struct Received: Decodable, Sendable {
        public var mailFrom: String
        public var rcptTos: [String]
        /// Whether it came over TLS (STARTTLS), and who authenticated.
        public var tls: Bool
        public var login: String?
        public var messageID: String?
        public var subject: String
        public var from: String
        public var to: String
        public var text: String?
        public var html: String?

        enum CodingKeys: String, CodingKey {
            case tls, login, subject, from, to, text, html
            case mailFrom = "mail_from"
            case rcptTos = "rcpt_tos"
            case messageID = "message_id"
        }
    }

    /// Every message accepted so far, in the order it was.
    public func received() -> [Received] {
        let folder = directory.appendingPathComponent("accepted")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasSuffix(".json") }.sorted()
        return names.compactMap { name in
            (try? Data(contentsOf: folder.appendingPathComponent(name)))
                .flatMap { try? JSONDecoder().decode(Received.self, from: $0) }
        }
    }

    /// What the server did with each DATA so far: `accepted`, `refused`, `dropped`.
    public func attempts() -> [String] {
        let text = (try? String(contentsOf: directory.appendingPathComponent("attempts.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["outcome"] as? String
        }
    }

    /// The next `count` DATA commands are answered 451.
    public func refuseNext(_ count: Int) throws {
        try Data("\(count)".utf8).write(to: directory.appendingPathComponent("refuse"), options: .atomic)
    }

    /// The next `count` messages are dropped once received, before they are accepted.
    public func dropNext(_ count: Int) throws {
        try Data("\(count)".utf8).write(to: directory.appendingPathComponent("drop"), options: .atomic)
    }

    /// Waits until the server has accepted `count` messages (it runs in another process: its folder is read until
    /// they are there).
    /// - Throws: `deadline_exceeded` after `timeout`.
    @discardableResult
    public func waitForMessages(_ count: Int, timeout: Duration = .seconds(30)) async throws -> [Received] {
        var received: [Received] = []
        try await waitUntil("\(count) messages accepted by the SMTP server", timeout: timeout) {
            received = self.received()
            return received.count >= count
        }
        return received
    }
}
