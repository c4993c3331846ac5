#!/usr/bin/env python3
"""Checks rescind-storefront's JSON API against protocol/storefront/openapi.json, on a running suite.

It validates the OpenAPI document itself, places an order through Orders with the independent Python client
(protocol/interop), then drives every operation of the API (success and refusals) over HTTP and checks each
answer: its status is one the document declares for that operation, and its body satisfies the declared
schema. `.ci/run` runs it against the suite it starts:

    python3 protocol/storefront/check_api.py /tmp/suite/suite.json

Needs openapi-spec-validator and jsonschema (pip). Prints one line per check; exits 1 at the first failure.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import jsonschema
from openapi_spec_validator import validate as validate_spec

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from rescind_client import Connection, check  # noqa: E402

SPEC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.json")


def load_spec():
    spec = json.load(open(SPEC_PATH))
    validate_spec(spec)
    print("ok    openapi.json is a valid OpenAPI 3.1 document")
    return spec


def http(method, url, body=None, headers=None):
    """(status, headers, parsed JSON body) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


class API:
    def __init__(self, spec, base):
        self.spec = spec
        self.base = base

    def call(self, method, template, token, body=None, headers=None, expect=None):
        """Calls an operation and checks the answer against the document; returns (status, body)."""
        path = template.replace("{token}", token)
        status, response_headers, payload = http(method, self.base + path, body, headers)
        operation = self.spec["paths"][template][method.lower()]
        declared = operation["responses"]
        what = f"{method} {template} -> {status}"
        check(str(status) in declared, f"{what}: a status the document declares for {operation['operationId']}")
        response = declared[str(status)]
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].split("/")[-1]]
        schema = response["content"]["application/json"]["schema"]
        root = {"components": self.spec["components"], **schema}
        try:
            jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker()).validate(payload)
        except jsonschema.ValidationError as error:
            check(False, f"{what}: body satisfies {schema.get('$ref', 'the schema')}: {error.message} at {list(error.path)}")
        check(True, f"{what}: body satisfies {schema.get('$ref', 'the schema')}")
        check(response_headers.get("Referrer-Policy") == "no-referrer"
              and response_headers.get("Cache-Control") == "no-store", f"{what}: no referrer, no caching")
        if expect is not None:
            check(status == expect, f"{what}: expected {expect}")
        return status, payload


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    spec = load_spec()
    manifest = json.load(open(sys.argv[1]))
    base = manifest["storefront_url"]
    tls = manifest["operator_tls"]
    orders = Connection(manifest["daemons"]["orders"]["endpoint"], tls, expected_identity="orders")
    inventory = Connection(manifest["daemons"]["inventory"]["endpoint"], tls, expected_identity="inventory")
    sku = f"API-MUG-{uuid.uuid4().hex[:8].upper()}"
    inventory.call("inventory.set_stock", {"sku": sku, "location": "api-warehouse", "on_hand": 10})
    order = orders.call("orders.place", {
        "customer_email": "api@example.com", "currency": "EUR",
        "lines": [{"sku": sku, "quantity": 2, "unit_price": 1250}], "payment_method": "pm_card_visa",
    }, idempotency_key=f"api-place-{uuid.uuid4()}")
    token = order["customer_token"]
    check(order["status_link"] == f"{base}/o/{token}", f"orders.place: the status link points at {base}")
    api = API(spec, base)

    _, shown = api.call("GET", "/api/orders/{token}", token, expect=200)
    check(shown["id"] == str(order["id"]).upper(), "getOrder: the order the token opens")
    _, decision = api.call("GET", "/api/orders/{token}/can-cancel", token, expect=200)
    check(decision["allowed"] and decision["actor"] == "customer", "canCancel: the customer may cancel now")
    api.call("GET", "/api/orders/{token}", "A" * 32, expect=404)
    api.call("POST", "/api/orders/{token}/cancel", token, {"lines": [{"sku": sku, "quantity": 0}]}, expect=400)

    key = {"Idempotency-Key": f"api-check-{uuid.uuid4()}"}
    one = {"note": "one is enough", "lines": [{"sku": sku, "quantity": 1}]}
    _, accepted = api.call("POST", "/api/orders/{token}/cancel", token, one, key, expect=202)
    _, again = api.call("POST", "/api/orders/{token}/cancel", token, one, key, expect=202)
    check(again["saga_id"] == accepted["saga_id"], "cancel: a repeat with its key answers with the same saga")
    deadline = time.time() + 30
    while time.time() < deadline:
        _, shown = api.call("GET", "/api/orders/{token}", token, expect=200)
        if shown["status"] != "cancelling":
            break
        time.sleep(0.1)
    check(shown["status"] == "open" and shown["lines"][0].get("cancelled") == 1
          and len(shown.get("line_cancellations", [])) == 1, "one unit cancelled, the order open with the other")
    api.call("POST", "/api/orders/{token}/cancel", token, {}, {"Idempotency-Key": "bad key with spaces"}, expect=400)
    # A body that is not JSON: the API's own error, with its code and whether to retry.
    request = urllib.request.Request(f"{base}/api/orders/{token}/cancel", data=b"not json", method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=20)
        check(False, "a body that is not JSON is refused")
    except urllib.error.HTTPError as error:
        refused = json.loads(error.read() or b"null")["error"]
        check(error.code == 400 and refused["code"] == "invalid_argument" and refused["reason"] == "bad_body"
              and refused["retryable"] is False, "a body that is not JSON: 400 invalid_argument/bad_body, not retryable")
    # A method the document does not list: 405, and Allow names the one it does.
    status, headers, refused = http("PUT", f"{base}/api/orders/{token}")
    check(status == 405 and headers.get("Allow") == "GET" and refused["error"]["reason"] == "method_not_allowed",
          "PUT on an order: 405 Method Not Allowed, Allow: GET")
    _, may = api.call("GET", "/api/orders/{token}/can-edit", token, expect=200)
    check(may["allowed"] and may.get("action") == "edit", "canEdit: the customer may change quantities now")
    edit_key = {"Idempotency-Key": f"api-edit-{uuid.uuid4()}"}
    two = {"lines": [{"sku": sku, "quantity": 2}], "note": "two after all"}
    _, edited = api.call("POST", "/api/orders/{token}/edit", token, two, edit_key, expect=200)
    open_units = sum(line["quantity"] - line.get("cancelled", 0) - line.get("fulfilled", 0) for line in edited["lines"])
    check(open_units == 2 and edited["edits"][-1]["by"] == "customer", "edit: two open units again, by the customer")
    _, repeated = api.call("POST", "/api/orders/{token}/edit", token, two, edit_key, expect=200)
    check(len(repeated["edits"]) == 1, "edit: a repeat with its key edits once")
    api.call("POST", "/api/orders/{token}/edit", token, {"lines": [{"sku": "NOT-ORDERED", "quantity": 1}]}, expect=409)
    reorder_key = {"Idempotency-Key": f"api-reorder-{uuid.uuid4()}"}
    _, placed = api.call("POST", "/api/orders/{token}/reorder", token, {}, reorder_key, expect=201)
    check(placed["status_link"].startswith(base + "/o/") and placed["status"] == "open",
          "reorder: a new open order, with its own link")
    _, repeated = api.call("POST", "/api/orders/{token}/reorder", token, {}, reorder_key, expect=201)
    check(repeated["id"] == placed["id"] and "status_link" not in repeated,
          "reorder: a repeat with its key places nothing more and answers without the link")
    print("storefront api: every check passed")


if __name__ == "__main__":
    main()
