import RescindAPI
import Testing

/// Amounts are shown in each currency's own minor units (ISO 4217), as the CLI, the order page and the emails
/// show them.
@Suite struct MoneyTests {
    @Test(arguments: [
        (Int64(2_500), "USD", "25.00 USD"), (5, "EUR", "0.05 EUR"), (-1_999, "USD", "-19.99 USD"),
        (500, "JPY", "500 JPY"), (-500, "KRW", "-500 KRW"),
        (1_234, "BHD", "1.234 BHD"), (5, "KWD", "0.005 KWD"), (100_000, "TND", "100.000 TND"),
        (12_345, "CLF", "1.2345 CLF"),
    ])
    func eachCurrencyInItsOwnMinorUnits(_ minor: Int64, _ currency: String, _ shown: String) {
        #expect(Money.text(minor, currency) == shown)
    }

    @Test func aCommaWhereTheLanguageWritesOne() {
        #expect(Money.text(1_234, "BHD", decimalSeparator: ",") == "1,234 BHD")
        #expect(Money.text(2_500, "NOK", decimalSeparator: ",") == "25,00 NOK")
    }
}
