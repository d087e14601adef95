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
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# Pinned, and the package built with this setuptools (no isolated build env
# fetched at each run).
"${pip[@]}" "pytest==8.3.3" "setuptools==75.6.0"
"${pip[@]}" --no-build-isolation -e "$here"

cd "$here"
# pytest exits 5 when no test ran: that is a failure too.
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
