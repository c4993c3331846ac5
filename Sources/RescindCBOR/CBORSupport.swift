import Foundation
import Synchronization

// Internal helpers shared by CBOREncoder and CBORDecoder.

/// A coding key made up at run time: a map key read from the input, an array index, or
/// `"super"`.
struct AnyCodingKey: CodingKey, Sendable {
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

    static let `super` = AnyCodingKey(stringValue: "super")
}

enum CodingPathText {
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

enum HalfFloat {
    /// The IEEE 754 binary16 bits of `value` if it is exactly representable (NaN excluded).
    static func bits(exactly value: Double) -> UInt16? {
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

enum UTF8Check {
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
final class Recycler<Object: AnyObject>: @unchecked Sendable {
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
