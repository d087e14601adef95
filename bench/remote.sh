#!/usr/bin/env bash
# Remote PHP workers against gearmand, same machine, same run (issue 13): no-op jobs through
# K = 2 and 8 PHP worker processes (clients/php/bin/errand-worker with batch claims and batch
# finishes) on a real `errand serve` with SQLite (the shipped synchronous=FULL) and with
# PostgreSQL (a throwaway cluster, bench/pg-cluster.sh: fsync on); gearmand (in-memory queue)
# with 2 php-gearman workers on the same number of jobs as the baseline; and the pickup latency
# of one idle long-polling PHP worker: SQLite, PostgreSQL on the same node, and PostgreSQL
# across two nodes (worker on node A, enqueue on node B). Rounds alternate errand and gearmand;
# the summary gives medians and ratios. Every errand run gets a fresh server and database.
# A script, not an errand-bench scenario: errand-bench measures errand in one process, while
# here everything measured is a separate program (errand serve, PHP workers, gearmand).
#
#   bench/remote.sh [--runs N] [--jobs N] [--pickups N] [--batch N] [--errand PATH]
#                   [--no-postgres] [--keep DIR]
#
# --runs N      rounds; each runs every scenario once (default 5)
# --jobs N      jobs per throughput run, both sides (default 20000)
# --pickups N   jobs per pickup-latency run (default 200)
# --batch N     max jobs per claim for the errand workers (default 1000, the protocol's maximum)
# --errand PATH the server binary (default $ERRAND_BIN, else target/release/errand)
# --no-postgres SQLite and gearmand only
# --keep DIR    keep the raw JSON lines and the logs in DIR
#
# Needs: php-cli with curl, pcntl, posix and gearman (Debian: php-cli php-curl php-gearman),
# gearmand (gearman-job-server), curl, and for PostgreSQL Debian's postgresql.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
jobs=20000
pickups=200
batch=1000
errand="${ERRAND_BIN:-$root/target/release/errand}"
postgres=1
keep=""

# free_port, need_peer_tools, bench_scratch, serve_errand.
source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --pickups) pickups=${2:?}; shift 2 ;;
    --batch) batch=${2:?}; shift 2 ;;
    --errand) errand=${2:?}; shift 2 ;;
    --no-postgres) postgres=0; shift ;;
    --keep) keep=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
positive_int --runs "$runs"
positive_int --jobs "$jobs"
positive_int --pickups "$pickups"
positive_int --batch "$batch"
((batch <= 1000)) || die "--batch is at most 1000 (the protocol's max_jobs)"

# Every tool up front, so a missing one fails before anything starts.
need_peer_tools "$errand" curl pcntl posix gearman
if ((postgres)); then
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null ||
        die "PostgreSQL is missing (apt-get install postgresql, or --no-postgres)"
fi
bench_scratch remote

# start_errand DIR DATABASE: `errand serve` with the default configuration plus one remote kind
# (auth is off by default on a loopback address); sets $url and $server_pid.
start_errand() {
    local dir=$1 database=$2
    mkdir -p "$dir"
    cat >"$dir/errand.toml" <<TOML
database = "$database"

[kinds.noop]
remote = true
TOML
    serve_errand "$dir"
}

stop_errand() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

results="$scratch/results.jsonl"
record() {
    "$@" | tee -a "$results" >&2
}

# gearmand: its default in-memory (builtin) queue and default 4 I/O threads (-t), loopback only,
# one instance for the whole run (it keeps nothing between runs: each drains its queue).
gport=$(free_port)
"$gearmand" --listen 127.0.0.1 --port "$gport" --threads 4 --log-file "$scratch/gearmand.log" \
    --pid-file "$scratch/gearmand.pid" --verbose ERROR &
pids+=("$!")
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$gport") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$gport") 2>/dev/null || die "gearmand did not start; see $scratch/gearmand.log"

if ((postgres)); then
    "$root/bench/pg-cluster.sh" start "$cluster" >/dev/null
fi
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
n_db=0

# throughput_errand STORE K: one run on a fresh server and database.
throughput_errand() {
    local store=$1 k=$2 dir database
    n_db=$((n_db + 1))
    dir="$scratch/errand-$n_db"
    if [[ $store == sqlite ]]; then
        database="sqlite://errand.db"
    else
        database=$("$root/bench/pg-cluster.sh" createdb "$cluster" "errand_$n_db")
    fi
    start_errand "$dir" "$database"
    record php "$root/bench/remote/errand-throughput.php" "$url" "$jobs" "$k" "$batch" "$dir" "errand-$store-$k"
    stop_errand "$server_pid"
}

# pickup STORE [cross]: the idle-worker latency on a fresh server (two for cross).
pickup() {
    local store=$1 cross=${2:-} dir database a_pid a_url
    n_db=$((n_db + 1))
    dir="$scratch/errand-$n_db"
    if [[ $store == sqlite ]]; then
        database="sqlite://errand.db"
    else
        database=$("$root/bench/pg-cluster.sh" createdb "$cluster" "errand_$n_db")
    fi
    start_errand "$dir" "$database"
    a_pid=$server_pid a_url=$url
    if [[ -n "$cross" ]]; then
        start_errand "$dir-b" "$database"
        record php "$root/bench/remote/pickup.php" "$a_url" "$url" "$pickups" "$dir" "pickup-$store-cross-node"
        stop_errand "$server_pid"
    else
        record php "$root/bench/remote/pickup.php" "$a_url" "$a_url" "$pickups" "$dir" "pickup-$store"
    fi
    stop_errand "$a_pid"
}

for round in $(seq 1 "$runs"); do
    echo "round $round/$runs…" >&2
    throughput_errand sqlite 2
    record php "$root/bench/remote/gearman-throughput.php" "127.0.0.1:$gport" "$jobs" 2 "$scratch" gearman-2
    if ((postgres)); then throughput_errand postgres 2; fi
    throughput_errand sqlite 8
    if ((postgres)); then throughput_errand postgres 8; fi
    pickup sqlite
    record php "$root/bench/remote/gearman-pickup.php" "127.0.0.1:$gport" "$pickups" "$scratch" pickup-gearman
    if ((postgres)); then
        pickup postgres
        pickup postgres cross
    fi
done

pg_note=""
if ((postgres)); then
    pg_note=", $(pg_version)"
fi
echo "$("$errand" --version 2>/dev/null | head -n 1) vs $("$gearmand" --version 2>&1 | grep -m 1 gearmand)$pg_note; PHP $(php -r 'echo PHP_VERSION;')"
echo "started $started; $runs round(s); $jobs jobs per throughput run; errand workers --batch $batch; $pickups pickups per run"
php "$root/bench/remote/summary.php" "$results"
