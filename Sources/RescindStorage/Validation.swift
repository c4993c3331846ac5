import RescindWire

/// Checks on names that come from peers: SKUs, locations.
public enum Validation {
    /// A SKU or location id: 1 to 64 characters of letters, digits, `.`, `_` and `-`.
    /// - Throws: `RescindError` `invalid_argument` naming the field.
    public static func identifier(_ value: String, field: String) throws {
        let allowed = value.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
        guard !value.isEmpty, value.utf8.count <= 64, allowed else {
            throw RescindError.invalidArgument(
                "\(field) must be 1 to 64 letters, digits, '.', '_' or '-'",
                reason: "bad_\(field)"
            )
        }
    }

    /// A customer's email: at most 254 bytes, no space, text before and after an `@`.
    /// - Throws: `RescindError` `invalid_argument/bad_email`.
    public static func email(_ email: String) throws {
        guard email.utf8.count <= 254, let at = email.firstIndex(of: "@"), at != email.startIndex,
            email.index(after: at) != email.endIndex, !email.contains(" ")
        else {
            throw RescindError.invalidArgument("customer email is not an address", reason: "bad_email")
        }
    }

    /// A currency: three upper-case letters (ISO 4217).
    /// - Throws: `RescindError` `invalid_argument`.
    public static func currency(_ value: String) throws {
        guard value.utf8.count == 3, value.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            throw RescindError.invalidArgument(
                "currency must be three upper-case letters, e.g. USD", reason: "bad_currency")
        }
    }
}
