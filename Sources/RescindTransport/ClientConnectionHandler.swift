import NIOCore
import RescindWire

/// A frame to send and the promise its answer completes.
struct OutboundCall: Sendable {
    var frame: Frame
    var response: EventLoopPromise<Frame>
    var deadline: NIODeadline
}

/// Multiplexes calls over one connection: gives each request a correlation id, completes its promise with
/// the matching response or error frame, fails it at its deadline, and fails everything when the connection
/// ends.
///
/// It keeps at most the server's `max_in_flight` requests unanswered (from the server hello; PROTOCOL.md
/// section 8), so that a burst of calls waits here, in order, instead of being refused with
/// `too_many_in_flight`. A request whose caller gave up at its deadline still counts until its late answer
/// arrives, as it does on the server; if none arrives within `answerGrace` after the deadline, the
/// connection is presumed dead (a partition, a hung peer: a server answers every request) and closed, so
/// that abandoned requests cannot hold every place for ever.
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = OutboundCall
    typealias OutboundOut = Frame

    private struct Pending {
        var promise: EventLoopPromise<Frame>
        var timeout: Scheduled<Void>
    }

    private struct Waiting {
        var id: UInt64
        var call: OutboundCall
        var written: EventLoopPromise<Void>?
        var timeout: Scheduled<Void>
    }

    private var pending: [UInt64: Pending] = [:]
    /// Sent requests whose callers stopped waiting; the server has not answered them yet.
    private var abandoned: [UInt64: Scheduled<Void>] = [:]
    private let answerGrace: TimeAmount

    init(answerGrace: TimeAmount) {
        self.answerGrace = answerGrace
    }
    /// Calls not sent yet because `limit` requests are unanswered, oldest first.
    private var waiting = CircularBuffer<Waiting>()
    /// The server's `max_in_flight`, once its hello has arrived.
    private(set) var limit = Int.max
    private var helloPromise: EventLoopPromise<Frame>?
    private var nextCorrelationID: UInt64 = 1
    private var terminalError: RescindError?

    private var unanswered: Int { pending.count + abandoned.count }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        if let terminalError {
            call.response.fail(terminalError)
            promise?.fail(terminalError)
            return
        }
        if call.frame.kind == .hello {
            helloPromise = call.response
            context.write(wrapOutboundOut(call.frame), promise: promise)
            return
        }
        let id = nextCorrelationID
        nextCorrelationID = nextCorrelationID == .max ? 1 : nextCorrelationID + 1
        if unanswered < limit && waiting.isEmpty {
            send(id, call, written: promise, context: context)
            return
        }
        let timeout = context.eventLoop.assumeIsolated().scheduleTask(deadline: call.deadline) {
            guard let index = self.waiting.firstIndex(where: { $0.id == id }) else { return }
            let expired = self.waiting.remove(at: index)
            let error = RescindError(
                .deadlineExceeded, "no room among the server's \(self.limit) requests in flight before the deadline")
            expired.call.response.fail(error)
            expired.written?.fail(error)
        }
        waiting.append(Waiting(id: id, call: call, written: promise, timeout: timeout))
    }

    private func send(
        _ id: UInt64, _ call: OutboundCall, written: EventLoopPromise<Void>?, context: ChannelHandlerContext
    ) {
        var frame = call.frame
        frame.correlationID = id
        let loop = context.eventLoop.assumeIsolated()
        let grace = answerGrace
        let timeout = loop.scheduleTask(deadline: call.deadline) {
            if let expired = self.pending.removeValue(forKey: id) {
                self.abandoned[id] = loop.scheduleTask(deadline: call.deadline + grace) {
                    guard self.abandoned[id] != nil, self.terminalError == nil else { return }
                    // Closed first, so that a caller woken by the failure already finds it inactive and reconnects.
                    self.terminalError = RescindError(
                        .unavailable,
                        "no answer to request \(id) within \(grace.nanoseconds / 1_000_000) ms of its deadline; the connection is presumed dead",
                        reason: "connection_presumed_dead")
                    context.close(promise: nil)
                }
                expired.promise.fail(RescindError(.deadlineExceeded, "no answer before the deadline"))
            }
        }
        pending[id] = Pending(promise: call.response, timeout: timeout)
        context.write(wrapOutboundOut(frame), promise: written)
    }

    /// Sends waiting calls while there is room.
    private func sendWaiting(context: ChannelHandlerContext) {
        guard !waiting.isEmpty else { return }
        while unanswered < limit, let next = waiting.popFirst() {
            next.timeout.cancel()
            send(next.id, next.call, written: next.written, context: context)
        }
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.correlationID == 0 {
            switch frame.kind {
            case .hello:
                if let hello = try? WireCodec().decode(ServerHello.self, from: frame.body) {
                    limit = max(1, Int(hello.maxInFlight))
                }
                helloPromise?.succeed(frame)
                helloPromise = nil
            default:
                let error =
                    (try? WireCodec().decode(RescindError.self, from: frame.body))
                    ?? RescindError(.malformed, "the server sent an unreadable connection frame")
                failAll(error)
                context.close(promise: nil)
            }
            return
        }
        // A late answer to a request that already hit its deadline is dropped, and frees its place.
        if let call = pending.removeValue(forKey: frame.correlationID) {
            call.timeout.cancel()
            call.promise.succeed(frame)
        } else if let late = abandoned.removeValue(forKey: frame.correlationID) {
            late.cancel()
        } else {
            return
        }
        sendWaiting(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RescindError(.unavailable, "the connection closed before an answer"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure: RescindError
        if let frameError = error as? FrameError {
            failure = frameError.rescindError
        } else {
            failure = RescindError(.unavailable, "connection failed: \(error)")
        }
        // Closed before the calls fail, so that a caller woken by the failure (a reset, a TLS error) already
        // finds the connection inactive and dials again instead of writing to a closing one.
        if terminalError == nil { terminalError = failure }
        context.close(promise: nil)
        failAll(failure)
    }

    /// Fails every call with the first terminal error of the connection.
    private func failAll(_ error: RescindError) {
        if terminalError == nil { terminalError = error }
        let error = terminalError ?? error
        helloPromise?.fail(error)
        helloPromise = nil
        let calls = pending
        pending.removeAll()
        for check in abandoned.values { check.cancel() }
        abandoned.removeAll()
        for call in calls.values {
            call.timeout.cancel()
            call.promise.fail(error)
        }
        while let next = waiting.popFirst() {
            next.timeout.cancel()
            next.call.response.fail(error)
            next.written?.fail(error)
        }
    }
}

@available(*, unavailable)
extension ClientConnectionHandler: Sendable {}
