import Foundation
import Logging
import RescindAPI
import RescindCBOR
import RescindInventory
import RescindOrders
import RescindPayments
import RescindTransport
import RescindWire
import Synchronization
import Testing

@Suite struct PaymentsServiceTests {
    private func caller(_ f: ServiceFixture) -> InProcessCaller {
        InProcessCaller(router: f.paymentsRouter, peer: .orders)
    }

    @Test func captureChargesTheFeeAndARefundKeepsIt() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let order = UUID()
        let c = caller(f)
        _ = try await c.call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: order, amountMinor: 6200, currency: "USD", paymentMethod: "pm_card_visa"),
            idempotencyKey: "a", timeout: nil
        )
        let captured = try await c.call(
            PaymentsMethods.capture, PaymentRequest(orderID: order), idempotencyKey: "c", timeout: nil)
        // 2.9% of 62.00 is 1.798, rounded to 1.80, plus 0.30.
        #expect(captured.fee == 210)
        let refund = try await c.call(
            PaymentsMethods.refund, RefundRequest(orderID: order), idempotencyKey: "r", timeout: nil)
        #expect(refund.refundedMinor == 6200)
        #expect(refund.feeKeptMinor == 210)
        #expect(refund.payment.status == .refunded)
        #expect(refund.payment.net == -210)
    }

    @Test func aRefundNeverExceedsWhatWasCaptured() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let order = UUID()
        let c = caller(f)
        _ = try await c.call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: order, amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_visa"),
            idempotencyKey: "a", timeout: nil
        )
        _ = try await c.call(PaymentsMethods.capture, PaymentRequest(orderID: order), idempotencyKey: "c", timeout: nil)
        let partial = try await c.call(
            PaymentsMethods.refund, RefundRequest(orderID: order, amountMinor: 400), idempotencyKey: "r1", timeout: nil
        )
        #expect(partial.payment.status == .partiallyRefunded)
        let error = await #expect(throws: RescindError.self) {
            try await c.call(
                PaymentsMethods.refund, RefundRequest(orderID: order, amountMinor: 601), idempotencyKey: "r2",
                timeout: nil)
        }
        #expect(error?.reason == "refund_exceeds_capture")
        #expect(try await f.payments.payment(order).amountRefunded == 400)
    }

    @Test func testCardsFailOnPurpose() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let c = caller(f)
        let declined = await #expect(throws: RescindError.self) {
            try await c.call(
                PaymentsMethods.authorize,
                AuthorizeRequest(
                    orderID: UUID(), amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_visa_chargeDeclined"),
                idempotencyKey: "d", timeout: nil
            )
        }
        #expect(declined?.reason == "card_declined")
        #expect(declined?.retryable == false)

        let order = UUID()
        _ = try await c.call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: order, amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_refundFail"),
            idempotencyKey: "a", timeout: nil
        )
        _ = try await c.call(PaymentsMethods.capture, PaymentRequest(orderID: order), idempotencyKey: "c", timeout: nil)
        let refund = await #expect(throws: RescindError.self) {
            try await c.call(PaymentsMethods.refund, RefundRequest(orderID: order), idempotencyKey: "r", timeout: nil)
        }
        #expect(refund?.reason == "refund_declined")
        #expect(try await f.payments.payment(order).status == .captured)

        // Authorized, then the capture declined for good: the authorization stays, to be voided.
        let lapsed = UUID()
        _ = try await c.call(
            PaymentsMethods.authorize,
            AuthorizeRequest(
                orderID: lapsed, amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_captureDeclined"),
            idempotencyKey: "a2", timeout: nil
        )
        let capture = await #expect(throws: RescindError.self) {
            try await c.call(
                PaymentsMethods.capture, PaymentRequest(orderID: lapsed), idempotencyKey: "c2", timeout: nil)
        }
        #expect(capture?.reason == "capture_declined")
        #expect(capture?.retryable == false)
        #expect(try await f.payments.payment(lapsed).status == .authorized)
        #expect(try await f.payments.payment(lapsed).amountCaptured == 0)
        let voided = try await c.call(
            PaymentsMethods.void, VoidRequest(orderID: lapsed), idempotencyKey: "v2", timeout: nil)
        #expect(voided.status == .voided)
    }

    @Test func voidingAnAuthorizationMovesNoMoney() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let order = UUID()
        let c = caller(f)
        _ = try await c.call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: order, amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_visa"),
            idempotencyKey: "a", timeout: nil
        )
        let voided = try await c.call(
            PaymentsMethods.void, VoidRequest(orderID: order), idempotencyKey: "v", timeout: nil)
        #expect(voided.status == .voided)
        #expect(voided.fee == 0)
        #expect(voided.amountCaptured == 0)
    }

    @Test func voidingPartOfAnAuthorizationLowersTheCardFirstThenGivesCreditBack() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let c = caller(f)
        func call<Request, Response>(_ method: RescindAPI.Method<Request, Response>, _ request: Request) async throws
            -> Response
        {
            try await c.call(method, request, idempotencyKey: UUID().uuidString, timeout: nil)
        }
        // 1000 on the card: 400 of it voided saves the fee on 1000 less the fee on 600 (2.9% + 30).
        let order = UUID()
        _ = try await call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: order, amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_visa"))
        let part = try await call(PaymentsMethods.void, VoidRequest(orderID: order, amountMinor: 400))
        #expect(part.status == .authorized)
        #expect(part.amountAuthorized == 600)
        #expect(part.feeSaved == 12)  // 59 - 47
        let tooMuch = await #expect(throws: RescindError.self) {
            try await call(PaymentsMethods.void, VoidRequest(orderID: order, amountMinor: 601))
        }
        #expect(tooMuch?.reason == "bad_amount")
        // The rest: voided at what it was, and the two voids together saved the fee on the whole 1000.
        let rest = try await call(PaymentsMethods.void, VoidRequest(orderID: order))
        #expect(rest.status == .voided)
        #expect(rest.amountAuthorized == 600)
        #expect(rest.feeSaved == 59)

        // 500 of store credit and 500 on the card: a void of 700 takes the card's 500, then gives 200 back.
        let customer = "cy@example.com"
        let earlier = UUID()
        _ = try await call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: earlier, amountMinor: 500, currency: "USD", paymentMethod: "pm_card_visa"))
        _ = try await call(PaymentsMethods.capture, PaymentRequest(orderID: earlier))
        _ = try await call(PaymentsMethods.refund, RefundRequest(orderID: earlier, storeCreditOf: customer))
        let mixed = UUID()
        var spending = AuthorizeRequest(
            orderID: mixed, amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_visa")
        spending.spendStoreCreditOf = customer
        _ = try await call(PaymentsMethods.authorize, spending)
        let lowered = try await call(PaymentsMethods.void, VoidRequest(orderID: mixed, amountMinor: 700))
        #expect(lowered.amountAuthorized == 0)
        #expect(lowered.creditAppliedMinor == 300)
        #expect(try await f.payments.storeCredit(customer).balanceMinor == 200)
        let captured = try await call(PaymentsMethods.capture, PaymentRequest(orderID: mixed))
        #expect(captured.amountCaptured == 0)
        #expect(captured.fee == 0)
    }

    @Test func noCardNumberReachesPaymentsNorItsProcessor() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let order = UUID()
        let payment = try await caller(f).call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: order, amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_visa"),
            idempotencyKey: "a", timeout: nil
        )
        #expect(payment.cardLast4 == "4242")
        #expect(payment.cardFingerprint?.hasPrefix("fp_") == true)
        // Nothing on disk holds the card number: not the databases, not their WALs.
        for file in try FileManager.default.contentsOfDirectory(atPath: f.directory.path)
        where file.hasPrefix("payments") {
            let bytes = try Data(contentsOf: f.directory.appendingPathComponent(file))
            #expect(bytes.range(of: Data("4242424242424242".utf8)) == nil, "\(file) holds the card number")
        }
    }

    /// A request that still carries a card number is refused by its decoder, naming the replacement.
    @Test func aCardNumberIsRefusedWithTheFieldToSendInstead() throws {
        struct Legacy: Codable {
            var order_id = UUID()
            var amount: Int64 = 100
            var currency = "USD"
            var card_number = "4242424242424242"
        }
        let bytes = try WireCodec().encoder.encode(Legacy())
        let error = #expect(throws: RescindError.self) {
            try WireCodec().decodeRequest(AuthorizeRequest.self, from: bytes)
        }
        #expect(error?.reason == "card_number_refused")
        #expect(error?.message.contains("payment_method") == true)
        #expect(error?.retryable == false)
    }

    /// The processor acted but its answer was lost, and it ignores idempotency keys: the retry with the same key
    /// finds the charge and the refund by their keys instead of making them again.
    @Test func aCallWhoseAnswerWasLostIsFoundOutNotMadeAgain() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let c = caller(f)
        let order = UUID()
        let authorize = AuthorizeRequest(
            orderID: order, amountMinor: 1500, currency: "USD", paymentMethod: "pm_card_visa")
        try f.processor.setFaults(.init(mode: .answerLost))
        let lost = await #expect(throws: RescindError.self) {
            try await c.call(PaymentsMethods.authorize, authorize, idempotencyKey: "a", timeout: nil)
        }
        #expect(lost?.retryable == true)
        try f.processor.setFaults(.init(mode: .ignoreIdempotency))
        let authorized = try await c.call(PaymentsMethods.authorize, authorize, idempotencyKey: "a", timeout: nil)
        #expect(authorized.amountAuthorized == 1500)
        #expect(try await f.processor.charges().count == 1)

        _ = try await c.call(PaymentsMethods.capture, PaymentRequest(orderID: order), idempotencyKey: "c", timeout: nil)
        try f.processor.setFaults(.init(mode: .answerLost))
        _ = await #expect(throws: RescindError.self) {
            try await c.call(
                PaymentsMethods.refund, RefundRequest(orderID: order, amountMinor: 500), idempotencyKey: "r",
                timeout: nil)
        }
        try f.processor.setFaults(.init(mode: .ignoreIdempotency))
        let refunded = try await c.call(
            PaymentsMethods.refund, RefundRequest(orderID: order, amountMinor: 500), idempotencyKey: "r", timeout: nil)
        #expect(refunded.payment.amountRefunded == 500)
        let charge = try #require(try await f.processor.charges().first)
        #expect(charge.refunds == 1)
        #expect(charge.amountRefunded == 500)
        #expect(charge.amountCaptured == 1500)
    }

    /// Orders gave up on an authorization whose answer was lost: its request never comes back. The sweep finds the
    /// charge the processor made by the call's key and cancels it, and a late repeat answers that it was abandoned.
    @Test func anAuthorizationNobodyAsksAgainIsCancelledAtTheProcessor() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let c = caller(f)
        let order = UUID()
        let authorize = AuthorizeRequest(
            orderID: order, amountMinor: 1500, currency: "USD", paymentMethod: "pm_card_visa")
        try f.processor.setFaults(.init(mode: .answerLost))
        _ = await #expect(throws: RescindError.self) {
            try await c.call(PaymentsMethods.authorize, authorize, idempotencyKey: "a", timeout: nil)
        }
        try f.processor.setFaults(.init(mode: .normal))
        // Too recent: left for its request to come back.
        #expect(try await f.payments.settleAbandonedAuthorizations(olderThan: 3_600) == 0)
        #expect(try await f.processor.charges().map(\.status) == ["requires_capture"])

        #expect(try await f.payments.settleAbandonedAuthorizations(olderThan: 0) == 1)
        #expect(try await f.processor.charges().map(\.status) == ["canceled"])
        let late = await #expect(throws: RescindError.self) {
            try await c.call(PaymentsMethods.authorize, authorize, idempotencyKey: "a", timeout: nil)
        }
        #expect(late?.reason == "authorization_abandoned")
        #expect(late?.retryable == false)
        await #expect(throws: RescindError.self) { try await f.payments.payment(order) }
        #expect(try await f.payments.settleAbandonedAuthorizations(olderThan: 0) == 0)
    }

    /// More on an authorized payment raises its charge; more on a captured one is a second charge, captured at
    /// once with its own fee; a refund of everything refunds both charges.
    @Test func anIncreaseAfterTheCaptureIsASecondChargeAndARefundSpansBoth() async throws {
        let f = try ServiceFixture()
        defer { f.stop() }
        let c = caller(f)
        let order = UUID()
        _ = try await c.call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: order, amountMinor: 1000, currency: "USD", paymentMethod: "pm_card_visa"),
            idempotencyKey: "a", timeout: nil)
        let raised = try await c.call(
            PaymentsMethods.increase, IncreaseRequest(orderID: order, amountMinor: 200), idempotencyKey: "i1",
            timeout: nil)
        #expect(raised.amountAuthorized == 1200)
        #expect(try await f.processor.charges().map(\.amount) == [1200])
        _ = try await c.call(PaymentsMethods.capture, PaymentRequest(orderID: order), idempotencyKey: "c", timeout: nil)
        let more = try await c.call(
            PaymentsMethods.increase, IncreaseRequest(orderID: order, amountMinor: 300), idempotencyKey: "i2",
            timeout: nil)
        #expect(more.amountCaptured == 1500)
        // 2.9% + 30 on each charge: 65 on 1200, 39 on 300.
        #expect(more.fee == 65 + 39)
        let refund = try await c.call(
            PaymentsMethods.refund, RefundRequest(orderID: order), idempotencyKey: "r", timeout: nil)
        #expect(refund.refundedMinor == 1500)
        let charges = try await f.processor.charges()
        #expect(charges.map(\.amountCaptured) == [1200, 300])
        #expect(charges.map(\.amountRefunded) == [1200, 300])
        #expect(charges.map(\.fee) == [65, 39])
    }
}

/// A processor that runs a test's step once, in the middle of the next authorization: what another request does
/// while Payments waits for the processor.
private final class InterleavingProcessor: PaymentProcessor {
    let inner: SimulatedProcessor
    let meanwhile = Mutex<(@Sendable () async throws -> Void)?>(nil)

    init(_ inner: SimulatedProcessor) { self.inner = inner }

    func authorize(_ request: ProcessorAuthorization, key: String) async throws -> ProcessorCharge {
        if let step = meanwhile.withLock({ step in
            defer { step = nil }; return step
        }) {
            try await step()
        }
        return try await inner.authorize(request, key: key)
    }
    func capture(charge: String, amountMinor: Int64, key: String) async throws -> Int64? {
        try await inner.capture(charge: charge, amountMinor: amountMinor, key: key)
    }
    func void(charge: String, key: String) async throws { try await inner.void(charge: charge, key: key) }
    func authorizeMore(charge: String, totalMinor: Int64, key: String) async throws {
        try await inner.authorizeMore(charge: charge, totalMinor: totalMinor, key: key)
    }
    func refund(charge: String, amountMinor: Int64, key: String) async throws -> String {
        try await inner.refund(charge: charge, amountMinor: amountMinor, key: key)
    }
    func lookup(_ call: ProcessorCall) async throws -> ProcessorOutcome? { try await inner.lookup(call) }
    func charges(since: Date?) async throws -> [ProcessorChargeState] { try await inner.charges(since: since) }
    func charge(_ id: String) async throws -> ProcessorChargeState? { try await inner.charge(id) }
}

@Suite struct StoreCreditDuringACallTests {
    /// While the card of one order is being authorized, another order of the same customer spends the store credit
    /// the first counted on: the first is refused (`store_credit_spent`) and its card's authorization cancelled, and
    /// the credit is spent once.
    @Test func creditSpentElsewhereWhileTheCardIsAskedIsNotSpentTwice() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rescind-test-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let simulator = try SimulatedProcessor(
            databasePath: directory.appendingPathComponent("payments-processor.sqlite").path)
        let processor = InterleavingProcessor(simulator)
        let payments = try PaymentsService(
            databasePath: directory.appendingPathComponent("payments.sqlite").path, processor: processor,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        var router = RPCRouter()
        payments.register(into: &router)
        let c = InProcessCaller(router: router, peer: .orders)
        let customer = "cy@example.com"
        // 500 of store credit, from a refund.
        let earlier = UUID()
        _ = try await c.call(
            PaymentsMethods.authorize,
            AuthorizeRequest(orderID: earlier, amountMinor: 500, currency: "USD", paymentMethod: "pm_card_visa"),
            idempotencyKey: "e-a", timeout: nil)
        _ = try await c.call(
            PaymentsMethods.capture, PaymentRequest(orderID: earlier), idempotencyKey: "e-c", timeout: nil)
        _ = try await c.call(
            PaymentsMethods.refund, RefundRequest(orderID: earlier, storeCreditOf: customer), idempotencyKey: "e-r",
            timeout: nil)

        // Order B spends 400 of it while order A's card is being asked for what A's 500 of credit does not pay.
        let other = UUID()
        processor.meanwhile.withLock {
            $0 = {
                var spending = AuthorizeRequest(
                    orderID: other, amountMinor: 400, currency: "USD", paymentMethod: "pm_card_visa")
                spending.spendStoreCreditOf = customer
                _ = try await c.call(PaymentsMethods.authorize, spending, idempotencyKey: "b-a", timeout: nil)
            }
        }
        let order = UUID()
        var request = AuthorizeRequest(
            orderID: order, amountMinor: 1_000, currency: "USD", paymentMethod: "pm_card_visa")
        request.spendStoreCreditOf = customer
        let refused = await #expect(throws: RescindError.self) {
            try await c.call(PaymentsMethods.authorize, request, idempotencyKey: "a-a", timeout: nil)
        }
        #expect(refused?.reason == "store_credit_spent")
        #expect(try await payments.storeCredit(customer).balanceMinor == 100)
        #expect(try await payments.payment(other).creditAppliedMinor == 400)
        await #expect(throws: RescindError.self) { try await payments.payment(order) }
        // A's card was asked for the 500 its credit would not pay, and that authorization is cancelled.
        let charges = try await simulator.charges().filter { $0.orderID == order.uuidString }
        #expect(charges.map(\.status) == ["canceled"])
        #expect(charges.map(\.amount) == [500])
    }
}
