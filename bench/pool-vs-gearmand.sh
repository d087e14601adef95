#!/usr/bin/env bash
# Issue 15, goal 2: no-op jobs run by errand's pool executor with 2 PHP processes against gearmand
# (in memory) with 2 php-gearman workers, same machine, same run, alternating.
#   errand: `errand serve` with its default configuration (SQLite, WAL, synchronous=FULL) plus
#     `[kinds.noop] pool = { command = ["php", "bench/peers/noop-pool.php"], processes = 2 }`
#     (max_jobs and max_rss at their defaults: no recycling by count, a 512 MiB memory guard,
#     decision 0040); the jobs are enqueued first in batches of 1,000 on the
#     same database (not timed), then the server restarts with the pool, whose processes greet
#     errand only once the poller below runs (BENCH_GO: else a drain shorter than the server's
#     start-up plus Python's would be timed to the poller's first look); timed from the first
#     job's start in a process to GET /v1/stats showing them all completed (every finish
#     committed), as bench/peers.sh does;
#   gearmand 1.1.20, builtin in-memory queue, --threads 4: bench/remote/gearman-throughput.php
#     (one client doBackground one at a time, then 2 php-gearman workers; timed from the first
#     handler start to the admin `status` showing no job), as bench/peers.sh does.
# With --baseline PATH an older errand binary runs the same scenario in each round too, so one
# command gives before/after and errand ÷ gearmand per round. The order of the errand binaries
# alternates between rounds.
#
#   bench/pool-vs-gearmand.sh [--runs N] [--jobs N] [--max-jobs N] [--errand PATH] [--baseline PATH]
#                             [--keep DIR]
#
# --runs N         rounds (default 5)
# --jobs N         jobs per run, every server (default 10000)
# --max-jobs N     the pool's max_jobs (default: unset, each binary's own default: 0 = never since
#                  decision 0040, 1,000 before; 0 = never recycle, like the php-gearman workers,
#                  which run until stopped)
# --errand PATH    the server binary (default $ERRAND_BIN, else target/release/errand)
# --baseline PATH  an older errand binary to alternate with
# --keep DIR       keep the raw JSON lines and the logs in DIR
#
# Installs nothing: it names the missing Debian packages (gearman-job-server php-cli php-gearman
# python3 curl) and stops.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
jobs=10000
errand="${ERRAND_BIN:-$root/target/release/errand}"
baseline=""
max_jobs=""
postgres=0
keep=""

source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --errand) errand=${2:?}; shift 2 ;;
    --baseline) baseline=${2:?}; shift 2 ;;
    --max-jobs) max_jobs=${2:?}; shift 2 ;;
    --keep) keep=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
positive_int --runs "$runs"
positive_int --jobs "$jobs"
[[ -z "$max_jobs" || "$max_jobs" =~ ^[0-9]+$ ]] || die "--max-jobs wants a number, not '$max_jobs'"
recycle=""
if [[ -n "$max_jobs" ]]; then recycle="max_jobs = $max_jobs, "; fi
absent=$(missing_packages gearman-job-server=/usr/sbin/gearmand php-cli=php php-cli=php:posix \
    php-cli=php:pcntl php-gearman=php:gearman python3=python3 curl=curl)
[[ -z "$absent" ]] || die "missing Debian packages: apt-get install $absent"
need_peer_tools "$errand" pcntl posix gearman
[[ -z "$baseline" || -x "$baseline" ]] || die "no errand binary at $baseline"
bench_scratch pool-vs-gearmand

results="$scratch/results.jsonl"
py=(python3 "$root/bench/peers/peers.py")
n_run=0

# errand_run LABEL BINARY: fills a fresh database with the jobs, then runs them with the pool.
errand_run() {
    local label=$1 dir marks line
    errand=$2
    n_run=$((n_run + 1))
    dir="$scratch/$label-$n_run"
    marks="$dir/marks"
    mkdir -p "$marks"
    printf 'database = "sqlite://errand.db"\n\n[kinds.noop]\nremote = true\n' >"$dir/errand.toml"
    serve_errand "$dir"
    "${py[@]}" errand-fill "$url" "$jobs"
    stop_server
    {
        printf 'database = "sqlite://errand.db"\n\n[kinds.noop]\n'
        printf 'pool = { command = ["php", "%s"], processes = 2, %senv = { BENCH_MARKS = "%s", BENCH_GO = "%s" } }\n' \
            "$root/bench/peers/noop-pool.php" "$recycle" "$marks" "$dir/go"
    } >"$dir/errand.toml"
    serve_errand "$dir"
    line=$("${py[@]}" errand-drain "$url" "$jobs" "$marks" "$label" "$dir/go")
    stop_server
    echo "  $label: $line" >&2
    printf '{"round":%d,"column":"%s","data":%s}\n' "$round" "$label" "$line" >>"$results"
}

gearmand_run() {
    local line
    start_gearmand builtin
    line=$(php "$root/bench/remote/gearman-throughput.php" "127.0.0.1:$gport" "$jobs" 2 "$scratch" gearmand)
    stop_server
    echo "  gearmand: $line" >&2
    printf '{"round":%d,"column":"gearmand","data":%s}\n' "$round" "$line" >>"$results"
}

new_binary=$errand
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for round in $(seq 1 "$runs"); do
    echo "round $round/$runs…" >&2
    if [[ -n "$baseline" ]] && ((round % 2 == 0)); then
        errand_run baseline "$baseline"
        errand_run errand "$new_binary"
    else
        errand_run errand "$new_binary"
        if [[ -n "$baseline" ]]; then errand_run baseline "$baseline"; fi
    fi
    gearmand_run
done

echo "$("$new_binary" --version 2>/dev/null | head -n 1); $("$gearmand" --version 2>&1 | grep -m 1 gearmand); PHP $(php -r 'echo PHP_VERSION;')"
echo "started $started; $runs round(s) of $jobs jobs; pool max_jobs ${max_jobs:-the default of each binary}; $(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo
python3 - "$results" <<'PY'
import json, statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    rec = json.loads(line)
    rounds.setdefault(rec["round"], {})[rec["column"]] = float(rec["data"]["jobs_per_s"])
cols = [c for c in ("errand", "baseline", "gearmand") if any(c in r for r in rounds.values())]
names = {"errand": "errand pool (jobs/s)", "baseline": "baseline errand pool (jobs/s)", "gearmand": "gearmand (jobs/s)"}
ratios = [("errand", "gearmand", "errand ÷ gearmand")]
if "baseline" in cols:
    ratios += [("baseline", "gearmand", "baseline ÷ gearmand"), ("errand", "baseline", "errand ÷ baseline")]
print("| round | " + " | ".join(names[c] for c in cols) + " | " + " | ".join(r[2] for r in ratios) + " |")
print("| --- |" + " --- |" * (len(cols) + len(ratios)))
per = {r[2]: [] for r in ratios}
for n in sorted(rounds):
    row = rounds[n]
    cells = [f"{row[c]:,.0f}" if c in row else "—" for c in cols]
    for a, b, title in ratios:
        if a in row and b in row:
            per[title].append(row[a] / row[b])
            cells.append(f"{row[a] / row[b]:.2f}×")
        else:
            cells.append("—")
    print(f"| {n} | " + " | ".join(cells) + " |")
med = [f"{statistics.median([r[c] for r in rounds.values() if c in r]):,.0f}" for c in cols]
med += [f"{statistics.median(per[r[2]]):.2f}×" if per[r[2]] else "—" for r in ratios]
print("| median | " + " | ".join(med) + " |")
PY
