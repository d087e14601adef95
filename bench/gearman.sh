#!/usr/bin/env bash
# errand's Gearman listener against gearmand, same machine, same run (issue 14), driven by the
# same php-gearman scripts (bench/remote/gearman-*.php) on both:
#   1. background submit rate: one client, doBackground one job at a time;
#   2. no-op jobs processed per second: jobs submitted first, then 2 php-gearman workers start,
#      timed from the first job's start until the admin `status` shows no job left;
#   3. foreground round trip p50/p99: doNormal from one client, one idle worker waiting;
#   4. pickup latency: background submit → the idle worker's handler start.
# Servers: errand (SQLite, the shipped synchronous=FULL; with --postgres also a throwaway
# PostgreSQL cluster, fsync on), gearmand with its in-memory queue (the baseline) and, for 1
# and 2, gearmand with its durable libsqlite3 queue. Rounds alternate the servers; every run
# gets a fresh server and database (gearmand too). The summary gives medians and ratios
# against gearmand in-memory (bench/remote/summary.php).
#
#   bench/gearman.sh [--runs N] [--jobs N] [--gearmand-jobs N] [--sqlite-jobs N]
#                    [--latency N] [--errand PATH] [--postgres] [--keep DIR]
#
# --runs N          rounds (default 3)
# --jobs N          jobs per errand throughput run (default 5000)
# --gearmand-jobs N jobs per gearmand in-memory run (default 20000: it drains 5,000 in
#                   well under 0.1 s, too short to time against a 2 ms status poll)
# --sqlite-jobs N   jobs per gearmand libsqlite3 run (default 500: it does ~70 jobs/s)
# --latency N       calls per round-trip and per pickup run (default 300)
# --errand PATH     the server binary (default $ERRAND_BIN, else target/release/errand)
# --postgres        errand with PostgreSQL too (bench/pg-cluster.sh)
# --keep DIR        keep the raw JSON lines and the logs in DIR
#
# Needs: php-cli with pcntl, posix and gearman (Debian: php-cli php-gearman), gearmand
# (gearman-job-server, built with libsqlite3 as Debian's is), curl, and for --postgres
# Debian's postgresql.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=3
jobs=5000
gjobs=20000
sjobs=500
latency=300
errand="${ERRAND_BIN:-$root/target/release/errand}"
postgres=0
keep=""

# free_port, need_peer_tools, bench_scratch, wait_port, start_gearmand, stop_server.
source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --gearmand-jobs) gjobs=${2:?}; shift 2 ;;
    --sqlite-jobs) sjobs=${2:?}; shift 2 ;;
    --latency) latency=${2:?}; shift 2 ;;
    --errand) errand=${2:?}; shift 2 ;;
    --postgres) postgres=1; shift ;;
    --keep) keep=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
positive_int --runs "$runs"
positive_int --jobs "$jobs"
positive_int --gearmand-jobs "$gjobs"
positive_int --sqlite-jobs "$sjobs"
positive_int --latency "$latency"

# Every tool up front, so a missing one fails before anything starts.
need_peer_tools "$errand" pcntl posix gearman
# A gearmand built without the libsqlite3 queue lacks the flag: that peer is then skipped.
libsqlite3=1
"$gearmand" --help 2>&1 | grep -q -- --libsqlite3-db || libsqlite3=0
((libsqlite3)) || echo "gearman.sh: this gearmand has no libsqlite3 queue; skipping that peer" >&2
if ((postgres)); then
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null ||
        die "PostgreSQL is missing (apt-get install postgresql, or leave out --postgres)"
fi
bench_scratch gearman

n_run=0
# start_errand STORE: `errand serve` with the default configuration plus the Gearman listener and
# one remote kind (auth is off by default on loopback), on a fresh database; sets $gport and
# $server_pid.
start_errand() {
    local store=$1 dir database hport
    n_run=$((n_run + 1))
    dir="$scratch/errand-$n_run"
    mkdir -p "$dir"
    if [[ $store == sqlite ]]; then
        database="sqlite://errand.db"
    else
        database=$("$root/bench/pg-cluster.sh" createdb "$cluster" "errand_$n_run")
    fi
    # A port found free can be taken before errand binds it: then try others.
    for _ in 1 2 3 4 5; do
        hport=$(free_port)
        gport=$(free_port)
        cat >"$dir/errand.toml" <<TOML
database = "$database"

[gearman]
listen = "127.0.0.1:$gport"

[kinds.noop]
remote = true
TOML
        (cd "$dir" && exec "$errand" serve --config errand.toml --listen "127.0.0.1:$hport" --log-level warn \
            >server.log 2>&1) &
        server_pid=$!
        pids+=("$server_pid")
        if wait_port "$gport" "$server_pid" "$dir/server.log" &&
            curl -fs "http://127.0.0.1:$hport/v1/stats" >/dev/null; then
            return
        fi
        grep -q 'Address already in use' "$dir/server.log" ||
            die "errand serve exited; see $dir/server.log: $(tail -n 5 "$dir/server.log")"
    done
    die "errand serve found no free port in 5 tries"
}

results="$scratch/results.jsonl"
bin="$root/bench/remote"
record() {
    "$@" | tee -a "$results" >&2
}

# run SERVER LABEL SCENARIO…: each scenario on its own fresh server.
#   throughput N | roundtrip | pickup
run() {
    local server=$1 label=$2 scenario=$3 n=${4:-}
    case "$server" in
    errand-*) start_errand "${server#errand-}" ;;
    gearmand-*) start_gearmand "${server#gearmand-}" ;;
    esac
    case "$scenario" in
    throughput) record php "$bin/gearman-throughput.php" "127.0.0.1:$gport" "$n" 2 "$scratch" "$label" ;;
    roundtrip) record php "$bin/gearman-roundtrip.php" "127.0.0.1:$gport" "$latency" "$scratch" "$label" ;;
    pickup) record php "$bin/gearman-pickup.php" "127.0.0.1:$gport" "$latency" "$scratch" "$label" ;;
    esac
    stop_server
}

if ((postgres)); then
    "$root/bench/pg-cluster.sh" start "$cluster" >/dev/null
fi
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

for round in $(seq 1 "$runs"); do
    echo "round $round/$runs…" >&2
    run errand-sqlite throughput-errand-sqlite throughput "$jobs"
    run gearmand-builtin throughput-gearmand throughput "$gjobs"
    if ((libsqlite3)); then run gearmand-libsqlite3 throughput-gearmand-sqlite throughput "$sjobs"; fi
    if ((postgres)); then run errand-postgres throughput-errand-postgres throughput "$jobs"; fi
    run errand-sqlite roundtrip-errand-sqlite roundtrip
    run gearmand-builtin roundtrip-gearmand roundtrip
    if ((postgres)); then run errand-postgres roundtrip-errand-postgres roundtrip; fi
    run errand-sqlite pickup-errand-sqlite pickup
    run gearmand-builtin pickup-gearmand pickup
    if ((postgres)); then run errand-postgres pickup-errand-postgres pickup; fi
done

echo "$("$errand" --version 2>/dev/null | head -n 1) vs $("$gearmand" --version 2>&1 | grep -m 1 gearmand); PHP $(php -r 'echo PHP_VERSION;')"
echo "started $started; $runs round(s); throughput jobs: errand $jobs, gearmand $gjobs, gearmand libsqlite3 $sjobs; $latency calls per latency run"
php "$root/bench/remote/summary.php" "$results" throughput-gearmand
