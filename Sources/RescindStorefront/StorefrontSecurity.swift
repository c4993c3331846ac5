import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Forms' CSRF tokens: an HMAC-SHA256 of the order's customer token and the form's purpose, under the configured
/// key (the same for every replica) or one this process draws at start (a page is reloaded after a restart). A
/// form from another site cannot carry it.
struct CSRFGuard: Sendable {
    private let key: [UInt8]

    init(key: [UInt8]? = nil) {
        self.key =
            key
            ?? {
                var generator = SystemRandomNumberGenerator()
                return (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            }()
    }

    /// The token a form of `purpose` on the page of `customerToken` carries.
    func token(for customerToken: String, purpose: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("\(purpose)|\(customerToken)".utf8), using: SymmetricKey(data: key))
        return Data(mac).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Whether `presented` is that token (compared in constant time).
    func verify(_ presented: String?, for customerToken: String, purpose: String) -> Bool {
        guard let presented else { return false }
        let expected = Data(token(for: customerToken, purpose: purpose).utf8)
        let given = Data(presented.utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Requests per key in fixed one-minute windows: a key over its limit waits for the next window.
final class RateLimiter: Sendable {
    private struct Window {
        var start: ContinuousClock.Instant
        var count: Int
    }

    private let windows = Mutex<[String: Window]>([:])
    private let length: Duration = .seconds(60)

    /// Counts a request of `key`; `nil` if it is within `limit`, else the whole seconds until it may try again.
    func admit(_ key: String, limit: Int, now: ContinuousClock.Instant = .now) -> Int? {
        windows.withLock { windows in
            if windows.count > 100_000 {
                // Forget finished windows so that many clients cannot grow the table for ever.
                windows = windows.filter { now - $0.value.start < length }
            }
            var window = windows[key] ?? Window(start: now, count: 0)
            if now - window.start >= length { window = Window(start: now, count: 0) }
            window.count += 1
            windows[key] = window
            guard window.count > limit else { return nil }
            let left = length - (now - window.start)
            return max(1, Int(left.components.seconds) + (left.components.attoseconds > 0 ? 1 : 0))
        }
    }
}

/// What every storefront response carries: the token is in the URL, so no referrer leaves the page; nothing is
/// cached; the page loads nothing from elsewhere and runs no script.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[HeaderName.referrerPolicy] = "no-referrer"
        response.headers[.cacheControl] = "no-store"
        response.headers[HeaderName.contentSecurityPolicy] =
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'"
        response.headers[HeaderName.contentTypeOptions] = "nosniff"
        return response
    }
}

/// The header names HTTPTypes does not spell.
enum HeaderName {
    static let referrerPolicy = named("Referrer-Policy")
    static let contentSecurityPolicy = named("Content-Security-Policy")
    static let contentTypeOptions = named("X-Content-Type-Options")
    static let idempotencyKey = named("Idempotency-Key")

    private static func named(_ name: String) -> HTTPField.Name {
        guard let field = HTTPField.Name(name) else { preconditionFailure("\(name) is not a header name") }
        return field
    }
}
