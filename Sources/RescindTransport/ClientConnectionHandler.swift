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
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = OutboundCall
    typealias OutboundOut = Frame

    private struct Pending {
        var promise: EventLoopPromise<Frame>
        var timeout: Scheduled<Void>
    }

    private var pending: [UInt64: Pending] = [:]
    private var helloPromise: EventLoopPromise<Frame>?
    private var nextCorrelationID: UInt64 = 1
    private var terminalError: RescindError?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        if let terminalError {
            call.response.fail(terminalError)
            promise?.fail(terminalError)
            return
        }
        var frame = call.frame
        if frame.kind == .hello {
            helloPromise = call.response
            context.write(wrapOutboundOut(frame), promise: promise)
            return
        }
        let id = nextCorrelationID
        nextCorrelationID = nextCorrelationID == .max ? 1 : nextCorrelationID + 1
        frame.correlationID = id
        let timeout = context.eventLoop.assumeIsolated().scheduleTask(deadline: call.deadline) {
            if let expired = self.pending.removeValue(forKey: id) {
                expired.promise.fail(RescindError(.deadlineExceeded, "no answer before the deadline"))
            }
        }
        pending[id] = Pending(promise: call.response, timeout: timeout)
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.correlationID == 0 {
            switch frame.kind {
            case .hello:
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
        // A late answer to a request that already hit its deadline is dropped.
        guard let call = pending.removeValue(forKey: frame.correlationID) else { return }
        call.timeout.cancel()
        call.promise.succeed(frame)
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
        failAll(failure)
        context.close(promise: nil)
    }

    private func failAll(_ error: RescindError) {
        if terminalError == nil { terminalError = error }
        helloPromise?.fail(error)
        helloPromise = nil
        let calls = pending
        pending.removeAll()
        for call in calls.values {
            call.timeout.cancel()
            call.promise.fail(error)
        }
    }
}

@available(*, unavailable)
extension ClientConnectionHandler: Sendable {}
