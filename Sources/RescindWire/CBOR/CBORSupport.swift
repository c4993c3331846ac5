import Foundation
import Synchronization

// Internal helpers shared by CBOREncoder and CBORDecoder. Every name starts with `_CBOR` so
// that nothing collides with the rest of the RescindWire module.

/// A coding key made up at run time: a map key read from the input, an array index, or
/// `"super"`.
struct _CBORKey: CodingKey, Sendable {
    var stringValue: String
    var intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }

    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }

    /// An array position, spelled like Foundation's (`"Index 3"`), printed as `[3]`.
    init(index: Int) {
        self.stringValue = "Index \(index)"
        self.intValue = index
    }

    static let `super` = _CBORKey(stringValue: "super")
}

enum _CBORPath {
    /// Formats a coding path as `order.lines[2].sku`, or `<root>` when it is empty.
    static func describe(_ path: [any CodingKey]) -> String {
        var result = ""
        for key in path {
            if let index = key.intValue, key.stringValue == "Index \(index)" {
                result += "[\(index)]"
            } else {
                if !result.isEmpty {
                    result += "."
                }
                result += key.stringValue
            }
        }
        return result.isEmpty ? "<root>" : result
    }
}

/// Writers for the head and body of every item this codec emits. All of them produce the
/// preferred (shortest) serialization of RFC 8949 §4.2.1.
enum _CBORWriter {
    @inline(__always)
    static func head(_ major: UInt8, _ argument: UInt64, into out: inout [UInt8]) {
        let initial = major &<< 5
        if argument < 24 {
            out.append(initial | UInt8(truncatingIfNeeded: argument))
        } else if argument <= 0xff {
            out.append(initial | 24)
            out.append(UInt8(truncatingIfNeeded: argument))
        } else if argument <= 0xffff {
            out.append(initial | 25)
            out.append(UInt8(truncatingIfNeeded: argument &>> 8))
            out.append(UInt8(truncatingIfNeeded: argument))
        } else if argument <= 0xffff_ffff {
            out.append(initial | 26)
            out.append(UInt8(truncatingIfNeeded: argument &>> 24))
            out.append(UInt8(truncatingIfNeeded: argument &>> 16))
            out.append(UInt8(truncatingIfNeeded: argument &>> 8))
            out.append(UInt8(truncatingIfNeeded: argument))
        } else {
            out.append(initial | 27)
            appendBigEndian(argument, into: &out)
        }
    }

    @inline(__always)
    static func appendBigEndian(_ value: UInt64, into out: inout [UInt8]) {
        var shift: UInt64 = 56
        while true {
            out.append(UInt8(truncatingIfNeeded: value &>> shift))
            if shift == 0 { break }
            shift -= 8
        }
    }

    @inline(__always)
    static func signed(_ value: Int64, into out: inout [UInt8]) {
        if value >= 0 {
            head(0, UInt64(truncatingIfNeeded: value), into: &out)
        } else {
            // -1 - value == ~value in two's complement; Int64.min gives Int64.max.
            head(1, UInt64(truncatingIfNeeded: ~value), into: &out)
        }
    }

    @inline(__always)
    static func unsigned(_ value: UInt64, into out: inout [UInt8]) {
        head(0, value, into: &out)
    }

    @inline(__always)
    static func bool(_ value: Bool, into out: inout [UInt8]) {
        out.append(value ? 0xf5 : 0xf4)
    }

    @inline(__always)
    static func null(into out: inout [UInt8]) {
        out.append(0xf6)
    }

    /// Writes the shortest of float16, float32 and float64 that holds `value` exactly; every
    /// NaN becomes the canonical half-precision quiet NaN `f9 7e 00`.
    static func double(_ value: Double, into out: inout [UInt8]) {
        if value.isNaN {
            out.append(0xf9)
            out.append(0x7e)
            out.append(0x00)
        } else if let half = _CBORFloat.halfBits(exactly: value) {
            out.append(0xf9)
            out.append(UInt8(truncatingIfNeeded: half &>> 8))
            out.append(UInt8(truncatingIfNeeded: half))
        } else if let single = Float(exactly: value) {
            let bits = single.bitPattern
            out.append(0xfa)
            out.append(UInt8(truncatingIfNeeded: bits &>> 24))
            out.append(UInt8(truncatingIfNeeded: bits &>> 16))
            out.append(UInt8(truncatingIfNeeded: bits &>> 8))
            out.append(UInt8(truncatingIfNeeded: bits))
        } else {
            out.append(0xfb)
            appendBigEndian(value.bitPattern, into: &out)
        }
    }

    @inline(__always)
    static func float(_ value: Float, into out: inout [UInt8]) {
        // Float to Double is exact (NaN stays NaN), so the shortest form is the same.
        double(Double(value), into: &out)
    }

    @inline(__always)
    static func text(_ value: String, into out: inout [UInt8]) {
        var value = value
        value.withUTF8 { utf8 in
            head(3, UInt64(utf8.count), into: &out)
            out.append(contentsOf: utf8)
        }
    }

    static func data(_ value: Data, into out: inout [UInt8]) {
        head(2, UInt64(value.count), into: &out)
        value.withUnsafeBytes { raw in
            out.append(contentsOf: raw)
        }
    }

    /// Tag 1 followed by whole seconds as an integer, or by the shortest exact float.
    static func date(_ value: Date, into out: inout [UInt8]) throws {
        let seconds = value.timeIntervalSince1970
        guard seconds.isFinite else {
            throw CBORError(
                code: .encodingFailed,
                message: "cannot encode a Date whose time interval is not finite (\(seconds))"
            )
        }
        out.append(0xc1)
        if let whole = Int64(exactly: seconds) {
            signed(whole, into: &out)
        } else {
            double(seconds, into: &out)
        }
    }

    /// Tag 37 followed by the 16 bytes of the UUID in RFC 9562 (network) order.
    static func uuid(_ value: UUID, into out: inout [UInt8]) {
        out.append(0xd8)
        out.append(37)
        out.append(0x50)
        withUnsafeBytes(of: value.uuid) { raw in
            out.append(contentsOf: raw)
        }
    }
}

enum _CBORFloat {
    /// The IEEE 754 binary16 bits of `value` if it is exactly representable (NaN excluded).
    static func halfBits(exactly value: Double) -> UInt16? {
        let sign: UInt16 = value.sign == .minus ? 0x8000 : 0
        let magnitude = value.magnitude
        if magnitude == 0 {
            return sign
        }
        if magnitude.isInfinite {
            return sign | 0x7c00
        }
        if magnitude.isNaN || magnitude > 65504 {
            return nil
        }
        if magnitude < 0x1p-14 {
            // Half-precision subnormal: magnitude == m * 2^-24 with integer 1 <= m <= 1023.
            let scaled = magnitude * 0x1p24  // exact: scaling by a power of two
            guard scaled == scaled.rounded(.towardZero) else {
                return nil
            }
            return sign | UInt16(scaled)
        }
        let exponent = Int(magnitude.exponent)  // -14 ... 15 here
        let significand = magnitude.significandBitPattern
        guard significand & ((1 << 42) - 1) == 0 else {
            return nil
        }
        return sign | UInt16(exponent + 15) << 10 | UInt16(truncatingIfNeeded: significand >> 42)
    }

    /// Decodes IEEE 754 binary16 bits.
    static func double(fromHalf bits: UInt16) -> Double {
        let exponent = Int((bits >> 10) & 0x1f)
        let mantissa = Double(bits & 0x3ff)
        let magnitude: Double
        if exponent == 0 {
            magnitude = mantissa * 0x1p-24
        } else if exponent == 31 {
            magnitude = mantissa == 0 ? .infinity : .nan
        } else {
            magnitude = (mantissa + 1024) * Double(sign: .plus, exponent: exponent - 25, significand: 1)
        }
        return bits & 0x8000 != 0 ? -magnitude : magnitude
    }
}

enum _CBORUTF8 {
    /// `firstInvalidByte`, with the common case of a short ASCII string checked inline.
    @inline(__always)
    static func firstInvalidByteUnlessShortASCII(
        in buffer: UnsafeBufferPointer<UInt8>,
        start: Int,
        count: Int
    ) -> Int? {
        if count <= 16, start >= 0, count <= buffer.count - start, let base = buffer.baseAddress {
            // Two loads that together cover the string (they may overlap), never past its end.
            let bytes = UnsafeRawPointer(base + start)
            let bits: UInt64
            if count >= 8 {
                bits =
                    bytes.loadUnaligned(as: UInt64.self)
                    | bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            } else if count >= 4 {
                bits = UInt64(
                    bytes.loadUnaligned(as: UInt32.self)
                        | bytes.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)
                )
            } else {
                var small: UInt64 = 0
                for i in 0..<count {
                    small |= UInt64(bytes.load(fromByteOffset: i, as: UInt8.self))
                }
                bits = small
            }
            if bits & 0x8080_8080_8080_8080 == 0 {
                return nil
            }
        }
        return firstInvalidByte(in: buffer, start: start, count: count)
    }

    /// The offset of the first byte of the first ill-formed sequence in
    /// `buffer[start ..< start + count]`, or `nil` if the range is well-formed UTF-8
    /// (no overlong forms, no surrogates, nothing above U+10FFFF).
    static func firstInvalidByte(in buffer: UnsafeBufferPointer<UInt8>, start: Int, count: Int) -> Int? {
        guard count > 0, let base = buffer.baseAddress else {
            return nil
        }
        let end = start + count
        var i = start
        while i < end {
            if end - i >= 8 {
                let word = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                if word & 0x8080_8080_8080_8080 == 0 {
                    i += 8
                    continue
                }
            }
            let b0 = base[i]
            if b0 < 0x80 {
                i += 1
            } else if b0 < 0xc2 {
                return i
            } else if b0 < 0xe0 {
                guard end - i >= 2, base[i + 1] & 0xc0 == 0x80 else { return i }
                i += 2
            } else if b0 < 0xf0 {
                guard end - i >= 3 else { return i }
                let b1 = base[i + 1]
                let low: UInt8 = b0 == 0xe0 ? 0xa0 : 0x80
                let high: UInt8 = b0 == 0xed ? 0x9f : 0xbf
                guard b1 >= low, b1 <= high, base[i + 2] & 0xc0 == 0x80 else { return i }
                i += 3
            } else if b0 < 0xf5 {
                guard end - i >= 4 else { return i }
                let b1 = base[i + 1]
                let low: UInt8 = b0 == 0xf0 ? 0x90 : 0x80
                let high: UInt8 = b0 == 0xf4 ? 0x8f : 0xbf
                guard b1 >= low, b1 <= high, base[i + 2] & 0xc0 == 0x80, base[i + 3] & 0xc0 == 0x80 else {
                    return i
                }
                i += 4
            } else {
                return i
            }
        }
        return nil
    }
}

/// Keeps up to two idle objects (the encoders' and decoder's per-call states) for reuse, so
/// that a call does not allocate its buffers anew. Taking and returning an object is one
/// atomic exchange each; when both places are empty (more calls at once than that), callers
/// make a new object, and objects returned while both places are full are released.
///
/// `@unchecked Sendable` although `Object` is not: an object moves between threads only
/// through `put` and `take`, and `put` requires the caller's reference to be the only one
/// (callers check with `isKnownUniquelyReferenced`), so no two threads ever share one.
final class _CBORRecycler<Object: AnyObject>: @unchecked Sendable {
    private let first = Atomic<Unmanaged<Object>?>(nil)
    private let second = Atomic<Unmanaged<Object>?>(nil)

    init() {}

    /// An idle object, or `nil` if there is none.
    @inline(__always)
    func take() -> Object? {
        if let object = first.exchange(nil, ordering: .acquiring) {
            return object.takeRetainedValue()
        }
        if let object = second.exchange(nil, ordering: .acquiring) {
            return object.takeRetainedValue()
        }
        return nil
    }

    /// Keeps `object` for a later `take()`. The caller must hold the only reference to it.
    @inline(__always)
    func put(_ object: Object) {
        let unmanaged = Unmanaged.passRetained(object)
        if first.compareExchange(expected: nil, desired: unmanaged, ordering: .releasing).exchanged {
            return
        }
        if second.compareExchange(expected: nil, desired: unmanaged, ordering: .releasing).exchanged {
            return
        }
        unmanaged.release()
    }
}
