import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RescindStorage
import RescindWire

/// The `processor` section of Payments' configuration: which processor, and the store's fee schedule.
///
/// ```json
/// "processor": {"kind": "simulator", "fee_basis_points": 290, "fixed_fee": 30}
/// "processor": {"kind": "stripe", "api_base": "https://api.stripe.com", "secret_key_file": "/etc/rescind/stripe.key"}
/// ```
/// Stripe's secret key is read from `secret_key_file`, else from the environment (`RESCIND_STRIPE_SECRET_KEY`):
/// never from the configuration itself, so it is never in a file that is shown or copied.
public struct ProcessorSettings: Decodable, Sendable {
    public struct Kind: ExtensibleValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The embedded default.
        public static let simulator = Kind("simulator")
        public static let stripe = Kind("stripe")

        public static let known: [Kind] = [.simulator, .stripe]
    }

    public var kind: Kind
    /// The simulator's settings, and the fee schedule of any processor (what a capture costs when the processor
    /// does not say).
    public var simulator: SimulatedProcessor.Configuration
    public var apiBase: String
    public var secretKeyFile: String?
    /// How long an authorization may stay pending (its request not come back) before Payments settles it:
    /// cancels what the processor authorized and answers a late repeat `authorization_abandoned`. Longer than
    /// Orders retries a step (900 s).
    public var abandonAuthorizationsAfterSeconds: Double
    /// How long Payments waits for one answer of the processor's API (Stripe); unanswered, the call is looked
    /// up by its key and made again.
    public var timeoutSeconds: Double
    /// Where the processor's events come in (absent: Payments takes none).
    public var webhooks: ProcessorWebhookSettings?

    /// The store's fee schedule, whichever the processor.
    public var fees: FeeSchedule { simulator.fees }

    public init(kind: Kind = .simulator, simulator: SimulatedProcessor.Configuration = .init()) {
        self.kind = kind
        self.simulator = simulator
        self.apiBase = "https://api.stripe.com"
        self.abandonAuthorizationsAfterSeconds = 900
        self.timeoutSeconds = 20
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case apiBase = "api_base"
        case secretKeyFile = "secret_key_file"
        case abandonAuthorizationsAfterSeconds = "abandon_authorizations_after_seconds"
        case webhooks
        case timeoutSeconds = "timeout_seconds"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .simulator
        guard Kind.known.contains(kind) else {
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: c, debugDescription: "processor.kind is simulator or stripe, not \(kind)")
        }
        simulator = try SimulatedProcessor.Configuration(from: decoder)
        apiBase = try c.decodeIfPresent(String.self, forKey: .apiBase) ?? "https://api.stripe.com"
        secretKeyFile = try c.decodeIfPresent(String.self, forKey: .secretKeyFile)
        webhooks = try c.decodeIfPresent(ProcessorWebhookSettings.self, forKey: .webhooks)
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? 20
        guard timeoutSeconds > 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .timeoutSeconds, in: c, debugDescription: "processor.timeout_seconds must be positive")
        }
        abandonAuthorizationsAfterSeconds =
            try c.decodeIfPresent(Double.self, forKey: .abandonAuthorizationsAfterSeconds) ?? 900
        guard abandonAuthorizationsAfterSeconds > 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .abandonAuthorizationsAfterSeconds, in: c,
                debugDescription: "processor.abandon_authorizations_after_seconds must be positive")
        }
        guard URL(string: apiBase)?.scheme?.hasPrefix("http") == true else {
            throw DecodingError.dataCorruptedError(
                forKey: .apiBase, in: c, debugDescription: "processor.api_base must be an http(s) URL")
        }
    }

    /// The processor these settings name.
    /// - Throws: `failed_precondition/processor_key_missing` for Stripe without a readable key; database errors
    ///   of the simulator's database.
    public func makeProcessor(
        payments storage: StorageLocation, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger
    ) async throws -> any PaymentProcessor {
        switch kind {
        case .stripe:
            return StripeProcessor(
                configuration: .init(
                    apiBase: apiBase, secretKey: try secretKey(environment),
                    timeout: .milliseconds(Int64(timeoutSeconds * 1_000))),
                logger: logger)
        default:
            return try await SimulatedProcessor.open(configuration: simulator, besidePayments: storage, logger: logger)
        }
    }

    private func secretKey(_ environment: [String: String]) throws -> String {
        var key: String?
        if let secretKeyFile {
            guard let text = try? String(contentsOfFile: secretKeyFile, encoding: .utf8) else {
                throw RescindError.failedPrecondition(
                    "cannot read processor.secret_key_file \(secretKeyFile)", reason: "processor_key_missing")
            }
            key = text
        } else {
            key = environment["RESCIND_STRIPE_SECRET_KEY"]
        }
        guard let key = key?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty else {
            throw RescindError.failedPrecondition(
                "Stripe needs its secret key: processor.secret_key_file or RESCIND_STRIPE_SECRET_KEY",
                reason: "processor_key_missing")
        }
        return key
    }
}
