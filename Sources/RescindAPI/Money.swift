/// Amounts as people read them.
public enum Money {
    /// Currencies without minor units: an amount in them is shown as it is.
    static let zeroDecimal: Set<String> = ["JPY", "KRW", "VND", "CLP", "ISK"]

    /// Minor units as a decimal amount with its currency: `25.00 EUR` (`25,00 EUR` with a comma separator);
    /// two decimals, none in a zero-decimal currency.
    public static func text(_ minor: Int64, _ currency: String, decimalSeparator: String = ".") -> String {
        if zeroDecimal.contains(currency) { return "\(minor) \(currency)" }
        let sign = minor < 0 ? "-" : ""
        let magnitude = minor.magnitude
        let cents = magnitude % 100
        return "\(sign)\(magnitude / 100)\(decimalSeparator)\(cents < 10 ? "0" : "")\(cents) \(currency)"
    }
}
