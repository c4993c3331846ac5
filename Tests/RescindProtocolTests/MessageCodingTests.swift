import Foundation
import RescindAPI
import RescindWire
import Testing

/// The hand-written coding of the hot wire types (`CBORMessage`) against their `Codable`
/// conformances: a peer must not be able to tell which one a daemon used.
@Suite("Message coding")
struct MessageCodingTests {
    @Test("a message writes the same bytes as its Codable conformance and reads them back", arguments: MessageCase.all)
    func sameBytes(_ message: MessageCase) throws {
        try message.sameBytes()
    }

    @Test("a message writes every stored property of a value that has all of them set", arguments: MessageCase.all)
    func everyProperty(_ message: MessageCase) throws {
        try message.everyProperty()
    }

    @Test(
        "a message reads reordered, unknown, missing and mistyped entries exactly as its Codable conformance does",
        arguments: MessageCase.all)
    func sameReading(_ message: MessageCase) throws {
        try message.sameReading()
    }

    @Test("a message that is not a map is refused as the Codable conformance refuses it")
    func notAMap() throws {
        for input: [UInt8] in [[0x80], [0xf6], [0x61, 0x78], [0xc1, 0x00]] {
            let fast = Outcome(decoding: Saga.self, from: input, messageCoding: true)
            #expect(fast == Outcome(decoding: Saga.self, from: input, messageCoding: false))
            #expect(fast != .value(Fixture.saga))
        }
    }

    @Test("the validating pass still runs before a message reads anything")
    func validationFirst() throws {
        // {"kind": "x", "kind": "y"}: a duplicate key, which the message alone would not notice.
        let kind = CBORItems.text("kind")
        let duplicate: [UInt8] = [0xa2] + kind + CBORItems.text("x") + kind + CBORItems.text("y")
        let error = try #require(throws: CBORError.self) { try CBORDecoder().decode(Saga.self, from: duplicate) }
        #expect(error.code == .duplicateKey)
    }
}

/// One message type, with a value that sets every property and others that leave optionals out.
struct MessageCase: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let sameBytes: @Sendable () throws -> Void
    let everyProperty: @Sendable () throws -> Void
    let sameReading: @Sendable () throws -> Void

    init<M: CBORMessage & Hashable & Sendable>(_ full: M, _ others: M...) {
        testDescription = "\(M.self)"
        sameBytes = {
            for value in [full] + others {
                let bytes = try CBOREncoder().encode(value)
                var codable = CBOREncoder()
                codable.usesMessageCoding = false
                #expect(bytes == (try codable.encode(value)), "\(M.self): \(value)")
                #expect(Outcome(decoding: M.self, from: bytes, messageCoding: true) == .value(value))
                #expect(Outcome(decoding: M.self, from: bytes, messageCoding: false) == .value(value))
            }
        }
        everyProperty = {
            let entries = try CBORItems.entries(ofMap: try CBOREncoder().encode(full))
            #expect(entries.count == Mirror(reflecting: full).children.count, "\(M.self) leaves out a property")
        }
        sameReading = {
            let entries = try CBORItems.entries(ofMap: try CBOREncoder().encode(full))
            var inputs: [[UInt8]] = []
            // Reversed, with an unknown key first and last.
            let unknown = (key: CBORItems.text("zz_unknown"), value: [UInt8]([0x82, 0x01, 0xa0]))
            inputs.append(CBORItems.map([unknown] + entries.reversed() + [(CBORItems.text("a"), [0xf6])]))
            for index in entries.indices {
                var missing = entries
                missing.remove(at: index)
                inputs.append(CBORItems.map(missing))
                for replacement in CBORItems.replacements {
                    var mistyped = entries
                    mistyped[index].value = replacement
                    inputs.append(CBORItems.map(mistyped))
                }
            }
            for input in inputs {
                let fast = Outcome(decoding: M.self, from: input, messageCoding: true)
                let codable = Outcome(decoding: M.self, from: input, messageCoding: false)
                #expect(fast == codable, "\(M.self) from \(input.map { String($0, radix: 16) })")
            }
            #expect(Outcome(decoding: M.self, from: inputs[0], messageCoding: true) == .value(full))
        }
    }

    static let all: [MessageCase] = [
        MessageCase(
            RequestEnvelope(
                method: "orders.cancel", deadlineMillis: Fixture.deadline, idempotencyKey: "k", payload: Data([1, 2])),
            RequestEnvelope(method: "sagas.get", deadlineMillis: 0, payload: Data())
        ),
        MessageCase(
            PlaceOrderRequest(
                customerEmail: "ana.lima@example.com", currency: "EUR", lines: Fixture.lines + Fixture.lines,
                cardNumber: "4242424242424242"),
            PlaceOrderRequest(customerEmail: "", currency: "USD", lines: [], cardNumber: "")
        ),
        MessageCase(Order.Line(sku: "MUG", quantity: -1, unitPriceMinor: .max)),
        MessageCase(fullOrder, Fixture.openOrder, Fixture.cancelledOrder, Fixture.rejectedOrder),
        MessageCase(cancellation, noteless),
        MessageCase(Fixture.cancellingOrder.failedCancellations[0]),
        MessageCase(Fixture.declined, RescindErrorSummary(code: "internal", reason: nil, message: "")),
        MessageCase(
            CancelOrderRequest(
                orderID: Fixture.orderID, reason: .fraud, refund: false, restock: true, notify: true, staffNote: "n"),
            CancelOrderRequest(orderID: Fixture.nilUUID, reason: .other)
        ),
        MessageCase(CancelAccepted(sagaID: Fixture.sagaID, order: fullOrder)),
        MessageCase(OrderList(orders: [fullOrder, Fixture.openOrder]), OrderList(orders: [])),
        MessageCase(settledSaga, Fixture.saga, sagaWithoutError),
        MessageCase(settlement),
        MessageCase(Fixture.saga.steps[1], Fixture.saga.steps[0], Fixture.saga.steps[2]),
        MessageCase(SagaList(sagas: [Fixture.saga]), SagaList(sagas: [])),
        MessageCase(
            StockReport(
                levels: [StockLevel(sku: "MUG", location: "berlin", onHand: 5, reserved: 7)],
                locations: [Location(id: "berlin", active: true), Location(id: "lyon", active: false)]),
            StockReport(levels: [], locations: [])
        ),
        MessageCase(StockLevel(sku: "MUG-BLUE-350ML", location: "berlin", onHand: 12, reserved: 3)),
        MessageCase(Location(id: "lyon", active: false)),
    ]

    /// An order with every optional set.
    static var fullOrder: Order {
        var order = Fixture.cancelledOrder
        order.rejection = "not really"
        return order
    }

    static let cancellation = Cancellation(
        sagaID: Fixture.sagaID, reason: .customer, staffNote: "Kundin möchte stornieren", refundedMinor: 2_500,
        feeKeptMinor: 103, voided: false, unitsRestocked: 2, notify: true,
        cancelledAt: Date(timeIntervalSince1970: 1_767_225_661.25)
    )

    static var noteless: Cancellation {
        var cancellation = cancellation
        cancellation.staffNote = nil
        return cancellation
    }

    static let settlement = Saga.Settlement(
        by: "operator", at: Fixture.updated, outcome: .cancelled, note: "refunded by hand at the processor")

    /// A saga with every property set: failed, then settled by hand.
    static var settledSaga: Saga {
        var saga = Fixture.saga
        saga.state = .settled
        saga.settlement = settlement
        return saga
    }

    static var sagaWithoutError: Saga {
        var saga = Fixture.saga
        saga.error = nil
        return saga
    }
}

/// What decoding gave: the value, or the code of the error.
enum Outcome<Value: Decodable & Equatable>: Equatable {
    case value(Value)
    case failure(CBORError.Code)
    case other(String)

    init(decoding type: Value.Type, from bytes: [UInt8], messageCoding: Bool) {
        var decoder = CBORDecoder()
        decoder.usesMessageCoding = messageCoding
        do {
            self = .value(try decoder.decode(Value.self, from: bytes))
        } catch let error as CBORError {
            self = .failure(error.code)
        } catch {
            self = .other("\(error)")
        }
    }
}

/// Splits and joins CBOR items, independently of the codec under test.
enum CBORItems {
    struct Malformed: Error {}

    /// Values of every kind, including raw values of the enumerations, to put under each key.
    static let replacements: [[UInt8]] = [
        [0xf6], [0xf5], [0x00], [0x20], [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], text("x"),
        text("open"), text("customer"), text("running"), text("forward"), [0x40], [0x80], [0xa0],
        [0xf9, 0x3e, 0x00], [0xc1, 0x00], [0xd8, 0x25, 0x50] + [UInt8](repeating: 7, count: 16),
    ]

    static func text(_ string: String) -> [UInt8] {
        let utf8 = Array(string.utf8)
        precondition(utf8.count < 24)
        return [0x60 | UInt8(utf8.count)] + utf8
    }

    static func map(_ entries: [(key: [UInt8], value: [UInt8])]) -> [UInt8] {
        precondition(entries.count < 24)
        return entries.reduce([0xa0 | UInt8(entries.count)]) { $0 + $1.key + $1.value }
    }

    static func entries(ofMap bytes: [UInt8]) throws -> [(key: [UInt8], value: [UInt8])] {
        let (major, count, start) = try head(bytes, at: 0)
        guard major == 5 else { throw Malformed() }
        var entries: [(key: [UInt8], value: [UInt8])] = []
        var offset = start
        for _ in 0..<count {
            let keyEnd = try end(bytes, at: offset)
            let valueEnd = try end(bytes, at: keyEnd)
            entries.append((Array(bytes[offset..<keyEnd]), Array(bytes[keyEnd..<valueEnd])))
            offset = valueEnd
        }
        guard offset == bytes.count else { throw Malformed() }
        return entries
    }

    /// The offset just past the item at `offset`.
    static func end(_ bytes: [UInt8], at offset: Int) throws -> Int {
        let (major, argument, start) = try head(bytes, at: offset)
        switch major {
        case 2, 3: return start + Int(argument)
        case 4, 5:
            var position = start
            for _ in 0..<(major == 5 ? 2 * argument : argument) {
                position = try end(bytes, at: position)
            }
            return position
        case 6: return try end(bytes, at: start)
        default: return start
        }
    }

    static func head(_ bytes: [UInt8], at offset: Int) throws -> (major: UInt8, argument: UInt64, start: Int) {
        guard offset < bytes.count else { throw Malformed() }
        let info = bytes[offset] & 0x1f
        guard info <= 27 else { throw Malformed() }
        let extra = info < 24 ? 0 : 1 << Int(info - 24)
        guard offset + extra < bytes.count else { throw Malformed() }
        var argument = info < 24 ? UInt64(info) : 0
        for byte in bytes[(offset + 1)..<(offset + 1 + extra)] {
            argument = argument << 8 | UInt64(byte)
        }
        return (bytes[offset] >> 5, argument, offset + 1 + extra)
    }
}
