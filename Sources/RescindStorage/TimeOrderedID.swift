import Foundation

extension UUID {
    /// A version 7 UUID (RFC 9562 §5.7): the Unix time in milliseconds in its first 48 bits, then random bits.
    ///
    /// The ids that key the busiest tables (orders, sagas, and through the order id the payment, reservation
    /// and ledger rows of the other daemons) are made this way so that new rows go to one end of each B-tree:
    /// with random (version 4) ids every insert lands on a page of its own somewhere in the tree, and once the
    /// tables outgrow SQLite's page cache each one is a page read and a page written to the WAL. Their text
    /// form (upper-case hex) sorts as they were made. An id shows when, to the millisecond, it was made.
    public static func timeOrdered(at date: Date = Date()) -> UUID {
        var bytes = UUID().uuid
        let millis = UInt64(max(0, date.timeIntervalSince1970 * 1_000))
        bytes.0 = UInt8(truncatingIfNeeded: millis >> 40)
        bytes.1 = UInt8(truncatingIfNeeded: millis >> 32)
        bytes.2 = UInt8(truncatingIfNeeded: millis >> 24)
        bytes.3 = UInt8(truncatingIfNeeded: millis >> 16)
        bytes.4 = UInt8(truncatingIfNeeded: millis >> 8)
        bytes.5 = UInt8(truncatingIfNeeded: millis)
        bytes.6 = (bytes.6 & 0x0F) | 0x70  // version 7
        bytes.8 = (bytes.8 & 0x3F) | 0x80  // variant 10
        return UUID(uuid: bytes)
    }
}
