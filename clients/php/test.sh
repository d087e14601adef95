#!/usr/bin/env bash
# Runs the PHP client's PHPUnit tests against a real errand server.
#
# Needs: php-cli >= 8.1 with curl, json, pcntl and posix; phpunit (9.6+); composer (only to
# generate the autoloader, offline); for the Symfony Messenger transport's tests Debian's
# php-symfony-messenger, php-symfony-event-dispatcher (Messenger's worker events and retry
# listener) and php-psr-container (5.4), loaded from /usr/share/php. Missing Debian packages are
# installed with apt-get when running as root. Otherwise it fails, saying what to install.
# The server binary: $ERRAND_BIN, default <repo>/target/release/errand (cargo build --release).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export ERRAND_BIN="${ERRAND_BIN:-$repo/target/release/errand}"

missing=()
command -v php >/dev/null || missing+=(php-cli)
if command -v php >/dev/null; then
    php -r 'exit(extension_loaded("curl") ? 0 : 1);' || missing+=(php-curl)
fi
command -v phpunit >/dev/null || missing+=(phpunit)
command -v composer >/dev/null || missing+=(composer)
# Test-only dependencies of the Messenger transport, by the autoload.php files Debian ships.
sf=/usr/share/php/Symfony/Component
[[ -f $sf/Messenger/autoload.php ]] || missing+=(php-symfony-messenger)
[[ -f $sf/EventDispatcher/autoload.php ]] || missing+=(php-symfony-event-dispatcher)
[[ -f /usr/share/php/Psr/Container/autoload.php ]] || missing+=(php-psr-container)
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "test.sh: installing ${missing[*]} with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
            || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
    else
        echo "test.sh: missing ${missing[*]}: run as root, or: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
php -r 'exit(PHP_VERSION_ID >= 80100 ? 0 : 1);' || { echo "test.sh: PHP >= 8.1 needed, found $(php -r 'echo PHP_VERSION;')" >&2; exit 1; }
for ext in curl json pcntl posix; do
    php -r "exit(extension_loaded('$ext') ? 0 : 1);" || { echo "test.sh: the PHP extension $ext is missing" >&2; exit 1; }
done
[[ -x "$ERRAND_BIN" ]] || { echo "test.sh: no errand binary at $ERRAND_BIN (cargo build --release, or set ERRAND_BIN)" >&2; exit 1; }

cd "$here"
# Offline: only the autoloader (the package has no runtime dependency; phpunit is Debian's).
COMPOSER_ALLOW_SUPERUSER=1 composer dump-autoload --dev --no-interaction --quiet

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
phpunit --configuration phpunit.xml.dist "$@" 2>&1 | tee "$log" || status=$?
if ((status != 0)); then
    exit "$status"
fi
# A run that ran nothing (a filter matching no test, a lost directory) is a failure too.
if ! grep -Eq '^OK \([1-9][0-9]* tests?, ' "$log"; then
    echo "test.sh: no test ran" >&2
    exit 1
fi
