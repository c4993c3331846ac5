#!/usr/bin/env python3
"""Grows the three databases of a stopped suite to N orders, for benchmarks of cost as data grows.

    python3 Benchmarks/grow.py DIR N

DIR holds a suite that a `rescindctl bench --dir DIR` run has left: every order placed and cancelled, every
saga ended. Its rows are the pattern: each copy inserts them all again into every table of the three
databases, with a random 32-bit k of its own XORed into the first eight hex digits of every UUID in every
text column (so an order's id is the same in orders, sagas, steps, payments, reservations, ledger and
idempotency keys) and "~k" after every idempotency key (some name no UUID), until the orders number N. A
suite can be grown again: its copies are then part of the pattern, and each new k makes them new again.
Stock and locations are not copied: a copy of a closed order reserves nothing and its ledger rows sum to
nothing (the rows that set stock are not copied). `rescindctl check --dir DIR` finds nothing wrong
afterwards (Benchmarks/end_to_end.sh runs it).
"""

import random
import re
import sqlite3
import sys
import time

UUID = re.compile(r"[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
KEY_COLUMNS = {"key", "idempotency_key", "request_key"}
NOT_COPIED = {"grdb_migrations", "sqlite_sequence", "location", "stock"}
# Rows of an order only: setting the stock is not copied.
ONLY = {"ledger": "order_id IS NOT NULL"}


def renamed(value, copy):
    """The value with every UUID in it made the copy's own."""
    if not isinstance(value, str) or "-" not in value:
        return value
    def own(match):
        uuid = match.group(0)
        prefix = int(uuid[:8], 16) ^ copy
        lower = any(c in "abcdef" for c in uuid)
        return (f"{prefix:08x}" if lower else f"{prefix:08X}") + uuid[8:]

    return UUID.sub(own, value)


def keyed(value, copy):
    return None if value is None else f"{renamed(value, copy)}~{copy}"


def columns(db, table):
    """(name, is an autoincrement id, is text) for each column."""
    out = []
    for _, name, kind, _, _, pk in db.execute(f'PRAGMA table_info("{table}")'):
        out.append((name, pk == 1 and kind.upper() == "INTEGER", kind.upper() in ("TEXT", "")))
    return out


def grow(path, copies, progress):
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    db.create_function("renamed", 2, renamed, deterministic=True)
    db.create_function("keyed", 2, keyed, deterministic=True)
    tables = [
        name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name not in NOT_COPIED
    ]
    # The pattern: the rows there before the first copy.
    last = {t: db.execute(f'SELECT max(rowid) FROM "{t}"').fetchone()[0] or 0 for t in tables}
    # Parents before children, for the foreign keys.
    order = ["orders", "saga", "reservation"]
    tables.sort(key=lambda t: order.index(t) if t in order else len(order))
    for done, copy in enumerate(copies, 1):
        db.execute("BEGIN")
        for table in tables:
            names, values = [], []
            for name, autoincrement, text in columns(db, table):
                if autoincrement:
                    continue
                names.append(f'"{name}"')
                if name in KEY_COLUMNS:
                    values.append(f'keyed("{name}", {copy})')
                elif text:
                    values.append(f'renamed("{name}", {copy})')
                else:
                    values.append(f'"{name}"')
            db.execute(
                f'INSERT INTO "{table}" ({", ".join(names)}) SELECT {", ".join(values)} FROM "{table}" '
                f"WHERE rowid <= {last[table]} AND {ONLY.get(table, 'true')}"
            )
        db.execute("COMMIT")
        progress(done)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    directory, target = sys.argv[1], int(sys.argv[2])
    orders = sqlite3.connect(f"{directory}/data/orders.sqlite")
    pattern = orders.execute("SELECT count(*) FROM orders").fetchone()[0]
    orders.close()
    if pattern == 0:
        sys.exit(f"{directory} holds no orders to copy")
    count = (target - pattern + pattern - 1) // pattern
    copies = [random.getrandbits(32) | 1 for _ in range(count)]
    started = time.monotonic()
    for name in ("orders", "payments", "inventory"):
        def progress(copy, name=name):
            print(f"\r{name}: copy {copy} of {len(copies)}", end="", file=sys.stderr, flush=True)
        grow(f"{directory}/data/{name}.sqlite", copies, progress)
        print(file=sys.stderr)
    total = pattern * (len(copies) + 1)
    print(f"{total} orders ({pattern} and {len(copies)} copies) in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
