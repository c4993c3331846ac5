/// Amounts of money as people read them.
public enum Money {
    /// The currencies whose minor unit is not a hundredth (ISO 4217): none, a thousandth, a ten-thousandth.
    static let exponents: [String: Int] = [
        "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
        "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
        "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
        "CLF": 4, "UYW": 4,
    ]

    /// How many decimals a currency's minor unit has (ISO 4217): 2 unless listed otherwise.
    public static func exponent(_ currency: String) -> Int { exponents[currency] ?? 2 }

    /// Minor units as a decimal amount with its currency, in the currency's own decimals (ISO 4217): `25.00 EUR`
    /// (`25,00 EUR` with a comma separator), `500 JPY`, `1.234 BHD`.
    public static func text(_ minor: Int64, _ currency: String, decimalSeparator: String = ".") -> String {
        let exponent = exponent(currency)
        let sign = minor < 0 ? "-" : ""
        let magnitude = minor.magnitude
        guard exponent > 0 else { return "\(sign)\(magnitude) \(currency)" }
        var scale: UInt64 = 1
        for _ in 0..<exponent { scale *= 10 }
        let fraction = String(magnitude % scale)
        let padded = String(repeating: "0", count: exponent - fraction.count) + fraction
        return "\(sign)\(magnitude / scale)\(decimalSeparator)\(padded) \(currency)"
    }
}
