#!/usr/bin/env bash
# Limited claims against unlimited on one PostgreSQL cluster, in alternating
# invocations: each round runs `errand-bench --limits` (unlimited, a rate
# and a max_running that never bind, each end to end in the same
# invocation) on a fresh database, and with --before the same for an
# earlier build, rotating which goes first. One invocation's ratios move by
# ±0.15 with the machine's load; the median over the rounds is the figure
# (target ≥ 0.9×, docs/decisions/0008). Stops the cluster (also on failure
# or Ctrl-C).
#
#   bench/pg-limits-rounds.sh [--rounds N] [--runs N] [--jobs N] [--errand-bench PATH] [--before PATH]
#
# --rounds N   invocations per build (default 5)
# --runs N     end-to-end runs per variant within an invocation (default 3: errand-bench
#              rotates which variant goes first per run, so fewer than 3 always runs
#              the limited variants later, on a bigger table, than the unlimited one)
# --jobs N     no-op jobs per end-to-end run (default errand-bench's)
# --errand-bench PATH  the benchmark binary (default target/release/errand-bench,
#              under $CARGO_TARGET_DIR when set)
# --before PATH  also run this errand-bench (an earlier build) in every round
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=5
runs=3
jobs=""
errand="${CARGO_TARGET_DIR:-$root/target}/release/errand-bench"
before=""

source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --rounds) rounds=${2:?}; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --errand-bench) errand=${2:?}; shift 2 ;;
    --before) before=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
positive_int --rounds "$rounds"
positive_int --runs "$runs"
positive_int --jobs ${jobs:+"$jobs"}
[[ -x "$errand" ]] || die "$errand not found: cargo build --release -p errand-bench"
[[ -z "$before" || -x "$before" ]] || die "$before is not executable"
command -v python3 >/dev/null || die "python3 is needed for the summary"

cluster=$(mktemp -d -u /tmp/pg-limits-rounds.XXXXXX)
out=$(mktemp -d /tmp/pg-limits-rounds-json.XXXXXX)
cleanup() {
    "$root/bench/pg-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
    rm -rf "$out"
}
trap cleanup EXIT INT TERM

"$root/bench/pg-cluster.sh" start "$cluster" >/dev/null
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sides=(after)
[[ -n "$before" ]] && sides+=(before)
n=${#sides[@]}
for r in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((n - 1))); do
        side=${sides[$(((i + r - 1) % n))]}
        url=$("$root/bench/pg-cluster.sh" createdb "$cluster" "${side}_$r")
        bin=$errand
        [[ "$side" == before ]] && bin=$before
        echo "round $r/$rounds: $side…" >&2
        "$bin" --log-level warn --limits --json --runs "$runs" ${jobs:+--jobs "$jobs"} \
            --database "$url" >"$out/${side}_$r.json"
    done
done

python3 - "$out" "$rounds" "$started" "${sides[@]}" <<'PY'
import json, statistics, sys
out, rounds, started, sides = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
rows = {s: [json.load(open(f"{out}/{s}_{r}.json"))["limits"] for r in range(1, rounds + 1)]
        for s in sides}
first = rows[sides[0]][0]
print(f"limited ÷ unlimited end to end, {first['jobs']:,} no-op jobs per run, "
      f"concurrency {first['concurrency']}, {rounds} alternating round(s), started {started}")
head = " | ".join(f"{s}: rate | {s}: max_running" for s in sides)
print(f"| round | {head} |")
print("| --- |" + " --- |" * (2 * len(sides)))
for r in range(rounds):
    cells = " | ".join(f"{rows[s][r]['rate_vs_unlimited']:.2f}× | "
                       f"{rows[s][r]['concurrency_vs_unlimited']:.2f}×" for s in sides)
    print(f"| {r + 1} | {cells} |")
med = lambda s, k: statistics.median(x[k] for x in rows[s])
cells = " | ".join(f"**{med(s, 'rate_vs_unlimited'):.2f}×** | "
                   f"**{med(s, 'concurrency_vs_unlimited'):.2f}×**" for s in sides)
print(f"| median | {cells} |")
PY
