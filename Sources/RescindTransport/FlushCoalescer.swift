import NIOCore

/// Turns the flushes asked for during one turn of the event loop into one, made at the end of that turn.
///
/// Each answer (and each call of a client) is written and flushed on its own, and a flush is a TLS record and a
/// `write` system call. Under load many answers are ready in the same turn; flushed together they share one
/// record and one call, which a profile showed to be a quarter of the cost of a call. A flush waits only for the
/// jobs already queued on the loop, so an answer alone goes out as soon as before.
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var flushScheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = loopBound.value
            guard coalescer.flushScheduled else { return }
            coalescer.flushScheduled = false
            context.flush()
        }
    }

    /// What was written goes out before the close (an error frame, say, just before it).
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if flushScheduled {
            flushScheduled = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}
