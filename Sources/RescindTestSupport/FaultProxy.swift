import NIOCore
import NIOPosix
import RescindWire
import Synchronization

/// A TCP proxy placed between Orders and a participant, to cut, slow and confuse the link on demand.
///
/// It forwards bytes without reading them (TLS stays end to end, from Orders to the participant), so
/// what it can do is what a network can: delay, drop, hold, reset, and let a request through while losing
/// what comes back. Orders reaches the participant through `endpoint` (`RescindHarness` routes it there).
public final class FaultProxy: Sendable {
    /// What the link does now.
    public enum Mode: Sendable, Hashable, CustomStringConvertible {
        /// Forwards everything.
        case pass
        /// Forwards everything, each chunk `delay` late (order kept).
        case delay(Duration)
        /// Closes every connection, and each new one as soon as it is accepted: the peer is unreachable.
        case drop
        /// Keeps connections open and forwards nothing either way: a partition; calls run to their deadline.
        case blackhole
        /// Resets every connection (TCP RST), and each new one as soon as it is accepted.
        case reset
        /// Forwards requests, but the first bytes that come back on a connection are thrown away and the
        /// connection is reset: the participant acted, its answer never arrives. New connections cannot
        /// complete their TLS handshake.
        case loseAnswers

        public var description: String {
            switch self {
            case .pass: "pass"
            case .delay(let delay): "delay \(delay)"
            case .drop: "drop"
            case .blackhole: "blackhole"
            case .reset: "reset"
            case .loseAnswers: "lose answers"
            }
        }
    }

    private struct State {
        var mode: Mode = .pass
        var connections: [ObjectIdentifier: Link] = [:]
        /// Answers thrown away in `loseAnswers` mode.
        var answersLost = 0
        var accepted = 0
    }

    /// The two channels of one proxied connection.
    fileprivate struct Link: Sendable {
        var inbound: any Channel
        var outbound: any Channel
    }

    public let name: String
    public let target: SocketAddress
    private let group: MultiThreadedEventLoopGroup
    private let server: any Channel
    private let state = Mutex(State())

    /// Where to connect to reach the participant through the proxy.
    public var port: Int { server.localAddress?.port ?? 0 }

    private init(name: String, target: SocketAddress, group: MultiThreadedEventLoopGroup, server: any Channel) {
        self.name = name
        self.target = target
        self.group = group
        self.server = server
    }

    /// Starts a proxy on a free port of 127.0.0.1 to `host:port`.
    /// - Throws: if it cannot listen.
    public static func start(name: String, to host: String, port: Int) async throws -> FaultProxy {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let target = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let box = ProxyBox()
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelInitializer { inbound in
                guard let proxy = box.proxy else { return inbound.close() }
                return proxy.accept(inbound)
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let proxy = FaultProxy(name: name, target: target, group: group, server: server)
        box.proxy = proxy
        return proxy
    }

    /// The mode now.
    public var mode: Mode { state.withLock { $0.mode } }

    /// How many answers `loseAnswers` has thrown away.
    public var answersLost: Int { state.withLock { $0.answersLost } }

    /// How many connections the proxy has accepted.
    public var connectionsAccepted: Int { state.withLock { $0.accepted } }

    /// Switches the mode; `drop` and `reset` also end every open connection now.
    public func set(_ mode: Mode) {
        let links = state.withLock { state in
            state.mode = mode
            return Array(state.connections.values)
        }
        switch mode {
        case .drop:
            for link in links { Self.close(link, reset: false) }
        case .reset:
            for link in links { Self.close(link, reset: true) }
        case .pass, .delay, .blackhole, .loseAnswers:
            break
        }
    }

    /// Stops listening and closes every connection.
    public func shutdown() async {
        let links = state.withLock { Array($0.connections.values) }
        for link in links { Self.close(link, reset: false) }
        try? await server.close()
        try? await group.shutdownGracefully()
    }

    private func accept(_ inbound: any Channel) -> EventLoopFuture<Void> {
        state.withLock { $0.accepted += 1 }
        switch mode {
        case .drop: return inbound.close()
        case .reset: return Self.resetSocket(inbound).flatMap { inbound.close() }
        case .pass, .delay, .blackhole, .loseAnswers: break
        }
        return ClientBootstrap(group: inbound.eventLoop)
            .channelOption(ChannelOptions.autoRead, value: false)
            .connect(to: target)
            .flatMap { outbound in
                let link = Link(inbound: inbound, outbound: outbound)
                let key = ObjectIdentifier(inbound)
                self.state.withLock { $0.connections[key] = link }
                inbound.closeFuture.whenComplete { _ in
                    self.state.withLock { _ = $0.connections.removeValue(forKey: key) }
                    outbound.close(promise: nil)
                }
                outbound.closeFuture.whenComplete { _ in inbound.close(promise: nil) }
                do {
                    try inbound.pipeline.syncOperations.addHandler(
                        Forwarder(proxy: self, link: link, towardsParticipant: true))
                    try outbound.pipeline.syncOperations.addHandler(
                        Forwarder(proxy: self, link: link, towardsParticipant: false))
                } catch {
                    return inbound.eventLoop.makeFailedFuture(error)
                }
                return inbound.setOption(ChannelOptions.autoRead, value: true).flatMap {
                    outbound.setOption(ChannelOptions.autoRead, value: true)
                }
            }
    }

    /// What to do with bytes read on one side of a link.
    fileprivate enum Verdict {
        case forward(after: Duration?)
        case discard
        case loseAndReset
    }

    fileprivate func verdict(towardsParticipant: Bool) -> Verdict {
        state.withLock { state in
            switch state.mode {
            case .pass: return .forward(after: nil)
            case .delay(let delay): return .forward(after: delay)
            case .drop, .reset, .blackhole: return .discard
            case .loseAnswers:
                if towardsParticipant { return .forward(after: nil) }
                state.answersLost += 1
                return .loseAndReset
            }
        }
    }

    fileprivate static func close(_ link: Link, reset: Bool) {
        if reset {
            resetSocket(link.inbound).whenComplete { _ in link.inbound.close(promise: nil) }
            resetSocket(link.outbound).whenComplete { _ in link.outbound.close(promise: nil) }
        } else {
            link.inbound.close(promise: nil)
            link.outbound.close(promise: nil)
        }
    }

    /// SO_LINGER 0: the close sends a RST instead of a FIN.
    private static func resetSocket(_ channel: any Channel) -> EventLoopFuture<Void> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        return provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
    }
}

/// Lets the server's initializer reach the proxy, which exists only once the server is bound.
private final class ProxyBox: Sendable {
    private let value = Mutex<FaultProxy?>(nil)
    var proxy: FaultProxy? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// Forwards what one side of a link reads to the other side, as the proxy's mode says.
private final class Forwarder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let proxy: FaultProxy
    private let link: FaultProxy.Link
    private let towardsParticipant: Bool

    init(proxy: FaultProxy, link: FaultProxy.Link, towardsParticipant: Bool) {
        self.proxy = proxy
        self.link = link
        self.towardsParticipant = towardsParticipant
    }

    /// When the last chunk forwarded late goes out: later chunks never overtake it (TCP keeps order).
    private var lastRelease = NIODeadline.uptimeNanoseconds(0)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let partner = towardsParticipant ? link.outbound : link.inbound
        switch proxy.verdict(towardsParticipant: towardsParticipant) {
        case .forward(let delay):
            let now = NIODeadline.now()
            var release = now
            if let delay {
                release =
                    now
                    + .nanoseconds(
                        delay.components.seconds * 1_000_000_000
                            + delay.components.attoseconds / 1_000_000_000)
            }
            release = max(release, lastRelease)
            lastRelease = release
            if release <= now {
                partner.writeAndFlush(bytes, promise: nil)
            } else {
                context.eventLoop.scheduleTask(deadline: release) { partner.writeAndFlush(bytes, promise: nil) }
            }
        case .discard:
            break
        case .loseAndReset:
            FaultProxy.close(link, reset: true)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        FaultProxy.close(link, reset: false)
    }
}

@available(*, unavailable)
extension Forwarder: Sendable {}
