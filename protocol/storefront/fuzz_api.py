#!/usr/bin/env python3
"""Runs schemathesis (PyPI), a fuzzer nobody on this project wrote, with all its checks against the storefront's
JSON API as protocol/storefront/openapi.json describes it, on a running suite, with a real order token.

    python3 protocol/storefront/fuzz_api.py /tmp/suite/suite.json [--max-examples N]

It places an order through Orders with the independent Python client (protocol/interop) for a token, writes a
schemathesis configuration that puts that token in every path, and runs schemathesis with a fixed seed. The
suite's storefront should have its rate limit raised (`rate_limit` in its configuration): schemathesis sends
thousands of requests a minute. Exits with schemathesis's status.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from rescind_client import Connection  # noqa: E402

SPEC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.json")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest")
    parser.add_argument("--max-examples", type=int, default=60)
    arguments = parser.parse_args()
    manifest = json.load(open(arguments.manifest))
    tls = manifest["operator_tls"]
    orders = Connection(manifest["daemons"]["orders"]["endpoint"], tls, expected_identity="orders")
    inventory = Connection(manifest["daemons"]["inventory"]["endpoint"], tls, expected_identity="inventory")
    sku = f"FUZZ-{uuid.uuid4().hex[:8].upper()}"
    # Enough stock for every reorder the fuzzer makes.
    inventory.call("inventory.set_stock", {"sku": sku, "location": "fuzz-warehouse", "on_hand": 1_000_000})
    order = orders.call("orders.place", {
        "customer_email": "fuzz@example.com", "currency": "EUR",
        "lines": [{"sku": sku, "quantity": 5, "unit_price": 1250}], "payment_method": "pm_card_visa",
    }, idempotency_key=f"fuzz-place-{uuid.uuid4()}")
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "schemathesis.toml")
        with open(config, "w") as file:
            file.write(f'[parameters]\n"path.token" = "{order["customer_token"]}"\n')
        command = [
            "schemathesis", "--config-file", config, "run", SPEC_PATH, "--url", manifest["storefront_url"],
            "--checks", "all", "--seed", "1", "--generation-deterministic", "--workers", "1",
            "--max-examples", str(arguments.max_examples), "--no-color",
        ]
        print("$ " + " ".join(command), flush=True)
        return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
