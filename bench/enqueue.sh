#!/usr/bin/env bash
# One client enqueuing one durable job at a time (issue 15, goal 1): errand (SQLite, its shipped
# synchronous=FULL) against beanstalkd with an fsync on every write (-f 0), alternating rounds,
# each server fresh, one keep-alive connection, no worker running. Every errand figure is paired
# with beanstalkd's from a client of the same weight in the same round:
#   python, lean  peers.py's minimal clients on both sides: one socket, the request's bytes
#                 built once, the answer read and parsed (beanstalkd: `put`, INSERTED id;
#                 errand: POST /v1/jobs, status line, headers, the JSON body);
#   python,       the same beanstalkd figure against errand through http.client (the standard
#   http.client   library's HTTP client, which bench/peers.sh uses);
#   php           errand's PHP client (clients/php: one reused curl handle) against a PHP
#                 stream socket speaking beanstalkd's protocol (bench/peers/enqueue.php);
# plus GET /healthz from the lean client: the round trip with no write, the ceiling.
# errand runs at its default (synchronous = full: every acknowledged job is on disk) and at its
# fastest setting, synchronous = normal (fsync at checkpoints only: an acknowledged job survives
# a crash of errand, not of the machine), each on a fresh server in every round.
# Prints each round and a table: medians over rounds, and the median of errand ÷ beanstalkd
# within each round.
#
#   bench/enqueue.sh [--runs N] [--jobs N] [--errand PATH] [--baseline PATH] [--keep DIR]
#
# --runs N          rounds (default 5)
# --jobs N          jobs per client run (default 5000)
# --errand PATH     the server binary (default $ERRAND_BIN, else target/release/errand)
# --baseline PATH   another errand binary, run the same way in each round after the first
#                   (a change against the code before it); the table adds errand ÷ baseline
# --keep DIR        keep the raw JSON lines and the logs in DIR
#
# Installs nothing: it names the missing Debian packages and stops.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
jobs=5000
errand="${ERRAND_BIN:-$root/target/release/errand}"
baseline=""
postgres=0
keep=""

# die, positive_int, free_port, missing_packages, bench_scratch, wait_port, serve_errand,
# start_beanstalkd, stop_server.
source "$root/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --errand) errand=${2:?}; shift 2 ;;
    --baseline) baseline=${2:?}; shift 2 ;;
    --keep) keep=${2:?}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
    esac
done
positive_int --runs "$runs"
positive_int --jobs "$jobs"

absent=$(missing_packages beanstalkd=beanstalkd php-cli=php php-curl=php:curl python3=python3 curl=curl)
[[ -z "$absent" ]] || die "missing Debian packages: apt-get install $absent"
[[ -x "$errand" ]] || die "no errand binary at $errand (cargo build --release -p errand, or --errand PATH)"
[[ -z "$baseline" || -x "$baseline" ]] || die "no baseline binary at $baseline"
bench_scratch enqueue

results="$scratch/results.jsonl"
py=(python3 "$root/bench/peers/peers.py")
php_enqueue=(php "$root/bench/peers/enqueue.php")

# run ROUND SERVER CLIENT COMMAND...: runs COMMAND, files the rate it prints (JSON) in $results.
run() {
    local round=$1 server=$2 client=$3 line rate
    shift 3
    line=$("$@")
    rate=$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d.get("enqueue_jobs_per_s") or d["health_per_s"])' "$line")
    echo "  round $round: $server, $client: $rate/s" >&2
    printf '{"round":%d,"server":"%s","client":"%s","rate":%s}\n' "$round" "$server" "$client" "$rate" >>"$results"
}

# errand_runs SERVER [SQLITE]: every errand client in turn on a fresh `$errand serve` (default
# configuration, plus the [sqlite] table's line SQLITE if given, plus a `noop` kind nothing runs,
# so the jobs wait), filed under SERVER.
errand_runs() {
    local server=$1 sqlite=${2:-} dir="$scratch/$1-$round"
    mkdir -p "$dir"
    {
        echo 'database = "sqlite://errand.db"'
        [[ -z "$sqlite" ]] || printf '\n[sqlite]\n%s\n' "$sqlite"
        printf '\n[kinds.noop]\nremote = true\n'
    } >"$dir/errand.toml"
    serve_errand "$dir"
    run "$round" "$server" "python, lean" "${py[@]}" errand-enqueue-lean "$url" "$jobs"
    run "$round" "$server" "python, http.client" "${py[@]}" errand-enqueue "$url" "$jobs"
    run "$round" "$server" php "${php_enqueue[@]}" errand "$url" "$jobs"
    run "$round" "$server" "healthz, lean" "${py[@]}" errand-health-lean "$url" "$jobs"
    stop_server
}

for round in $(seq 1 "$runs"); do
    errand_runs errand
    errand_runs "errand, normal" 'synchronous = "normal"'
    if [[ -n "$baseline" ]]; then
        errand=$baseline errand_runs baseline
    fi

    dir="$scratch/beanstalkd-$round" && mkdir -p "$dir"
    start_beanstalkd "$dir"
    run "$round" beanstalkd "python, lean" "${py[@]}" beanstalk-enqueue "127.0.0.1:$bport" "$jobs"
    run "$round" beanstalkd php "${php_enqueue[@]}" beanstalkd "127.0.0.1:$bport" "$jobs"
    stop_server
done

echo "$("$errand" --version | head -n 1)${baseline:+ (baseline: $baseline)}; $(beanstalkd -v); PHP $(php -r 'echo PHP_VERSION;'); $(python3 --version)"
echo "$runs round(s) of $jobs jobs per client; $(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo
"${py[@]}" enqueue-summary "$results"
