#!/usr/bin/env python3
"""The plots of BENCHMARKS.md, from the JSON that Benchmarks/end_to_end.sh writes.

    python3 -m pip install matplotlib
    python3 Benchmarks/plot.py Benchmarks/results      # writes Benchmarks/results/*.png
"""

import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(directory, pattern):
    for path in sorted(glob.glob(os.path.join(directory, pattern))):
        with open(path) as file:
            yield os.path.basename(path)[:-5], json.load(file)


def phase(report, name):
    return next(p for p in report["phases"] if p["name"] == name)


def save(figure, directory, name):
    figure.tight_layout()
    figure.savefig(os.path.join(directory, name), dpi=110)


def latency_against_offered_load(directory):
    runs = sorted(
        (r["offeredRate"], r) for _, r in load(directory, "open-*.json") if r.get("offeredRate")
    )
    if not runs:
        return
    rates = [rate for rate, _ in runs]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, label in (("cancel", "cancellation, accepted → terminal"), ("place", "placement, request → answer")):
        for percentile, style in (("p50", "-o"), ("p99", "--o")):
            axes.plot(rates, [phase(r, name)["latency"][percentile] for _, r in runs], style,
                      label=f"{label}, {percentile}")
    axes.axhline(50, color="grey", linewidth=0.8, linestyle=":")
    axes.text(rates[0], 55, "goal: p99 under 50 ms at 1,000/s", color="grey", fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(rates, [str(int(r)) for r in rates])
    axes.set_xlabel("operations offered per second (open loop)")
    axes.set_ylabel("latency, ms")
    axes.set_title("Latency against offered load (three daemons and the generator on 2 cores)")
    axes.legend(fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    save(figure, directory, "latency-vs-offered-load.png")


def throughput_against_size(directory):
    runs = []
    for name, report in load(directory, "grown-*.json"):
        size = name.split("-")[1]
        if size.isdigit():
            runs.append((int(size), report))
    if not runs:
        return
    runs.sort()
    sizes = [size for size, _ in runs]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, label in (("cancel", "cancellations/s"), ("place", "placements/s")):
        axes.plot(sizes, [phase(r, name)["perSecond"] for _, r in runs], "-o", label=label)
    axes.set_xscale("log")
    top = max(phase(r, name)["perSecond"] for _, r in runs for name in ("cancel", "place"))
    axes.set_ylim(0, top * 1.15)
    axes.set_xlabel("orders already in the databases")
    axes.set_ylabel("sagas completed per second")
    axes.set_title("Throughput against database size\n(5,000 orders placed, then cancelled, 32 clients)")
    axes.legend()
    axes.grid(True, which="both", alpha=0.3)
    save(figure, directory, "throughput-vs-database-size.png")


def clients(directory):
    runs = sorted((r["concurrency"], r) for _, r in load(directory, "clients-*.json"))
    if not runs:
        return
    counts = [c for c, _ in runs]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("cancel", "place"):
        left.plot(counts, [phase(r, name)["perSecond"] for _, r in runs], "-o", label=name)
        right.plot(counts, [phase(r, name)["latency"]["p99"] for _, r in runs], "-o", label=f"{name} p99")
    for axes in (left, right):
        axes.set_xscale("log")
        axes.set_xlabel("concurrent clients (closed loop)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    left.set_ylabel("sagas completed per second")
    right.set_yscale("log")
    right.set_ylabel("latency p99, ms")
    figure.suptitle("Concurrent clients")
    save(figure, directory, "clients.png")


def rpc(directory):
    path = os.path.join(directory, "rpc.json")
    if not os.path.exists(path):
        return
    with open(path) as file:
        results = json.load(file)
    configurations = sorted({(r["connections"], r["inFlight"]) for r in results})
    transports = ["rescind", "grpc", "echo"]
    figure, axes = plt.subplots(figsize=(9, 4.5))
    width = 0.27
    for index, transport in enumerate(transports):
        values = []
        for connections, in_flight in configurations:
            match = [r for r in results if r["transport"] == transport and r["connections"] == connections
                     and r["inFlight"] == in_flight]
            values.append(match[0]["requestsPerSecond"] if match else 0)
        axes.bar([i + (index - 1) * width for i in range(len(configurations))], values, width, label=transport)
    axes.set_xticks(range(len(configurations)),
                    [f"{c} conn.\n{f} in flight" for c, f in configurations], fontsize=8)
    axes.set_ylabel("requests per second")
    axes.set_title("One orders.cancel call over mutual TLS on loopback (client and server on 2 cores)")
    axes.legend()
    axes.grid(True, axis="y", alpha=0.3)
    save(figure, directory, "rpc.png")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "Benchmarks/results"
    latency_against_offered_load(directory)
    throughput_against_size(directory)
    clients(directory)
    rpc(directory)


if __name__ == "__main__":
    main()
