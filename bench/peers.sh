#!/usr/bin/env bash
# errand against the job servers its users would otherwise pick, same machine, same run (issue
# 15): the same no-op jobs through each, three figures each, one markdown table.
#   1. one client enqueuing one job at a time (jobs/s); for errand also the same client sending
#      GET /healthz (no write, no fsync): the HTTP round trip that bounds its enqueue rate;
#   2. pickup p50: from just before the enqueue call to the idle worker's handler start (ms);
#   3. no-op jobs processed by 2 worker processes (jobs/s): jobs enqueued first, then the workers
#      start; timed from the first handler start until the server shows every job done.
# Servers and their clients:
#   errand (SQLite, the shipped synchronous=FULL; its default configuration plus one kind):
#     one Python client on one keep-alive HTTP connection (POST /v1/jobs); jobs run by errand's
#     pool executor with 2 PHP processes (bench/peers/noop-pool.php), and in a second run 2
#     Python processes (noop-pool.py);
#   beanstalkd -b DIR -f 0 (binlog, fsync on every write): a Python client and 2 Python workers
#     speaking its text protocol (put / reserve / delete; bench/peers/peers.py);
#   gearmand in memory and gearmand -q libsqlite3: php-gearman, the scripts of bench/gearman.sh
#     (bench/remote/gearman-*.php), 2 php-gearman workers;
#   graphile-worker (bench/peers/run-graphile.sh, unchanged) on a throwaway PostgreSQL cluster:
#     addJobs of one job at a time, one Node worker process with its performance preset
#     (concurrentJobs 24), pickup from addJob's return (its own measure).
# Rounds alternate the servers; every run gets a fresh server and store. The table gives medians
# over rounds and, per peer, the median over rounds of peer ÷ errand within the round.
#
#   bench/peers.sh [--runs N] [--jobs N] [--sqlite-jobs N] [--pickups N] [--errand PATH]
#                  [--no-graphile] [--keep DIR]
#
# --runs N        rounds (default 3)
# --jobs N        jobs per enqueue and per processing run, every server (default 10000)
# --sqlite-jobs N the same for gearmand -q libsqlite3 only (default: --jobs), which pays 8
#                 fdatasync calls per job and can take minutes for 10,000 on a slow disk
# --pickups N    jobs per pickup run (default 200; graphile-worker's bench always takes 200)
# --errand PATH  the server binary (default $ERRAND_BIN, else target/release/errand)
# --no-graphile  leave graphile-worker out (no Node, npm or PostgreSQL needed)
# --keep DIR     keep the raw JSON lines and the logs in DIR
#
# Installs nothing: it names the missing Debian packages (beanstalkd gearman-job-server php-cli
# php-gearman python3 curl, and for graphile-worker nodejs npm postgresql) and stops.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=3
jobs=10000
sjobs=""
pickups=200
errand="${ERRAND_BIN:-$root/target/release/errand}"
graphile=1
postgres=0
keep=""

# free_port, missing_packages, need_peer_tools, bench_scratch, wait_port, serve_errand,
# start_gearmand, start_beanstalkd, stop_server.
source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --sqlite-jobs) sjobs=${2:?}; shift 2 ;;
    --pickups) pickups=${2:?}; shift 2 ;;
    --errand) errand=${2:?}; shift 2 ;;
    --no-graphile) graphile=0; shift ;;
    --keep) keep=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
sjobs=${sjobs:-$jobs}
positive_int --runs "$runs"
positive_int --jobs "$jobs"
positive_int --sqlite-jobs "$sjobs"
positive_int --pickups "$pickups"

# Every tool up front, so a missing one fails before anything starts.
checks=(beanstalkd=beanstalkd gearman-job-server=/usr/sbin/gearmand php-cli=php php-cli=php:posix
    php-cli=php:pcntl php-gearman=php:gearman python3=python3 curl=curl)
graphile_dir="$root/bench/peers/graphile-worker"
if ((graphile)); then
    checks+=(nodejs=node)
    [[ -d "$graphile_dir/node_modules/graphile-worker" ]] || checks+=(npm=npm)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || checks+=(postgresql=initdb)
fi
absent=$(missing_packages "${checks[@]}")
if [[ -n "$absent" ]]; then
    hint=""
    if ((graphile)); then hint=" (or --no-graphile to leave out graphile-worker's)"; fi
    die "missing Debian packages: apt-get install $absent$hint"
fi
need_peer_tools "$errand" pcntl posix gearman
"$gearmand" --help 2>&1 | grep -q -- --libsqlite3-db ||
    die "this gearmand was built without its libsqlite3 queue (Debian's gearman-job-server has it)"
postgres=$graphile
bench_scratch peers

results="$scratch/results.jsonl"
py=(python3 "$root/bench/peers/peers.py")
n_run=0

# record COLUMN METRICS COMMAND...: runs COMMAND and files each JSON line it prints under the
# table's COLUMN, for the rows named in METRICS (a JSON list: enqueue, pickup, drain, drain_py).
record() {
    local column=$1 metrics=$2 line
    shift 2
    "$@" | while IFS= read -r line; do
        echo "  $column: $line" >&2
        printf '{"column":"%s","round":%d,"metrics":%s,"data":%s}\n' "$column" "$round" "$metrics" "$line" \
            >>"$results"
    done
}

# errand_config DIR EXECUTOR [ENV]: the default configuration plus one kind, `noop`: remote (nothing
# on the node runs it, so enqueued jobs wait) or a pool of 2 php or python processes, ENV (TOML
# inline-table entries) in their environment.
errand_config() {
    local dir=$1 executor=$2 env=${3:-} command
    case "$executor" in
    remote) command="" ;;
    php) command="\"php\", \"$root/bench/peers/noop-pool.php\"" ;;
    python) command="\"python3\", \"$root/bench/peers/noop-pool.py\"" ;;
    esac
    {
        echo 'database = "sqlite://errand.db"'
        echo
        echo '[kinds.noop]'
        if [[ -z "$command" ]]; then
            echo 'remote = true'
        else
            echo "pool = { command = [$command], processes = 2, env = { $env } }"
        fi
    } >"$dir/errand.toml"
}

new_dir() {
    n_run=$((n_run + 1))
    dir="$scratch/$1-$n_run"
    mkdir -p "$dir"
}

# errand_round: the one-at-a-time enqueue on a server whose kind has no executor (the jobs wait)
# and GET /healthz on that server,
# then that server restarted on the same database with a pool of 2 PHP processes, which run them;
# the same with 2 Python processes on jobs enqueued in batches (POST /v1/jobs/batch, not timed);
# the pickup with the PHP pool idle.
errand_round() {
    local marks
    new_dir errand
    errand_config "$dir" remote
    serve_errand "$dir"
    record "$col_errand" '["enqueue"]' "${py[@]}" errand-enqueue "$url" "$jobs"
    record "$col_errand" '["health"]' "${py[@]}" errand-health "$url" "$jobs"
    stop_server
    marks="$dir/marks" && mkdir "$marks"
    # BENCH_GO: the processes greet errand once the drain's poller runs (see peers.py).
    errand_config "$dir" php "BENCH_MARKS = \"$marks\", BENCH_GO = \"$dir/go\""
    serve_errand "$dir"
    record "$col_errand" '["drain"]' "${py[@]}" errand-drain "$url" "$jobs" "$marks" errand-php-pool "$dir/go"
    stop_server

    new_dir errand
    errand_config "$dir" remote
    serve_errand "$dir"
    "${py[@]}" errand-fill "$url" "$jobs"
    stop_server
    marks="$dir/marks" && mkdir "$marks"
    errand_config "$dir" python "BENCH_MARKS = \"$marks\", BENCH_GO = \"$dir/go\""
    serve_errand "$dir"
    record "$col_errand" '["drain_py"]' "${py[@]}" errand-drain "$url" "$jobs" "$marks" errand-python-pool "$dir/go"
    stop_server

    new_dir errand
    : >"$dir/pickup.log"
    errand_config "$dir" php "BENCH_PICKUP_LOG = \"$dir/pickup.log\""
    serve_errand "$dir"
    record "$col_errand" '["pickup"]' "${py[@]}" errand-pickup "$url" "$pickups" "$dir/pickup.log"
    stop_server
}

beanstalkd_round() {
    new_dir beanstalkd
    start_beanstalkd "$dir"
    record "$col_beanstalkd" '["enqueue", "drain", "drain_py"]' \
        "${py[@]}" beanstalk-throughput "127.0.0.1:$bport" "$jobs" 2 "$dir"
    stop_server
    new_dir beanstalkd
    start_beanstalkd "$dir"
    record "$col_beanstalkd" '["pickup"]' "${py[@]}" beanstalk-pickup "127.0.0.1:$bport" "$pickups" "$dir"
    stop_server
}

# gearmand_round QUEUE COLUMN JOBS: bench/gearman.sh's scripts, each on a fresh gearmand.
gearmand_round() {
    local queue=$1 column=$2 n=$3
    start_gearmand "$queue"
    record "$column" '["enqueue", "drain"]' \
        php "$root/bench/remote/gearman-throughput.php" "127.0.0.1:$gport" "$n" 2 "$scratch" "gearmand-$queue"
    stop_server
    start_gearmand "$queue"
    record "$column" '["pickup"]' \
        php "$root/bench/remote/gearman-pickup.php" "127.0.0.1:$gport" "$pickups" "$scratch" "gearmand-$queue"
    stop_server
}

graphile_round() {
    local db
    db=$("$root/bench/pg-cluster.sh" createdb "$cluster" "graphile_$round")
    record "$col_graphile" '["enqueue", "pickup", "drain"]' \
        "$root/bench/peers/run-graphile.sh" "$db" --jobs "$jobs" --batch-size 1
}

col_errand="errand (SQLite, FULL)"
col_beanstalkd="beanstalkd -f 0"
col_gearmand="gearmand, in memory"
col_gearmand_sqlite="gearmand -q libsqlite3"
col_graphile="graphile-worker"
columns=("$col_errand" "$col_beanstalkd" "$col_gearmand" "$col_gearmand_sqlite")

if ((graphile)); then
    columns+=("$col_graphile")
    "$root/bench/pg-cluster.sh" start "$cluster" >/dev/null
fi
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for round in $(seq 1 "$runs"); do
    echo "round $round/$runs…" >&2
    errand_round
    beanstalkd_round
    gearmand_round builtin "$col_gearmand" "$jobs"
    gearmand_round libsqlite3 "$col_gearmand_sqlite" "$sjobs"
    if ((graphile)); then graphile_round; fi
done

versions="$("$errand" --version 2>/dev/null | head -n 1); $(beanstalkd -v); $("$gearmand" --version 2>&1 | grep -m 1 gearmand)"
versions+="; PHP $(php -r 'echo PHP_VERSION;'); $(python3 --version)"
if ((graphile)); then
    versions+="; graphile-worker $(node -p "require('$graphile_dir/node_modules/graphile-worker/package.json').version")"
    versions+=" on Node $(node --version), $(pg_version)"
fi
echo "$versions"
echo "started $started; $runs round(s); $jobs jobs per enqueue and processing run (gearmand libsqlite3: $sjobs); $pickups pickups per run; $(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo
"${py[@]}" summary "$results" "${columns[@]}"
