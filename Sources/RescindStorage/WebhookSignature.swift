import Crypto
import Foundation

/// The signature of a webhook delivery: `t=UNIX_SECONDS,v1=HEX` where HEX is the HMAC-SHA256, under the
/// store's shared secret, of `UNIX_SECONDS.BODY`. The time inside the signature lets a receiver refuse replays
/// (deliveries older than its tolerance).
public enum WebhookSignature {
    /// The `Rescind-Signature` header's value for `body` sent at `time`.
    public static func sign(_ body: Data, secret: String, at time: Date) -> String {
        let seconds = Int64(time.timeIntervalSince1970)
        return "t=\(seconds),v1=\(mac(body, secret: secret, seconds: seconds))"
    }

    /// Whether `header` signs `body` under `secret`, made no more than `tolerance` before `now`.
    public static func verify(
        _ header: String, body: Data, secret: String, now: Date = Date(), tolerance: TimeInterval = 300
    ) -> Bool {
        var fields: [String: String] = [:]
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let seconds = fields["t"].flatMap(Int64.init), let given = fields["v1"],
            abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance
        else { return false }
        return SecretToken.equal(Data(given.utf8), Data(mac(body, secret: secret, seconds: seconds).utf8))
    }

    private static func mac(_ body: Data, secret: String, seconds: Int64) -> String {
        let code = HMAC<SHA256>.authenticationCode(
            for: Data("\(seconds).".utf8) + body, using: SymmetricKey(data: Data(secret.utf8)))
        return code.map { String(format: "%02x", $0) }.joined()
    }
}
