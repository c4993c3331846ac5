import Foundation
import RescindAPI
import RescindWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A step boundary where a test makes Orders die at once (SIGKILL), to prove that a saga resumes from any
/// of them. Set by the environment variable `RESCIND_CRASH_POINT` = `KIND/STEP/DIRECTION/PHASE`, e.g.
/// `cancel_order/refund/forward/before` (the step's log row is written `started`, its request not sent) or
/// `cancel_order/take_back/compensate/after` (its outcome recorded, the next step not begun). Never set in
/// production; the daemon logs it at start.
public struct CrashPoint: Sendable, Hashable, CustomStringConvertible {
    public enum Phase: String, Sendable {
        case before, after
    }

    public var kind: Saga.Kind
    public var step: String
    public var direction: Saga.Step.Direction
    public var phase: Phase

    public init(kind: Saga.Kind, step: String, direction: Saga.Step.Direction, phase: Phase) {
        self.kind = kind
        self.step = step
        self.direction = direction
        self.phase = phase
    }

    /// Reads `KIND/STEP/DIRECTION/PHASE`; nil if it is not of that form.
    public init?(_ text: String) {
        let parts = text.split(separator: "/").map(String.init)
        guard parts.count == 4, let direction = Saga.Step.Direction(rawValue: parts[2]),
            let phase = Phase(rawValue: parts[3])
        else { return nil }
        self.init(kind: Saga.Kind(parts[0]), step: parts[1], direction: direction, phase: phase)
    }

    /// The crash point the environment asks for, if any.
    public static var fromEnvironment: CrashPoint? {
        ProcessInfo.processInfo.environment["RESCIND_CRASH_POINT"].flatMap(CrashPoint.init)
    }

    public var description: String { "\(kind)/\(step)/\(direction.rawValue)/\(phase.rawValue)" }

    /// Dies at once if this is the point reached.
    func check(kind: Saga.Kind, step: String, undoing: Bool, phase: Phase, log: (String) -> Void) {
        guard kind == self.kind, step == self.step, (direction == .compensate) == undoing, phase == self.phase
        else { return }
        log("crash point reached: \(self)")
        kill(getpid(), SIGKILL)
    }
}
