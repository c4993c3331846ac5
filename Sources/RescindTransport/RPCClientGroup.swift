import Logging
import NIOCore
import NIOPosix
import RescindAPI
import RescindWire
import Synchronization

/// A client of a service that runs as several replicas: one `RPCClient` per endpoint, calls spread over the
/// replicas in turn, and a replica that cannot be reached left out for a while.
///
/// A call that could not be sent (the replica refuses connections, or does not answer the connect within
/// `connectTimeout`) goes to the next replica at once. One that was sent and lost (the replica died with it)
/// goes to the next replica only if it carries an idempotency key, which makes the repeat safe; otherwise its
/// `unavailable` error reaches the caller, as a single client's would. The call's deadline covers every try.
public final class RPCClientGroup: RPCCaller, Sendable {
    public let endpoints: [Endpoint]
    private let members: [RPCClient]
    private let state: Mutex<State>
    private let logger: Logger

    private struct State {
        var next = 0
        /// Per member: when it may be tried again, and how many times in a row it could not be reached.
        var downUntil: [ContinuousClock.Instant?]
        var failures: [Int]
    }

    /// How long a replica that could not be reached is left out after its first failure (doubling per failure
    /// in a row, up to 10 s); it is tried again after that, or sooner if no other replica is up.
    static let firstPause: Duration = .milliseconds(500)

    /// - Parameters:
    ///   - endpoints: the replicas, at least one.
    ///   - configuration: each member's configuration (its endpoint replaced). With several endpoints, a connect
    ///     waits at most `connectTimeout` (1 s when not set), so that a dead host is passed over within a second.
    /// - Throws: `TransportError` if the TLS material cannot be loaded.
    public init(
        endpoints: [Endpoint], configuration: RPCClient.Configuration, tls: TLSFiles, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        precondition(!endpoints.isEmpty, "a client group needs at least one endpoint")
        self.endpoints = endpoints
        self.members = try endpoints.map { endpoint in
            var member = configuration
            member.endpoint = endpoint
            if endpoints.count > 1, member.connectTimeout == nil { member.connectTimeout = .seconds(1) }
            return try RPCClient(configuration: member, tls: tls, logger: logger, group: group)
        }
        self.state = Mutex(
            State(
                downUntil: Array(repeating: nil, count: endpoints.count),
                failures: Array(repeating: 0, count: endpoints.count)))
        self.logger = logger
    }

    public func call<Request, Response>(
        _ method: Method<Request, Response>, _ request: Request, idempotencyKey: String? = nil,
        timeout: Duration? = nil
    ) async throws -> Response {
        let budget = timeout ?? members[0].configuration.defaultTimeout
        let deadline = ContinuousClock.now + budget
        var tried: Set<Int> = []
        while true {
            let index = pick(avoiding: tried)
            tried.insert(index)
            do {
                let answer = try await members[index].attempt(
                    method, request, idempotencyKey: idempotencyKey, timeout: deadline - ContinuousClock.now)
                reachable(index)
                return answer
            } catch let unsent as RPCClient.Unsent {
                unreachable(index, unsent.error)
                guard tried.count < members.count, ContinuousClock.now < deadline else { throw unsent.error }
            } catch let error as RescindError where error.code == .unavailable {
                // Sent, and the connection went with the answer (or the replica is stopping): another replica
                // may take a repeat only if the key makes it one.
                unreachable(index, error)
                guard idempotencyKey != nil, tried.count < members.count, ContinuousClock.now < deadline else {
                    throw error
                }
            }
        }
    }

    /// Calls every replica once (`health`, say), in the order of `endpoints`; each answer or error by endpoint.
    public func callEvery<Request, Response>(
        _ method: Method<Request, Response>, _ request: Request, timeout: Duration? = nil
    ) async -> [(endpoint: Endpoint, result: Result<Response, RescindError>)] {
        var answers: [(endpoint: Endpoint, result: Result<Response, RescindError>)] = []
        for (endpoint, member) in zip(endpoints, members) {
            do {
                answers.append((endpoint, .success(try await member.call(method, request, timeout: timeout))))
            } catch let error as RescindError {
                answers.append((endpoint, .failure(error)))
            } catch {
                answers.append((endpoint, .failure(RescindError(.unavailable, "\(error)"))))
            }
        }
        return answers
    }

    /// Closes every member's connection.
    public func shutdown() async {
        for member in members { await member.shutdown() }
    }

    /// The next replica in turn that is up and not tried yet; if none is up, the untried one back soonest.
    private func pick(avoiding tried: Set<Int>) -> Int {
        state.withLock { state in
            let now = ContinuousClock.now
            let count = members.count
            let order = (0..<count).map { (state.next + $0) % count }.filter { !tried.contains($0) }
            let chosen =
                order.first { state.downUntil[$0].map { $0 <= now } ?? true }
                ?? order.min { (state.downUntil[$0] ?? now) < (state.downUntil[$1] ?? now) }
                ?? state.next % count
            state.next = (chosen + 1) % count
            return chosen
        }
    }

    private func reachable(_ index: Int) {
        state.withLock { state in
            state.downUntil[index] = nil
            state.failures[index] = 0
        }
    }

    private func unreachable(_ index: Int, _ error: RescindError) {
        let pause = state.withLock { state in
            state.failures[index] += 1
            let pause = min(Self.firstPause * (1 << min(state.failures[index] - 1, 5)), .seconds(10))
            state.downUntil[index] = ContinuousClock.now + pause
            return pause
        }
        if members.count > 1 {
            logger.notice(
                "replica unreachable; calls go to the others",
                metadata: ["peer": "\(endpoints[index])", "pause": "\(pause)", "error": "\(error.message)"])
        }
    }
}
