import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RescindAPI
import RescindTransport
import RescindWire

/// A request's context: Hummingbird's, and the client's address for its rate limit.
public struct StorefrontContext: Hummingbird.RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// The customer-facing storefront: the order page at `/o/{token}` (HTML, no JavaScript) and a JSON API under
/// `/api/orders/{token}`, both over Orders' customer methods, which check the token. It keeps no state but its
/// rate-limit windows (its own: each replica counts for itself) and the key of its CSRF tokens (configured, so
/// that replicas share it, or drawn).
public struct Storefront: Sendable {
    let configuration: StorefrontConfiguration
    let orders: any RPCCaller
    let logger: Logger
    let csrf: CSRFGuard
    let limiter = RateLimiter()

    /// - Throws: `StorefrontConfigurationError` if the configured CSRF key cannot be read.
    public init(configuration: StorefrontConfiguration, orders: any RPCCaller, logger: Logger) throws {
        self.configuration = configuration
        self.orders = orders
        self.logger = logger
        self.csrf = CSRFGuard(key: try configuration.csrfKey())
    }

    /// Every route, behind the security headers.
    public func router() -> Router<StorefrontContext> {
        let router = Router(context: StorefrontContext.self)
        router.add(middleware: SecurityHeadersMiddleware())
        router.add(middleware: MethodNotAllowedMiddleware())
        router.get("/healthz") { _, _ in "ok\n" }
        router.get("/o/:token") { request, context in
            try await limited(request, context, html: true) { token in try await page(request, token: token) }
        }
        router.post("/o/:token/cancel") { request, context in
            try await limited(request, context, html: true) { token in
                try await cancelForm(request, context, token: token)
            }
        }
        router.post("/o/:token/edit") { request, context in
            try await limited(request, context, html: true) { token in
                try await editForm(request, context, token: token)
            }
        }
        router.post("/o/:token/reorder") { request, context in
            try await limited(request, context, html: true) { token in
                try await reorderForm(request, context, token: token)
            }
        }
        router.post("/api/orders/:token/reorder") { request, context in
            try await limited(request, context, html: false) { token in
                let order = try await ask(
                    CustomerMethods.reorder, CustomerRequest(token: token),
                    idempotencyKey: try idempotencyKey(request.headers[HeaderName.idempotencyKey]))
                logger.info("customer reordered", metadata: ["order_id": "\(order.id)", "via": "api"])
                return try json(order, status: .created)
            }
        }
        router.get("/api/orders/:token") { request, context in
            try await limited(request, context, html: false) { token in
                try json(try await ask(CustomerMethods.getOrder, CustomerRequest(token: token)))
            }
        }
        router.get("/api/orders/:token/can-cancel") { request, context in
            try await limited(request, context, html: false) { token in
                try json(try await ask(CustomerMethods.canCancel, CustomerRequest(token: token)))
            }
        }
        router.get("/api/orders/:token/can-edit") { request, context in
            try await limited(request, context, html: false) { token in
                try json(try await ask(CustomerMethods.canEdit, CustomerRequest(token: token)))
            }
        }
        router.post("/api/orders/:token/edit") { request, context in
            try await limited(request, context, html: false) { token in
                var body = try await jsonBody(EditBody.self, request, context)
                body.note = body.note?.trimmingCharacters(in: .whitespacesAndNewlines)
                let order = try await ask(
                    CustomerMethods.edit,
                    CustomerEditRequest(
                        token: token, lines: body.lines, note: body.note?.isEmpty == false ? body.note : nil),
                    idempotencyKey: try idempotencyKey(request.headers[HeaderName.idempotencyKey]))
                logger.info("customer changed the order", metadata: ["order_id": "\(order.id)", "via": "api"])
                return try json(order)
            }
        }
        router.post("/api/orders/:token/cancel") { request, context in
            try await limited(request, context, html: false) { token in
                var body = try await jsonBody(CancelBody.self, request, context)
                body.note = body.note?.trimmingCharacters(in: .whitespacesAndNewlines)
                let accepted = try await ask(
                    CustomerMethods.cancel,
                    CustomerCancelRequest(
                        token: token, note: body.note?.isEmpty == false ? body.note : nil, lines: body.lines),
                    idempotencyKey: try idempotencyKey(request.headers[HeaderName.idempotencyKey]))
                logAccepted(accepted, via: "api")
                return try json(accepted, status: .accepted)
            }
        }
        return router
    }

    /// A JSON request body.
    /// - Throws: `DecodingError` for a body that is not JSON or not of the endpoint's shape (answered
    ///   `invalid_argument/bad_body` by `limited`, in the API's JSON error like any other).
    private func jsonBody<T: Decodable>(_ type: T.Type, _ request: Request, _ context: StorefrontContext)
        async throws -> T
    {
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        return try JSONDecoder().decode(type, from: Data(body.readableBytesView))
    }

    /// Calls an Orders customer method with the client's default deadline.
    private func ask<Request, Response>(
        _ method: RescindAPI.Method<Request, Response>, _ request: Request, idempotencyKey: String? = nil
    ) async throws -> Response {
        try await orders.call(method, request, idempotencyKey: idempotencyKey, timeout: nil)
    }

    /// The body of `POST /api/orders/{token}/cancel`. A field is given or left out: `null` is not a value of it
    /// (the OpenAPI document says so), and is refused rather than read as absent.
    struct CancelBody: Decodable {
        var note: String?
        var lines: [LineQuantity]?

        enum CodingKeys: String, CodingKey { case note, lines }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            note = try c.present(String.self, .note)
            lines = try c.present([LineQuantity].self, .lines)
        }
    }

    /// The body of `POST /api/orders/{token}/edit`.
    struct EditBody: Decodable {
        var lines: [LineQuantity]
        var note: String?

        enum CodingKeys: String, CodingKey { case note, lines }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            lines = try c.decode([LineQuantity].self, forKey: .lines)
            note = try c.present(String.self, .note)
        }
    }

    /// The form of the order page.
    struct CancelForm: Decodable {
        var csrf: String?
        var reason: String?
        var requestID: String?

        enum CodingKeys: String, CodingKey {
            case csrf, reason
            case requestID = "request_id"
        }
    }

    // MARK: Pages

    private func page(_ request: Request, token: String) async throws -> Response {
        let view = try await ask(CustomerMethods.view, CustomerRequest(token: token))
        let page = OrderPage(
            order: view.order, decision: view.canCancel, editDecision: view.canEdit,
            language: language(request, order: view.order),
            storeName: configuration.storeName, timeZone: TimeZone(identifier: configuration.timeZone) ?? .gmt,
            token: token, csrf: csrf.token(for: token, purpose: "cancel"),
            reorderCSRF: csrf.token(for: token, purpose: "reorder"), editCSRF: csrf.token(for: token, purpose: "edit"),
            notice: request.uri.queryParameters["notice"].map(String.init))
        return html(page.render())
    }

    private func cancelForm(_ request: Request, _ context: StorefrontContext, token: String) async throws -> Response {
        let body = try await request.body.collect(upTo: 16_384)
        let form = try URLEncodedFormDecoder().decode(CancelForm.self, from: String(buffer: body))
        guard csrf.verify(form.csrf, for: token, purpose: "cancel") else {
            return expiredForm(request)
        }
        let reason = form.reason?.trimmingCharacters(in: .whitespacesAndNewlines)
        // The form's own id: a second press of the button is the same cancellation.
        let key = form.requestID.flatMap(UUID.init(uuidString:)).map { "storefront-\($0.uuidString)" }
        let accepted = try await ask(
            CustomerMethods.cancel,
            CustomerCancelRequest(token: token, note: reason?.isEmpty == false ? reason : nil),
            idempotencyKey: key)
        logAccepted(accepted, via: "page")
        var response = Response(status: .seeOther)
        response.headers[.location] = "/o/\(token)?notice=\(accepted.sagaID == nil ? "requested" : "cancelling")"
        return response
    }

    /// The page's Edit form: one `quantity.SKU` field per SKU, the units it should have; those that differ from
    /// what is open are the changes.
    private func editForm(_ request: Request, _ context: StorefrontContext, token: String) async throws -> Response {
        let body = try await request.body.collect(upTo: 65_536)
        let fields = try URLEncodedFormDecoder().decode([String: String].self, from: String(buffer: body))
        guard csrf.verify(fields["csrf"], for: token, purpose: "edit") else { return expiredForm(request) }
        let open = try await ask(CustomerMethods.getOrder, CustomerRequest(token: token)).openUnits
        var lines: [LineQuantity] = []
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) where name.hasPrefix(OrderPage.quantityField) {
            let sku = String(name.dropFirst(OrderPage.quantityField.count))
            guard let quantity = Int64(value.trimmingCharacters(in: .whitespaces)), quantity >= 0 else {
                throw RescindError.invalidArgument(
                    language(request) == .nb
                        ? "Antallet må være et helt tall, 0 eller mer." : "A quantity is a whole number, 0 or more.",
                    reason: "bad_changes")
            }
            if open[sku] != quantity { lines.append(LineQuantity(sku: sku, quantity: quantity)) }
        }
        guard !lines.isEmpty else {
            var response = Response(status: .seeOther)
            response.headers[.location] = "/o/\(token)?notice=unchanged"
            return response
        }
        let key = fields["request_id"].flatMap(UUID.init(uuidString:)).map { "storefront-edit-\($0.uuidString)" }
        let order = try await ask(
            CustomerMethods.edit, CustomerEditRequest(token: token, lines: lines), idempotencyKey: key)
        logger.info("customer changed the order", metadata: ["order_id": "\(order.id)", "via": "page"])
        var response = Response(status: .seeOther)
        response.headers[.location] = "/o/\(token)?notice=edited"
        return response
    }

    private func expiredForm(_ request: Request) -> Response {
        errorPage(
            .forbidden,
            language(request) == .nb
                ? "Skjemaet er utløpt. Last inn siden på nytt og prøv igjen."
                : "This form has expired. Reload the page and try again.")
    }

    private func logAccepted(_ result: CustomerCancelResult, via: String) {
        logger.info(
            result.sagaID == nil ? "customer cancellation requested" : "customer cancellation accepted",
            metadata: [
                "order_id": "\(result.order.id)", "saga_id": "\(result.sagaID.map { "\($0)" } ?? "")", "via": "\(via)",
            ])
    }

    /// The page's Reorder form: the new order's page when the answer carries its link (a second press of the
    /// button answers without it: back to this page, which says the order was placed).
    private func reorderForm(_ request: Request, _ context: StorefrontContext, token: String) async throws -> Response {
        let body = try await request.body.collect(upTo: 16_384)
        let form = try URLEncodedFormDecoder().decode(CancelForm.self, from: String(buffer: body))
        guard csrf.verify(form.csrf, for: token, purpose: "reorder") else {
            return expiredForm(request)
        }
        let key = form.requestID.flatMap(UUID.init(uuidString:)).map { "storefront-reorder-\($0.uuidString)" }
        let order = try await ask(CustomerMethods.reorder, CustomerRequest(token: token), idempotencyKey: key)
        logger.info("customer reordered", metadata: ["order_id": "\(order.id)", "via": "page"])
        var response = Response(status: .seeOther)
        response.headers[.location] = order.customerToken.map { "/o/\($0)" } ?? "/o/\(token)?notice=reordered"
        return response
    }

    /// The browser's language, else the order's (as placed), else the store's.
    private func language(_ request: Request, order: Order? = nil) -> Language {
        Language.preferred(
            request.headers[.acceptLanguage],
            fallback: order?.language.flatMap(Language.init(rawValue:)) ?? Language(
                rawValue: configuration.defaultLanguage)
                ?? .en)
    }

    // MARK: Limits and errors

    /// The customer's address: the peer's, or the last one a trusted proxy put in `X-Forwarded-For`.
    private func clientAddress(_ request: Request, _ context: StorefrontContext) -> String {
        let peer = context.remoteAddress?.ipAddress ?? "unknown"
        guard configuration.trustedProxies.contains(peer), let name = HTTPField.Name("X-Forwarded-For"),
            let forwarded = request.headers[name],
            let last = forwarded.split(separator: ",").last?.trimmingCharacters(in: .whitespaces), !last.isEmpty
        else { return peer }
        return last
    }

    /// Runs `body` for the route's token unless the token or the client's address is over its limit (429 with
    /// Retry-After); a `RescindError` becomes the page or JSON error a customer sees, with the same code.
    private func limited(
        _ request: Request, _ context: StorefrontContext, html: Bool, _ body: (String) async throws -> Response
    ) async throws -> Response {
        let token = context.parameters.get("token") ?? ""
        let address = clientAddress(request, context)
        let limits = configuration.rateLimit
        if let wait = limiter.admit("address:\(address)", limit: limits.perAddressPerMinute)
            ?? limiter.admit("token:\(token)", limit: limits.perTokenPerMinute)
        {
            logger.warning("rate limited", metadata: ["peer": "\(address)"])
            let error = RescindError(
                .resourceExhausted, "too many requests to this storefront replica; try again in \(wait) s",
                reason: "rate_limited", retryable: true)
            var response = html ? errorPage(.tooManyRequests, error.message) : Self.errorJSON(error)
            response.headers[.retryAfter] = "\(wait)"
            return response
        }
        do {
            return try await body(token)
        } catch let error as RescindError {
            if error.code == .internal || error.code == .unavailable || error.code == .deadlineExceeded {
                logger.error(
                    "orders call failed",
                    metadata: ["error": "\(error.code.rawValue)", "reason": "\(error.reason ?? "")"])
            }
            return html
                ? errorPage(Self.status(of: error), Self.customerMessage(error, language(request)))
                : Self.errorJSON(error)
        } catch let error as DecodingError {
            let refused = RescindError.invalidArgument(
                "the request body is not what this endpoint takes: \(error)", reason: "bad_body")
            return html ? errorPage(.badRequest, refused.message) : Self.errorJSON(refused)
        }
    }

    /// The HTTP status of a Rescind error.
    static func status(of error: RescindError) -> HTTPResponse.Status {
        switch error.code {
        case .invalidArgument, .malformed: .badRequest
        case .notFound: .notFound
        case .permissionDenied: .forbidden
        case .failedPrecondition, .conflict: .conflict
        case .resourceExhausted: .tooManyRequests
        case .unavailable, .deadlineExceeded: .serviceUnavailable
        default: .internalServerError
        }
    }

    /// What a customer reads on a page for an error.
    static func customerMessage(_ error: RescindError, _ language: Language) -> String {
        let nb = language == .nb
        switch error.reason {
        case "unknown_token": return nb ? "Denne lenken åpner ingen bestilling." : "This link opens no order."
        case "token_expired":
            return nb
                ? "Denne lenken er utløpt; be butikken om en ny."
                : "This link has expired; ask the store for a new one."
        case "out_of_stock":
            return nb
                ? "Vi har ikke så mange på lager; bestillingen er uendret."
                : "We do not have that many in stock; your order is unchanged."
        case "card_declined":
            return nb
                ? "Kortet ditt avviste beløpet; bestillingen er uendret."
                : "Your card declined the amount; your order is unchanged."
        default:
            if error.code == .unavailable || error.code == .deadlineExceeded {
                return nb
                    ? "Butikken svarer ikke akkurat nå; prøv igjen om litt."
                    : "The store is not answering right now; try again in a moment."
            }
            return error.message
        }
    }

    private func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private func errorPage(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let escaped = message.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
        return html(
            """
            <!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(configuration.storeName)</title></head><body><p>\(configuration.storeName)</p>
            <p id="error">\(escaped)</p></body></html>
            """, status: status)
    }

    /// A JSON error: `{"error": {"code", "reason", "message", "retryable"}}`, as the CLI prints it.
    static func errorJSON(_ error: RescindError, status: HTTPResponse.Status? = nil) -> Response {
        var body: [String: Any] = ["code": error.code.rawValue, "message": error.message, "retryable": error.retryable]
        if let reason = error.reason { body["reason"] = reason }
        let data = (try? JSONSerialization.data(withJSONObject: ["error": body], options: [.sortedKeys])) ?? Data()
        return Response(
            status: status ?? Self.status(of: error), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    /// An API caller's idempotency key: at most 128 printable characters, prefixed so it cannot reuse another
    /// caller's.
    private func idempotencyKey(_ header: String?) throws -> String? {
        guard let header else { return nil }
        guard (1...128).contains(header.count), header.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw RescindError.invalidArgument("Idempotency-Key is 1 to 128 printable characters", reason: "bad_key")
        }
        return "storefront-api-\(header)"
    }
}

/// A method the JSON API does not list on one of its paths (any method: QUERY too): 405 with the methods it does
/// (RFC 9110), in the API's JSON error, rather than the router's 404.
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = StorefrontContext

    /// The API's paths after `/api/orders/TOKEN`, and the one method each takes.
    static let allowed: [String: HTTPRequest.Method] = [
        "": .get, "/can-cancel": .get, "/can-edit": .get, "/cancel": .post, "/edit": .post, "/reorder": .post,
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: false)
        // "", "api", "orders", TOKEN, and at most one more segment.
        guard parts.count == 4 || parts.count == 5, parts[1] == "api", parts[2] == "orders", !parts[3].isEmpty,
            let allowed = Self.allowed[parts.count == 5 ? "/" + parts[4] : ""],
            request.method != allowed, !(allowed == .get && request.method == .head)
        else { return try await next(request, context) }
        var response = Storefront.errorJSON(
            RescindError(
                .invalidArgument, "\(request.method) is not a method of \(request.uri.path)",
                reason: "method_not_allowed", retryable: false),
            status: .methodNotAllowed)
        response.headers[.allow] = allowed.rawValue
        return response
    }
}

extension KeyedDecodingContainer {
    /// An optional field that, when present, is a value and not `null`.
    /// - Throws: `DecodingError.valueNotFound` for `null`.
    fileprivate func present<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) {
            throw DecodingError.valueNotFound(
                type, .init(codingPath: codingPath + [key], debugDescription: "\(key.stringValue) is null"))
        }
        return try decode(type, forKey: key)
    }
}
