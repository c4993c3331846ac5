#!/usr/bin/env python3
"""Turns the text output of `swift package benchmark` (CodecBenchmarks) into a markdown table
of p50 wall-clock time and allocations per operation, with JSON/CBOR ratios per value.

    swift package --allow-writing-to-package-directory benchmark --no-progress > run.txt
    python3 summarize.py run.txt
"""
import re
import sys
from collections import defaultdict

ROW = re.compile(r"^│ (?P<metric>[^│]+?)\s*│(?P<cells>.*)│\s*$")
TITLE = re.compile(
    r"^(?P<value>[A-Za-z]+)_(?P<codec>CBOR|JSON)_(?P<op>encode|decode)_\((?P<size>\d+)_B\)$"
)


def parse(text):
    results = defaultdict(dict)
    current = None
    for line in text.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip()
        title = TITLE.match(line)
        if title:
            current = (title["value"], title["codec"], title["op"])
            results[current]["size"] = int(title["size"])
            continue
        row = ROW.match(line)
        if current and row:
            cells = [c.strip() for c in row["cells"].split("│")]
            if not cells or not cells[0].isdigit():
                continue
            p50 = int(cells[2])
            metric = row["metric"]
            if metric.startswith("Time (wall clock)"):
                results[current]["wall"] = p50
            elif metric.startswith("Malloc (total)"):
                results[current]["malloc"] = p50
    return results


def main():
    results = parse(open(sys.argv[1]).read())
    values = []
    for value, _, _ in results:
        if value not in values:
            values.append(value)
    print("| value | op | CBOR p50 | JSON p50 | JSON/CBOR time | CBOR allocs | JSON allocs | CBOR B | JSON B |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for value in values:
        for op in ("encode", "decode"):
            c = results.get((value, "CBOR", op), {})
            j = results.get((value, "JSON", op), {})
            if "wall" not in c or "wall" not in j:
                continue
            print(
                f"| {value} | {op} | {c['wall'] / 1000:.2f} µs | {j['wall'] / 1000:.2f} µs | {j['wall'] / c['wall']:.2f}x "
                f"| {c.get('malloc', '?')} | {j.get('malloc', '?')} | {c['size']} | {j['size']} |"
            )


if __name__ == "__main__":
    main()
