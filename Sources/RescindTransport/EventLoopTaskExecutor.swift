import NIOCore

/// Runs a task's jobs on a NIO event loop: a connection's requests are read, answered and written on the
/// thread that owns the connection, with no hand-off to the global executor and back for each request.
///
/// A handler that waits (for a database commit, another daemon) gives the thread back as any task does; one
/// that blocks the thread holds up the other connections of that loop, as it would hold up a thread of the
/// global executor.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
