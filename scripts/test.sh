#!/usr/bin/env bash
# Runs every errand test on a fresh machine: installs what the tests need,
# then the whole suite. Tests that need PostgreSQL start a throwaway cluster
# themselves from Debian's postgresql package (installed here when missing).
# Slow soak tests are #[ignore]d; run them with:
#   # The executors' tests run real PHP and Python pool workers and a real SMTP
# server (aiosmtpd).
if ! have php; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "scripts/test.sh: installing php-cli"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-cli >/dev/null
  else
    echo "scripts/test.sh: php not found; install php-cli (sudo apt-get install php-cli)" >&2
  fi
fi
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "scripts/test.sh: installing aiosmtpd (PyPI)"
  python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
fi

cargo test --workspace --release -- --ignored
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
for tool in cargo python3 sh; do
  have "$tool" || { echo "scripts/test.sh: $tool is required" >&2; exit 1; }
done

have_postgres() { have initdb || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
if ! have_postgres; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "scripts/test.sh: installing PostgreSQL (Debian's postgresql package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # The package starts a system cluster we do not use: tests run their own.
    have service && service postgresql stop >/dev/null 2>&1 || true
  else
    echo "scripts/test.sh: PostgreSQL not found; install Debian's postgresql package (sudo apt-get install postgresql) or the PostgreSQL tests will skip" >&2
  fi
fi

# The executors' tests run real PHP and Python pool workers and a real SMTP
# server (aiosmtpd).
if ! have php; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "scripts/test.sh: installing php-cli"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-cli >/dev/null
  else
    echo "scripts/test.sh: php not found; install php-cli (sudo apt-get install php-cli)" >&2
  fi
fi
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "scripts/test.sh: installing aiosmtpd (PyPI)"
  python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
fi

cargo test --workspace --release
