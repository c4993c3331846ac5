import RescindWire
import Testing

/// Every suite that starts the real daemons, one suite at a time: each starts three processes, and several
/// suites' worth at once on two cores starves the timing of the rest of the run.
@Suite(.serialized) enum RealDaemons {}

extension Result where Failure == any Error {
    init(_ body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

/// The code and reason of the `RescindError` that `call` throws; `nil` if it succeeds (another error's
/// description stands in for the code, so that an expectation on the code fails with it).
func refusal(_ call: () async throws -> some Any) async -> (code: String, reason: String?)? {
    do {
        _ = try await call()
        return nil
    } catch let error as RescindError {
        return (error.code.rawValue, error.reason)
    } catch {
        return ("not a RescindError: \(error)", nil)
    }
}
