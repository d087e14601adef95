#!/usr/bin/env bash
# Runs the graphile-worker peer benchmark against a PostgreSQL URL and prints
# its one JSON line on stdout (logs on stderr); any further arguments go to
# bench.mjs (e.g. --jobs 10000 --no-pickup).
#
#   bench/peers/run-graphile.sh postgres://user@127.0.0.1:5432/db [bench.mjs options]
#
# Installs the pinned graphile-worker from package-lock.json on first use.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 postgres://URL [--jobs N] [--concurrency C] [--batch-size B] [--no-pickup]" >&2
    exit 2
fi
url=$1
shift

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/graphile-worker"
command -v node >/dev/null || { echo "run-graphile.sh: node is not installed" >&2; exit 1; }
if [[ ! -d "$dir/node_modules/graphile-worker" ]]; then
    if [[ -f "$dir/package-lock.json" ]]; then
        (cd "$dir" && npm ci --no-audit --no-fund >&2)
    else
        (cd "$dir" && npm install --no-audit --no-fund >&2)
    fi
fi
exec node "$dir/bench.mjs" "$url" "$@"
