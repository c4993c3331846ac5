import Foundation
import RescindTransport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Starting and stopping daemon processes: detached in their own session, output appended to a log file.
public enum DaemonProcess {
    /// Spawns `executable` with `arguments` in a new session (so a terminal's Ctrl-C does not reach it),
    /// standard input from /dev/null and standard output and error appended to `logPath`, with this process's
    /// environment plus `environment`.
    /// - Returns: the process id.
    /// - Throws: `SuiteError` if it cannot be spawned.
    public static func spawn(
        executable: String, arguments: [String], logPath: String, environment: [String: String] = [:]
    ) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of ours reaches the daemon: a pipe or socket it inherited would stay open as long as it
        // runs, and whoever waits for that pipe's end (a test reading a command's output, CI reading ours)
        // would wait as long.
        for fd in inheritedDescriptors() { posix_spawn_file_actions_addclose(&actions, fd) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (glibc 2.26+): a session of its own.
        posix_spawnattr_setflags(&attributes, Int16(0x80))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { _, new in new }
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SuiteError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// Our open descriptors above standard error that a child would inherit (no close-on-exec flag): from
    /// /proc/self/fd, none where there is no /proc.
    static func inheritedDescriptors() -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap(Int32.init).filter { fd in
            guard fd > 2 else { return false }
            let flags = fcntl(fd, F_GETFD)
            return flags >= 0 && flags & FD_CLOEXEC == 0
        }
    }

    /// Whether a process is alive. A zombie counts as dead: a child of ours is reaped; one that is not (a
    /// daemon started by an earlier `rescindctl up`, whose new parent may never reap it) is read as dead from
    /// its state in /proc.
    public static func isAlive(_ pid: Int32) -> Bool {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return false }
        guard kill(pid, 0) == 0 else { return false }
        return !isZombie(pid)
    }

    /// Whether /proc says `pid` has exited and waits to be reaped (state `Z`); false where there is no /proc.
    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        // "pid (comm) S ...": the state follows the command name, which may itself hold spaces or parentheses.
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first == "Z"
    }

    /// Whether `pid` is a running Rescind daemon (guards against a reused pid).
    public static func isRescindDaemon(_ pid: Int32) -> Bool {
        guard isAlive(pid) else { return false }
        guard let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else {
            return true  // no /proc: trust the pid file
        }
        return String(decoding: cmdline, as: UTF8.self).contains("rescind-")
    }

    /// Sends SIGTERM and waits for the process to exit; SIGKILL after `timeout`.
    /// - Returns: whether it exited gracefully.
    @discardableResult
    public static func stop(_ pid: Int32, timeout: Duration = .seconds(10)) async -> Bool {
        guard isAlive(pid) else { return true }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !isAlive(pid) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        await crash(pid)
        return false
    }

    /// Stops a process where it is (SIGSTOP): it holds its sockets and answers nothing, as a hung host would.
    public static func pause(_ pid: Int32) {
        kill(pid, SIGSTOP)
    }

    /// Lets a paused process go on (SIGCONT).
    public static func resume(_ pid: Int32) {
        kill(pid, SIGCONT)
    }

    /// Waits until a process has exited, or `timeout` has passed.
    /// - Returns: whether it exited.
    public static func waitForExit(_ pid: Int32, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isAlive(pid) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Kills a process at once, as a crash would, and waits until it is gone (SIGKILL cannot be refused; the
    /// wait is bounded all the same, so that nothing here can hang a caller).
    public static func crash(_ pid: Int32) async {
        kill(pid, SIGKILL)
        _ = await waitForExit(pid, timeout: .seconds(30))
    }

    /// A TCP port on 127.0.0.1 that is free now.
    /// - Throws: `SuiteError` if no socket can be bound.
    public static func freePort() throws -> Int {
        // Below the kernel's ephemeral range, which outgoing connections (the suite's own clients, the daemons'
        // links to each other) draw their local ports from: a port taken from inside it can be handed to a
        // connection before the daemon binds it ("Address already in use"). Out of it, only another listener
        // could take it.
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        let ephemeralLow = range?.first ?? 32_768
        if ephemeralLow > 12_000 {
            for _ in 0..<200 {
                let port = Int.random(in: 10_000..<ephemeralLow)
                if let bound = try bindLoopback(port: port) { return bound }
            }
        }
        guard let port = try bindLoopback(port: 0) else {
            throw SuiteError("cannot bind a socket to find a free port")
        }
        return port
    }

    /// Whether something accepts a TCP connection on `endpoint` (an IPv4 address) now.
    public static func accepts(_ endpoint: Endpoint) async -> Bool {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(clamping: endpoint.port).bigEndian
        address.sin_addr.s_addr = inet_addr(endpoint.host == "localhost" ? "127.0.0.1" : endpoint.host)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Binds a socket to 127.0.0.1:`port` (0: any) and closes it; the port bound, or `nil` if it is taken.
    private static func bindLoopback(port: Int) throws -> Int? {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw SuiteError("cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }

    /// The directory of the running executable, where the daemons are installed beside `rescindctl`.
    public static func executableDirectory() -> URL {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: path).deletingLastPathComponent()
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }
}
