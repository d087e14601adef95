#!/usr/bin/env bash
# End to end on one PostgreSQL cluster, alternating: errand at its default
# concurrency, errand at another concurrency (its best on this machine),
# and graphile-worker with its documentation's performance preset
# (bench/peers/graphile-worker/bench.mjs). Each round runs all three, each
# on a fresh database, rotating which goes first; prints every run, the
# ratios within each round, and the medians. Stops the cluster (also on
# failure or Ctrl-C).
#
#   bench/pg-e2e-rounds.sh [--rounds N] [--jobs N] [--best C] [--errand-bench PATH] [--before PATH]
#
# --rounds N   rounds (default 5)
# --jobs N     no-op jobs per run, all sides (default 100000)
# --best C     errand's second configuration: C slots per node (default 1024)
# --errand-bench PATH  the benchmark binary (default target/release/errand-bench,
#              under $CARGO_TARGET_DIR when set)
# --before PATH  also run this errand-bench (an earlier build) at its default
#              concurrency in every round, as a fourth side
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=5
jobs=100000
best=1024
errand="${CARGO_TARGET_DIR:-$root/target}/release/errand-bench"
before=""

source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --rounds) rounds=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --best) best=${2:?}; shift 2 ;;
    --errand-bench) errand=${2:?}; shift 2 ;;
    --before) before=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
positive_int --rounds "$rounds"
positive_int --jobs "$jobs"
positive_int --best "$best"
[[ -x "$errand" ]] || die "$errand not found: cargo build --release -p errand-bench"
[[ -z "$before" || -x "$before" ]] || die "$before is not executable"
command -v node >/dev/null || die "node is not installed (graphile-worker needs it)"

cluster=$(mktemp -d -u /tmp/pg-e2e-rounds.XXXXXX)
out=$(mktemp -d /tmp/pg-e2e-rounds-json.XXXXXX)
cleanup() {
    "$root/bench/pg-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
    rm -rf "$out"
}
trap cleanup EXIT INT TERM

"$root/bench/pg-cluster.sh" start "$cluster" >/dev/null
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sides=(default best graphile)
[[ -n "$before" ]] && sides+=(before)
n=${#sides[@]}
for r in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((n - 1))); do
        side=${sides[$(((i + r - 1) % n))]}
        url=$("$root/bench/pg-cluster.sh" createdb "$cluster" "${side}_$r")
        echo "round $r/$rounds: $side…" >&2
        case "$side" in
        default)
            "$errand" --log-level warn --database "$url" --e2e-only --json --runs 1 \
                --jobs "$jobs" >"$out/default_$r.json" ;;
        best)
            "$errand" --log-level warn --database "$url" --e2e-only --json --runs 1 \
                --jobs "$jobs" --concurrency "$best" >"$out/best_$r.json" ;;
        before)
            "$before" --log-level warn --database "$url" --e2e-only --json --runs 1 \
                --jobs "$jobs" >"$out/before_$r.json" ;;
        graphile)
            "$root/bench/peers/run-graphile.sh" "$url" --jobs "$jobs" --no-pickup \
                >"$out/graphile_$r.json" ;;
        esac
    done
done
server=$(pg_version)

node - "$out" "$rounds" "$started" "$server" "$jobs" <<'JS'
const fs = require("node:fs");
const [dir, rounds, started, server, jobs] = process.argv.slice(2);
const read = (f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const rows = [];
for (let r = 1; r <= Number(rounds); r++) {
  const d = read(`default_${r}.json`), b = read(`best_${r}.json`), g = read(`graphile_${r}.json`);
  const e = fs.existsSync(`${dir}/before_${r}.json`) ? read(`before_${r}.json`).e2e_jobs_per_s : null;
  rows.push({ r, d: d.e2e_jobs_per_s, dc: d.e2e_concurrency, b: b.e2e_jobs_per_s, bc: b.e2e_concurrency,
    g: g.e2e_jobs_per_s, gv: g.version, gc: g.concurrency, e });
}
const n = (v) => Math.round(v).toLocaleString("en-US");
console.log(`end to end, ${Number(jobs).toLocaleString("en-US")} no-op jobs per run, ${server}, ${rounds} alternating round(s), started ${started}`);
console.log(`errand default = concurrency ${rows[0].dc} per node; errand best = concurrency ${rows[0].bc}; graphile-worker ${rows[0].gv} = performance preset (concurrentJobs ${rows[0].gc}, localQueue 500, batched completions)`);
const withBefore = rows[0].e != null;
const extra = (x) => (withBefore ? ` ${n(x.e)} | ${(x.e / x.g).toFixed(2)}× |` : "");
console.log(`| round | errand default | errand best | graphile-worker | default ÷ graphile | best ÷ graphile |${withBefore ? " errand before (default) | before ÷ graphile |" : ""}`);
console.log(`| --- | --- | --- | --- | --- | --- |${withBefore ? " --- | --- |" : ""}`);
for (const x of rows) {
  console.log(`| ${x.r} | ${n(x.d)} | ${n(x.b)} | ${n(x.g)} | ${(x.d / x.g).toFixed(2)}× | ${(x.b / x.g).toFixed(2)}× |${extra(x)}`);
}
const med = (f) => median(rows.map(f));
const md = med((x) => x.d), mb = med((x) => x.b), mg = med((x) => x.g);
const tail = withBefore ? ` ${n(med((x) => x.e))} | ${med((x) => x.e / x.g).toFixed(2)}× |` : "";
console.log(`| median | ${n(md)} | ${n(mb)} | ${n(mg)} | ${med((x) => x.d / x.g).toFixed(2)}× | ${med((x) => x.b / x.g).toFixed(2)}× |${tail}`);
JS
