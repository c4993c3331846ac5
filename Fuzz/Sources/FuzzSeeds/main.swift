// Writes the seed corpus of the fuzz targets: real encodings of the protocol's bodies and frames, and the
// golden frames of protocol/vectors/vectors.json when they exist.
//
// Usage: FuzzSeeds [CORPUS_DIR [VECTORS_JSON]]   (defaults: corpus, ../protocol/vectors/vectors.json)
// Writes CORPUS_DIR/cbor/* (one CBOR body per file) and CORPUS_DIR/frames/* (a control byte, then a byte
// stream; see FuzzFrames). Files are named after what they hold, so a rerun rewrites the same files.
//
// It is built with the fuzz targets and the same flags, so one build serves all three.
import FuzzSupport
import NIOCore
import RescindAPI
import RescindCBOR
import RescindWire

import struct Foundation.Data
import struct Foundation.Date
import class Foundation.FileManager
import class Foundation.JSONDecoder
import struct Foundation.URL
import struct Foundation.UUID

#if canImport(Glibc)
    import Glibc
#endif

// -sanitize=fuzzer links libFuzzer, which needs a fuzz target even where none runs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt { 0 }

nonisolated(unsafe) var written = 0

func write(_ bytes: [UInt8], to dir: URL, _ name: String) throws {
    try Data(bytes).write(to: dir.appendingPathComponent(name))
    written += 1
}

func body(_ value: some Encodable) throws -> [UInt8] { try CBOREncoder().encode(value) }

func frame(_ kind: FrameKind, _ id: UInt64, _ body: [UInt8]) -> [UInt8] {
    var buffer = ByteBuffer()
    Frame(kind: kind, correlationID: id, body: ByteBuffer(bytes: body)).write(to: &buffer)
    return Array(buffer.readableBytesView)
}

/// A FuzzFrames input: the control byte, then the stream.
func stream(control: UInt8 = 0, _ frames: [UInt8]...) -> [UInt8] { [control] + frames.joined() }

struct VectorFile: Decodable {
    struct Vector: Decodable {
        var name: String
        var kind: String?
        var frame: String
    }
    var vectors: [Vector]
}

func unhex(_ text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
            return nil
        }
        bytes.append(byte)
    }
    return bytes
}

func writeSeeds() throws {
    let arguments = CommandLine.arguments
    let corpus = URL(fileURLWithPath: arguments.count > 1 ? arguments[1] : "corpus")
    let vectorsPath = arguments.count > 2 ? arguments[2] : "../protocol/vectors/vectors.json"
    let cborDir = corpus.appendingPathComponent("cbor")
    let framesDir = corpus.appendingPathComponent("frames")
    for dir in [cborDir, framesDir] {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    // MARK: - Bodies from the Swift encoder

    guard let order = UUID(uuidString: "6F1C2A4E-0B1D-4C8E-9A57-3D2B1E0F4A11"),
        let saga = UUID(uuidString: "0D7E5B3C-8F21-4A6B-B9C4-12E3F4A5B6C7")
    else {
        fatalError("bad UUID literal")
    }
    let deadline: UInt64 = 1_900_000_000_000

    let hello = try body(ClientHello(agent: "rescindctl/0.1.0"))
    let helloVersions = try body(ClientHello(versions: [2, 1, 0, 23, 24, 255, 256, 65_536, .max], agent: ""))
    let serverHello = try body(ServerHello(version: 1, server: "orders", maxInFlight: 256))
    let errors = [
        try body(RescindError(.invalidArgument, "quantity must be positive", reason: "bad_quantity")),
        try body(RescindError(.unavailable, "shutting down")),
        try body(RescindError(.malformed, "frame of 2000000 bytes is above the maximum", reason: "frame_too_large")),
    ]

    let requests: [(String, [UInt8], String?)] = [
        ("health", try body(Empty()), nil),
        (
            "orders.place",
            try body(
                PlaceOrderRequest(
                    customerEmail: "ana@example.com", currency: "EUR",
                    lines: [
                        .init(sku: "MUG-350", quantity: 2, unitPriceMinor: 1250),
                        .init(sku: "TEE", quantity: 1, unitPriceMinor: 0),
                    ],
                    paymentMethod: "pm_card_visa"
                )
            ), nil
        ),
        (
            "orders.cancel",
            try body(
                CancelOrderRequest(
                    orderID: order, reason: .customer, refund: true, restock: true, notify: true,
                    staffNote: "asked by phone")),
            nil
        ),
        ("orders.get", try body(OrderRequest(orderID: order)), nil),
        ("orders.list", try body(ListOrdersRequest(status: .open, limit: 50)), nil),
        ("sagas.list", try body(ListSagasRequest(orderID: order, state: .failed, limit: 10)), nil),
        ("sagas.get", try body(SagaRequest(sagaID: saga)), nil),
        (
            "inventory.reserve", try body(ReserveRequest(orderID: order, lines: [.init(sku: "MUG-350", quantity: 2)])),
            "reserve-1"
        ),
        ("inventory.set_stock", try body(SetStockRequest(sku: "MUG-350", location: "main", onHand: .min)), nil),
        ("inventory.list_stock", try body(ListStockRequest(sku: "MUG-350")), nil),
        ("inventory.deactivate_location", try body(LocationRequest(location: "main")), nil),
        ("inventory.restock", try body(OrderStockRequest(orderID: order)), "restock-1"),
        (
            "payments.authorize",
            try body(
                AuthorizeRequest(
                    orderID: order, amountMinor: 2500, currency: "EUR", paymentMethod: "pm_card_visa_chargeDeclined")),
            "authorize-1"
        ),
        ("payments.refund", try body(RefundRequest(orderID: order, amountMinor: 500)), "refund-1"),
        ("payments.capture", try body(PaymentRequest(orderID: order)), "capture-1"),
    ]

    try write(hello, to: cborDir, "client-hello")
    try write(helloVersions, to: cborDir, "client-hello-versions")
    try write(serverHello, to: cborDir, "server-hello")
    for (index, error) in errors.enumerated() { try write(error, to: cborDir, "error-\(index)") }

    // The golden vectors hold a request of every request type; without them, the Swift encoder's stand in.
    let vectors = try FileManager.default.contents(atPath: vectorsPath).map {
        try JSONDecoder().decode(VectorFile.self, from: $0).vectors
    }
    var requestFrames: [[UInt8]] = []
    for (index, (method, payload, key)) in requests.enumerated() {
        let envelope = try body(
            RequestEnvelope(method: method, deadlineMillis: deadline, idempotencyKey: key, payload: Data(payload))
        )
        if vectors == nil {
            try write(payload, to: cborDir, "payload-\(method)")
            try write(envelope, to: cborDir, "envelope-\(method)")
        }
        requestFrames.append(frame(.request, UInt64(index + 1), envelope))
    }

    // Shapes beyond the protocol's types, for the rest of the decoder.
    var sink = KitchenSink()
    sink.i8 = -128
    sink.u16 = 65_535
    sink.i64 = .min
    sink.u64 = .max
    sink.f32 = 1.5
    sink.f64 = -0.1
    sink.flag = true
    sink.text = "grüße"
    sink.data = Data([0, 1, 2, 255])
    sink.uuid = order
    sink.date = Date(timeIntervalSince1970: 1_700_000_000.5)
    sink.ints = [0, -1, 24, -25, 256]
    sink.optionals = [1, nil, 3]
    sink.nested = [["a"], [], ["b", "c"]]
    sink.byName = ["x": 1, "y": -2]
    sink.byNumber = [1: "one", -10: "minus ten"]
    sink.bytes = [1, 2, 3]
    sink.choice = .named(x: .infinity, y: [7])
    sink.inner = KitchenSink.Nested(base: 7, point: [1, nil, -3], flags: ["on": true])
    try write(try body(sink), to: cborDir, "kitchen-sink")
    var sinkPair = KitchenSink()
    sinkPair.choice = .pair("p", false)
    sinkPair.f64 = .nan
    sinkPair.f32 = 65_504
    try write(try body(sinkPair), to: cborDir, "kitchen-sink-pair")
    try write(
        try body(
            AnyCBOR.array([
                .null, .bool(false), .int(-1), .uint(.max), .double(3.25), .string(""), .bytes(Data()),
                .date(Date(timeIntervalSince1970: 0)), .uuid(saga), .map(["k": .array([])]),
            ])),
        to: cborDir, "any-cbor"
    )
    var widths = KitchenSink()
    widths.f32 = 0.1
    widths.f64 = 0.1
    widths.date = Date(timeIntervalSince1970: -0.25)
    widths.i32 = .min
    widths.uint = .max
    try write(try body(widths), to: cborDir, "kitchen-sink-widths")
    // Written by hand, for paths the encoder never takes: a float64 and an integer where a Float is asked
    // for, a UUID tag over a byte string of the wrong length, a float date.
    try write([0xa1, 0x63, 0x66, 0x33, 0x32, 0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], to: cborDir, "hand-f32-from-float64")
    try write([0xa1, 0x63, 0x66, 0x33, 0x32, 0x18, 0x20], to: cborDir, "hand-f32-from-int")
    try write([0xa1, 0x64, 0x75, 0x75, 0x69, 0x64, 0xd8, 0x25, 0x41, 0x00], to: cborDir, "hand-uuid-short")
    try write([0xc1, 0xfb, 0x41, 0xd9, 0x4c, 0x42, 0x7f, 0x80, 0x00, 0x00], to: cborDir, "hand-date-float")

    // MARK: - Frame streams

    let helloFrame = frame(.hello, 0, hello)
    try write(stream(helloFrame), to: framesDir, "hello")
    try write(stream(helloFrame, requestFrames[0], requestFrames[1], requestFrames[2]), to: framesDir, "session")
    try write(stream(control: 0x07, helloFrame, requestFrames[7], requestFrames[12]), to: framesDir, "session-chunks-7")
    try write(stream(control: 0x01, helloFrame, requestFrames[3]), to: framesDir, "session-chunks-1")
    try write(stream(helloFrame, frame(.request, 9, [])), to: framesDir, "request-empty-body")
    try write(stream(helloFrame, frame(.response, 1, errors[0])), to: framesDir, "unexpected-kind")
    try write(stream(helloFrame, Array(requestFrames[1].dropLast(3))), to: framesDir, "truncated")
    try write(stream([0, 0, 0, 11] + [UInt8](repeating: 0, count: 11)), to: framesDir, "too-short")
    try write(stream([0, 0x10, 0, 1, 1, 1, 0, 0]), to: framesDir, "too-large")
    try write(stream(control: 0x33, frame(.hello, 0, hello)), to: framesDir, "small-limit")
    try write(stream(control: 0x05, frame(.error, 0, errors[2])), to: framesDir, "error-frame")
    try write(stream(), to: framesDir, "empty")

    // MARK: - Golden vectors

    // Every vector's body (and a request's payload) for FuzzCBOR; for FuzzFrames, the client's frames as one
    // connection (whole and in chunks) and the server's frames as another.
    if let vectors {
        var clientStream = helloFrame
        var serverStream: [UInt8] = []
        for vector in vectors {
            guard let bytes = unhex(vector.frame), bytes.count >= 16 else {
                print("skipping vector \(vector.name): frame is not hex of a whole frame")
                continue
            }
            let body = Array(bytes[16...])
            try write(body, to: cborDir, "vector-\(vector.name)")
            if vector.kind == "request" {
                let envelope = try CBORDecoder().decode(RequestEnvelope.self, from: body)
                try write(Array(envelope.payload), to: cborDir, "vector-\(vector.name)-payload")
                clientStream += bytes
            } else if vector.name != "client-hello" {
                serverStream += bytes
            }
        }
        try write(stream(clientStream), to: framesDir, "vectors-client")
        try write(stream(control: 0x0b, clientStream), to: framesDir, "vectors-client-chunks-11")
        try write(stream(control: 0x03, serverStream), to: framesDir, "vectors-server-chunks-3")
        print("read \(vectors.count) vectors from \(vectorsPath)")
    } else {
        print("no vectors at \(vectorsPath); seeding from the Swift encoder only")
    }
    print("wrote \(written) files under \(corpus.path)")
}

do {
    try writeSeeds()
} catch {
    print("FuzzSeeds: \(error)")
    exit(1)
}
