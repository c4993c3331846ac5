import Foundation
import NIOCore
import RescindAPI
import RescindCBOR
import RescindWire
import Testing

/// The golden frames of `protocol/vectors/vectors.json`, proved against the Swift encoder and decoder.
///
/// The Swift types are the source of truth: each vector is built here from a Swift value with fixed UUIDs
/// and dates, written with `WireCodec` and `Frame.write(to:)`, and must equal the file byte for byte; the
/// file's bytes must decode back to the same value. `protocol/check_vectors.py` validates the same file
/// against `protocol/rescind.cddl`. When a type changes on purpose, the failing expectation prints the new
/// frame: update the file with it (and the schema) in the same change.
@Suite("Golden vectors: protocol/vectors/vectors.json matches the Swift encoder and decoder")
struct GoldenVectorTests {
    @Test("every vector in the file has a Swift value, and every Swift value a vector")
    func everyVectorHasAValue() throws {
        let file = try GoldenVectorFile.load()
        let fileNames = file.vectors.map(\.name)
        #expect(Set(fileNames).count == fileNames.count, "duplicate vector names")
        #expect(Set(fileNames) == Set(GoldenCase.all.map(\.name)))
    }

    @Test("the Swift encoder writes each vector's frame byte for byte", arguments: GoldenCase.all)
    func encodes(_ golden: GoldenCase) throws {
        let vector = try #require(try GoldenVectorFile.load().vector(named: golden.name))
        var out = ByteBuffer()
        Frame(kind: golden.kind, correlationID: golden.correlationID, body: try golden.makeBody()).write(to: &out)
        let written = Hex.encode(out.readableBytesView)
        #expect(written == vector.frame, "\(golden.name): the Swift encoder writes \(written)")
        #expect(vector.kind == golden.kind.description)
    }

    @Test("each vector's frame decodes back to its Swift value", arguments: GoldenCase.all)
    func decodes(_ golden: GoldenCase) throws {
        let vector = try #require(try GoldenVectorFile.load().vector(named: golden.name))
        var buffer = ByteBuffer(bytes: try Hex.decode(vector.frame))
        var decoder = FrameDecoder()
        let frame = try #require(try decoder.decode(buffer: &buffer))
        #expect(buffer.readableBytes == 0, "\(golden.name): bytes after the frame")
        #expect(frame.version == Frame.currentVersion)
        #expect(frame.flags == 0)
        #expect(frame.kind == golden.kind)
        #expect(frame.correlationID == golden.correlationID)
        try golden.checkBody(frame.body)
    }

    @Test("the text choices of rescind.cddl are the raw values of the Swift enumerations")
    func schemaEnumerations() throws {
        let schema = try String(contentsOf: GoldenVectorFile.schemaURL, encoding: .utf8)
        /// The rule `name = "a" / "b" / ...`, its continuation lines (indented) included.
        func rule(_ name: String) throws -> String {
            let lines = schema.split(separator: "\n", omittingEmptySubsequences: false)
            let start = try #require(lines.firstIndex { $0.hasPrefix("\(name) = ") })
            let rest = lines[(start + 1)...].prefix { $0.hasPrefix("  ") }
            return ([lines[start]] + rest).joined(separator: " ")
        }
        /// The strings of a rule.
        func choices(_ name: String) throws -> Set<String> {
            Set(
                try rule(name).split(separator: "\"").enumerated().filter { $0.offset % 2 == 1 }
                    .map { String($0.element) })
        }
        func rawValues<E: RawRepresentable<String>>(_ values: [E]) -> Set<String> { Set(values.map(\.rawValue)) }

        /// An extensible value: its known values, and any other text (`/ tstr`), which a peer must accept.
        func open(_ name: String) throws -> Set<String> {
            #expect(try rule(name).hasSuffix(" / tstr"), "\(name) must admit values this schema does not list")
            return try choices(name)
        }

        #expect(try open("order-status") == rawValues(Order.Status.known))
        #expect(try open("order-source") == rawValues(Order.Source.known))
        #expect(try open("fulfilment-progress") == rawValues(FulfilmentProgress.known))
        #expect(try open("refund-destination") == rawValues(RefundDestination.known))
        #expect(try choices("cancel-reason") == rawValues(CancelReason.allCases))
        #expect(try open("saga-state") == rawValues(Saga.State.known))
        #expect(try open("saga-kind") == rawValues(Saga.Kind.known))
        #expect(try open("settle-outcome") == rawValues(SettleOutcome.known))
        #expect(try open("cancel-request-state") == rawValues(CancelRequest.State.known))
        #expect(try open("risk-level") == rawValues(RiskAssessment.Level.known))
        #expect(try open("reservation-status") == rawValues(Reservation.Status.known))
        #expect(try open("error-code") == rawValues(RescindError.Code.known))
        #expect(try open("processor-fault-mode") == rawValues(ProcessorFaults.Mode.known))
        // Not CaseIterable: their cases are listed by hand.
        #expect(try choices("saga-step-direction") == rawValues([Saga.Step.Direction.forward, .compensate]))
        #expect(try choices("saga-step-status") == rawValues([Saga.Step.Status.started, .succeeded, .failed]))
        #expect(
            try choices("payment-status")
                == rawValues([Payment.Status.authorized, .captured, .voided, .partiallyRefunded, .refunded])
        )
    }

    @Test("the vectors of values a newer peer could send hold values this build does not know")
    func futureValuesAreUnknown() {
        // Were one of these to become known, its vector would no longer show that an unknown value decodes.
        #expect(!Saga.Kind.known.contains(Fixture.futureSaga.kind))
        #expect(!Saga.State.known.contains(Fixture.futureSaga.state))
        #expect(!Order.Status.known.contains(Fixture.futureOrder.status))
    }
}

// MARK: - The file

/// `protocol/vectors/vectors.json`: see `protocol/vectors/README.md` for the format.
struct GoldenVectorFile: Decodable {
    struct Vector: Decodable {
        var name: String
        var description: String
        var kind: String
        var rule: String
        var payloadRule: String?
        /// The whole frame (length prefix, header, body) in lower-case hex.
        var frame: String

        enum CodingKeys: String, CodingKey {
            case name, description, kind, rule, frame
            case payloadRule = "payload_rule"
        }
    }

    var vectors: [Vector]

    func vector(named name: String) -> Vector? {
        vectors.first { $0.name == name }
    }

    /// The package root, found from this file's path: Tests/RescindProtocolTests/GoldenVectorTests.swift.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
    static let url = packageRoot.appendingPathComponent("protocol/vectors/vectors.json")
    static let schemaURL = packageRoot.appendingPathComponent("protocol/rescind.cddl")

    static func load() throws -> GoldenVectorFile {
        try JSONDecoder().decode(GoldenVectorFile.self, from: Data(contentsOf: url))
    }
}

enum Hex {
    struct BadHex: Error {}

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }

    static func decode(_ text: String) throws -> [UInt8] {
        let digits = Array(text.utf8)
        guard digits.count.isMultiple(of: 2) else { throw BadHex() }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { throw BadHex() }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}

// MARK: - The Swift side of each vector

/// One vector as Swift builds it: the frame's kind and correlation id, its body, and a check that a
/// decoded body is the same value.
struct GoldenCase: Sendable, CustomTestStringConvertible {
    var name: String
    var kind: FrameKind
    var correlationID: UInt64
    var makeBody: @Sendable () throws -> ByteBuffer
    var checkBody: @Sendable (ByteBuffer) throws -> Void

    var testDescription: String { name }

    /// A hello, response or error frame whose body is `value`.
    static func body<Value: Codable & Hashable & Sendable>(
        _ name: String, _ kind: FrameKind, _ correlationID: UInt64, _ value: Value
    ) -> GoldenCase {
        GoldenCase(
            name: name, kind: kind, correlationID: correlationID,
            makeBody: { try WireCodec().encode(value) },
            checkBody: { body in
                let decoded = try WireCodec().decode(Value.self, from: body)
                #expect(decoded == value, "\(name): the vector decodes to another value")
            }
        )
    }

    /// A response frame of `method`.
    static func response<Request, Response: Hashable>(
        _ name: String, _ correlationID: UInt64, _ method: Method<Request, Response>, _ value: Response
    ) -> GoldenCase {
        body(name, .response, correlationID, value)
    }

    /// A request frame of `method`: an envelope whose payload is the encoded `request`.
    static func request<Request: Hashable, Response>(
        _ name: String, _ correlationID: UInt64, _ method: Method<Request, Response>, _ request: Request,
        key: String? = nil, deadline: UInt64 = Fixture.deadline
    ) -> GoldenCase {
        GoldenCase(
            name: name, kind: .request, correlationID: correlationID,
            makeBody: {
                let codec = WireCodec()
                let envelope = RequestEnvelope(
                    method: method.name, deadlineMillis: deadline, idempotencyKey: key,
                    payload: Data(try codec.encoder.encode(request))
                )
                return try codec.encode(envelope)
            },
            checkBody: { body in
                let codec = WireCodec()
                let envelope = try codec.decode(RequestEnvelope.self, from: body)
                #expect(envelope.method == method.name)
                #expect(envelope.deadlineMillis == deadline)
                #expect(envelope.idempotencyKey == key)
                let decoded = try codec.decoder.decode(Request.self, from: envelope.payload)
                #expect(decoded == request, "\(name): the payload decodes to another request")
                // The payload is deterministic: re-encoding the request gives the same bytes.
                #expect(Data(try codec.encoder.encode(decoded)) == envelope.payload)
            }
        )
    }

    static let all: [GoldenCase] = hellos + orders + payments + inventory + errors

    // MARK: Connection

    static let hellos: [GoldenCase] = [
        // PROTOCOL.md section 14.
        body("client-hello", .hello, 0, ClientHello(versions: [1], agent: "example/1.0")),
        body(
            "client-hello-versions", .hello, 0,
            ClientHello(versions: [1, 23, 24, 255, 256, 65_535, 65_536, 4_294_967_295], agent: "")
        ),
        // PROTOCOL.md section 14.
        body("server-hello", .hello, 0, ServerHello(version: 1, server: "payments", maxInFlight: 256)),
        request("health-request", 1, CommonMethods.health, Empty()),
        response(
            "health-response", 1, CommonMethods.health,
            HealthStatus(
                service: "inventory", status: "serving", version: "0.1.0", pid: 2_147_483_647,
                uptimeSeconds: 86_400
            )
        ),
    ]

    // MARK: Orders

    static let orders: [GoldenCase] = [
        request(
            "orders-place-request", 2, OrdersMethods.place,
            PlaceOrderRequest(
                customerEmail: "ana.lima@example.com", currency: "EUR",
                lines: [
                    .init(sku: "MUG-BLUE-350ML", quantity: 2, unitPriceMinor: 1_250),
                    .init(sku: "TEE.ORGANIC_COTTON-M", quantity: 1, unitPriceMinor: 2_400),
                    .init(sku: "POSTER-A2-SUNSET", quantity: 3, unitPriceMinor: 990),
                    .init(sku: "GIFT-CARD", quantity: 1, unitPriceMinor: 0),
                ],
                paymentMethod: "pm_card_visa"
            ),
            key: "place-2026-01-01-ana-0001"
        ),
        request(
            "orders-place-request-language", 68, OrdersMethods.place,
            PlaceOrderRequest(
                customerEmail: "ola.nordmann@example.no", currency: "NOK",
                lines: [.init(sku: "MUG-BLUE-350ML", quantity: 1, unitPriceMinor: 14_900)],
                paymentMethod: "pm_card_visa", source: .onlineStore, language: "nb"),
            key: "place-2026-01-01-ola-0001"
        ),
        response("orders-place-response", 2, OrdersMethods.place, Fixture.openOrder),
        request(
            "orders-cancel-request", 3, OrdersMethods.cancel,
            CancelOrderRequest(
                orderID: Fixture.orderID, reason: .customer, refund: true, restock: true, notify: false,
                staffNote: "Kundin möchte stornieren — 返品 🎁"
            )
        ),
        response(
            "orders-cancel-response", 3, OrdersMethods.cancel,
            CancelAccepted(sagaID: Fixture.sagaID, order: Fixture.cancellingOrder)
        ),
        request("orders-get-request", 4, OrdersMethods.get, OrderRequest(orderID: Fixture.orderID)),
        response("orders-get-response-cancelled", 4, OrdersMethods.get, Fixture.cancelledOrder),
        request("orders-list-request-empty", 5, OrdersMethods.list, ListOrdersRequest()),
        request("orders-list-request", 6, OrdersMethods.list, ListOrdersRequest(status: .open, limit: 50)),
        response("orders-list-response", 6, OrdersMethods.list, OrderList(orders: [Fixture.rejectedOrder])),
        request(
            "sagas-list-request", 7, OrdersMethods.listSagas,
            ListSagasRequest(orderID: Fixture.nilUUID, state: .failed, limit: 1_000)
        ),
        response("sagas-list-response-empty", 7, OrdersMethods.listSagas, SagaList(sagas: [])),
        request("sagas-get-request", 8, OrdersMethods.getSaga, SagaRequest(sagaID: Fixture.maxUUID)),
        response("sagas-get-response", 8, OrdersMethods.getSaga, Fixture.saga),
        // Kinds and states are extensible: a peer reads values it does not know (PROTOCOL.md section 13).
        response("sagas-get-response-unknown-kind-and-state", 8, OrdersMethods.getSaga, Fixture.futureSaga),
        response("orders-get-response-unknown-status", 69, OrdersMethods.get, Fixture.futureOrder),
        request("sagas-retry-request", 20, OrdersMethods.retrySaga, SagaRequest(sagaID: Fixture.failedSagaID)),
        request(
            "sagas-settle-request", 21, OrdersMethods.settleSaga,
            SettleSagaRequest(
                sagaID: Fixture.failedSagaID, outcome: .cancelled, note: "refunded at the processor by hand")
        ),
        response("sagas-settle-response", 21, OrdersMethods.settleSaga, Fixture.settledSaga),
        request("orders-archive-request", 30, OrdersMethods.archive, OrderRequest(orderID: Fixture.orderID)),
        response("orders-archive-response", 30, OrdersMethods.archive, Fixture.archivedOrder),
        request("orders-unarchive-request", 31, OrdersMethods.unarchive, OrderRequest(orderID: Fixture.orderID)),
        request("orders-delete-request", 32, OrdersMethods.delete, OrderRequest(orderID: Fixture.orderID)),
        response(
            "orders-delete-response", 32, OrdersMethods.delete,
            DeletedOrder(
                orderID: Fixture.orderID, source: .staff, deletedBy: "operator",
                deletedAt: Date(timeIntervalSince1970: 1_767_312_000.5))
        ),
        request("orders-list-request-archived", 33, OrdersMethods.list, ListOrdersRequest(archived: true)),
        request(
            "orders-place-request-pos", 34, OrdersMethods.place,
            PlaceOrderRequest(
                customerEmail: "till@example.com", currency: "NOK",
                lines: [.init(sku: "MUG-BLUE-350ML", quantity: 1, unitPriceMinor: 14_900)],
                paymentMethod: "pm_card_visa", source: .pos
            ),
            key: "pos-till-3-000187"
        ),
        response("orders-place-response-authorized", 34, OrdersMethods.place, Fixture.authorizedOrder),
        response(
            "health-response-orders", 22, CommonMethods.health,
            HealthStatus(
                service: "orders", status: "serving", version: "0.1.0", pid: 4_242, uptimeSeconds: 3_600,
                sagas: SagaHealth(failed: 1, stuck: 0, stuckAfterSeconds: 300)
            )
        ),
    ]

    // MARK: Payments

    static let payments: [GoldenCase] = [
        request(
            "payments-authorize-request", 9, PaymentsMethods.authorize,
            AuthorizeRequest(
                orderID: Fixture.orderID, amountMinor: 2_500, currency: "USD", paymentMethod: "pm_card_visa"
            ),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/authorize"
        ),
        response(
            "payments-authorize-response", 9, PaymentsMethods.authorize,
            Payment(
                orderID: Fixture.orderID, status: .authorized, currency: "USD", amountAuthorized: 2_500,
                amountCaptured: 0, amountRefunded: 0, fee: 0, cardLast4: "4242"
            )
        ),
        // A cancellation before capture: the authorization is voided, and the fee a capture would have cost is
        // saved.
        request(
            "payments-void-request", 35, PaymentsMethods.void, VoidRequest(orderID: Fixture.orderID),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/void"
        ),
        response(
            "payments-void-response", 35, PaymentsMethods.void,
            Payment(
                orderID: Fixture.orderID, status: .voided, currency: "USD", amountAuthorized: 2_500,
                amountCaptured: 0, amountRefunded: 0, fee: 0, cardLast4: "4242", feeSaved: 103
            )
        ),
        response("orders-get-response-voided", 36, OrdersMethods.get, Fixture.voidedOrder),
        // Some lines: a cancellation of one unit before the capture, a fulfilment of the rest.
        request(
            "orders-cancel-request-lines", 48, OrdersMethods.cancel,
            CancelOrderRequest(
                orderID: Fixture.orderID, reason: .customer, refund: true, restock: true, notify: true,
                lines: [LineQuantity(sku: "MUG-BLUE-350ML", quantity: 1)])
        ),
        request(
            "payments-void-request-amount", 49, PaymentsMethods.void,
            VoidRequest(orderID: Fixture.orderID, amountMinor: 1_250), key: "D975F117-8E7F-40FC-8F42-567372D53709/void"
        ),
        response(
            "payments-void-response-amount", 49, PaymentsMethods.void,
            Payment(
                orderID: Fixture.orderID, status: .authorized, currency: "EUR", amountAuthorized: 1_250,
                amountCaptured: 0, amountRefunded: 0, fee: 0, cardLast4: "4242", feeSaved: 40
            )
        ),
        request(
            "orders-fulfill-request-lines", 50, OrdersMethods.fulfill,
            FulfilOrderRequest(orderID: Fixture.orderID, lines: [LineQuantity(sku: "MUG-BLUE-350ML", quantity: 1)])
        ),
        response("orders-fulfill-response-lines", 50, OrdersMethods.fulfill, Fixture.partlyCancelledOrder),
        // An edit: one more mug and a new line.
        request(
            "orders-edit-request", 53, OrdersMethods.edit,
            EditOrderRequest(
                orderID: Fixture.orderID,
                changes: [
                    LineChange(sku: "MUG-BLUE-350ML", quantity: 3),
                    LineChange(sku: "POSTER-A2-SUNSET", quantity: 1, unitPriceMinor: 990),
                ],
                note: "asked by phone"),
            key: "edit-2026-01-01-ana-0001"
        ),
        response("orders-edit-response", 53, OrdersMethods.edit, Fixture.editedOrder),
        response("customer-edit-response-restocking-fee", 70, CustomerMethods.edit, Fixture.customerEditedOrder),
        // The cancellation policy, and a customer's methods through the storefront.
        request(
            "orders-can-cancel-request", 55, OrdersMethods.canCancel,
            CanCancelRequest(orderID: Fixture.orderID, asCustomer: true)
        ),
        response("orders-can-cancel-response", 55, OrdersMethods.canCancel, Fixture.refusedDecision),
        request(
            "orders-tag-request", 56, OrdersMethods.tag,
            TagOrderRequest(orderID: Fixture.orderID, add: ["cannot-cancel"], remove: ["gift"])
        ),
        request("orders-rotate-token-request", 57, OrdersMethods.rotateToken, OrderRequest(orderID: Fixture.orderID)),
        response("orders-rotate-token-response", 57, OrdersMethods.rotateToken, Fixture.linkedOrder),
        request(
            "customer-get-order-request", 58, CustomerMethods.getOrder,
            CustomerRequest(token: Fixture.customerToken)
        ),
        request(
            "customer-reorder-request", 64, CustomerMethods.reorder, CustomerRequest(token: Fixture.customerToken),
            key: "storefront-reorder-0001"
        ),
        request(
            "customer-can-edit-request", 65, CustomerMethods.canEdit, CustomerRequest(token: Fixture.customerToken)
        ),
        response("customer-can-edit-response", 65, CustomerMethods.canEdit, Fixture.editDecision),
        request("customer-view-request", 71, CustomerMethods.view, CustomerRequest(token: Fixture.customerToken)),
        response("customer-view-response", 71, CustomerMethods.view, Fixture.orderView),
        request(
            "customer-edit-request", 66, CustomerMethods.edit,
            CustomerEditRequest(
                token: Fixture.customerToken, lines: [LineQuantity(sku: "MUG-BLUE-350ML", quantity: 3)],
                note: "en til en venn"),
            key: "storefront-edit-0001"
        ),
        request(
            "customer-cancel-request", 59, CustomerMethods.cancel,
            CustomerCancelRequest(
                token: Fixture.customerToken, note: "bestilte to ganger",
                lines: [LineQuantity(sku: "MUG-BLUE-350ML", quantity: 1)]),
            key: "storefront-cancel-0001"
        ),
        // An approval store: the customer's request, and staff's decision.
        response(
            "customer-cancel-response-requested", 59, CustomerMethods.cancel,
            CustomerCancelResult(sagaID: nil, request: Fixture.pendingRequest, order: Fixture.requestedOrder)
        ),
        request("requests-list-request", 60, RequestMethods.list, ListRequestsRequest(state: .pending, limit: 20)),
        response(
            "requests-list-response", 60, RequestMethods.list, CancelRequestList(requests: [Fixture.pendingRequest])
        ),
        request(
            "requests-decline-request", 61, RequestMethods.decline,
            DecideRequest(orderID: Fixture.orderID, note: "allerede pakket")
        ),
        request("requests-approve-request", 62, RequestMethods.approve, DecideRequest(orderID: Fixture.orderID)),
        // Fraud risk: a held order, released.
        request("orders-release-request", 63, OrdersMethods.release, OrderRequest(orderID: Fixture.orderID)),
        response("orders-release-response", 63, OrdersMethods.release, Fixture.releasedOrder),
        request(
            "payments-increase-request", 54, PaymentsMethods.increase,
            IncreaseRequest(orderID: Fixture.orderID, amountMinor: 2_240),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/increase"
        ),
        response(
            "payments-increase-response", 54, PaymentsMethods.increase,
            Payment(
                orderID: Fixture.orderID, status: .captured, currency: "EUR", amountAuthorized: 4_740,
                amountCaptured: 4_740, amountRefunded: 0, fee: 233, cardLast4: "4242")
        ),
        request(
            "orders-cancel-request-stated-amount", 37, OrdersMethods.cancel,
            CancelOrderRequest(
                orderID: Fixture.orderID, reason: .staff, refund: true, restock: false, notify: true,
                refundAmountMinor: 1_000)
        ),
        request(
            "orders-refund-request", 38, OrdersMethods.refund,
            RefundOrderRequest(orderID: Fixture.orderID, amountMinor: 1_500, reason: "returned in store, receipt 88"),
            key: "refund-2026-01-02-0001"
        ),
        response("orders-refund-response", 38, OrdersMethods.refund, Fixture.refundedLaterOrder),
        request(
            "payments-refund-request-store-credit", 43, PaymentsMethods.refund,
            RefundRequest(orderID: Fixture.orderID, amountMinor: 700, storeCreditOf: "ana.lima@example.com"),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/refund"
        ),
        // What the processor told Payments on its own (PROTOCOL.md section 13.5.1), and a reconciliation.
        request(
            "payments-events-request", 90, PaymentsMethods.events, ProcessorEventsRequest(orderID: Fixture.orderID)
        ),
        response(
            "payments-events-response", 90, PaymentsMethods.events,
            ProcessorEventList(events: [
                ProcessorEvent(
                    id: "evt_1QdisputeA", type: "charge.dispute.created", kind: .disputeOpened,
                    orderID: Fixture.orderID, charge: "pi_3QchargeA", amountMinor: 2400,
                    detail: "dispute dp_1: fraudulent", occurredAt: Fixture.created,
                    receivedAt: Date(timeIntervalSince1970: 1_767_225_601.5), needsAttention: true)
            ])
        ),
        request(
            "payments-reconcile-request", 91, PaymentsMethods.reconcile, ReconcileRequest(since: Fixture.created)
        ),
        response(
            "payments-reconcile-response", 91, PaymentsMethods.reconcile,
            ReconcileReport(
                checked: 12,
                differences: [
                    .init(
                        orderID: Fixture.orderID, charge: "pi_3QchargeA", field: "status", rescind: "authorized",
                        processor: "captured")
                ])
        ),
        request(
            "payments-store-credit-request", 44, PaymentsMethods.storeCredit,
            StoreCreditRequest(customer: "ana.lima@example.com")
        ),
        response(
            "payments-store-credit-response", 44, PaymentsMethods.storeCredit,
            StoreCredit(
                customer: "ana.lima@example.com", balanceMinor: 700,
                entries: [
                    .init(
                        orderID: Fixture.orderID, amountMinor: 700, kind: "refund",
                        at: Date(timeIntervalSince1970: 1_767_312_000.5))
                ])
        ),
        request(
            "orders-place-request-store-credit", 46, OrdersMethods.place,
            PlaceOrderRequest(
                customerEmail: "ana.lima@example.com", currency: "EUR",
                lines: [.init(sku: "MUG-BLUE-350ML", quantity: 2, unitPriceMinor: 1_250)],
                paymentMethod: "pm_card_visa",
                useStoreCredit: true),
            key: "place-ana-credit-0001"
        ),
        request(
            "payments-authorize-request-store-credit", 47, PaymentsMethods.authorize,
            {
                var request = AuthorizeRequest(
                    orderID: Fixture.orderID, amountMinor: 2_500, currency: "EUR", paymentMethod: "pm_card_visa")
                request.spendStoreCreditOf = "ana.lima@example.com"
                return request
            }(),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/authorize"
        ),
        response(
            "payments-authorize-response-store-credit", 47, PaymentsMethods.authorize,
            Payment(
                orderID: Fixture.orderID, status: .authorized, currency: "EUR", amountAuthorized: 1_800,
                amountCaptured: 0, amountRefunded: 0, fee: 0, cardLast4: "4242", creditAppliedMinor: 700)
        ),
        response(
            "payments-authorize-response-risk", 67, PaymentsMethods.authorize,
            Payment(
                orderID: Fixture.orderID, status: .authorized, currency: "EUR", amountAuthorized: 1_200,
                amountCaptured: 0, amountRefunded: 0, fee: 0, cardLast4: "0010",
                cardFingerprint: "fp_9c1d0e5a7b3f2a4c6e8d",
                addressCheck: "fail")
        ),
        request(
            "orders-cancel-request-store-credit", 45, OrdersMethods.cancel,
            CancelOrderRequest(orderID: Fixture.orderID, reason: .customer, refundTo: .storeCredit)
        ),
        request(
            "orders-mark-request", 41, OrdersMethods.mark,
            MarkOrderRequest(orderID: Fixture.orderID, inProgress: .labelPurchased)
        ),
        response("orders-mark-response", 41, OrdersMethods.mark, Fixture.markedOrder),
        request(
            "orders-mark-request-clear", 42, OrdersMethods.mark,
            MarkOrderRequest(orderID: Fixture.orderID, inProgress: nil)),
        request(
            "orders-reorder-request", 39, OrdersMethods.reorder,
            ReorderRequest(orderID: Fixture.orderID, source: .onlineStore), key: "reorder-ana-0001"
        ),
        response("orders-reorder-response", 39, OrdersMethods.reorder, Fixture.reorderedOrder),
        request(
            "payments-authorize-request-saved-card", 40, PaymentsMethods.authorize,
            AuthorizeRequest(
                orderID: Fixture.maxUUID, amountMinor: 2_500, currency: "EUR", savedCardOf: Fixture.orderID),
            key: "0F8FAD5B-D9CB-469F-A165-70867728950E/authorize"
        ),
        // PROTOCOL.md section 14.
        request(
            "payments-refund-request", 1, PaymentsMethods.refund,
            RefundRequest(orderID: Fixture.orderID, amountMinor: 500),
            key: "demo-refund-1", deadline: 1_893_456_000_000
        ),
        request(
            "payments-refund-request-full", 10, PaymentsMethods.refund, RefundRequest(orderID: Fixture.orderID),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/refund"
        ),
        response(
            "payments-refund-response", 10, PaymentsMethods.refund,
            RefundResult(
                payment: Payment(
                    orderID: Fixture.orderID, status: .partiallyRefunded, currency: "USD",
                    amountAuthorized: 2_500, amountCaptured: 2_500, amountRefunded: 500, fee: 103,
                    cardLast4: "4242"
                ),
                refundedMinor: 500, feeKeptMinor: 103
            )
        ),
        request(
            "payments-get-request-max", 18_446_744_073_709_551_615, PaymentsMethods.get,
            PaymentRequest(orderID: Fixture.orderID), key: "clé-🔑", deadline: 18_446_744_073_709_551_615
        ),
    ]

    // MARK: Inventory

    static let inventory: [GoldenCase] = [
        request(
            "inventory-prepare-restock-request", 23, InventoryMethods.prepareRestock,
            OrderStockRequest(orderID: Fixture.orderID), key: "D975F117-8E7F-40FC-8F42-567372D53709/prepare_restock"
        ),
        response(
            "inventory-prepare-restock-response", 23, InventoryMethods.prepareRestock,
            Reservation(
                orderID: Fixture.orderID, status: .restocking,
                allocations: [.init(sku: "MUG-BLUE-350ML", location: "berlin", quantity: 2)])
        ),
        request(
            "inventory-reserve-request", 11, InventoryMethods.reserve,
            ReserveRequest(
                orderID: Fixture.orderID,
                lines: [.init(sku: "MUG-BLUE-350ML", quantity: 2), .init(sku: "TEE.ORGANIC_COTTON-M", quantity: 1)]
            ),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/reserve"
        ),
        response(
            "inventory-reserve-response", 11, InventoryMethods.reserve,
            Reservation(
                orderID: Fixture.orderID, status: .reserved,
                allocations: [
                    .init(sku: "MUG-BLUE-350ML", location: "east", quantity: 1),
                    .init(sku: "MUG-BLUE-350ML", location: "west", quantity: 1),
                    .init(sku: "TEE.ORGANIC_COTTON-M", location: "east", quantity: 1),
                ]
            )
        ),
        request(
            "inventory-set-stock-request-int64-min", 12, InventoryMethods.setStock,
            SetStockRequest(sku: "MUG-BLUE-350ML", location: "east", onHand: .min)
        ),
        response(
            "inventory-set-stock-response-int64-extremes", 12, InventoryMethods.setStock,
            // available = -1 - Int64.max = Int64.min
            StockLevel(sku: "MUG-BLUE-350ML", location: "east", onHand: -1, reserved: .max)
        ),
        request(
            "inventory-list-stock-request", 13, InventoryMethods.listStock, ListStockRequest(sku: "MUG-BLUE-350ML")
        ),
        response(
            "inventory-list-stock-response", 13, InventoryMethods.listStock,
            StockReport(
                levels: [
                    StockLevel(sku: "MUG-BLUE-350ML", location: "east", onHand: 10, reserved: 1),
                    StockLevel(sku: "MUG-BLUE-350ML", location: "west", onHand: 0, reserved: 0),
                ],
                locations: [Location(id: "east", active: true), Location(id: "west", active: false)]
            )
        ),
        request(
            "inventory-deactivate-location-request", 14, InventoryMethods.deactivateLocation,
            LocationRequest(location: "west")
        ),
        response(
            "inventory-deactivate-location-response", 14, InventoryMethods.deactivateLocation,
            Location(id: "west", active: false)
        ),
        request(
            "inventory-commit-request", 15, InventoryMethods.commit, OrderStockRequest(orderID: Fixture.orderID),
            key: "fulfil/0F8FAD5B-D9CB-469F-A165-70867728950E"
        ),
        response(
            "inventory-commit-response-no-allocations", 15, InventoryMethods.commit,
            Reservation(orderID: Fixture.orderID, status: .committed, allocations: [])
        ),
        request(
            "inventory-split-request", 51, InventoryMethods.split,
            SplitRequest(
                orderID: Fixture.orderID, partID: Fixture.sagaID, lines: [.init(sku: "MUG-BLUE-350ML", quantity: 1)]),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/split"
        ),
        response(
            "inventory-split-response", 51, InventoryMethods.split,
            Reservation(
                orderID: Fixture.sagaID, status: .reserved,
                allocations: [.init(sku: "MUG-BLUE-350ML", location: "west", quantity: 1)], partOf: Fixture.orderID)
        ),
        request(
            "inventory-merge-request", 52, InventoryMethods.merge,
            MergeRequest(orderID: Fixture.orderID, partID: Fixture.sagaID),
            key: "D975F117-8E7F-40FC-8F42-567372D53709/split/undo"
        ),
        response(
            "inventory-merge-response", 52, InventoryMethods.merge,
            Reservation(
                orderID: Fixture.orderID, status: .reserved,
                allocations: [
                    .init(sku: "MUG-BLUE-350ML", location: "east", quantity: 1),
                    .init(sku: "MUG-BLUE-350ML", location: "west", quantity: 1),
                ])
        ),
    ]

    // MARK: Errors

    static let errors: [GoldenCase] = [
        // PROTOCOL.md section 14: the answer to payments-refund-request.
        body(
            "payments-refund-error", .error, 1,
            RescindError(
                .notFound, "no payment for order 0F8FAD5B-D9CB-469F-A165-70867728950E", reason: "unknown_payment"
            )
        ),
        // The answer to a request that still carries a card number (PROTOCOL.md section 13.4).
        body("error-card-number-refused", .error, 2, PaymentMethodReference.cardNumberRefused),
        body(
            "error-connection", .error, 0,
            RescindError(
                .unsupportedVersion, "frame version 2 is not supported; this server speaks 1", retryable: false
            )
        ),
        body(
            "error-retryable", .error, 16,
            RescindError(
                .resourceExhausted, "more than 256 requests in flight on this connection",
                reason: "too_many_in_flight"
            )
        ),
    ]
}

// MARK: - Fixed values

/// Fixed UUIDs and dates, so that every vector is the same on every run.
enum Fixture {
    static func uuid(_ text: String) -> UUID {
        guard let uuid = UUID(uuidString: text) else { preconditionFailure("not a UUID: \(text)") }
        return uuid
    }

    static let orderID = uuid("0F8FAD5B-D9CB-469F-A165-70867728950E")
    static let sagaID = uuid("D975F117-8E7F-40FC-8F42-567372D53709")
    static let failedSagaID = uuid("6BA7B810-9DAD-11D1-80B4-00C04FD430C8")
    static let placeSagaID = uuid("1B4E28BA-2FA1-4D3B-A3F5-EF19B5A7633B")
    static let nilUUID = uuid("00000000-0000-0000-0000-000000000000")
    static let maxUUID = uuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")

    /// 2026-01-01T00:00:00Z: whole seconds, a 4-byte integer.
    static let created = Date(timeIntervalSince1970: 1_767_225_600)
    /// Half a second later: needs a double.
    static let updated = Date(timeIntervalSince1970: 1_767_225_600.5)
    /// 2026-01-01T00:00:10Z in milliseconds: the deadline of most request vectors.
    static let deadline: UInt64 = 1_767_225_610_000

    static let lines: [Order.Line] = [
        .init(sku: "MUG-BLUE-350ML", quantity: 2, unitPriceMinor: 1_250)
    ]

    static let openOrder = Order(
        id: orderID, customerEmail: "ana.lima@example.com", status: .open, currency: "EUR", totalMinor: 2_500,
        amountRefundedMinor: 0, lines: lines, cardLast4: "4242", createdAt: created, updatedAt: updated
    )

    static var cancellingOrder: Order {
        var order = openOrder
        order.status = .cancelling
        order.updatedAt = Date(timeIntervalSince1970: 1_767_225_660)
        order.failedCancellations = [
            FailedCancellation(
                sagaID: failedSagaID, failedStep: "refund",
                error: RescindErrorSummary(code: "unavailable", reason: nil, message: "payments is unreachable"),
                at: Date(timeIntervalSince1970: 1_767_225_630.25)
            )
        ]
        return order
    }

    /// One of two mugs cancelled before the capture (voided from the authorization), the other fulfilled.
    static var partlyCancelledOrder: Order {
        var order = openOrder
        order.status = .fulfilled
        order.totalMinor = 1_250
        order.lines = [.init(sku: "MUG-BLUE-350ML", quantity: 2, unitPriceMinor: 1_250, cancelled: 1, fulfilled: 1)]
        order.lineCancellations = [
            Cancellation(
                sagaID: sagaID, reason: .customer, staffNote: nil, refundedMinor: 0, feeKeptMinor: 0, voided: true,
                unitsRestocked: 1, notify: true, cancelledAt: Date(timeIntervalSince1970: 1_767_225_661),
                feeSavedMinor: 40, lines: [LineQuantity(sku: "MUG-BLUE-350ML", quantity: 1)], voidedAmountMinor: 1_250)
        ]
        return order
    }

    /// `openOrder` after an edit: one more mug and a poster, 2240 more charged.
    static var editedOrder: Order {
        var order = openOrder
        order.totalMinor = 4_740
        order.lines = [
            .init(sku: "MUG-BLUE-350ML", quantity: 3, unitPriceMinor: 1_250),
            .init(sku: "POSTER-A2-SUNSET", quantity: 1, unitPriceMinor: 990),
        ]
        order.edits = [
            OrderEdit(
                sagaID: sagaID,
                changes: [
                    LineChange(sku: "MUG-BLUE-350ML", quantity: 3),
                    LineChange(sku: "POSTER-A2-SUNSET", quantity: 1, unitPriceMinor: 990),
                ],
                amountMinor: 2_240, payment: "increase", note: "asked by phone", by: "operator",
                at: Date(timeIntervalSince1970: 1_767_225_661))
        ]
        return order
    }

    /// `openOrder` after its customer removed one of its two mugs in a store with a restocking fee of 100 and 10 %:
    /// 1250 less 225 refunded.
    static var customerEditedOrder: Order {
        var order = openOrder
        order.amountRefundedMinor = 1_025
        order.lines = [.init(sku: "MUG-BLUE-350ML", quantity: 1, unitPriceMinor: 1_250)]
        order.edits = [
            OrderEdit(
                sagaID: sagaID, changes: [LineChange(sku: "MUG-BLUE-350ML", quantity: 1)], amountMinor: -1_025,
                payment: "refund", restockingFeeMinor: 225, note: nil, by: "customer",
                at: Date(timeIntervalSince1970: 1_767_225_661))
        ]
        return order
    }

    /// A customer's request to cancel one mug, waiting for staff.
    static let pendingRequest = CancelRequest(
        orderID: orderID, state: .pending, note: "bestilte to ganger",
        lines: [LineQuantity(sku: "MUG-BLUE-350ML", quantity: 1)],
        requestedAt: Date(timeIntervalSince1970: 1_767_225_630.25))

    /// `openOrder` with that request pending: `cancel_requested`.
    static var requestedOrder: Order {
        var order = openOrder
        order.status = .cancelRequested
        order.cancelRequest = pendingRequest
        return order
    }

    /// An order the processor's screening rated elevated, held, then released by staff.
    static var releasedOrder: Order {
        var order = openOrder
        order.risk = RiskAssessment(
            level: .medium, reasons: ["the card processor rates the card elevated risk"], held: false,
            releasedBy: "operator", releasedAt: Date(timeIntervalSince1970: 1_767_225_700))
        return order
    }

    /// A customer token (32 base64url characters).
    static let customerToken = "q7Xc2ZpL0vN_4sYtB8mKe-1uHfWjA9Rd"

    /// `openOrder` as `orders.rotate_token` answers: tagged, with its new link.
    static var linkedOrder: Order {
        var order = openOrder
        order.tags = ["cannot-cancel", "vip"]
        order.customerToken = customerToken
        order.statusLink = "https://shop.example.com/o/\(customerToken)"
        return order
    }

    /// A customer's cancellation refused: the window is open until 01:00, but the order is tagged.
    static let refusedDecision = CancelPolicyDecision(
        allowed: false, until: nil, actor: "customer",
        rules: [
            PolicyRule(rule: "order_status", passed: true, detail: "the order is open"),
            PolicyRule(
                rule: "cancellation_window", passed: true, detail: "you can cancel until 2026-01-01 01:00 Europe/Oslo",
                until: Date(timeIntervalSince1970: 1_767_225_600 + 3_600)),
            PolicyRule(
                rule: "cannot_cancel_tag", passed: false, detail: "the store marked this order cannot-cancel",
                reason: "cannot_cancel_tag"),
        ])

    /// The order page's one read: the order, which its customer may cancel, or change, until 01:00.
    static let orderView = CustomerOrderView(
        order: openOrder,
        canCancel: CancelPolicyDecision(
            allowed: true, until: Date(timeIntervalSince1970: 1_767_225_600 + 3_600), actor: "customer",
            rules: [
                PolicyRule(rule: "order_status", passed: true, detail: "the order is open"),
                PolicyRule(
                    rule: "cancellation_window", passed: true,
                    detail: "you can cancel until 2026-01-01 01:00 Europe/Oslo",
                    until: Date(timeIntervalSince1970: 1_767_225_600 + 3_600)),
            ]),
        canEdit: editDecision)

    /// A customer may change quantities until 01:00; the made-to-order print cannot be reduced.
    static let editDecision = CancelPolicyDecision(
        allowed: true, until: Date(timeIntervalSince1970: 1_767_225_600 + 3_600), actor: "customer",
        rules: [
            PolicyRule(rule: "order_status", passed: true, detail: "the order is open"),
            PolicyRule(rule: "customer_edits", passed: true, detail: "the store lets customers change quantities"),
            PolicyRule(
                rule: "cancellation_window", passed: true,
                detail: "you can change quantities until 2026-01-01 01:00 Europe/Oslo",
                until: Date(timeIntervalSince1970: 1_767_225_600 + 3_600)),
            PolicyRule(rule: "cannot_cancel_sku", passed: true, detail: "PRINT-A3 cannot be reduced"),
        ], action: "edit")

    /// An open order whose label was bought: cancellation is refused.
    static var markedOrder: Order {
        var order = openOrder
        order.fulfilmentInProgress = .labelPurchased
        return order
    }

    /// An order placed again from `openOrder` (`orders.reorder`).
    static var reorderedOrder: Order {
        var order = openOrder
        order.id = maxUUID
        order.source = .onlineStore
        order.reorderOf = orderID
        return order
    }

    /// A customer's cancellation that kept the restocking fee, and the rest refunded later by `orders.refund`.
    static var refundedLaterOrder: Order {
        var order = cancelledOrder
        order.amountRefundedMinor = 2_500
        order.cancellation = Cancellation(
            sagaID: sagaID, reason: .customer, staffNote: nil, refundedMinor: 1_000, feeKeptMinor: 103, voided: false,
            unitsRestocked: 2, notify: false, cancelledAt: Date(timeIntervalSince1970: 1_767_225_661),
            restockingFeeMinor: 250)
        order.refunds = [
            OrderRefund(
                sagaID: failedSagaID, amountMinor: 1_500, reason: "returned in store, receipt 88", by: "operator",
                at: Date(timeIntervalSince1970: 1_767_312_000.125))
        ]
        return order
    }

    /// An open order whose store captures later: its payment is only authorized, with its capture time.
    static var authorizedOrder: Order {
        var order = openOrder
        order.source = .pos
        order.captureDueAt = Date(timeIntervalSince1970: 1_767_229_200)
        return order
    }

    /// An order cancelled before its payment was captured: voided, no fee, the fee saved.
    static var voidedOrder: Order {
        var order = cancelledOrder
        order.amountRefundedMinor = 0
        order.source = .onlineStore
        order.cancellation = Cancellation(
            sagaID: sagaID, reason: .customer, staffNote: nil, refundedMinor: 0, feeKeptMinor: 0, voided: true,
            unitsRestocked: 2, notify: true, cancelledAt: Date(timeIntervalSince1970: 1_767_225_661),
            feeSavedMinor: 103)
        return order
    }

    /// A cancelled order from the online store, archived.
    static var archivedOrder: Order {
        var order = cancelledOrder
        order.source = .onlineStore
        order.archivedAt = Date(timeIntervalSince1970: 1_767_312_000.25)
        order.updatedAt = Date(timeIntervalSince1970: 1_767_312_000.25)
        return order
    }

    static var cancelledOrder: Order {
        var order = cancellingOrder
        order.status = .cancelled
        order.amountRefundedMinor = 2_500
        order.updatedAt = Date(timeIntervalSince1970: 1_767_225_661)
        order.cancellation = Cancellation(
            sagaID: sagaID, reason: .customer, staffNote: "Kundin möchte stornieren — 返品 🎁", refundedMinor: 2_500,
            feeKeptMinor: 103, voided: false, unitsRestocked: 2, notify: false,
            cancelledAt: Date(timeIntervalSince1970: 1_767_225_661)
        )
        return order
    }

    static let rejectedOrder = Order(
        id: maxUUID, customerEmail: "bo@example.org", status: .rejected, currency: "USD", totalMinor: 1_250,
        amountRefundedMinor: 0, lines: lines, cardLast4: "0002", createdAt: created, updatedAt: created,
        rejection: "failed_precondition/card_declined: the card was declined"
    )

    static let declined = RescindErrorSummary(
        code: "failed_precondition", reason: "card_declined", message: "the card was declined"
    )

    /// A saga whose dates take every encoding: a negative integer, half, single and double floats.
    /// A saga of a kind and in a state this build does not know, as a newer Orders could send.
    static let futureSaga = Saga(
        id: sagaID, kind: Saga.Kind("exchange_order"), orderID: orderID, state: Saga.State("paused"), steps: [],
        error: nil, createdAt: created, updatedAt: updated
    )

    /// An order in a status this build does not know, as a newer Orders could send.
    static let futureOrder = Order(
        id: orderID, customerEmail: "bo@example.org", status: Order.Status("on_hold"), currency: "USD",
        totalMinor: 1_250, amountRefundedMinor: 0, lines: lines, cardLast4: "4242", createdAt: created,
        updatedAt: created
    )

    /// A cancellation that failed and that a person settled by hand.
    static let settledSaga = Saga(
        id: failedSagaID, kind: .cancelOrder, orderID: orderID, state: .settled,
        steps: [
            Saga.Step(
                seq: 1, name: "lock", direction: .forward, status: .succeeded, attempt: 1, idempotencyKey: nil,
                detail: "locked against fulfilment; reason customer", error: nil, startedAt: created,
                finishedAt: created
            ),
            Saga.Step(
                seq: 2, name: "settle", direction: .forward, status: .succeeded, attempt: 1, idempotencyKey: nil,
                detail: "settled by operator as cancelled", error: nil, startedAt: updated, finishedAt: updated
            ),
        ],
        error: RescindErrorSummary(
            code: "unavailable", reason: nil, message: "gave up after 30 attempts: payments is unreachable"),
        createdAt: created, updatedAt: updated,
        settlement: Saga.Settlement(
            by: "operator", at: updated, outcome: .cancelled, note: "refunded at the processor by hand")
    )

    static let saga = Saga(
        id: placeSagaID, kind: .placeOrder, orderID: orderID, state: .compensating,
        steps: [
            Saga.Step(
                seq: 1, name: "create", direction: .forward, status: .succeeded, attempt: 1, idempotencyKey: nil,
                detail: nil, error: nil, startedAt: Date(timeIntervalSince1970: -86_400),
                finishedAt: Date(timeIntervalSince1970: 1.5)
            ),
            Saga.Step(
                seq: 2, name: "authorize", direction: .forward, status: .failed, attempt: 3,
                idempotencyKey: "1B4E28BA-2FA1-4D3B-A3F5-EF19B5A7633B/authorize", detail: "",
                error: declined,
                startedAt: Date(timeIntervalSince1970: 100_000.5), finishedAt: updated
            ),
            Saga.Step(
                seq: 3, name: "release", direction: .compensate, status: .started, attempt: 1,
                idempotencyKey: "1B4E28BA-2FA1-4D3B-A3F5-EF19B5A7633B/release", detail: nil, error: nil,
                startedAt: updated, finishedAt: nil
            ),
        ],
        error: declined,
        createdAt: created, updatedAt: updated
    )
}
