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
                    (error.code == .invalidArgument && error.reason == "bad_body") || CBORChecks.isOwnRefusal(error),
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
        MethodEntry(InventoryMethods.split),
        MethodEntry(InventoryMethods.merge),
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
        MethodEntry(OrdersMethods.edit, response: .stableBytes),
        MethodEntry(OrdersMethods.canCancel, response: .stableBytes),
        MethodEntry(OrdersMethods.rotateToken, response: .stableBytes),
        MethodEntry(OrdersMethods.release, response: .stableBytes),
        MethodEntry(OrdersMethods.tag, response: .stableBytes),
        MethodEntry(OrdersMethods.mark, response: .stableBytes),
        MethodEntry(OrdersMethods.reorder, response: .stableBytes),
        MethodEntry(OrdersMethods.refund, response: .stableBytes),
        MethodEntry(OrdersMethods.archive, response: .stableBytes),
        MethodEntry(OrdersMethods.unarchive, response: .stableBytes),
        MethodEntry(OrdersMethods.delete, response: .stableBytes),
        MethodEntry(CustomerMethods.getOrder, response: .stableBytes),
        MethodEntry(CustomerMethods.canCancel, response: .stableBytes),
        MethodEntry(CustomerMethods.cancel, response: .stableBytes),
        MethodEntry(CustomerMethods.reorder, response: .stableBytes),
        MethodEntry(CustomerMethods.canEdit, response: .stableBytes),
        MethodEntry(CustomerMethods.edit, response: .stableBytes),
        MethodEntry(CustomerMethods.view, response: .stableBytes),
        MethodEntry(RequestMethods.list, response: .stableBytes),
        MethodEntry(RequestMethods.approve, response: .stableBytes),
        MethodEntry(RequestMethods.decline, response: .stableBytes),
        MethodEntry(PaymentsMethods.authorize),
        MethodEntry(PaymentsMethods.capture),
        MethodEntry(PaymentsMethods.void),
        MethodEntry(PaymentsMethods.refund),
        // A payment's processor events hold dates.
        MethodEntry(PaymentsMethods.get, response: .stableBytes),
        MethodEntry(PaymentsMethods.increase),
        MethodEntry(PaymentsMethods.events, response: .stableBytes),
        MethodEntry(PaymentsMethods.resolveEvent, response: .stableBytes),
        MethodEntry(PaymentsMethods.storeCredit, response: .stableBytes),
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
            case "inventory.release", "inventory.prepare_restock", "inventory.restock", "inventory.take_back",
                "inventory.write_off", "inventory.commit", "inventory.get_reservation":
                key = "OrderStockRequest"
            case "orders.get", "orders.rotate_token", "orders.release", "orders.archive", "orders.unarchive",
                "orders.delete":
                key = "OrderRequest"
            case "customer.get_order", "customer.can_cancel", "customer.reorder", "customer.can_edit", "customer.view":
                key = "CustomerRequest"
            case "sagas.get", "sagas.retry": key = "SagaRequest"
            case "requests.approve", "requests.decline": key = "DecideRequest"
            case "payments.capture", "payments.get": key = "PaymentRequest"
            default: key = entry.name
            }
            if seen.insert(key).inserted { result.append(entry) }
        }
        return result
    }()
}
