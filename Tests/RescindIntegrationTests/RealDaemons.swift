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
