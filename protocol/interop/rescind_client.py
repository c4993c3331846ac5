#!/usr/bin/env python3
"""A Rescind client written from protocol/PROTOCOL.md alone, in Python's standard library only.

It shares no code with the Swift implementation: its own canonical CBOR encoder and strict decoder
(section 5), frames (section 3), the handshake (section 4.1), envelopes, responses and error frames
(section 6), over TLS 1.3 with mutual authentication (section 2). Run against a local suite whose store
captures when a 2-second cancellation window closes, it places an order, cancels one of its units inside
the window (that unit's share voided, the order open with the rest) and then the rest (a void), places another and cancels it after the capture (a stated refund, then the rest by
`orders.refund`), and checks what each daemon answers:

    swift run rescindctl up --dir /tmp/suite --capture when_window_closes --cancellation-window-seconds 2
    python3 protocol/interop/rescind_client.py /tmp/suite/suite.json
    swift run rescindctl down --dir /tmp/suite

It prints one line per check and exits 1 at the first one that fails. `.ci/run` runs it, and also

    python3 protocol/interop/rescind_client.py --vectors protocol/vectors/vectors.json

which checks that this encoder writes every golden frame (section 15) byte for byte.
"""
import datetime
import json
import math
import socket
import ssl
import struct
import sys
import time
import uuid

# --- CBOR (section 5) ----------------------------------------------------------------------------


def _head(major, argument):
    """The shortest head for a major type and argument (5.1)."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if argument < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, argument)
    raise ValueError(f"integer {argument} does not fit 64 bits")


def _float(value):
    """The shortest of half, single and double that holds `value` exactly (5.1)."""
    if math.isnan(value):
        return b"\xf9\x7e\x00"
    for prefix, fmt in ((b"\xf9", ">e"), (b"\xfa", ">f")):
        try:
            packed = struct.pack(fmt, value)
        except (OverflowError, struct.error):
            continue
        if struct.unpack(fmt, packed)[0] == value:
            return prefix + packed
    return b"\xfb" + struct.pack(">d", value)


def encode(value):
    """Canonical CBOR of a Python value: dicts are records (keys omitted when None), datetimes are
    times, UUIDs are UUIDs."""
    if value is None:
        return b"\xf6"
    if value is False:
        return b"\xf4"
    if value is True:
        return b"\xf5"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _head(3, len(data)) + data
    if isinstance(value, (bytes, bytearray)):
        return _head(2, len(value)) + bytes(value)
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(encode(item) for item in value)
    if isinstance(value, dict):
        # Absent optionals are omitted (5.1); keys sorted by their encoded bytes (5.2).
        entries = sorted((encode(k), encode(v)) for k, v in value.items() if v is not None)
        return _head(5, len(entries)) + b"".join(k + v for k, v in entries)
    if isinstance(value, datetime.datetime):
        seconds = value.timestamp()
        return b"\xc1" + (encode(int(seconds)) if seconds == int(seconds) else _float(seconds))
    if isinstance(value, uuid.UUID):
        return b"\xd8\x25" + encode(value.bytes)
    raise TypeError(f"cannot encode {type(value).__name__}")


class CBORError(Exception):
    pass


def decode(data):
    """Decodes exactly one data item of the profile, refusing what section 5.3 refuses."""
    value, end = _item(memoryview(data), 0, 0)
    if end != len(data):
        raise CBORError(f"trailing bytes at {end}")
    return value


def _item(data, pos, depth):
    if depth > 64:
        raise CBORError("nested deeper than 64")
    if pos >= len(data):
        raise CBORError("truncated")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if major == 7:
        simple = {20: False, 21: True, 22: None}
        if info in simple:
            return simple[info], pos
        widths = {25: (">e", 2), 26: (">f", 4), 27: (">d", 8)}
        if info not in widths:
            raise CBORError(f"simple value {info} is not allowed")
        fmt, size = widths[info]
        if pos + size > len(data):
            raise CBORError("truncated")
        return struct.unpack(fmt, bytes(data[pos:pos + size]))[0], pos + size
    if info < 24:
        argument = info
    elif info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise CBORError("truncated")
        argument = int.from_bytes(bytes(data[pos:pos + size]), "big")
        pos += size
        if argument < (24 if size == 1 else 1 << (4 * size)):
            raise CBORError("not in shortest form")
    else:
        raise CBORError("indefinite length or reserved information")
    if major == 0:
        return argument, pos
    if major == 1:
        return -1 - argument, pos
    if major in (2, 3):
        if pos + argument > len(data):
            raise CBORError("length beyond the input")
        raw = bytes(data[pos:pos + argument])
        return (raw if major == 2 else raw.decode("utf-8", errors="strict")), pos + argument
    if major == 4:
        if argument > len(data) - pos:
            raise CBORError("count beyond the input")
        items = []
        for _ in range(argument):
            item, pos = _item(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        if 2 * argument > len(data) - pos:
            raise CBORError("count beyond the input")
        record = {}
        for _ in range(argument):
            key, pos = _item(data, pos, depth + 1)
            if not isinstance(key, str) or key in record:
                raise CBORError(f"bad or duplicate key {key!r}")
            record[key], pos = _item(data, pos, depth + 1)
        return record, pos
    content, end = _item(data, pos, depth + 1)
    if argument == 1 and isinstance(content, (int, float)) and not isinstance(content, bool):
        # Section 5.3: a date is checked wherever it is, under a key the reader does not know too.
        if isinstance(content, float) and not math.isfinite(content):
            raise CBORError("date seconds are not finite")
        if isinstance(content, int) and int(float(content)) != content:
            raise CBORError("date seconds are not exactly representable as a double")
        try:
            return datetime.datetime.fromtimestamp(content, datetime.timezone.utc), end
        except (OverflowError, ValueError, OSError):
            raise CBORError("date outside the range this client can represent")
    if argument == 37 and isinstance(content, bytes) and len(content) == 16:
        return uuid.UUID(bytes=content), end
    raise CBORError(f"tag {argument} is not allowed here")


# --- Frames and the connection (sections 3, 4, 6, 8) --------------------------------------------

HELLO, REQUEST, RESPONSE, ERROR = 1, 2, 3, 4


class RescindError(Exception):
    def __init__(self, body):
        self.code, self.reason = body["code"], body.get("reason")
        self.message, self.retryable = body["message"], body["retryable"]
        super().__init__(f"{self.code}/{self.reason}: {self.message} (retryable: {self.retryable})")


class Connection:
    def __init__(self, endpoint, tls, expected_identity, agent="rescind-interop-python/1"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(cafile=tls["ca_certificate"])
        context.load_cert_chain(certfile=tls["certificate"], keyfile=tls["private_key"])
        context.set_alpn_protocols(["rescind/1"])
        raw = socket.create_connection((endpoint["host"], endpoint["port"]), timeout=30)
        # For an IP literal, Python checks the certificate's iPAddress names and sends no SNI (section 2).
        self.sock = context.wrap_socket(raw, server_hostname=endpoint["host"])
        self.tls_version = self.sock.version()
        self.alpn = self.sock.selected_alpn_protocol()
        subject = dict(pair[0] for pair in self.sock.getpeercert()["subject"])
        if subject.get("commonName") != expected_identity:
            raise RuntimeError(f"server identity {subject.get('commonName')!r}, expected {expected_identity!r}")
        self.next_id = 1
        self._send(HELLO, 0, encode({"versions": [1], "agent": agent}))
        kind, correlation_id, body = self._receive()
        if kind != HELLO or correlation_id != 0:
            raise RescindError(body) if kind == ERROR else RuntimeError(f"unexpected frame kind {kind}")
        self.server_hello = body
        if body["version"] != 1:
            raise RuntimeError(f"server chose version {body['version']}")

    def _send(self, kind, correlation_id, body):
        self.sock.sendall(struct.pack(">IBBHQ", 12 + len(body), 1, kind, 0, correlation_id) + body)

    def _read_exactly(self, count):
        chunks = b""
        while len(chunks) < count:
            chunk = self.sock.recv(count - len(chunks))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            chunks += chunk
        return chunks

    def _receive(self):
        (length,) = struct.unpack(">I", self._read_exactly(4))
        if not 12 <= length <= 1 << 20:
            raise RuntimeError(f"bad frame length {length}")
        version, kind, flags, correlation_id = struct.unpack(">BBHQ", self._read_exactly(12))
        if version != 1 or flags != 0:
            raise RuntimeError(f"bad frame header: version {version}, flags {flags}")
        return kind, correlation_id, decode(self._read_exactly(length - 12))

    def call(self, method, request, idempotency_key=None, timeout=20.0):
        """Sends one request and waits for its answer (one at a time, so no reordering to handle)."""
        correlation_id = self.next_id
        self.next_id += 1
        envelope = {
            "method": method,
            "payload": encode(request),
            "deadline": int((time.time() + timeout) * 1000),
            "idempotency_key": idempotency_key,
        }
        self._send(REQUEST, correlation_id, encode(envelope))
        kind, answered_id, body = self._receive()
        if answered_id != correlation_id:
            raise RuntimeError(f"answer for id {answered_id}, expected {correlation_id}")
        if kind == ERROR:
            raise RescindError(body)
        if kind != RESPONSE:
            raise RuntimeError(f"unexpected frame kind {kind}")
        return body

    def close(self):
        self.sock.close()


# --- The scenario --------------------------------------------------------------------------------


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        sys.exit(1)


def expect_error(function, code, reason, what):
    try:
        function()
    except RescindError as error:
        check(error.code == code and error.reason == reason and error.retryable is False,
              f"{what}: {error.code}/{error.reason}, not retryable")
        return
    check(False, f"{what}: expected {code}/{reason}, got an answer")


def vectors_round_trip(path):
    """Every golden frame (section 15) must decode with this decoder and re-encode to the same bytes,
    and so must the payload of every request."""
    for vector in json.load(open(path))["vectors"]:
        frame = bytes.fromhex(vector["frame"])
        length, version, kind, flags, _ = struct.unpack(">IBBHQ", frame[:16])
        body = frame[16:]
        check(length == len(frame) - 4 and version == 1 and flags == 0, f"vector {vector['name']}: header")
        value = decode(body)
        check(encode(value) == body, f"vector {vector['name']}: this encoder writes the same bytes")
        if kind == REQUEST:
            check(encode(decode(value["payload"])) == value["payload"], f"vector {vector['name']}: payload too")


def refusals():
    """Items section 5.3 refuses wherever they are, an unknown key included."""
    for hex_item, what in (("a1627a7ac1f97e00", "a date around NaN"), ("a1627a7ac1f97c00", "a date around infinity"),
                           ("a1627a7ac11b0020000000000001", "a date no double holds exactly")):
        try:
            decode(bytes.fromhex(hex_item))
            refused = False
        except CBORError:
            refused = True
        check(refused, f"{what} under an unknown key is refused")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--vectors":
        vectors_round_trip(sys.argv[2])
        refusals()
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    manifest = json.load(open(sys.argv[1]))
    tls = manifest["operator_tls"]
    connections = {}
    for name in ("orders", "payments", "inventory"):
        connection = Connection(manifest["daemons"][name]["endpoint"], tls, expected_identity=name)
        connections[name] = connection
        hello = connection.server_hello
        check(connection.tls_version == "TLSv1.3" and connection.alpn == "rescind/1",
              f"{name}: TLS 1.3 with ALPN rescind/1")
        check(hello["server"] == name and hello["max_in_flight"] >= 1,
              f"{name}: hello names {hello['server']}, max_in_flight {hello['max_in_flight']}")
        health = connection.call("health", {})
        check(health["service"] == name and health["status"] == "serving", f"{name}: health says serving")
    orders, payments, inventory = connections["orders"], connections["payments"], connections["inventory"]

    sku, location = f"PY-MUG-{uuid.uuid4().hex[:8].upper()}", "py-warehouse"
    level = inventory.call("inventory.set_stock", {"sku": sku, "location": location, "on_hand": 10})
    check(level["on_hand"] == 10 and level["available"] == 10, f"inventory.set_stock: 10 {sku} at {location}")

    order = orders.call("orders.place", {
        "customer_email": "interop@example.com", "currency": "EUR",
        "lines": [{"sku": sku, "quantity": 3, "unit_price": 1250}], "payment_method": "pm_card_visa",
    }, idempotency_key=f"py-place-{uuid.uuid4()}")
    order_id = order["id"]
    check(isinstance(order_id, uuid.UUID) and order["status"] == "open" and order["total"] == 3750
          and order["card_last4"] == "4242" and isinstance(order["created_at"], datetime.datetime),
          f"orders.place: order {order_id} open, total 3750, card ...4242")
    report = inventory.call("inventory.list_stock", {"sku": sku})
    check([(lvl["reserved"], lvl["available"]) for lvl in report["levels"]] == [(3, 7)],
          "inventory.list_stock: 3 reserved, 7 available")

    def cancelled(order_id, request):
        """Cancels, waits for the saga to end, and answers (order, saga)."""
        accepted = orders.call("orders.cancel", dict(request, order_id=order_id))
        check(accepted["order"]["status"] == "cancelling", f"orders.cancel: saga {accepted['saga_id']} started")
        deadline = time.time() + 30
        while time.time() < deadline:
            order = orders.call("orders.get", {"order_id": order_id})
            if order["status"] != "cancelling":
                break
            time.sleep(0.1)
        return order, orders.call("sagas.get", {"saga_id": accepted["saga_id"]})

    # The suite's store captures when a 2-second window closes (.ci/run starts it so): cancelled at once, the
    # authorization is voided; no money moves, no fee, and the fee a capture would have cost is saved.
    check(order.get("capture_due_at") is not None, "orders.place: the payment is authorized, capture_due_at set")
    # One unit of the three first: its share comes off the authorization, and the order stays open with the rest.
    order, saga = cancelled(order_id, {"reason": "customer", "refund": True, "restock": True, "notify": False,
                                       "lines": [{"sku": sku, "quantity": 1}]})
    partial = (order.get("line_cancellations") or [{}])[0]
    check(order["status"] == "open" and order["lines"][0].get("cancelled") == 1 and order["total"] == 2500
          and partial.get("voided") and partial.get("voided_amount") == 1250 and partial.get("refunded") == 0
          and partial.get("lines") == [{"sku": sku, "quantity": 1}] and partial.get("units_restocked") == 1,
          "orders.cancel of one unit: 1250 voided, the order open with 2 units, total 2500")
    check(saga["state"] == "completed" and [step["name"] for step in saga["steps"]][:2] == ["lock", "split"],
          f"sagas.get: the unit set apart first, steps {[step['name'] for step in saga['steps']]}")
    payment = payments.call("payments.get", {"order_id": order_id})
    check(payment["status"] == "authorized" and payment["amount_authorized"] == 2500
          and payment.get("fee_saved", 0) == partial.get("fee_saved") > 0,
          f"payments.get: still authorized for 2500, fee saved so far {payment.get('fee_saved')}")
    report = inventory.call("inventory.list_stock", {"sku": sku})
    check([(lvl["reserved"], lvl["available"]) for lvl in report["levels"]] == [(2, 8)],
          "inventory.list_stock: the unit is back, 2 reserved")
    order, saga = cancelled(order_id, {"reason": "customer", "refund": True, "restock": True, "notify": False})
    cancellation = order.get("cancellation") or {}
    check(order["status"] == "cancelled" and cancellation.get("saga_id") == saga["id"],
          "orders.get: the order is cancelled by that saga")
    check(cancellation["voided"] and cancellation["refunded"] == 0 and cancellation["fee_kept"] == 0
          and cancellation.get("fee_saved", 0) > 0 and cancellation["units_restocked"] == 2,
          f"inside the window: voided, no fee, fee saved {cancellation.get('fee_saved')}, 2 units restocked")
    check(saga["state"] == "completed" and saga["kind"] == "cancel_order"
          and "void" in [step["name"] for step in saga["steps"]],
          f"sagas.get: completed, steps {[step['name'] for step in saga['steps']]}")
    payment = payments.call("payments.get", {"order_id": order_id})
    check(payment["status"] == "voided" and payment["amount_captured"] == 0 and payment["fee"] == 0
          and payment["fee_saved"] == cancellation["fee_saved"] + partial["fee_saved"],
          f"payments.get: voided, nothing captured, fee saved {payment['fee_saved']} by the two voids")

    # After the window: captured, so a cancellation refunds; here a stated amount now and the rest later.
    order = orders.call("orders.place", {
        "customer_email": "interop@example.com", "currency": "EUR", "source": "api",
        "lines": [{"sku": sku, "quantity": 3, "unit_price": 1250}], "payment_method": "pm_card_visa",
    }, idempotency_key=f"py-place-{uuid.uuid4()}")
    order_id = order["id"]
    # The capture saga captures in Payments, then clears the order's capture time: the order says when it is done.
    deadline = time.time() + 30
    while "capture_due_at" in orders.call("orders.get", {"order_id": order_id}) and time.time() < deadline:
        time.sleep(0.1)
    check(orders.call("orders.get", {"order_id": order_id}).get("capture_due_at") is None
          and payments.call("payments.get", {"order_id": order_id})["status"] == "captured",
          "the window closed: the payment is captured")
    order, saga = cancelled(order_id, {"reason": "staff", "refund": True, "restock": True, "notify": False,
                                       "refund_amount": 1000})
    cancellation = order.get("cancellation") or {}
    check(order["status"] == "cancelled" and cancellation["refunded"] == 1000 and not cancellation["voided"]
          and cancellation["fee_kept"] > 0, f"after the window: refunded the stated 1000, fee kept")
    order = orders.call("orders.refund", {"order_id": order_id, "amount": 2750, "reason": "the rest, later"},
                        idempotency_key=f"py-refund-{order_id}")
    check(order["amount_refunded"] == 3750 and [r["amount"] for r in order.get("refunds", [])] == [2750],
          "orders.refund: the other 2750, recorded with its reason")
    payment = payments.call("payments.get", {"order_id": order_id})
    check(payment["status"] == "refunded" and payment["amount_refunded"] == 3750
          and payment["fee"] == cancellation["fee_kept"] > 0,
          f"payments.get: refunded 3750, the processor kept its fee of {payment['fee']}")
    report = inventory.call("inventory.list_stock", {"sku": sku})
    check([(lvl["reserved"], lvl["available"]) for lvl in report["levels"]] == [(0, 10)],
          "inventory.list_stock: all 10 available again")

    expect_error(lambda: orders.call("orders.place", {
        "customer_email": "interop@example.com", "currency": "eur",
        "lines": [{"sku": sku, "quantity": 1, "unit_price": 1}], "payment_method": "pm_card_visa",
    }), "invalid_argument", "bad_currency", "orders.place with currency 'eur'")
    expect_error(lambda: orders.call("orders.place", {
        "customer_email": "interop@example.com", "currency": "EUR",
        "lines": [{"sku": sku, "quantity": 1, "unit_price": 1}], "card_number": "4242424242424242",
    }), "invalid_argument", "card_number_refused", "orders.place with a card number instead of a payment method")
    expect_error(lambda: orders.call("orders.nope", {}), "unimplemented", "unknown_method", "an unknown method")
    expect_error(lambda: payments.call("payments.refund", {"order_id": order_id, "amount": 1},
                                       idempotency_key="py"),
                 "permission_denied", "identity_not_allowed", "payments.refund as operator")
    expect_error(lambda: orders.call("orders.get", {"order": "x"}), "invalid_argument", "bad_body",
                 "orders.get without order_id")
    for connection in connections.values():
        connection.close()
    print("interop: every check passed")


if __name__ == "__main__":
    main()
