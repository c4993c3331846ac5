import RescindCBOR
import RescindWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The checks the fuzz targets make on what the decoders accept. A broken invariant aborts, which libFuzzer
/// reports as a crash and saves the input.
public enum Invariant {
    /// Prints `message` and aborts the process.
    public static func fail(_ message: String) -> Never {
        let text = "INVARIANT BROKEN: \(message)\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
        abort()
    }

    /// Aborts with `message` if `condition` is false.
    @inline(__always)
    public static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fail(message()) }
    }

    /// Hex of at most `limit` bytes, for messages.
    public static func hex(_ bytes: some Sequence<UInt8>, limit: Int = 256) -> String {
        var text = ""
        for (index, byte) in bytes.enumerated() {
            if index == limit {
                text += "..."
                break
            }
            let digits = String(byte, radix: 16)
            text += digits.count == 1 ? "0" + digits : digits
        }
        return text
    }
}

/// Decoding from untrusted bytes and what must hold for whatever decodes.
public enum CBORChecks {
    public static let encoder = CBOREncoder()
    public static let decoder = CBORDecoder()
    /// How strictly a decoded value must survive re-encoding.
    public enum RoundTrip: Sendable {
        /// `decode(encode(v)) == v` and `encode(decode(encode(v))) == encode(v)`.
        case equalValue
        /// Only the bytes: `encode(decode(encode(v))) == encode(v)`. For types holding a `Date` (the encoder
        /// documents that a fractional date may come back one floating-point step away) or a float (NaN).
        case stableBytes
    }

    /// Decodes `bytes` as `T` the way the server does (`CBORDecoder.decode`); if that succeeds, checks that
    /// the value re-encodes canonically. Every failure must be a `CBORError`.
    @discardableResult
    public static func decode<T: Codable & Equatable, Bytes: Collection<UInt8>>(
        _ type: T.Type,
        from bytes: Bytes,
        roundTrip: RoundTrip = .equalValue
    ) -> T? {
        let value: T
        do {
            value = try decoder.decode(T.self, from: bytes)
        } catch {
            checkDecodingError(error, decoding: T.self)
            return nil
        }
        checkRoundTrip(value, roundTrip)
        return value
    }

    /// A decoding failure must be a `CBORError`, or the one refusal a type makes of its own (a request that carries
    /// a card number: `invalid_argument/card_number_refused`, not retryable), and the server's error frame for it
    /// (a `RescindError` whose message quotes the error) must encode and decode.
    public static func checkDecodingError<T>(_ error: any Error, decoding type: T.Type) {
        if let refusal = error as? RescindError {
            Invariant.check(
                isOwnRefusal(refusal),
                "decoding \(T.self) threw a RescindError that is not the card number's refusal: \(refusal)")
            checkRoundTrip(refusal, .equalValue)
            return
        }
        guard let cborError = error as? CBORError else {
            Invariant.fail("decoding \(T.self) threw a \(Swift.type(of: error)), not a CBORError: \(error)")
        }
        if let offset = cborError.offset {
            Invariant.check(offset >= 0, "CBORError offset \(offset) is negative: \(cborError)")
        }
        let wireError = RescindError(.malformed, "cannot read the body: \(cborError)", reason: "bad_body")
        checkRoundTrip(wireError, .equalValue)
    }

    /// The one refusal a request type throws of its own while decoding: a card number instead of a payment method.
    public static func isOwnRefusal(_ error: RescindError) -> Bool {
        error.code == .invalidArgument && error.reason == "card_number_refused" && !error.retryable
    }

    /// Re-encodes a decoded value and checks the encoding is stable (and, if asked, the value).
    public static func checkRoundTrip<T: Codable & Equatable>(_ value: T, _ roundTrip: RoundTrip) {
        let first: [UInt8]
        do {
            first = try encoder.encode(value)
        } catch {
            Invariant.fail("a decoded \(T.self) does not encode: \(error)\nvalue: \(value)")
        }
        let again: T
        do {
            again = try decoder.decode(T.self, from: first)
        } catch {
            Invariant.fail(
                "the encoding of a decoded \(T.self) does not decode: \(error)\nbytes: \(Invariant.hex(first))\nvalue: \(value)"
            )
        }
        let second: [UInt8]
        do {
            second = try encoder.encode(again)
        } catch {
            Invariant.fail("a re-decoded \(T.self) does not encode: \(error)\nvalue: \(again)")
        }
        Invariant.check(
            first == second,
            "encoding of \(T.self) is not stable:\n first:  \(Invariant.hex(first))\n second: \(Invariant.hex(second))"
        )
        if roundTrip == .equalValue {
            Invariant.check(
                again == value, "\(T.self) changed through encode/decode:\n before: \(value)\n after:  \(again)")
        }
    }
}
