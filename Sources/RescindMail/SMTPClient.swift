import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// The store's SMTP server, as the `smtp` section of a `mail` configuration names it.
///
/// ```json
/// "smtp": {"host": "smtp.store.example", "port": 587, "starttls": true, "username": "rescind",
///          "password_file": "/etc/rescind/smtp-password", "ca_file": "/etc/rescind/mail-ca.pem"}
/// ```
/// STARTTLS is required unless `starttls` is `false` (a relay on the same host); the server's certificate is
/// checked against the system's roots, or `ca_file`. With a `username`, Rescind authenticates (AUTH PLAIN, else
/// LOGIN, whichever the server offers) with the password read from `password_file`, never from the file itself.
public struct SMTPSettings: Codable, Sendable, Hashable {
    public var host: String
    public var port: Int
    public var starttls: Bool
    public var username: String?
    public var passwordFile: String?
    /// A CA certificate (PEM) to trust for the server, instead of the system's roots.
    public var caFile: String?
    /// How long one submission may take, connection to `QUIT`.
    public var timeoutSeconds: Double
    /// The name Rescind gives itself in `EHLO`.
    public var heloName: String

    public init(
        host: String, port: Int = 587, starttls: Bool = true, username: String? = nil, passwordFile: String? = nil,
        caFile: String? = nil, timeoutSeconds: Double = 30, heloName: String = "rescind.localhost"
    ) {
        self.host = host
        self.port = port
        self.starttls = starttls
        self.username = username
        self.passwordFile = passwordFile
        self.caFile = caFile
        self.timeoutSeconds = timeoutSeconds
        self.heloName = heloName
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        host = try c.decode(String.self, forKey: .host)
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 587
        starttls = try c.decodeIfPresent(Bool.self, forKey: .starttls) ?? true
        username = try c.decodeIfPresent(String.self, forKey: .username)
        passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile)
        caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? 30
        heloName = try c.decodeIfPresent(String.self, forKey: .heloName) ?? "rescind.localhost"
        guard (1...65535).contains(port), timeoutSeconds > 0, !host.isEmpty else {
            throw DecodingError.dataCorruptedError(
                forKey: .port, in: c, debugDescription: "smtp: a host, a port 1-65535 and a positive timeout")
        }
        guard (username == nil) == (passwordFile == nil) else {
            throw DecodingError.dataCorruptedError(
                forKey: .username, in: c, debugDescription: "smtp: username and password_file go together")
        }
    }

    enum CodingKeys: String, CodingKey {
        case host, port, starttls, username
        case passwordFile = "password_file"
        case caFile = "ca_file"
        case timeoutSeconds = "timeout_seconds"
        case heloName = "helo_name"
    }
}

/// What the server said no to, or that it could not be reached.
public struct SMTPError: Error, CustomStringConvertible, Sendable {
    /// The server's reply code; 0 when it never answered (a refused or dropped connection, a timeout).
    public var code: Int
    public var message: String

    /// Whether the server refused this message itself (a 5xx to its recipient or its content): sent again, it
    /// would be refused again. A 5xx elsewhere (AUTH, MAIL FROM) is the store's configuration, which a person
    /// fixes: such a message is tried again later.
    public var messageRejected: Bool

    /// A 5xx reply.
    public var permanent: Bool { (500..<600).contains(code) }

    public var description: String { code == 0 ? "SMTP: \(message)" : "SMTP \(code): \(message)" }

    public init(code: Int, message: String, messageRejected: Bool = false) {
        self.code = code
        self.message = message
        self.messageRejected = messageRejected
    }
}

/// Submits messages to an SMTP server (RFC 5321), one connection per submission: EHLO, STARTTLS and EHLO again,
/// AUTH, MAIL FROM, RCPT TO, DATA (dot-stuffed), QUIT. A message counts as submitted only once the server
/// answered 250 to its DATA; anything less throws, and the caller sends it again (with the same Message-ID).
public struct SMTPClient: Sendable {
    public let settings: SMTPSettings
    private let password: String?
    private let tls: NIOSSLContext?

    /// - Throws: `SMTPError` when the password file cannot be read; TLS errors for a bad `ca_file`.
    public init(settings: SMTPSettings) throws {
        self.settings = settings
        if let file = settings.passwordFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw SMTPError(code: 0, message: "cannot read smtp.password_file \(file)")
            }
            password = text.trimmingCharacters(in: .newlines)
        } else {
            password = nil
        }
        if settings.starttls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let ca = settings.caFile { configuration.trustRoots = .file(ca) }
            tls = try NIOSSLContext(configuration: configuration)
        } else {
            tls = nil
        }
    }

    /// Submits `message` (RFC 5322, CRLF line ends) from `from` to each of `to`.
    /// - Throws: `SMTPError`.
    public func send(from: String, to: [String], message: Data) async throws {
        let timeout = settings.timeoutSeconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.submit(from: from, to: to, message: message) }
            group.addTask {
                try await Task.sleep(for: .seconds(timeout))
                throw SMTPError(code: 0, message: "no answer within \(timeout) s")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func submit(from: String, to: [String], message: Data) async throws {
        do {
            try await converse(from: from, to: to, message: message)
        } catch let error as SMTPError {
            throw error
        } catch {
            // A TLS handshake that failed (an untrusted certificate, say), a broken connection.
            throw SMTPError(code: 0, message: "\(settings.host):\(settings.port): \(error)")
        }
    }

    private func converse(from: String, to: [String], message: Data) async throws {
        let channel: NIOAsyncChannel<String, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(Int64(settings.timeoutSeconds)))
                .connect(host: settings.host, port: settings.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SMTPLineDecoder()))
                        return try NIOAsyncChannel<String, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw SMTPError(code: 0, message: "cannot connect to \(settings.host):\(settings.port): \(error)")
        }
        try await withTaskCancellationHandler {
            try await channel.executeThenClose { inbound, outbound in
                var session = Session(lines: inbound.makeAsyncIterator(), outbound: outbound)
                try await session.expect(220, after: nil)
                var features = try await session.expect(250, after: "EHLO \(settings.heloName)")
                if let tls {
                    guard features.contains(where: { $0.uppercased().hasPrefix("STARTTLS") }) else {
                        throw SMTPError(
                            code: 0, message: "the server does not offer STARTTLS, which the configuration requires")
                    }
                    try await session.expect(220, after: "STARTTLS")
                    let handler = try NIOSSLClientHandler(context: tls, serverHostname: Self.sniName(settings.host))
                    try await channel.channel.pipeline.addHandler(handler, position: .first)
                    features = try await session.expect(250, after: "EHLO \(settings.heloName)")
                }
                if let username = settings.username, let password {
                    let offered = features.first { $0.uppercased().hasPrefix("AUTH") }?.uppercased() ?? ""
                    if offered.contains("PLAIN") || !offered.contains("LOGIN") {
                        let token = Data("\0\(username)\0\(password)".utf8).base64EncodedString()
                        try await session.expect(235, after: "AUTH PLAIN \(token)", secret: true)
                    } else {
                        try await session.expect(334, after: "AUTH LOGIN")
                        try await session.expect(334, after: Data(username.utf8).base64EncodedString(), secret: true)
                        try await session.expect(235, after: Data(password.utf8).base64EncodedString(), secret: true)
                    }
                }
                try await session.expect(250, after: "MAIL FROM:<\(from)>")
                for recipient in to {
                    try await session.expect(250, 251, after: "RCPT TO:<\(recipient)>", aboutTheMessage: true)
                }
                try await session.expect(354, after: "DATA")
                try await session.expect(250, after: Self.dotStuffed(message) + ".", raw: true, aboutTheMessage: true)
                // Submitted: a QUIT that goes unanswered changes nothing.
                _ = try? await session.expect(221, after: "QUIT")
            }
        } onCancel: {
            channel.channel.close(promise: nil)
        }
    }

    /// A host name for SNI (an IP address has none).
    static func sniName(_ host: String) -> String? {
        host.allSatisfy { $0.isNumber || $0 == "." || $0 == ":" } ? nil : host
    }

    /// The message with CRLF line ends and every line that starts with "." doubled (RFC 5321 4.5.2), ending in
    /// CRLF.
    static func dotStuffed(_ message: Data) -> String {
        let text = String(decoding: message, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines.map { ($0.hasPrefix(".") ? "." + $0 : $0) + "\r\n" }.joined()
    }

    /// One conversation: a command, then the reply it must get.
    private struct Session {
        var lines: NIOAsyncChannelInboundStream<String>.AsyncIterator
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

        /// Sends `command` (none: only reads the greeting) and reads its reply (`NNN-...` lines, then `NNN ...`).
        /// - Returns: the reply's lines after the code (EHLO's: the server's features).
        /// - Throws: `SMTPError` with the server's code when it is not one of `codes`, or 0 when the connection
        ///   ended.
        @discardableResult
        mutating func expect(
            _ codes: Int..., after command: String?, secret: Bool = false, raw: Bool = false,
            aboutTheMessage: Bool = false
        ) async throws -> [String] {
            if let command { try await outbound.write(ByteBuffer(string: command + "\r\n")) }
            var text: [String] = []
            while true {
                guard let line = try await lines.next() else {
                    throw SMTPError(
                        code: 0,
                        message: "the server closed the connection"
                            + (command.map { " after \(Self.name(of: $0, secret: secret, raw: raw))" } ?? ""))
                }
                let code = Int(line.prefix(3)) ?? 0
                text.append(String(line.dropFirst(4)))
                guard line.count > 3, line[line.index(line.startIndex, offsetBy: 3)] == "-" else {
                    guard codes.contains(code) else {
                        throw SMTPError(
                            code: code,
                            message: "\(text.joined(separator: " ")) (after "
                                + "\(command.map { Self.name(of: $0, secret: secret, raw: raw) } ?? "connecting"))",
                            messageRejected: aboutTheMessage && (500..<600).contains(code))
                    }
                    return text
                }
            }
        }

        /// What a command is called in an error: never a credential nor a message's text.
        static func name(of command: String, secret: Bool, raw: Bool) -> String {
            if raw { return "the message" }
            if secret { return command.hasPrefix("AUTH") ? "AUTH" : "the credentials" }
            return command
        }
    }
}

/// Splits what the server sends into lines, without their CR LF.
struct SMTPLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let end = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            guard buffer.readableBytes < 4096 else { throw SMTPError(code: 0, message: "a reply line too long") }
            return .needMoreData
        }
        let length = end - buffer.readerIndex
        var line = buffer.readString(length: length) ?? ""
        buffer.moveReaderIndex(forwardBy: 1)
        if line.hasSuffix("\r") { line.removeLast() }
        context.fireChannelRead(Self.wrapInboundOut(line))
        return .continue
    }
}
