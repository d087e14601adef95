# shellcheck shell=bash disable=SC2154 # root, postgres, keep, errand, gearmand: set by the caller
# Sourced by the bench scripts: what they share. The runners (remote.sh,
# gearman.sh, peers.sh, pool-vs-gearmand.sh) set `root`, `postgres` and
# `keep` before calling bench_scratch.

# die MESSAGE...: prints "SCRIPT: MESSAGE" on stderr and exits 1.
die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

# positive_int OPTION VALUE...: dies unless every VALUE is a positive integer
# (OPTION names the flag in the message).
positive_int() {
    local option=$1 value
    shift
    for value in "$@"; do
        [[ "$value" =~ ^[1-9][0-9]*$ ]] || die "$option wants a positive integer, not '$value'"
    done
}

# pg_bin: the newest installed PostgreSQL's bin directory (Debian layout),
# else the one on PATH; dies if there is none.
pg_bin() {
    local dir
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [[ -x "$dir/initdb" ]]; then
        echo "$dir"
    elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
    else
        die "PostgreSQL not found (install Debian's postgresql package)"
    fi
}

# pg_version: the server's version line, for a report's header.
pg_version() {
    "$(pg_bin)/postgres" --version 2>/dev/null || echo PostgreSQL
}

# free_port: prints a loopback port nobody listens on now (the caller
# retries its start if the port is taken between this probe and its bind).
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free loopback port found"
}

# need_peer_tools ERRAND PHP_EXTENSION...: every tool a PHP-against-gearmand
# run needs, checked up front so a missing one fails before anything starts;
# sets $gearmand.
need_peer_tools() {
    local errand=$1 ext
    shift
    command -v php >/dev/null || die "php is missing (apt-get install php-cli)"
    for ext in "$@"; do
        php -r "exit(extension_loaded('$ext') ? 0 : 1);" ||
            die "the PHP extension $ext is missing (apt-get install php-$ext; pcntl/posix come with Debian's php-cli)"
    done
    command -v gearmand >/dev/null || [[ -x /usr/sbin/gearmand ]] || die "gearmand is missing (apt-get install gearman-job-server)"
    gearmand=$(command -v gearmand || echo /usr/sbin/gearmand)
    command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
    [[ -x "$errand" ]] || die "no errand binary at $errand (cargo build --release -p errand, or --errand PATH)"
}

# missing_packages CHECK...: prints the Debian packages whose CHECK fails, one
# line, space-separated (nothing if all are there). A CHECK is PACKAGE=COMMAND
# (a program on PATH or an absolute path) or PACKAGE=php:EXTENSION.
missing_packages() {
    local check package what missing=()
    for check in "$@"; do
        package=${check%%=*}
        what=${check#*=}
        case "$what" in
        php:*)
            command -v php >/dev/null &&
                php -r "exit(extension_loaded('${what#php:}') ? 0 : 1);" 2>/dev/null && continue ;;
        /*) [[ -x "$what" ]] && continue ;;
        *) command -v "$what" >/dev/null && continue ;;
        esac
        [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
    done
    echo "${missing[*]}"
}

# wait_port PORT PID LOG: until something accepts on PORT (0), or PID exits
# (1); dies after 30 s.
wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    die "nothing listens on $1 after 30 s; see $3"
}

# serve_errand DIR: `errand serve --config DIR/errand.toml` (the caller wrote
# it) on a free loopback HTTP port, from DIR, logging to DIR/server.log;
# returns once /v1/stats answers; sets $url and $server_pid. A port found free
# can be taken before errand binds it: then it tries others.
serve_errand() {
    local dir=$1 port
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        (cd "$dir" && exec "$errand" serve --config errand.toml --listen "127.0.0.1:$port" \
            --log-level warn >server.log 2>&1) &
        server_pid=$!
        pids+=("$server_pid")
        url="http://127.0.0.1:$port"
        for _ in $(seq 1 300); do
            curl -fs "$url/v1/stats" >/dev/null 2>&1 && return
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            die "errand serve did not answer within 30 s; see $dir/server.log"
        fi
        grep -q 'Address already in use' "$dir/server.log" ||
            die "errand serve exited; see $dir/server.log: $(tail -n 5 "$dir/server.log")"
    done
    die "errand serve found no free port in 5 tries"
}

# start_gearmand QUEUE: a fresh gearmand in $scratch/gearmand-N (N from
# $n_run), loopback only, its default 4 I/O threads; QUEUE is builtin (in
# memory, gearmand's default) or libsqlite3 (a new database file per run,
# gearmand's only durable queue that needs no other server); sets $gport and
# $server_pid. Needs $gearmand (need_peer_tools).
start_gearmand() {
    local queue=$1 dir flags=()
    n_run=$((n_run + 1))
    dir="$scratch/gearmand-$n_run"
    mkdir -p "$dir"
    if [[ $queue == libsqlite3 ]]; then
        flags=(-q libsqlite3 --libsqlite3-db "$dir/queue.db")
    fi
    for _ in 1 2 3 4 5; do
        gport=$(free_port)
        "$gearmand" --listen 127.0.0.1 --port "$gport" --threads 4 "${flags[@]}" \
            --log-file "$dir/gearmand.log" --verbose ERROR >"$dir/stderr.log" 2>&1 &
        server_pid=$!
        pids+=("$server_pid")
        wait_port "$gport" "$server_pid" "$dir/gearmand.log" && return
    done
    die "gearmand did not start in 5 tries; see $dir/gearmand.log and $dir/stderr.log"
}

# start_beanstalkd DIR: a fresh beanstalkd, loopback only, its binlog in
# DIR/binlog and an fsync on every write (-f 0), logging to DIR/beanstalkd.log;
# sets $bport and $server_pid.
start_beanstalkd() {
    local dir=$1
    mkdir -p "$dir/binlog"
    for _ in 1 2 3 4 5; do
        bport=$(free_port)
        beanstalkd -l 127.0.0.1 -p "$bport" -b "$dir/binlog" -f 0 >"$dir/beanstalkd.log" 2>&1 &
        server_pid=$!
        pids+=("$server_pid")
        wait_port "$bport" "$server_pid" "$dir/beanstalkd.log" && return
    done
    die "beanstalkd did not start in 5 tries; see $dir/beanstalkd.log"
}

# stop_server: stops the server start_gearmand or serve_errand last started.
stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}

# bench_scratch NAME: a scratch directory ($scratch), a cluster path
# ($cluster) and the list of started pids ($pids), all cleaned up on exit:
# only the processes the script started are killed, by pid; --keep copies
# the scratch directory first.
bench_scratch() {
    scratch=$(mktemp -d "/tmp/errand-$1.XXXXXX")
    cluster=$(mktemp -d -u "/tmp/errand-$1-pg.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((postgres)); then
        "$root/bench/pg-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
    fi
    if [[ -n "$keep" ]]; then
        { mkdir -p "$keep" && cp -r "$scratch"/. "$keep"/; } 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
