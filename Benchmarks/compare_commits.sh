#!/usr/bin/env bash
# What a change costs end to end: the same `rescindctl bench` on two commits, in turns (A B A B ...), on this
# machine, each result as JSON in OUT; then a table of the medians and their ratios (B / A). Each commit is
# built in release in its own worktree under WORK (about 12 minutes each, the first time). Nothing else should
# run meanwhile.
#
#     Benchmarks/compare_commits.sh BASE HEAD [OUT]
#     ROUNDS=3 BENCH="--orders 5000 --concurrency 32" Benchmarks/compare_commits.sh 2096695 HEAD
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(git rev-parse --short "$1")
head=$(git rev-parse --short "$2")
out=$(realpath -m "${3:-Benchmarks/results/compare-$base-$head}")
work=${WORK:-/tmp/rescind-compare}
rounds=${ROUNDS:-3}
read -r -a args <<< "${BENCH:---orders 5000 --concurrency 32}"
mkdir -p "$out" "$work"

for commit in "$base" "$head"; do
    tree="$work/tree-$commit"
    if [ ! -d "$tree" ]; then git worktree add --detach "$tree" "$commit" > /dev/null; fi
    echo "== building $commit in release ($tree)" >&2
    (cd "$tree" && swift build -c release > "$work/build-$commit.log" 2>&1) || { tail -n 50 "$work/build-$commit.log"; exit 1; }
done

for round in $(seq 1 "$rounds"); do
    for commit in "$base" "$head"; do
        dir="$work/suite-$commit-$round"
        rm -rf "$dir"
        echo "== round $round, $commit: rescindctl bench --dir $dir ${args[*]}" >&2
        "$work/tree-$commit/.build/release/rescindctl" bench --json --dir "$dir" "${args[@]}" > "$out/$commit-$round.json"
        rm -rf "$dir"
    done
done

python3 - "$out" "$base" "$head" <<'EOF'
import json, os, statistics, sys
out, base, head = sys.argv[1:]
def runs(commit):
    return [json.load(open(os.path.join(out, name))) for name in sorted(os.listdir(out))
            if name.startswith(commit + "-") and name.endswith(".json")]
def phase(run, name):
    return next(p for p in run["phases"] if p["name"] == name)
rows = []
for name in ("place", "cancel"):
    for label, get in (
        ("per second", lambda p: p["perSecond"]),
        ("p50 ms", lambda p: p["latency"]["p50"]),
        ("p99 ms", lambda p: p["latency"]["p99"]),
        ("Orders CPU ms per saga", lambda p: p["cpuMillisPerSaga"].get("orders", 0)),
        ("Payments CPU ms per saga", lambda p: p["cpuMillisPerSaga"].get("payments", 0)),
        ("Inventory CPU ms per saga", lambda p: p["cpuMillisPerSaga"].get("inventory", 0)),
    ):
        a = statistics.median(get(phase(r, name)) for r in runs(base))
        b = statistics.median(get(phase(r, name)) for r in runs(head))
        rows.append((f"{name}: {label}", a, b, b / a if a else float("nan")))
print(f"| median of {len(runs(base))} runs each | {base} | {head} | {head} / {base} |")
print("|---|---|---|---|")
for label, a, b, ratio in rows:
    print(f"| {label} | {a:.2f} | {b:.2f} | {ratio:.2f} |")
EOF
