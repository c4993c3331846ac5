import Foundation
import RescindTransport
import Testing

/// The `listen` section of a daemon's configuration file.
@Suite("Server configuration")
struct ServerConfigurationTests {
    @Test("absent fields take their defaults")
    func defaults() throws {
        let configuration = try JSONDecoder().decode(RPCServer.Configuration.self, from: Data(#"{"port": 7410}"#.utf8))
        #expect(configuration.port == 7410)
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.maxInFlightPerConnection == 256)
        #expect(configuration.handshakeTimeoutSeconds == 10)
        #expect(configuration.idleTimeoutSeconds == 300)
    }

    @Test(
        "a value out of range is refused, naming its field, instead of trapping when the daemon uses it",
        arguments: [
            ("port", "70000"), ("port", "-1"), ("max_frame_length", "11"), ("max_frame_length", "5000000000"),
            ("max_in_flight_per_connection", "0"), ("handshake_timeout_seconds", "0"),
            ("handshake_timeout_seconds", "1e300"), ("idle_timeout_seconds", "-5"), ("idle_timeout_seconds", "1e19"),
        ])
    func outOfRange(field: String, value: String) throws {
        let json = Data(#"{"\#(field)": \#(value)}"#.utf8)
        let error = try #require(throws: DecodingError.self) {
            try JSONDecoder().decode(RPCServer.Configuration.self, from: json)
        }
        guard case .dataCorrupted(let context) = error else {
            Issue.record("expected dataCorrupted, got \(error)")
            return
        }
        #expect(context.codingPath.map(\.stringValue) == [field])
    }
}
