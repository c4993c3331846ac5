import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A localstripe server (PyPI `localstripe`: a stateful, Stripe-compatible HTTP API) on a free loopback port, with
/// an empty store, for tests that run Payments against a processor nobody on this project wrote.
///
/// localstripe itself listens on every interface; this starts its application on `127.0.0.1` only. It honours
/// no `Idempotency-Key`, which makes it the processor Payments' look-up by key must cope with.
public final class LocalstripeServer: @unchecked Sendable {
    /// `http://127.0.0.1:PORT`.
    public let apiBase: String
    private let peer: PythonPeer

    /// Whether tests that need localstripe run: it is installed (`python3 -c "import localstripe"`), or
    /// `RESCIND_REQUIRE_PEERS` is set (CI), so that a missing server fails the test instead of skipping it.
    /// Asked once per process (every suite and argument list that needs it reads it).
    public static let available = PythonPeer.available("localstripe")

    /// Binds and listens before it prints the port, so a request sent as soon as the port is read waits in the
    /// backlog until the application serves it.
    private static let script = """
        import socket, sys
        from aiohttp import web
        from localstripe import server
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        print(sock.getsockname()[1], flush=True)
        web.run_app(server.app, sock=sock, print=None, access_log=None)
        """

    /// Starts a server (its store empty: localstripe keeps one in `/tmp/localstripe.pickle` only when told to).
    /// - Parameter trusting: a CA certificate (PEM) the server trusts when it sends webhooks over HTTPS (read when
    ///   it starts, so it must exist by then).
    /// - Throws: if python3 or localstripe is missing, or the server does not say its port within 30 s.
    public init(trusting caCertificate: String? = nil) throws {
        peer = try PythonPeer(
            script: Self.script, environment: caCertificate.map { ["SSL_CERT_FILE": $0] } ?? [:], package: "localstripe"
        )
        apiBase = "http://127.0.0.1:\(peer.port)"
    }

    /// Stops the server.
    public func stop() { peer.stop() }

    deinit { stop() }

    /// A PaymentIntent as a reconciliation reads it. localstripe refunds what a capture leaves uncaptured: such a
    /// refund carries no key of Rescind's and counts as released, not refunded.
    public struct Intent: Sendable {
        public var id: String
        /// Stripe's status: `requires_capture`, `succeeded`, `canceled`, ...
        public var status: String
        public var amount: Int64
        public var captured: Int64
        /// Rescind's refunds (those with `rescind_key` in their metadata): how many, how much, under which keys.
        public var refunds: Int
        public var refunded: Int64
        public var refundKeys: [String]
        public var metadata: [String: String]
    }

    /// A PaymentIntent by its id.
    /// - Throws: as `get`.
    public func intent(_ id: String) async throws -> Intent {
        Self.intent(try await get("/v1/payment_intents/\(id)"))
    }

    /// Every PaymentIntent made for Rescind (with `rescind_key` in its metadata) on the server at `apiBase`.
    /// - Throws: as `get`.
    public static func intents(at apiBase: String) async throws -> [Intent] {
        var intents: [Intent] = []
        var after: String?
        while true {
            let page = try await send(
                HTTPClientRequest(
                    url: apiBase + "/v1/payment_intents?limit=100" + (after.map { "&starting_after=\($0)" } ?? "")),
                "/v1/payment_intents")
            let data = page["data"] as? [[String: Any]] ?? []
            intents += data.map(Self.intent).filter { $0.metadata["rescind_key"] != nil }
            guard page["has_more"] as? Bool == true, let last = data.last?["id"] as? String else { return intents }
            after = last
        }
    }

    /// The PaymentIntents whose metadata names an order (the first 100 the server lists).
    /// - Throws: as `get`.
    public func intents(ofOrder orderID: UUID) async throws -> [Intent] {
        let page = try await get("/v1/payment_intents?limit=100")
        return (page["data"] as? [[String: Any]] ?? []).map(Self.intent)
            .filter { $0.metadata["order_id"] == orderID.uuidString }
    }

    private static func intent(_ object: [String: Any]) -> Intent {
        let latest = object["latest_charge"] as? [String: Any]
        let refunds = (latest?["refunds"] as? [String: Any])?["data"] as? [[String: Any]] ?? []
        func key(_ refund: [String: Any]) -> String? { (refund["metadata"] as? [String: String])?["rescind_key"] }
        func amount(_ refund: [String: Any]) -> Int64 { Int64(refund["amount"] as? Int ?? 0) }
        let ours = refunds.filter { key($0) != nil }
        let released = refunds.filter { key($0) == nil }.reduce(0) { $0 + amount($1) }
        let status = object["status"] as? String ?? ""
        return Intent(
            id: object["id"] as? String ?? "", status: status, amount: Int64(object["amount"] as? Int ?? 0),
            captured: status == "succeeded" ? Int64(latest?["amount"] as? Int ?? 0) - released : 0,
            refunds: ours.count, refunded: ours.reduce(0) { $0 + amount($1) }, refundKeys: ours.compactMap(key),
            metadata: object["metadata"] as? [String: String] ?? [:])
    }

    /// Tells the server to send its events to `url`, signed with `secret` (localstripe's `/_config/webhooks`).
    /// - Throws: as `post`.
    public func sendEvents(to url: String, secret: String) async throws {
        _ = try await post("/_config/webhooks/rescind", [("url", url), ("secret", secret)])
    }

    /// A POST of Stripe's API on this server (a test acting on the processor outside Rescind, as the store's
    /// dashboard would), decoded as JSON.
    /// - Throws: transport errors, or a status other than 2xx.
    @discardableResult
    public func post(_ path: String, _ form: [(String, String)] = []) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: apiBase + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let body = form.map {
            "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.0)="
                + "\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)"
        }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: body))
        return try await Self.send(request, path)
    }

    /// A GET of Stripe's API on this server, decoded as JSON (a test reading what the processor holds).
    /// - Throws: transport errors, or a status other than 200.
    public func get(_ path: String) async throws -> [String: Any] {
        try await Self.send(HTTPClientRequest(url: apiBase + path), path)
    }

    private static func send(_ request: HTTPClientRequest, _ path: String) async throws -> [String: Any] {
        var request = request
        request.headers.add(name: "Authorization", value: "Bearer sk_test_rescind_harness")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 16 << 20)
        // localstripe's configuration endpoints answer with no body.
        if (200..<300).contains(response.status.code), body.readableBytes == 0 { return [:] }
        guard response.status.code == 200,
            let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        else {
            throw PeerError(message: "\(request.method) \(path): \(String(buffer: body))")
        }
        return object
    }
}

public struct PeerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
