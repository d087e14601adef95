#!/usr/bin/env bash
# Tests the Debian package on this machine: builds it from an errand binary
# already built (ERRAND_BIN, default target/release/errand, as
# `cargo test --workspace --release` leaves it), installs it with dpkg,
# checks what it installed (binary, system user, conffile, state directory,
# systemd unit through `systemd-analyze verify`), runs `errand serve` with
# the packaged config as the errand user, then purges it.
#
# It needs root (dpkg -i) and a machine without an errand package of its
# own: it fails, never skips. CI runs it from scripts/test.sh (as root, on
# Debian 12, where systemd is installed but not running: the unit is
# verified, not started).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fail() { echo "packaging/deb/test.sh: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (it installs and purges the errand .deb with dpkg); run it with sudo, or in CI"
for tool in dpkg dpkg-deb systemd-analyze setpriv python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is required (systemd-analyze: apt-get install systemd)"
done
if dpkg-query -W -f='${Status}' errand 2>/dev/null | grep -q 'installed'; then
  fail "an errand package is already installed here; this test would purge it (dpkg --purge errand first)"
fi
binary="${ERRAND_BIN:-$root/target/release/errand}"
[ -x "$binary" ] || fail "no errand binary at $binary: build it first (cargo build --release -p errand) or set ERRAND_BIN"

version="$("$binary" --version | sed 's/^errand //')"
user_existed=false
getent passwd errand >/dev/null && user_existed=true
scratch="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  dpkg --purge errand >/dev/null 2>&1 || true
  $user_existed || userdel errand >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

deb="$(bash "$here/build.sh" --binary "$binary" --out "$scratch" | tail -1)"
[ -f "$deb" ] || fail "build.sh made no .deb"
dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb"

# The binary, from /usr/bin.
[ "$(/usr/bin/errand --version)" = "errand $version" ] || fail "/usr/bin/errand --version: $(/usr/bin/errand --version)"

# The system user and the state directory.
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd errand) || fail "no errand user after install"
[ "$uid" -lt 1000 ] || fail "errand user has uid $uid, not a system uid"
[ "$home" = /var/lib/errand ] || fail "errand user's home is $home"
case "$shell" in */nologin|/bin/false) ;; *) fail "errand user's shell is $shell" ;; esac
[ "$(stat -c '%U:%G %a' /var/lib/errand)" = "errand:errand 750" ] \
  || fail "/var/lib/errand is $(stat -c '%U:%G %a' /var/lib/errand)"

# The config: a conffile, readable by the errand group only.
dpkg-query -W -f='${Conffiles}\n' errand | grep -q '^ /etc/errand/errand.toml ' \
  || fail "/etc/errand/errand.toml is not a conffile"
[ "$(stat -c '%U:%G %a' /etc/errand/errand.toml)" = "root:errand 640" ] \
  || fail "/etc/errand/errand.toml is $(stat -c '%U:%G %a' /etc/errand/errand.toml)"

# The unit: systemd-analyze verify exits non-zero only on fatal errors, and
# merely warns about unknown keys or values it cannot parse, so any line
# it prints about errand.service fails the test too.
unit=/lib/systemd/system/errand.service
[ -f "$unit" ] || fail "no $unit"
verify_rc=0
systemd-analyze verify "$unit" >"$scratch/verify.log" 2>&1 || verify_rc=$?
if [ "$verify_rc" != 0 ] || grep -q 'errand\.service' "$scratch/verify.log"; then
  cat "$scratch/verify.log" >&2
  fail "systemd-analyze verify $unit (exit $verify_rc)"
fi
[ -L /etc/systemd/system/multi-user.target.wants/errand.service ] || fail "errand.service is not enabled"

# The packaged config runs as the errand user (port 0: any free port).
(cd / && exec setpriv --reuid=errand --regid=errand --init-groups \
  /usr/bin/errand serve --config /etc/errand/errand.toml --listen 127.0.0.1:0) 2>"$scratch/serve.log" &
server=$!
for _ in $(seq 100); do
  grep -q 'errand listening on' "$scratch/serve.log" && break
  kill -0 "$server" 2>/dev/null || { cat "$scratch/serve.log" >&2; fail "errand serve exited at start"; }
  sleep 0.1
done
url="$(grep -o 'errand listening on http://[0-9.:]*' "$scratch/serve.log" | sed 's/.* //')"
[ -n "$url" ] || { cat "$scratch/serve.log" >&2; fail "errand serve did not start listening"; }
python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=5)' "$url" \
  || fail "GET $url/healthz"
[ "$(stat -c %U /var/lib/errand/errand.db)" = errand ] || fail "/var/lib/errand/errand.db is not the errand user's"
kill -TERM "$server"
serve_rc=0
wait "$server" || serve_rc=$?
server=""
[ "$serve_rc" = 0 ] || { cat "$scratch/serve.log" >&2; fail "errand serve exited $serve_rc on SIGTERM"; }

# Purge removes everything but the user.
dpkg --purge errand >/dev/null || fail "dpkg --purge errand"
for path in /usr/bin/errand "$unit" /etc/errand /var/lib/errand /etc/systemd/system/multi-user.target.wants/errand.service; do
  if [ -e "$path" ] || [ -L "$path" ]; then fail "$path is left after purge"; fi
done
! dpkg-statoverride --list /etc/errand/errand.toml >/dev/null || fail "the stat override is left after purge"

echo "packaging/deb/test.sh: ok (errand $version: installed, unit verified, served /healthz as errand, purged)"
