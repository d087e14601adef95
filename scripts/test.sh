#!/usr/bin/env bash
# Runs every errand test on a fresh machine: installs what the tests need,
# then the whole suite.
# - Tests that need PostgreSQL start a throwaway cluster themselves from
#   Debian's postgresql package (installed here when missing).
# - The executors' tests run real PHP and Python pool workers (php-cli) and a
#   real SMTP server (aiosmtpd, from PyPI).
# Slow soak tests are #[ignore]d; run them with:
#   cargo test --workspace --release -- --ignored
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
for tool in cargo python3 sh; do
  have "$tool" || { echo "scripts/test.sh: $tool is required" >&2; exit 1; }
done

have_postgres() { have initdb || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
missing=()
have_postgres || missing+=(postgresql)
have php || missing+=(php-cli)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "scripts/test.sh: installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # The postgresql package may start a system cluster; tests run their own.
    if have service; then service postgresql stop >/dev/null 2>&1 || true; fi
  else
    echo "scripts/test.sh: missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or their tests fail" >&2
  fi
fi
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "scripts/test.sh: installing aiosmtpd (PyPI)"
  python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
fi

cargo test --workspace --release
