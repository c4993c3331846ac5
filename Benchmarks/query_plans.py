#!/usr/bin/env python3
"""The query plan of every statement the daemons ran in a benchmark, and whether any scans a table.

    RESCIND_SQL_STATEMENTS=DIR/sql rescindctl bench --dir DIR ...   # the daemons write what they run
    python3 Benchmarks/query_plans.py DIR                            # a markdown table; exit 1 on a scan

Runs `EXPLAIN QUERY PLAN` for each distinct statement in DIR/sql/NAME.sql against DIR/data/NAME.sqlite
(parameters unbound) and prints one row per statement. A plan step "SCAN t" reads every row of t: on a hot
path it makes the cost grow with the data. Statements of the start-up (migrations, schema reads, the purge
of old idempotency keys) and transaction control are left out.
"""

import re
import sqlite3
import sys

LEFT_OUT = re.compile(
    r"^(PRAGMA|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|CREATE|DROP)\b|sqlite_master|grdb_migrations|"
    r"^DELETE FROM idempotency_key WHERE created_at",
    re.IGNORECASE,
)


def parameters(db, sql):
    """How many parameters a statement has (sqlite3 says so when given none)."""
    try:
        db.execute(f"EXPLAIN QUERY PLAN {sql}")
        return 0
    except sqlite3.ProgrammingError as error:
        return int(re.search(r"uses (\d+)", str(error)).group(1))


def plans(directory, name):
    db = sqlite3.connect(f"file:{directory}/data/{name}.sqlite?mode=ro", uri=True)
    with open(f"{directory}/sql/{name}.sql") as statements:
        for sql in (line.strip() for line in statements):
            if not sql or LEFT_OUT.search(sql):
                continue
            yield sql, [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", [None] * parameters(db, sql))]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    scans = 0
    print("| daemon | statement | plan |")
    print("|---|---|---|")
    for name in ("orders", "payments", "inventory"):
        for sql, steps in plans(directory, name):
            scan = any(step.startswith("SCAN") for step in steps)
            scans += scan
            shown = sql if len(sql) <= 120 else sql[:117] + "..."
            plan = "; ".join(steps) or "(no table read)"
            print(f"| {name} | `{shown.replace('|', '/')}` | {'**' + plan + '**' if scan else plan} |")
    print(f"\n{scans} statement(s) scan a table")
    sys.exit(1 if scans else 0)


if __name__ == "__main__":
    main()
