import Crypto
import Foundation

/// The signature of a webhook delivery, Stripe's scheme (`Stripe-Signature`), which Rescind's own webhooks use too
/// (`Rescind-Signature`): `t=UNIX_SECONDS,v1=HEX[,v1=HEX...]` where HEX is the HMAC-SHA256, under the endpoint's
/// shared secret, of `UNIX_SECONDS.BODY`. The time inside the signature lets a receiver refuse replays (deliveries
/// older than its tolerance); several `v1` values are sent while a secret is being rolled.
public enum WebhookSignature {
    /// What a receiver concludes of a delivery's signature header.
    public enum Verdict: String, Sendable {
        case valid
        /// No `t=` or no `v1=` in the header.
        case malformed
        /// Signed further from now than the tolerance: a replay, or a clock far off.
        case expired
        /// No `v1` matches: another secret, or a changed body.
        case mismatch
    }

    /// The header's value for `body` sent at `time`.
    public static func sign(_ body: Data, secret: String, at time: Date) -> String {
        let seconds = Int64(time.timeIntervalSince1970)
        return "t=\(seconds),v1=\(mac(body, secret: secret, seconds: seconds))"
    }

    /// Checks `header` against `body` under `secret`: made no more than `tolerance` from `now`, and one of its
    /// `v1` values the body's HMAC (compared in constant time).
    public static func check(
        _ header: String, body: Data, secret: String, now: Date = Date(), tolerance: TimeInterval = 300
    ) -> Verdict {
        var seconds: Int64?
        var given: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            switch pair[0].trimmingCharacters(in: .whitespaces) {
            case "t": seconds = Int64(pair[1])
            case "v1": given.append(String(pair[1]))
            default: continue
            }
        }
        guard let seconds, !given.isEmpty else { return .malformed }
        guard abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance else { return .expired }
        let expected = Data(mac(body, secret: secret, seconds: seconds).utf8)
        // Every candidate is compared, so the time taken says nothing of which one matched.
        let matches = given.map { SecretToken.equal(Data($0.utf8), expected) }.contains(true)
        return matches ? .valid : .mismatch
    }

    /// Whether `header` signs `body` under `secret`, made no more than `tolerance` before `now`.
    public static func verify(
        _ header: String, body: Data, secret: String, now: Date = Date(), tolerance: TimeInterval = 300
    ) -> Bool {
        check(header, body: body, secret: secret, now: now, tolerance: tolerance) == .valid
    }

    private static func mac(_ body: Data, secret: String, seconds: Int64) -> String {
        let code = HMAC<SHA256>.authenticationCode(
            for: Data("\(seconds).".utf8) + body, using: SymmetricKey(data: Data(secret.utf8)))
        return code.map { String(format: "%02x", $0) }.joined()
    }
}
