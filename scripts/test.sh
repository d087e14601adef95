#!/usr/bin/env bash
# Runs every errand test on a fresh machine: installs what the tests need,
# then the whole suite.
# - Tests that need PostgreSQL start a throwaway cluster themselves from
#   Debian's postgresql package (installed here when missing).
# - The executors' tests run real PHP and Python pool workers (php-cli) and a
#   real SMTP server (aiosmtpd, from PyPI).
# - The PHP client (clients/php) runs its PHPUnit tests (Debian's phpunit,
#   php-curl; composer only writes the autoloader) against the errand binary
#   the cargo tests built; the Python client (clients/python) its pytest
#   tests, in clients/python/.venv (pytest pinned, from PyPI).
# - crates/errand/tests/remote_clients.rs runs both clients' workers as
#   processes against the binary (php-cli with php-curl, python3), killing
#   and stopping them; it fails without them.
# - The API contract test (crates/errand/tests/contract.rs) runs schemathesis
#   and openapi-spec-validator from PyPI, pinned, in the venv .venv.
# - The metrics test (crates/errand/tests/metrics.rs) checks /metrics and
#   docs/prometheus/alerts.yml with promtool (Debian's prometheus package).
# - The dashboard test (crates/errand/tests/dashboard.rs) drives Debian's
#   chromium through chromium-driver with selenium (PyPI, pinned, in .venv).
# - The Debian package test (packaging/deb/test.sh) builds the .deb from the
#   release binary, installs and purges it with dpkg and checks its systemd
#   unit with systemd-analyze (Debian's systemd package): it needs root and
#   fails, not skips, without it.
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
if ! have php || ! php -r 'exit(extension_loaded("curl") ? 0 : 1);' 2>/dev/null; then missing+=(php-curl); fi
if ! have php || ! php -r 'exit(extension_loaded("gearman") ? 0 : 1);' 2>/dev/null; then missing+=(php-gearman); fi
have gearman && have gearadmin || missing+=(gearman-tools)
have phpunit || missing+=(phpunit)
have composer || missing+=(composer)
[ -f /usr/share/php/Symfony/Component/Messenger/autoload.php ] || missing+=(php-symfony-messenger)
have promtool || missing+=(prometheus)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
have systemd-analyze || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "scripts/test.sh: installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # The postgresql package may start a system cluster; tests run their own.
    if have service; then service postgresql stop >/dev/null 2>&1 || true; fi
    # Only promtool is needed from the prometheus package, not its server.
    if have service; then service prometheus stop >/dev/null 2>&1 || true; fi
  else
    echo "scripts/test.sh: missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or their tests fail" >&2
  fi
fi
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "scripts/test.sh: installing aiosmtpd (PyPI)"
  python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
fi

# The contract and dashboard tests' tools; a version change here is a
# deliberate upgrade.
CONTRACT_TOOLS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0 selenium==4.51.0)
have_contract_tools() {
  local frozen tool
  frozen=$(.venv/bin/python -m pip freeze 2>/dev/null) || return 1
  for tool in "${CONTRACT_TOOLS[@]}"; do grep -qix "$tool" <<<"$frozen" || return 1; done
}
if ! have_contract_tools; then
  echo "scripts/test.sh: installing ${CONTRACT_TOOLS[*]} into .venv (PyPI)"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q "${CONTRACT_TOOLS[@]}"
fi

cargo test --workspace --release

# The client libraries against the binary the tests above built.
export ERRAND_BIN="$PWD/target/release/errand"
bash clients/php/test.sh
bash clients/python/test.sh

# The Debian package, from the same binary.
bash packaging/deb/test.sh
