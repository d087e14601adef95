#!/usr/bin/env bash
# Runs the Python client's tests against a real errand server.
# ERRAND_BIN: the errand binary (default: <repo>/target/release/errand).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export ERRAND_BIN="${ERRAND_BIN:-$repo/target/release/errand}"
python="${PYTHON:-python3}"
venv="${VENV:-$here/.venv}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pytest==8.3.3"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$here"

cd "$here"
# pytest exits 5 when no test ran: that is a failure too.
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
