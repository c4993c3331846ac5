import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import RescindAPI
import RescindStorage
import RescindWire

/// The `processor.webhooks` section of Payments' configuration: where the processor's events come in.
///
/// ```json
/// "webhooks": {"listen": {"host": "0.0.0.0", "port": 8443}, "signing_secret_file": "/etc/rescind/stripe-whsec",
///              "certificate": "/etc/rescind/webhooks.pem", "private_key": "/etc/rescind/webhooks.key"}
/// ```
/// HTTPS always: with the given certificate (Stripe needs one its clients trust), else Payments' own. The
/// signing secret (Stripe's `whsec_...` for the endpoint) is read from its file, else from the environment
/// (`RESCIND_STRIPE_WEBHOOK_SECRET`); never from the configuration, never logged.
public struct ProcessorWebhookSettings: Decodable, Sendable {
    public var host: String
    public var port: Int
    public var signingSecretFile: String?
    /// How far a signature's time may be from now: older deliveries are refused as replays (Stripe's default).
    public var toleranceSeconds: Double
    public var certificate: String?
    public var privateKey: String?

    enum CodingKeys: String, CodingKey {
        case listen
        case signingSecretFile = "signing_secret_file"
        case toleranceSeconds = "tolerance_seconds"
        case certificate
        case privateKey = "private_key"
    }

    struct Listen: Decodable {
        var host: String
        var port: Int
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let listen = try c.decode(Listen.self, forKey: .listen)
        host = listen.host
        port = listen.port
        signingSecretFile = try c.decodeIfPresent(String.self, forKey: .signingSecretFile)
        toleranceSeconds = try c.decodeIfPresent(Double.self, forKey: .toleranceSeconds) ?? 300
        certificate = try c.decodeIfPresent(String.self, forKey: .certificate)
        privateKey = try c.decodeIfPresent(String.self, forKey: .privateKey)
        guard (0...65535).contains(port), toleranceSeconds > 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .listen, in: c, debugDescription: "webhooks: a port 0-65535 and a positive tolerance")
        }
        guard (certificate == nil) == (privateKey == nil) else {
            throw DecodingError.dataCorruptedError(
                forKey: .certificate, in: c, debugDescription: "webhooks: certificate and private_key go together")
        }
    }

    /// The endpoint's signing secret.
    /// - Throws: `failed_precondition/webhook_secret_missing`.
    public func signingSecret(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let text =
            signingSecretFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
            ?? environment["RESCIND_STRIPE_WEBHOOK_SECRET"]
        guard let secret = text?.trimmingCharacters(in: .whitespacesAndNewlines), !secret.isEmpty else {
            throw RescindError.failedPrecondition(
                "the processor's webhooks need their signing secret: webhooks.signing_secret_file or "
                    + "RESCIND_STRIPE_WEBHOOK_SECRET", reason: "webhook_secret_missing")
        }
        return secret
    }
}

/// The HTTPS endpoint the processor posts its events to: `POST /webhooks/stripe`.
///
/// A delivery is applied only when its `Stripe-Signature` verifies under the endpoint's secret and was made within
/// the tolerance (older ones are refused as replays: 400, which the processor does not retry). An event is
/// applied once (`PaymentsService.receive`); a repeat answers 200 again, so the processor stops sending it. A
/// database that cannot record it answers 503, so the processor sends it again later.
public struct ProcessorWebhooks: Sendable {
    let payments: PaymentsService
    let secret: String
    let tolerance: TimeInterval
    let logger: Logger

    static let signatureHeader: HTTPField.Name = {
        guard let name = HTTPField.Name("Stripe-Signature") else { preconditionFailure("not a header name") }
        return name
    }()

    public init(payments: PaymentsService, secret: String, tolerance: TimeInterval, logger: Logger) {
        self.payments = payments
        self.secret = secret
        self.tolerance = tolerance
        self.logger = logger
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/webhooks/stripe") { request, _ -> Response in
            do {
                let body = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
                let verdict = WebhookSignature.check(
                    request.headers[Self.signatureHeader] ?? "", body: body, secret: secret, tolerance: tolerance)
                guard verdict == .valid else {
                    logger.warning("processor webhook refused", metadata: ["signature": "\(verdict.rawValue)"])
                    throw RescindError.invalidArgument(
                        verdict == .expired
                            ? "the signature's time is more than \(Int(tolerance)) s from now: refused as a replay"
                            : "the Stripe-Signature header does not sign this body under the endpoint's secret",
                        reason: verdict == .expired ? "signature_expired" : "bad_signature")
                }
                let event = try StripeEvent.parse(body)
                let (applied, duplicate) = try await payments.receive(event)
                logger.info(
                    "processor event",
                    metadata: [
                        "event": "\(applied.id)", "type": "\(applied.type)", "kind": "\(applied.kind)",
                        "order_id": "\(applied.orderID.map { "\($0)" } ?? "")", "charge": "\(applied.charge ?? "")",
                        "needs_attention": "\(applied.needsAttention)", "duplicate": "\(duplicate)",
                    ])
                return Self.json(
                    [
                        "received": true, "duplicate": duplicate, "kind": applied.kind.rawValue,
                        "needs_attention": applied.needsAttention,
                    ], status: .ok)
            } catch let error as RescindError {
                return Self.json(
                    ["error": Self.describe(error)], status: error.retryable ? .serviceUnavailable : .badRequest)
            } catch let error as HTTPError {
                return Self.json(
                    ["error": Self.describe(.invalidArgument("\(error)", reason: "bad_body"))],
                    status: error.status == .contentTooLarge ? .contentTooLarge : .badRequest)
            } catch {
                logger.error("processor event not recorded", metadata: ["error": "\(error)"])
                return Self.json(
                    ["error": Self.describe(.unavailable("the event could not be recorded; send it again"))],
                    status: .serviceUnavailable)
            }
        }
        return router
    }

    /// The endpoint as a lifecycle service, over HTTPS with `certificate` and `privateKey` (PEM files).
    /// - Throws: TLS errors reading the files.
    public func application(
        settings: ProcessorWebhookSettings, certificate: String, privateKey: String
    ) throws -> some ApplicationProtocol {
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: privateKey, format: .pem)))
        let logger = self.logger
        return Application(
            router: router(), server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(
                address: .hostname(settings.host, port: settings.port), serverName: "rescind-payments-webhooks"),
            onServerRunning: { channel in
                logger.info(
                    "processor webhooks serving",
                    metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "path": "/webhooks/stripe"])
            },
            logger: logger)
    }

    private static func describe(_ error: RescindError) -> [String: Any] {
        var body: [String: Any] = ["code": error.code.rawValue, "message": error.message, "retryable": error.retryable]
        if let reason = error.reason { body["reason"] = reason }
        return body
    }

    private static func json(_ object: [String: Any], status: HTTPResponse.Status) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
