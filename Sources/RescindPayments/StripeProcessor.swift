import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RescindWire

/// The store's Stripe account, through Stripe's HTTP API v1: a PaymentIntent with `capture_method=manual` per
/// charge, captured with `amount_to_capture`, cancelled for a void, raised by incremental authorization where the
/// intent allows it, refunded by `payment_intent` and `amount`.
///
/// Every request that changes something carries the call's key as `Idempotency-Key` and in the object's metadata
/// (`rescind_key`), so that `lookup` finds what was done under a key even on a server that ignores the header
/// (localstripe does). Declines are permanent errors; rate limits, Stripe's 5xx and broken connections are
/// `unavailable` (retried by the saga engine with the same key). The secret key is sent in the `Authorization`
/// header only: never logged, never in an error.
public struct StripeProcessor: PaymentProcessor {
    /// Where Stripe is and how to authenticate.
    public struct Configuration: Sendable {
        /// `https://api.stripe.com` for Stripe; a localstripe server's address in tests.
        public var apiBase: String
        public var secretKey: String
        /// How long one HTTP request may take.
        public var timeout: TimeAmount

        public init(apiBase: String = "https://api.stripe.com", secretKey: String, timeout: TimeAmount = .seconds(20)) {
            self.apiBase = apiBase.hasSuffix("/") ? String(apiBase.dropLast()) : apiBase
            self.secretKey = secretKey
            self.timeout = timeout
        }
    }

    let configuration: Configuration
    let client: HTTPClient
    let logger: Logger

    public init(configuration: Configuration, client: HTTPClient = .shared, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.logger = logger
    }

    // MARK: PaymentProcessor

    public func authorize(_ request: ProcessorAuthorization, key: String) async throws -> ProcessorCharge {
        let intent: PaymentIntent = try await post(
            "/v1/payment_intents",
            [
                ("amount", "\(request.amountMinor)"), ("currency", request.currency.lowercased()),
                ("payment_method", request.paymentMethod), ("payment_method_types[]", "card"),
                ("capture_method", "manual"), ("confirm", "true"),
                ("payment_method_options[card][request_incremental_authorization]", "if_available"),
                ("metadata[rescind_key]", key), ("metadata[order_id]", request.orderID.uuidString),
                ("expand[]", "latest_charge"),
            ], key: key)
        return try await charge(of: intent, key: key)
    }

    public func capture(charge: String, amountMinor: Int64, key: String) async throws -> Int64? {
        let intent: PaymentIntent = try await post(
            "/v1/payment_intents/\(charge)/capture",
            [("amount_to_capture", "\(amountMinor)"), ("expand[]", "latest_charge.balance_transaction")], key: key)
        return intent.latestCharge?.balanceTransaction?.fee
    }

    public func void(charge: String, key: String) async throws {
        let _: PaymentIntent = try await post("/v1/payment_intents/\(charge)/cancel", [], key: key)
    }

    public func authorizeMore(charge: String, totalMinor: Int64, key: String) async throws {
        do {
            let _: PaymentIntent = try await post(
                "/v1/payment_intents/\(charge)/increment_authorization", [("amount", "\(totalMinor)")], key: key)
        } catch let error as RescindError where error.code == .notFound || error.reason == "stripe_invalid_request" {
            // An intent (or a server) that cannot take an increment: a second charge takes the rest.
            throw RescindError.failedPrecondition(
                "the processor cannot raise this authorization: \(error.message)", reason: "increment_unsupported")
        }
    }

    public func refund(charge: String, amountMinor: Int64, key: String) async throws -> String {
        let refund: Refund = try await post(
            "/v1/refunds",
            [("payment_intent", charge), ("amount", "\(amountMinor)"), ("metadata[rescind_key]", key)], key: key)
        if refund.status == "failed" || refund.status == "canceled" {
            throw RescindError.failedPrecondition("the processor declined the refund", reason: "refund_declined")
        }
        return refund.id
    }

    public func lookup(_ call: ProcessorCall) async throws -> ProcessorOutcome? {
        switch call.kind {
        case .authorize:
            // Stripe's search is eventually consistent: the intents are listed instead, newest first (unexpanded:
            // a server that lists oldest first, as localstripe does, is read through cheaply), and the one with
            // the call's key in its metadata is the call's.
            var after: String?
            for _ in 0..<50 {
                var path = "/v1/payment_intents?limit=100"
                if let after { path += "&starting_after=\(after)" }
                let page: Page<PaymentIntent> = try await get(path)
                if let found = page.data.first(where: { $0.metadata?["rescind_key"] == call.key }) {
                    // A declined authorization leaves an intent behind too: it made no charge.
                    guard found.status == "requires_capture" || found.status == "succeeded" else { return nil }
                    let intent: PaymentIntent = try await get("/v1/payment_intents/\(found.id)?expand[]=latest_charge")
                    return ProcessorOutcome(charge: try await charge(of: intent, key: call.key))
                }
                guard page.hasMore, let last = page.data.last else { return nil }
                after = last.id
            }
            return nil
        case .capture:
            let intent: PaymentIntent = try await get(
                "/v1/payment_intents/\(call.charge ?? "")?expand[]=latest_charge.balance_transaction")
            guard intent.status == "succeeded" else { return nil }
            return ProcessorOutcome(feeMinor: intent.latestCharge?.balanceTransaction?.fee)
        case .void:
            let intent: PaymentIntent = try await get("/v1/payment_intents/\(call.charge ?? "")")
            return intent.status == "canceled" ? ProcessorOutcome() : nil
        case .authorizeMore:
            let intent: PaymentIntent = try await get("/v1/payment_intents/\(call.charge ?? "")")
            return intent.amount >= call.amountMinor ? ProcessorOutcome() : nil
        case .refund:
            let page: Page<Refund> = try await get("/v1/refunds?payment_intent=\(call.charge ?? "")&limit=100")
            return page.data.first { $0.metadata?["rescind_key"] == call.key }.map { ProcessorOutcome(refundID: $0.id) }
        default:
            return nil
        }
    }

    public func charges(since: Date?) async throws -> [ProcessorChargeState] {
        do {
            return try await intents(created: since.map { Int64($0.timeIntervalSince1970) })
        } catch let error as RescindError where since != nil && error.reason == "stripe_invalid_request" {
            // A server that cannot filter by creation (localstripe): every intent, filtered here.
            return try await intents(created: nil).filter { $0.createdAt >= since ?? .distantPast }
        }
    }

    /// Rescind's intents (with its key in their metadata), created at or after `created` (Unix seconds).
    private func intents(created: Int64?) async throws -> [ProcessorChargeState] {
        var states: [ProcessorChargeState] = []
        var after: String?
        while true {
            var path = "/v1/payment_intents?limit=100&expand[]=data.latest_charge.refunds"
            if let created { path += "&created[gte]=\(created)" }
            if let after { path += "&starting_after=\(after)" }
            let page: Page<PaymentIntent> = try await get(path)
            states += page.data.filter { $0.metadata?["rescind_key"] != nil }.compactMap(\.state)
            guard page.hasMore, let last = page.data.last else { return states }
            after = last.id
        }
    }

    public func charge(_ id: String) async throws -> ProcessorChargeState? {
        do {
            let intent: PaymentIntent = try await get("/v1/payment_intents/\(id)?expand[]=latest_charge.refunds")
            return intent.state
        } catch let error as RescindError where error.code == .notFound {
            return nil
        }
    }

    // MARK: What Stripe answers

    struct Page<Item: Decodable>: Decodable {
        var data: [Item]
        var hasMore: Bool

        enum CodingKeys: String, CodingKey {
            case data
            case hasMore = "has_more"
        }
    }

    struct PaymentIntent: Decodable {
        var id: String
        var amount: Int64
        /// What was captured; Stripe says it, localstripe does not.
        var amountReceived: Int64?
        var status: String
        var created: Int64?
        var paymentMethod: String?
        var metadata: [String: String]?
        /// Present when the request expanded it.
        var latestCharge: Charge?

        enum CodingKeys: String, CodingKey {
            case id, amount, status, metadata, created
            case amountReceived = "amount_received"
            case paymentMethod = "payment_method"
            case latestCharge = "latest_charge"
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            amount = try c.decode(Int64.self, forKey: .amount)
            amountReceived = try? c.decodeIfPresent(Int64.self, forKey: .amountReceived)
            status = try c.decode(String.self, forKey: .status)
            created = try? c.decodeIfPresent(Int64.self, forKey: .created)
            paymentMethod = try? c.decodeIfPresent(String.self, forKey: .paymentMethod)
            metadata = try? c.decodeIfPresent([String: String].self, forKey: .metadata)
            latestCharge = try? c.decodeIfPresent(Charge.self, forKey: .latestCharge)
        }

        /// The intent in Payments' terms; `nil` for one that never held money (declined, never confirmed).
        ///
        /// Stripe says what was captured (`amount_received`) and what was refunded (the charge's
        /// `amount_refunded`). A server that does not say the first (localstripe) records a partial capture's
        /// remainder as a refund without Rescind's key: there, such refunds are what was released, and the
        /// refunds with Rescind's key what was refunded.
        var state: ProcessorChargeState? {
            let status = ProcessorChargeState.status(ofIntent: status)
            guard ["authorized", "captured", "voided"].contains(status) else { return nil }
            let refunds = (latestCharge?.refunds?.data ?? []).filter {
                $0.status != "failed" && $0.status != "canceled"
            }
            let keyed = refunds.filter { $0.metadata?["rescind_key"] != nil }.reduce(0) { $0 + ($1.amount ?? 0) }
            let unkeyed = refunds.filter { $0.metadata?["rescind_key"] == nil }.reduce(0) { $0 + ($1.amount ?? 0) }
            var captured: Int64 = 0
            var refunded: Int64 = 0
            if status == "captured" {
                if let amountReceived {
                    captured = amountReceived
                    refunded = latestCharge?.amountRefunded ?? keyed + unkeyed
                } else {
                    captured = (latestCharge?.amount ?? amount) - unkeyed
                    refunded = keyed
                }
            }
            return ProcessorChargeState(
                id: id, orderID: metadata?["order_id"].flatMap(UUID.init(uuidString:)), key: metadata?["rescind_key"],
                status: status, amountMinor: amount, capturedMinor: captured, refundedMinor: refunded,
                createdAt: Date(timeIntervalSince1970: TimeInterval(created ?? 0)))
        }
    }

    struct Charge: Decodable {
        struct Details: Decodable {
            struct Card: Decodable {
                struct Checks: Decodable {
                    var addressLine1: String?
                    var postalCode: String?
                    enum CodingKeys: String, CodingKey {
                        case addressLine1 = "address_line1_check"
                        case postalCode = "address_postal_code_check"
                    }
                }
                var last4: String?
                var fingerprint: String?
                var checks: Checks?
            }
            var card: Card?
        }
        struct Outcome: Decodable {
            var riskLevel: String?
            enum CodingKeys: String, CodingKey { case riskLevel = "risk_level" }
        }
        struct BalanceTransaction: Decodable {
            var fee: Int64?
        }

        var details: Details?
        var outcome: Outcome?
        /// Present when the request expanded it.
        var balanceTransaction: BalanceTransaction?
        var amount: Int64?
        var amountRefunded: Int64?
        /// Present when the request expanded it (Stripe), or always (localstripe).
        var refunds: Page<Refund>?

        enum CodingKeys: String, CodingKey {
            case outcome, amount, refunds
            case details = "payment_method_details"
            case balanceTransaction = "balance_transaction"
            case amountRefunded = "amount_refunded"
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            details = try? c.decodeIfPresent(Details.self, forKey: .details)
            outcome = try? c.decodeIfPresent(Outcome.self, forKey: .outcome)
            balanceTransaction = try? c.decodeIfPresent(BalanceTransaction.self, forKey: .balanceTransaction)
            amount = try? c.decodeIfPresent(Int64.self, forKey: .amount)
            amountRefunded = try? c.decodeIfPresent(Int64.self, forKey: .amountRefunded)
            refunds = try? c.decodeIfPresent(Page<Refund>.self, forKey: .refunds)
        }
    }

    struct PaymentMethod: Decodable {
        var card: Charge.Details.Card?
    }

    struct Refund: Decodable {
        var id: String
        var status: String?
        var amount: Int64?
        var metadata: [String: String]?
    }

    struct StripeError: Decodable {
        struct Body: Decodable {
            var type: String?
            var code: String?
            var message: String?
        }
        var error: Body
    }

    /// What the processor says of the card of an authorized intent.
    private func charge(of intent: PaymentIntent, key: String) async throws -> ProcessorCharge {
        guard intent.status == "requires_capture" || intent.status == "succeeded" else {
            throw RescindError.failedPrecondition(
                "the card was declined (the payment is \(intent.status))", reason: "card_declined")
        }
        var card = intent.latestCharge?.details?.card
        if card?.last4 == nil, let method = intent.paymentMethod {
            let details: PaymentMethod = try await get("/v1/payment_methods/\(method)")
            card = details.card
        }
        let checks = [card?.checks?.addressLine1, card?.checks?.postalCode]
        let risk = intent.latestCharge?.outcome?.riskLevel
        return ProcessorCharge(
            id: intent.id, paymentMethod: intent.paymentMethod ?? "", amountMinor: intent.amount,
            last4: card?.last4 ?? "----", fingerprint: card?.fingerprint,
            riskSignal: risk == "elevated" || risk == "highest" ? risk : nil,
            addressCheck: checks.contains("fail") ? "fail" : nil)
    }

    // MARK: HTTP

    private func post<T: Decodable>(_ path: String, _ form: [(String, String)], key: String) async throws -> T {
        var request = HTTPClientRequest(url: configuration.apiBase + path)
        request.method = .POST
        request.headers.add(name: "Idempotency-Key", value: key)
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        let body = form.map { "\(Self.formEncode($0.0))=\(Self.formEncode($0.1))" }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: body))
        return try await send(request)
    }

    private func get<T: Decodable>(_ path: String) async throws -> T {
        var request = HTTPClientRequest(url: configuration.apiBase + path)
        request.method = .GET
        return try await send(request)
    }

    private func send<T: Decodable>(_ request: HTTPClientRequest) async throws -> T {
        var request = request
        request.headers.add(name: "Authorization", value: "Bearer \(configuration.secretKey)")
        let path = request.url.dropFirst(configuration.apiBase.count).prefix { $0 != "?" }
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await client.execute(request, timeout: configuration.timeout)
            body = try await response.body.collect(upTo: 4 << 20)
        } catch {
            // No answer: the request may or may not have been done; the call stays pending and is looked up.
            logger.warning("the processor did not answer", metadata: ["path": "\(path)", "error": "\(error)"])
            throw RescindError.unavailable("the card processor did not answer", reason: "processor_unavailable")
        }
        let status = response.status.code
        if (200..<300).contains(status) {
            do {
                return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
            } catch {
                throw RescindError.unavailable(
                    "the card processor's answer to \(path) could not be read", reason: "processor_bad_answer")
            }
        }
        let stripe = try? JSONDecoder().decode(StripeError.self, from: Data(body.readableBytesView))
        let message = stripe?.error.message ?? "HTTP \(status)"
        logger.info(
            "the processor refused",
            metadata: [
                "path": "\(path)", "status": "\(status)", "type": "\(stripe?.error.type ?? "")",
                "code": "\(stripe?.error.code ?? "")",
            ])
        // A new intent (or a card's details) for a payment method the processor does not know: localstripe answers
        // 404, Stripe 400 resource_missing.
        if path == "/v1/payment_intents" || path.hasPrefix("/v1/payment_methods"),
            status == 404 || (status == 400 && stripe?.error.code == "resource_missing")
        {
            throw RescindError.invalidArgument(
                "the processor has no such payment method: \(message)", reason: "unknown_payment_method")
        }
        switch status {
        case 402:
            // A card error: the card or its issuer said no, for good.
            let code = stripe?.error.code ?? "card_declined"
            throw RescindError.failedPrecondition(
                "the card was declined: \(message)",
                reason: code == "card_declined" || code == "insufficient_funds" ? "card_declined" : code)
        case 404:
            throw RescindError.notFound("the processor has no \(path)", reason: "stripe_not_found")
        case 429, 500...:
            throw RescindError.unavailable(
                "the card processor is busy or failing (HTTP \(status))", reason: "processor_unavailable")
        case 401, 403:
            // The store's key is wrong or lacks a permission: nothing a retry fixes until an operator does.
            throw RescindError.unavailable(
                "the card processor refused the store's key (HTTP \(status))", reason: "processor_unauthorized")
        default:
            throw RescindError.failedPrecondition(
                "the card processor refused: \(message)", reason: "stripe_invalid_request")
        }
    }

    /// `application/x-www-form-urlencoded`, as Stripe reads it.
    static func formEncode(_ text: String) -> String {
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
