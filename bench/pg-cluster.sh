#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for benchmarks (errand and its peers on the
# same server).
#
#   bench/pg-cluster.sh start DIR        initdb into DIR, start on a free loopback
#                                        port, create database "bench"; prints its URL
#   bench/pg-cluster.sh createdb DIR NAME  creates another database; prints its URL
#   bench/pg-cluster.sh url DIR          prints the URL of the "bench" database again
#   bench/pg-cluster.sh stop DIR         stops the server and deletes DIR
#
# The server keeps PostgreSQL's default durability (fsync on,
# synchronous_commit on) because that is what the published figures promise;
# max_connections is 200 so a benchmark at high concurrency is not refused.
# initdb refuses to run as root, so as root the server tools run as the
# `postgres` user that Debian's postgresql package creates.
# Only the URL goes to stdout, so `URL=$(bench/pg-cluster.sh start DIR)` works.
set -euo pipefail

# Marks a directory this script created, so `stop` never deletes anything else.
MARKER=.errand-bench-cluster
SUPERUSER=postgres
DATABASE=bench

# die, free_port, pg_bin.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    die "usage: $0 start DIR | createdb DIR NAME | url DIR | stop DIR"
}

# Runs a server tool, as `postgres` when we are root.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}


require_cluster() {
    [[ -f "$1/$MARKER" ]] || die "$1 is not a cluster made by this script (no $MARKER)"
}

url_of() {
    echo "postgres://$SUPERUSER@127.0.0.1:$(cat "$1/port")/$2"
}

create_database() {
    local dir=$1 name=$2
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || die "bad database name '$name' (use [a-z0-9_])"
    "$BIN/createdb" -h 127.0.0.1 -p "$(cat "$dir/port")" -U "$SUPERUSER" "$name" >&2 ||
        die "createdb $name failed"
    url_of "$dir" "$name"
}

start() {
    local dir=$1
    if [[ -e "$dir" && -n "$(ls -A "$dir")" ]]; then
        die "$dir exists and is not empty"
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    touch "$dir/$MARKER"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "user postgres cannot write $dir (pick a directory it can reach, e.g. under /tmp)"
    fi
    # --no-sync: the cluster's initial files need no fsync; the server itself
    # runs with fsync on.
    as_owner "$BIN/initdb" -D "$dir/data" -U "$SUPERUSER" -A trust -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || die "initdb failed; see $dir/initdb.log"
    local port
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        # Settings go into postgresql.conf (the last line wins) so that a
        # `pg_ctl restart` keeps them.
        as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
# errand bench cluster
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
fsync = on
synchronous_commit = on
EOF
        if as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2; then
            echo "$port" >"$dir/port"
            create_database "$dir" "$DATABASE"
            return
        fi
    done
    die "pg_ctl start failed; see $dir/server.log"
}

stop() {
    local dir=$1
    require_cluster "$dir"
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 || die "pg_ctl stop failed"
    fi
    rm -rf "$dir"
}

[[ $# -ge 2 ]] || usage
BIN=$(pg_bin)
case "$1" in
start) [[ $# -eq 2 ]] || usage; start "$2" ;;
createdb) [[ $# -eq 3 ]] || usage; require_cluster "$2"; create_database "$2" "$3" ;;
url) [[ $# -eq 2 ]] || usage; require_cluster "$2"; url_of "$2" "$DATABASE" ;;
stop) [[ $# -eq 2 ]] || usage; stop "$2" ;;
*) usage ;;
esac
