#!/usr/bin/env python3
"""Validates the golden frames of protocol/vectors/vectors.json against protocol/rescind.cddl.

For every vector:
  1. the frame header (PROTOCOL.md section 3): the length field counts the rest of the frame,
     version 1, the vector's kind, flags 0, correlation id 0 for a hello and non-zero for a request;
  2. the body is exactly one CBOR data item in the deterministic profile of section 5 (shortest
     integers, lengths and floats, definite lengths, valid UTF-8, text keys sorted by their encoded
     bytes and unique, tags 1 and 37 only, depth at most 64), which CDDL cannot express;
  3. the body satisfies the vector's rule and the schema's first rule (frame-body), with pycddl;
  4. for a request: the body also satisfies request-envelope, its rule and payload_rule name its
     method (<method>-envelope, <method>-request), and the payload (the byte string under
     "payload") passes 2 and satisfies payload_rule on its own.

Usage: python3 protocol/check_vectors.py [--vectors FILE] [--schema FILE] [--show]
--show also prints each body (and payload) in CBOR diagnostic notation.
The last line is "N passed, N failed"; the exit status is 1 if any vector failed.
Needs pycddl (python3 -m pip install pycddl).
"""

import argparse
import json
import math
import re
import struct
import sys
from pathlib import Path

try:
    import pycddl
except ImportError:
    sys.exit("check_vectors.py needs pycddl: python3 -m pip install pycddl")

HERE = Path(__file__).resolve().parent
KINDS = {"hello": 1, "request": 2, "response": 3, "error": 4}
MAX_DEPTH = 64


class ProfileError(Exception):
    """The bytes are not one well-formed CBOR item in Rescind's deterministic profile."""


class Tagged:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


class Float:
    def __init__(self, value):
        self.value = value


def parse_item(data):
    """Parses exactly one data item of `data`, enforcing the profile. Returns a Python value:
    int, str, bytes, bool, None, list, dict, Tagged or Float."""
    value, end = _item(data, 0, 1)
    if end != len(data):
        raise ProfileError(f"{len(data) - end} trailing bytes after the data item")
    return value


def _need(data, pos, count):
    if pos + count > len(data):
        raise ProfileError(f"truncated at offset {pos}")
    return data[pos : pos + count]


def _argument(data, pos):
    """Reads an item head; returns (major, info, argument, next offset)."""
    initial = _need(data, pos, 1)[0]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        argument = int.from_bytes(_need(data, pos, size), "big")
        if major != 7:
            smallest = 24 if size == 1 else 1 << (4 * size)
            if argument < smallest:
                raise ProfileError(f"argument {argument} not in its shortest form at offset {pos - 1}")
        return major, info, argument, pos + size
    raise ProfileError(f"indefinite length or reserved additional information {info} at offset {pos - 1}")


def _item(data, pos, depth):
    start = pos
    major, info, argument, pos = _argument(data, pos)
    if major == 0:
        return argument, pos
    if major == 1:
        return -1 - argument, pos
    if major == 2:
        return bytes(_need(data, pos, argument)), pos + argument
    if major == 3:
        raw = bytes(_need(data, pos, argument))
        try:
            return raw.decode("utf-8", errors="strict"), pos + argument
        except UnicodeDecodeError as error:
            raise ProfileError(f"invalid UTF-8 in the text string at offset {start}: {error}") from None
    if depth > MAX_DEPTH:
        raise ProfileError(f"nested deeper than {MAX_DEPTH} at offset {start}")
    if major == 4:
        items = []
        for _ in range(argument):
            value, pos = _item(data, pos, depth + 1)
            items.append(value)
        return items, pos
    if major == 5:
        result, previous = {}, None
        for _ in range(argument):
            key_start = pos
            key, pos = _item(data, pos, depth + 1)
            if not isinstance(key, str):
                raise ProfileError(f"map key at offset {key_start} is not a text string")
            encoded = bytes(data[key_start:pos])
            if previous is not None and encoded <= previous:
                what = "duplicate" if encoded == previous else "out of canonical order"
                raise ProfileError(f"map key {key!r} at offset {key_start} is {what}")
            previous = encoded
            result[key], pos = _item(data, pos, depth + 1)
        return result, pos
    if major == 6:
        value, end = _item(data, pos, depth + 1)
        if argument == 1:
            ok = (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, Float) and math.isfinite(value.value)
            )
            if not ok:
                raise ProfileError(f"tag 1 at offset {start} holds something else than an integer or finite float")
            if isinstance(value, Float) and value.value == int(value.value) and abs(value.value) < 2**63:
                raise ProfileError(f"tag 1 at offset {start} holds whole seconds as a float")
        elif argument == 37:
            if not (isinstance(value, bytes) and len(value) == 16):
                raise ProfileError(f"tag 37 at offset {start} holds something else than 16 bytes")
        else:
            raise ProfileError(f"tag {argument} at offset {start}: only tags 1 and 37 are used")
        return Tagged(argument, value), end
    # major 7
    if info == 20:
        return False, pos
    if info == 21:
        return True, pos
    if info == 22:
        return None, pos
    if info in (25, 26, 27):
        raw = bytes(data[pos - (1 << (info - 24)) : pos])
        value = struct.unpack({25: ">e", 26: ">f", 27: ">d"}[info], raw)[0]
        if math.isnan(value):
            if bytes(data[start:pos]) != b"\xf9\x7e\x00":
                raise ProfileError(f"NaN at offset {start} is not f9 7e 00")
        elif info > 25 and _fits(value, ">e") or info > 26 and _fits(value, ">f"):
            raise ProfileError(f"float {value!r} at offset {start} is not in its shortest exact form")
        return Float(value), pos
    raise ProfileError(f"simple value {argument} at offset {start} is not false, true or null")


def _fits(value, fmt):
    try:
        return struct.unpack(fmt, struct.pack(fmt, value))[0] == value
    except (OverflowError, struct.error):
        return False


def diagnostic(value):
    """RFC 8949 diagnostic notation of a parsed item."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return f"h'{value.hex()}'"
    if isinstance(value, Float):
        return repr(value.value)
    if isinstance(value, Tagged):
        return f"{value.tag}({diagnostic(value.value)})"
    if isinstance(value, list):
        return "[" + ", ".join(diagnostic(item) for item in value) + "]"
    return "{" + ", ".join(f"{diagnostic(key)}: {diagnostic(item)}" for key, item in value.items()) + "}"


class Validator:
    def __init__(self, schema_text):
        self.text = schema_text
        self.cache = {}
        self.rules = set(re.findall(r"^([a-z][a-z0-9-]*)\s*(?:<[^>]*>)?\s*=", schema_text, re.M))

    def validate(self, rule, body):
        """Validates bytes against a rule; raises on failure."""
        if rule not in self.rules:
            raise ValueError(f"no rule named {rule!r} in the schema")
        if rule not in self.cache:
            self.cache[rule] = pycddl.Schema(f"root = {rule}\n\n{self.text}")
        self.cache[rule].validate_cbor(body)

    def validate_first_rule(self, body):
        if None not in self.cache:
            self.cache[None] = pycddl.Schema(self.text)
        self.cache[None].validate_cbor(body)


def short(error, lines=4):
    """A validator message cut to its first lines: a failed choice lists every alternative."""
    text = str(error).strip().splitlines()
    more = f"\n(and {len(text) - lines} more lines)" if len(text) > lines else ""
    return "\n".join(text[:lines]) + more


def check(vector, validator, shown):
    """Checks one vector; returns a list of failures (empty when it passes). Appends the body (and
    payload) in diagnostic notation to `shown` if it is a list."""
    frame = bytes.fromhex(vector["frame"])
    if len(frame) < 16:
        return [f"frame of {len(frame)} bytes is shorter than the 16-byte prefix and header"]
    length, version, kind, flags, correlation_id = struct.unpack(">IBBHQ", frame[:16])
    body = frame[16:]
    failures = []
    if length != len(frame) - 4:
        failures.append(f"length field {length}, but {len(frame) - 4} bytes follow it")
    if version != 1:
        failures.append(f"version {version}, not 1")
    if kind != KINDS.get(vector["kind"]):
        failures.append(f"kind byte {kind} for a vector of kind {vector['kind']!r}")
    if flags != 0:
        failures.append(f"flags {flags:#06x}, not 0")
    if kind == KINDS["hello"] and correlation_id != 0:
        failures.append(f"a hello with correlation id {correlation_id}")
    if kind == KINDS["request"] and correlation_id == 0:
        failures.append("a request with correlation id 0")

    rule = vector["rule"]
    expected_rule = {
        "hello": rule in ("client-hello", "server-hello"),
        "request": rule.endswith("-envelope"),
        "response": rule.endswith("-response"),
        "error": rule == "rescind-error",
    }.get(vector["kind"], False)
    if not expected_rule:
        failures.append(f"rule {rule!r} is not a rule for a {vector['kind']} frame")

    try:
        parsed = parse_item(body)
    except ProfileError as error:
        return failures + [f"body: {error}"]
    if shown is not None:
        shown.append(f"body: {diagnostic(parsed)}")
    rules = [rule, "frame-body"] + (["request-envelope"] if vector["kind"] == "request" else [])
    for name in rules:
        try:
            if name == "frame-body":
                validator.validate_first_rule(body)
            else:
                validator.validate(name, body)
        except Exception as error:  # pycddl.ValidationError, or a schema error
            failures.append(f"body does not satisfy {name}: {short(error)}")

    if vector["kind"] == "request":
        payload_rule = vector.get("payload_rule")
        payload = parsed.get("payload") if isinstance(parsed, dict) else None
        method = parsed.get("method") if isinstance(parsed, dict) else None
        if not payload_rule:
            failures.append("a request vector without payload_rule")
        elif not isinstance(payload, bytes):
            failures.append("the envelope has no byte-string payload")
        else:
            if isinstance(method, str):
                stem = re.sub(r"[._]", "-", method)
                if (rule, payload_rule) != (f"{stem}-envelope", f"{stem}-request"):
                    failures.append(f"method {method!r} needs rules {stem}-envelope and {stem}-request")
            try:
                inner = parse_item(payload)
                if shown is not None:
                    shown.append(f"payload: {diagnostic(inner)}")
                validator.validate(payload_rule, payload)
            except ProfileError as error:
                failures.append(f"payload: {error}")
            except Exception as error:
                failures.append(f"payload does not satisfy {payload_rule}: {short(error)}")
    elif "payload_rule" in vector:
        failures.append("payload_rule is only for request vectors")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=Path, default=HERE / "vectors" / "vectors.json")
    parser.add_argument("--schema", type=Path, default=HERE / "rescind.cddl")
    parser.add_argument("--show", action="store_true", help="print bodies in diagnostic notation")
    arguments = parser.parse_args()

    validator = Validator(arguments.schema.read_text(encoding="utf-8"))
    vectors = json.loads(arguments.vectors.read_text(encoding="utf-8"))["vectors"]
    passed = failed = 0
    names = set()
    for vector in vectors:
        name = vector.get("name", "?")
        shown = [] if arguments.show else None
        try:
            failures = check(vector, validator, shown)
        except (KeyError, ValueError, TypeError) as error:
            failures = [f"unreadable vector: {error!r}"]
        if name in names:
            failures.append("duplicate name")
        names.add(name)
        if failures:
            failed += 1
            print(f"FAIL {name}")
            for failure in failures:
                print("    " + failure.replace("\n", "\n    "))
        else:
            passed += 1
            print(f"ok   {name}")
        for line in shown or []:
            print("    " + line)
    if not vectors:
        failed += 1
        print("FAIL no vectors")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
