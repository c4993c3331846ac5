#!/usr/bin/env bash
# Every end-to-end benchmark of BENCHMARKS.md, one after another on this machine, each result as JSON in
# OUT (default Benchmarks/results), then the RPC benchmark, the plots and (into the default OUT) the tables of
# BENCHMARKS.md. About 20 minutes, a third of it growing a suite to a million orders. Nothing else should run
# meanwhile.
#
#     Benchmarks/end_to_end.sh [OUT]
#     SECTIONS="growth rpc" Benchmarks/end_to_end.sh      # some of: closed clients open resume growth rpc
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-Benchmarks/results}")
work=${WORK:-/tmp/rescind-bench}
sections=${SECTIONS:-closed clients open resume growth rpc}
wanted() { [[ " $sections " == *" $1 "* ]]; }
swift build -c release
rescindctl=$PWD/.build/release/rescindctl
mkdir -p "$out" "$work"

# bench NAME DIR ARGS...: a fresh suite in DIR; again NAME DIR ARGS...: the suite already in DIR.
bench() {
    local name=$1 dir=$2
    shift 2
    rm -rf "$dir"
    again "$name" "$dir" "$@"
}
again() {
    local name=$1 dir=$2
    shift 2
    echo "== $name: rescindctl bench --dir $dir $*" >&2
    "$rescindctl" bench --json --dir "$dir" "$@" > "$out/$name.json"
}

# Cancellations per second, orders placed beforehand.
if wanted closed; then
    bench closed-32 "$work/closed-32" --orders 5000 --concurrency 32
fi

# Concurrent clients (closed loop).
if wanted clients; then
    bench clients-1 "$work/clients-1" --orders 500 --concurrency 1
    bench clients-10 "$work/clients-10" --orders 2000 --concurrency 10
    bench clients-100 "$work/clients-100" --orders 5000 --concurrency 100
    bench clients-1000 "$work/clients-1000" --orders 10000 --concurrency 1000
fi

# Latency against offered load (open loop): 20 s of operations at each rate.
if wanted open; then
    for rate in 50 100 150 200 250 1000; do
        bench "open-$rate" "$work/open-$rate" --orders $((rate * 20)) --concurrency 2000 --rate "$rate"
    done
fi

# Resuming 1,000 cancellations in flight after Orders is killed.
if wanted resume; then
    bench resume-1000 "$work/resume" --orders 1000 --concurrency 32 --resume 1000
fi

# Cost as data grows: the same load (5,000 orders placed, then cancelled, 32 clients) on one suite grown to
# 10 thousand and then to 1 million orders. The suite grows in place: a copy of a suite's directory would
# still name the original's databases in its configuration.
if wanted growth; then
    bench grown-pattern "$work/grown" --orders 5000 --concurrency 32
    python3 Benchmarks/grow.py "$work/grown" 10000
    again grown-10000 "$work/grown" --existing --orders 5000 --concurrency 32
    python3 Benchmarks/grow.py "$work/grown" 1000000
    again grown-1000000 "$work/grown" --existing --orders 5000 --concurrency 32
    "$rescindctl" check --dir "$work/grown" > "$out/grown-check.txt"
    du -sm "$work/grown/data" > "$out/grown-size.txt"
    # The statements the daemons run, and their plans on the million-order databases.
    RESCIND_SQL_STATEMENTS="$work/grown/sql" "$rescindctl" bench --dir "$work/grown" --existing \
        --orders 500 --concurrency 32 > /dev/null
    python3 Benchmarks/query_plans.py "$work/grown" > "$out/query-plans.md" || true
fi

# RPC: Rescind, gRPC and the echo floor.
if wanted rpc; then
    (cd Benchmarks && swift build -c release --product RPCBench > /dev/null &&
        .build/release/RPCBench --json "$out/rpc.json") > "$out/rpc.md"
fi

python3 Benchmarks/plot.py "$out"
# BENCHMARKS.md's tables from these results (the prose is written by hand).
if [ "$out" = "$(realpath -m Benchmarks/results)" ]; then python3 Benchmarks/tables.py "$out" BENCHMARKS.md; fi
