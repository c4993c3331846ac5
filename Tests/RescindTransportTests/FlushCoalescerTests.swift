import NIOCore
import NIOEmbedded
import Testing

@testable import RescindTransport

@Suite("Flush coalescing")
struct FlushCoalescerTests {
    /// Counts the flushes that get past the coalescer, towards the socket.
    final class FlushCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var flushes = 0
        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    func channel() throws -> (EmbeddedChannel, FlushCounter) {
        let channel = EmbeddedChannel(handler: FlushCoalescer())
        let counter = FlushCounter()
        try channel.pipeline.syncOperations.addHandler(counter, position: .first)
        return (channel, counter)
    }

    @Test("three answers flushed in one turn of the loop go out with one flush, at the end of the turn")
    func flushesOfOneTurnGoOutTogether() throws {
        let (channel, counter) = try channel()
        for byte in UInt8(1)...3 {
            channel.writeAndFlush(ByteBuffer(bytes: [byte]), promise: nil)
        }
        #expect(counter.flushes == 0)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
        for byte in UInt8(1)...3 {
            #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: [byte]))
        }
        _ = try channel.finish()
    }

    @Test("what was written and flushed goes out before a close in the same turn")
    func aCloseFlushesFirst() throws {
        let (channel, counter) = try channel()
        channel.writeAndFlush(ByteBuffer(bytes: [9]), promise: nil)
        _ = channel.close()
        #expect(counter.flushes == 1)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: [9]))
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
    }
}
