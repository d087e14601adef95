# Sourced by the bench scripts: what they share. Each caller defines `die`
# and sets `root`; the runners (remote.sh, gearman.sh) also `postgres` and
# `keep` before calling bench_scratch.

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
        mkdir -p "$keep" && cp -r "$scratch"/. "$keep"/ 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
