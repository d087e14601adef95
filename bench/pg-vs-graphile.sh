#!/usr/bin/env bash
# errand and graphile-worker on the same throwaway PostgreSQL cluster, same
# machine, same run: starts a cluster (bench/pg-cluster.sh: fsync on,
# synchronous_commit on), runs graphile-worker's benchmark RUNS times, each
# on a fresh database, and `errand-bench --json --runs RUNS` on another
# fresh database, prints both side by side with the ratio, and stops the
# cluster (also on failure or Ctrl-C). For end to end only, alternating
# single runs of each side, see bench/pg-e2e-rounds.sh.
#
#   bench/pg-vs-graphile.sh [--runs N] [--jobs N] [--history] [--errand-bench PATH] [--keep-json DIR]
#
# --runs N      repetitions of each side; medians are compared (default 3)
# --jobs N      jobs in each end-to-end run, both sides (default 100000)
# --history     also run errand's claim-against-history scenarios (slow)
# --errand-bench PATH  the benchmark binary (default target/release/errand-bench;
#               build it with `cargo build --release -p errand-bench`)
# --keep-json DIR  keep the raw JSON of both sides in DIR
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=3
jobs=100000
history=()
errand="$root/target/release/errand-bench"
keep=""

source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --history) history=(--history); shift ;;
    --errand-bench) errand=${2:?}; shift 2 ;;
    --keep-json) keep=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
positive_int --runs "$runs"
positive_int --jobs "$jobs"
[[ -x "$errand" ]] || die "$errand not found: cargo build --release -p errand-bench"
command -v node >/dev/null || die "node is not installed (graphile-worker needs it)"

cluster=$(mktemp -d -u /tmp/pg-vs-graphile.XXXXXX)
out=$(mktemp -d /tmp/pg-vs-graphile-json.XXXXXX)
cleanup() {
    "$root/bench/pg-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
    if [[ -n "$keep" ]]; then
        mkdir -p "$keep" && cp "$out"/*.json "$keep"/ 2>/dev/null || true
    fi
    rm -rf "$out"
}
trap cleanup EXIT INT TERM

"$root/bench/pg-cluster.sh" start "$cluster" >/dev/null
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for n in $(seq 1 "$runs"); do
    echo "graphile-worker run $n/$runs…" >&2
    url=$("$root/bench/pg-cluster.sh" createdb "$cluster" "graphile_$n")
    "$root/bench/peers/run-graphile.sh" "$url" --jobs "$jobs" >"$out/graphile_$n.json"
done
echo "errand-bench --runs $runs…" >&2
url=$("$root/bench/pg-cluster.sh" createdb "$cluster" errand)
"$errand" --database "$url" --json --runs "$runs" --jobs "$jobs" "${history[@]}" \
    >"$out/errand.json" 2> >(grep -v ' INFO ' >&2)
server=$(pg_version)

# Side by side: medians of each side, and errand / graphile-worker.
node - "$out" "$runs" "$started" "$server" <<'JS'
const fs = require("node:fs");
const [dir, runs, started, server] = process.argv.slice(2);
const errand = JSON.parse(fs.readFileSync(`${dir}/errand.json`, "utf8"));
const graphile = fs.readdirSync(dir).filter((f) => f.startsWith("graphile_"))
  .map((f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8")));
const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number").sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const g = (key) => median(graphile.map((r) => r[key]));
const fmt = (v, unit) => v == null ? "-" : unit === "ms" ? `${v.toFixed(2)} ms` : `${Math.round(v).toLocaleString("en-US")} jobs/s`;
const rows = [
  ["batch enqueue", errand.enqueue_batch_jobs_per_s, g("enqueue_batch_jobs_per_s"), "jobs/s"],
  ["end to end, one node", errand.e2e_jobs_per_s, g("e2e_jobs_per_s"), "jobs/s"],
  ["end to end, two nodes", errand.e2e_two_nodes_jobs_per_s, null, "jobs/s"],
  ["HTTP enqueue, 1 connection", errand.enqueue_sequential_jobs_per_s, null, "jobs/s"],
  ["HTTP enqueue, 32 connections", errand.enqueue_jobs_per_s, null, "jobs/s"],
  ["pickup latency p50 (lower is better)", errand.pickup_p50_ms, g("pickup_p50_ms"), "ms"],
  ["pickup latency p99 (lower is better)", errand.pickup_p99_ms, g("pickup_p99_ms"), "ms"],
];
for (const [key, value] of Object.entries(errand.history ?? {})) {
  if (key.endsWith("_per_s")) rows.push([key.replace(/_jobs_per_s$/, ""), value, null, "jobs/s"]);
}
const version = graphile[0]?.version ?? "?";
console.log(`errand vs graphile-worker ${version}, ${server}, medians of ${runs} run(s) each, started ${started}`);
console.log(`errand end to end at concurrency ${errand.e2e_concurrency} per node; graphile-worker at ${graphile[0]?.concurrency} with a local queue of 500`);
const table = [["SCENARIO", "ERRAND", "GRAPHILE-WORKER", "ERRAND / GRAPHILE"]];
for (const [name, e, gw, unit] of rows) {
  const ratio = e != null && gw != null ? `${(e / gw).toFixed(2)}×` : "";
  table.push([name, fmt(e, unit), fmt(gw, unit), ratio]);
}
const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
for (const r of table) console.log(r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
JS
