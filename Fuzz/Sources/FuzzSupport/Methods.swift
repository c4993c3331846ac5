import RescindAPI
import RescindCBOR
import RescindWire

/// One method of the suite with the decodes a peer makes of its bodies.
public struct MethodEntry: Sendable {
    public let name: String
    public let requiresIdempotencyKey: Bool
    /// The server's decode of a request payload, as `RPCRouter` does it (`WireCodec.decodeRequest`).
    /// Returns whether the payload decoded.
    public let decodeRequest: @Sendable ([UInt8]) -> Bool
    /// The client's decode of a response body. Returns whether it decoded.
    public let decodeResponse: @Sendable ([UInt8]) -> Bool

    init<Request: Codable & Equatable, Response: Codable & Equatable>(
        _ method: Method<Request, Response>,
        response roundTrip: CBORChecks.RoundTrip = .equalValue
    ) {
        name = method.name
        requiresIdempotencyKey = method.requiresIdempotencyKey
        decodeRequest = { payload in
            let request: Request
            do {
                request = try WireCodec().decodeRequest(Request.self, from: payload)
            } catch let error as RescindError {
                Invariant.check(
                    error.code == .invalidArgument && error.reason == "bad_body",
                    "decodeRequest(\(Request.self)) threw an unexpected RescindError: \(error)"
                )
                CBORChecks.checkRoundTrip(error, .equalValue)
                return false
            } catch {
                Invariant.fail(
                    "decodeRequest(\(Request.self)) threw a \(type(of: error)), not a RescindError: \(error)")
            }
            CBORChecks.checkRoundTrip(request, .equalValue)
            return true
        }
        decodeResponse = { body in
            CBORChecks.decode(Response.self, from: body, roundTrip: roundTrip) != nil
        }
    }
}

/// Every method of the three daemons and the common `health`.
public enum Methods {
    public static let all: [MethodEntry] = [
        MethodEntry(CommonMethods.health),
        MethodEntry(InventoryMethods.setStock),
        MethodEntry(InventoryMethods.listStock),
        MethodEntry(InventoryMethods.deactivateLocation),
        MethodEntry(InventoryMethods.reserve),
        MethodEntry(InventoryMethods.release),
        MethodEntry(InventoryMethods.prepareRestock),
        MethodEntry(InventoryMethods.restock),
        MethodEntry(InventoryMethods.takeBack),
        MethodEntry(InventoryMethods.writeOff),
        MethodEntry(InventoryMethods.commit),
        MethodEntry(InventoryMethods.getReservation),
        // Orders' answers hold dates, which may move by one floating-point step through a round trip.
        MethodEntry(OrdersMethods.place, response: .stableBytes),
        MethodEntry(OrdersMethods.get, response: .stableBytes),
        MethodEntry(OrdersMethods.list, response: .stableBytes),
        MethodEntry(OrdersMethods.cancel, response: .stableBytes),
        MethodEntry(OrdersMethods.fulfill, response: .stableBytes),
        MethodEntry(OrdersMethods.listSagas, response: .stableBytes),
        MethodEntry(OrdersMethods.getSaga, response: .stableBytes),
        MethodEntry(OrdersMethods.waitSaga, response: .stableBytes),
        MethodEntry(OrdersMethods.retrySaga, response: .stableBytes),
        MethodEntry(OrdersMethods.settleSaga, response: .stableBytes),
        MethodEntry(PaymentsMethods.authorize),
        MethodEntry(PaymentsMethods.capture),
        MethodEntry(PaymentsMethods.void),
        MethodEntry(PaymentsMethods.refund),
        MethodEntry(PaymentsMethods.get),
        MethodEntry(PaymentsMethods.setProcessorFaults),
    ]

    public static let byName: [String: MethodEntry] = Dictionary(
        all.map { ($0.name, $0) },
        uniquingKeysWith: { first, _ in first }
    )

    /// Methods with distinct request types, to try an unroutable payload against each.
    public static let distinctRequests: [MethodEntry] = {
        var seen: Set<String> = []
        var result: [MethodEntry] = []
        for entry in all {
            // One entry per request type: the entries sharing a type decode identically.
            let key: String
            switch entry.name {
            case "inventory.release", "inventory.restock", "inventory.take_back", "inventory.commit",
                "inventory.get_reservation":
                key = "OrderStockRequest"
            case "orders.get", "orders.fulfill": key = "OrderRequest"
            case "payments.capture", "payments.void", "payments.get": key = "PaymentRequest"
            default: key = entry.name
            }
            if seen.insert(key).inserted { result.append(entry) }
        }
        return result
    }()
}
