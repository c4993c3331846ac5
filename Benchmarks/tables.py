#!/usr/bin/env python3
"""Writes the tables of BENCHMARKS.md from the results of Benchmarks/end_to_end.sh.

    python3 Benchmarks/tables.py [Benchmarks/results] [BENCHMARKS.md]

Each table sits between `<!-- table:NAME -->` and `<!-- /table -->` in BENCHMARKS.md and is replaced whole;
the prose around them is written by hand, from the same figures.
"""

import json
import os
import re
import sys


def load(directory, name):
    with open(os.path.join(directory, f"{name}.json")) as file:
        return json.load(file)


def phase(report, name):
    return next(p for p in report["phases"] if p["name"] == name)


def ms(value):
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def triple(latency, *keys):
    return " / ".join(ms(latency[k]) for k in keys) + " ms"


def cpu(p):
    c = p["cpuMillisPerSaga"]
    return f"{c['orders']:.2f} / {c['payments']:.2f} / {c['inventory']:.2f}"


def rss(report):
    r = report["peakResidentMiB"]
    return f"{r['orders']:.0f} / {r['payments']:.0f} / {r['inventory']:.0f}"


def clients(directory):
    rows = [
        "| clients | placements/s | cancellations/s | cancel p50 / p99 / p99.9 | accepted p50 / p99 "
        "| CPU ms per cancel: Orders / Payments / Inventory | peak RSS MiB: Orders / Payments / Inventory |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("clients-1", "clients-10", "closed-32", "clients-100", "clients-1000"):
        r = load(directory, name)
        place, cancel = phase(r, "place"), phase(r, "cancel")
        rows.append(
            f"| {r['concurrency']:,} | {place['perSecond']:.0f} | {cancel['perSecond']:.0f} "
            f"| {triple(cancel['latency'], 'p50', 'p99', 'p999')} "
            f"| {triple(cancel['acceptLatency'], 'p50', 'p99')} | {cpu(cancel)} | {rss(r)} |"
        )
    return rows


def open_loop(directory):
    rows = [
        "| offered/s | placements/s | place p50 / p99 | cancellations/s | cancel p50 / p99 / p99.9 "
        "| accepted p99 | Orders peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for rate in (50, 100, 150, 200, 250, 1000):
        r = load(directory, f"open-{rate}")
        place, cancel = phase(r, "place"), phase(r, "cancel")
        rows.append(
            f"| {rate:,} | {place['perSecond']:.0f} | {triple(place['latency'], 'p50', 'p99')} "
            f"| {cancel['perSecond']:.0f} | {triple(cancel['latency'], 'p50', 'p99', 'p999')} "
            f"| {ms(cancel['acceptLatency']['p99'])} ms | {r['peakResidentMiB']['orders']:.0f} MiB |"
        )
    return rows


def growth(directory):
    rows = [
        "| orders already there | placements/s | cancellations/s | cancel p50 / p99 "
        "| CPU ms per cancel: Orders / Payments / Inventory | peak RSS MiB: Orders / Payments / Inventory |",
        "|---|---|---|---|---|---|",
    ]
    small, large = load(directory, "grown-10000"), load(directory, "grown-1000000")
    for label, r in (("10,000", small), ("1,010,000", large)):
        place, cancel = phase(r, "place"), phase(r, "cancel")
        place_share = cancel_share = ""
        if r is large:
            place_share = f" ({100 * place['perSecond'] / phase(small, 'place')['perSecond']:.0f} %)"
            cancel_share = f" ({100 * cancel['perSecond'] / phase(small, 'cancel')['perSecond']:.0f} %)"
        rows.append(
            f"| {label} | {place['perSecond']:.0f}{place_share} | {cancel['perSecond']:.0f}{cancel_share} "
            f"| {triple(cancel['latency'], 'p50', 'p99')} | {cpu(cancel)} | {rss(r)} |"
        )
    return rows


def rpc(directory):
    with open(os.path.join(directory, "rpc.json")) as file:
        results = json.load(file)

    def get(transport, connections, in_flight):
        return next(
            r for r in results
            if r["transport"] == transport and r["connections"] == connections and r["inFlight"] == in_flight
        )

    def latencies(r):
        return f"{r['p50Micros']:,.0f} / {r['p99Micros']:,.0f} / {r['p999Micros']:,.0f}"

    rows = [
        "| connections | in flight | rescind req/s | gRPC req/s | echo req/s | rescind ÷ gRPC | rescind ÷ echo "
        "| rescind p50 / p99 / p99.9 µs | gRPC p50 / p99 / p99.9 µs | echo p50 / p99 / p99.9 µs "
        "| CPU µs per call: rescind / gRPC / echo |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for connections in (1, 8):
        for in_flight in (1, 16, 256):
            a, g, e = (get(t, connections, in_flight) for t in ("rescind", "grpc", "echo"))
            rows.append(
                f"| {connections} | {in_flight} | {a['requestsPerSecond']:,.0f} | {g['requestsPerSecond']:,.0f} "
                f"| {e['requestsPerSecond']:,.0f} | {a['requestsPerSecond'] / g['requestsPerSecond']:.1f}x "
                f"| {100 * a['requestsPerSecond'] / e['requestsPerSecond']:.0f} % | {latencies(a)} "
                f"| {latencies(g)} | {latencies(e)} "
                f"| {a['cpuMicrosPerCall']:.0f} / {g['cpuMicrosPerCall']:.0f} / {e['cpuMicrosPerCall']:.0f} |"
            )
    return rows


TABLES = {"clients": clients, "open-loop": open_loop, "growth": growth, "rpc": rpc}


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "Benchmarks/results"
    document = sys.argv[2] if len(sys.argv) > 2 else "BENCHMARKS.md"
    with open(document) as file:
        text = file.read()
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table -->)", re.DOTALL)
        if not pattern.search(text):
            sys.exit(f"{document} has no <!-- table:{name} --> ... <!-- /table -->")
        table = "\n".join(make(directory)) + "\n"
        text = pattern.sub(lambda m: m.group(1) + table + m.group(2), text)
    with open(document, "w") as file:
        file.write(text)


if __name__ == "__main__":
    main()
