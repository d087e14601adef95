#!/usr/bin/env bash
# Where a drain's CPU goes, per job: the same no-op jobs drained by 2 php-gearman workers through
# errand's Gearman listener and by errand's pool of 2 PHP processes, on one binary and the same
# SQLite store (decision 0042 came out of it). Each run fills a fresh database over HTTP with the
# kind's jobs, restarts `errand serve` for the drain, reads every thread's CPU time and scheduler
# stats (/proc/PID/task/*/stat, schedstat) before and after it, and prints per job: the writer
# thread's and the tokio threads' CPU, the PHP processes' CPU, how long the writer waited runnable
# for a core, and from /metrics the claims (`errand_job_wait_seconds_count`) and group commits.
#
#   bench/drain-cpu.sh [--runs N] [--jobs N] [--errand PATH] [--keep DIR]
#
# --runs N      drains per path, alternating (default 3)
# --jobs N      jobs per drain (default 40000)
# --errand PATH the server binary (default $ERRAND_BIN, else target/release/errand)
# --keep DIR    keep each run's database, logs and metrics in DIR
#
# Needs php-cli with pcntl, posix and gearman (Debian: php-cli php-gearman), python3, curl.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=3
jobs=40000
errand="${ERRAND_BIN:-$root/target/release/errand}"
postgres=0 # read by bench_cleanup
keep=""

source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --errand) errand=${2:?}; shift 2 ;;
    --keep) keep=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
positive_int --runs "$runs"
positive_int --jobs "$jobs"
need_peer_tools "$errand" pcntl posix gearman
bench_scratch drain-cpu
py=(python3 "$root/bench/peers/peers.py")

# snapshot PID FILE: "thread-name utime+stime run_ns wait_ns slices" per thread.
snapshot() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s %s\n' "$(tr ' ' _ <"$t/comm")" "$(cut -d ' ' -f 14,15 "$t/stat" | tr ' ' +)" \
            "$(cat "$t/schedstat")"
    done >"$2"
}

n_run=0
# drain PATH: one drain of $jobs jobs through PATH (gearman or pool); prints one line.
drain() {
    local path=$1 dir gport workers=() php_ticks=0 w
    n_run=$((n_run + 1))
    dir="$scratch/$path-$n_run"
    mkdir -p "$dir/marks"
    printf 'database = "sqlite://errand.db"\n\n[kinds.noop]\nremote = true\n' >"$dir/errand.toml"
    serve_errand "$dir"
    "${py[@]}" errand-fill "$url" "$jobs"
    stop_server
    if [[ $path == gearman ]]; then
        gport=$(free_port)
        printf 'database = "sqlite://errand.db"\n\n[gearman]\nlisten = "127.0.0.1:%s"\n\n[kinds.noop]\nremote = true\n' \
            "$gport" >"$dir/errand.toml"
    else
        printf 'database = "sqlite://errand.db"\n\n[kinds.noop]\npool = { command = ["php", "%s"], processes = 2, env = { BENCH_MARKS = "%s", BENCH_GO = "%s" } }\n' \
            "$root/bench/peers/noop-pool.php" "$dir/marks" "$dir/go" >"$dir/errand.toml"
    fi
    serve_errand "$dir"
    sleep 0.5
    snapshot "$server_pid" "$dir/before"
    if [[ $path == gearman ]]; then
        for _ in 1 2; do
            BENCH_MARKS="$dir/marks" php "$root/bench/remote/gearman-worker.php" "127.0.0.1:$gport" \
                2>>"$dir/workers.log" &
            workers+=("$!")
            pids+=("$!")
        done
    fi
    # The poller creates the pool's go file once it polls (peers.py errand-drain).
    "${py[@]}" errand-drain "$url" "$jobs" "$dir/marks" "$path" "$dir/go" >"$dir/drain.json"
    snapshot "$server_pid" "$dir/after"
    for w in "${workers[@]}" $(pgrep -P "$server_pid" || true); do
        php_ticks=$((php_ticks + $(cut -d ' ' -f 14,15 "/proc/$w/stat" | tr ' ' +)))
    done
    curl -fs "$url/metrics" >"$dir/metrics"
    for w in "${workers[@]}"; do kill "$w" 2>/dev/null || true; done
    stop_server
    python3 - "$dir" "$jobs" "$php_ticks" "$path" <<'PY'
import json, sys
d, jobs, php, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tick_us = 1e6 / 100  # USER_HZ

def read(name):
    out = {}
    for line in open(f"{d}/{name}"):
        comm, ticks, run, wait, slices = line.split()
        kind = "writer" if comm.startswith("errand-sqlite") else "tokio" if comm.startswith("tokio") else "other"
        acc = out.setdefault(kind, [0, 0, 0, 0])
        for i, v in enumerate((sum(map(int, ticks.split("+"))), int(run), int(wait), int(slices))):
            acc[i] += v
    return out

before, after = read("before"), read("after")
delta = {k: [a - b for a, b in zip(after[k], before.get(k, [0] * 4))] for k in after}
metric = {}
for line in open(f"{d}/metrics"):
    if line.startswith(("errand_job_wait_seconds_count", "errand_store_commit_seconds_count")):
        name, value = line.rsplit(" ", 1)
        metric[name.split("{")[0]] = float(value)
rate = json.load(open(f"{d}/drain.json"))["jobs_per_s"]
us = lambda k: delta.get(k, [0])[0] * tick_us / jobs
print(f"| {path} | {rate:,.0f} | {us('writer'):.1f} | {us('tokio'):.1f} | {php * tick_us / jobs:.1f} | "
      f"{delta['writer'][2] / 1e3 / jobs:.1f} | {delta['writer'][3]:,} | "
      f"{metric['errand_job_wait_seconds_count'] / jobs:.2f} | {metric['errand_store_commit_seconds_count']:,.0f} |")
PY
}

echo "| path | jobs/s | writer µs/job | tokio µs/job | PHP µs/job | writer runnable, waiting µs/job | writer slices | claims/job | commits |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for _ in $(seq 1 "$runs"); do
    drain gearman
    drain pool
done
echo "$("$errand" --version 2>/dev/null | head -n 1); $jobs jobs per drain; $(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
