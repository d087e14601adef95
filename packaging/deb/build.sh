#!/usr/bin/env bash
# Builds the Debian package of errand with dpkg-deb alone (no debhelper,
# no cargo-deb; docs/decisions/0033-packaging.md).
#
#   bash packaging/deb/build.sh [--binary PATH] [--out DIR]
#
# --binary: an errand binary already built (e.g. target/release/errand from
#   `cargo test --workspace --release`); without it, this script runs
#   `cargo build --release --locked -p errand` first.
# --out: where errand_VERSION_ARCH.deb is written (default: target/deb).
#
# A binary with DWARF line tables (`cargo build --profile release-lines`)
# is shipped without them: they go to errand_VERSION_ARCH.debug beside the
# .deb, which gives backtraces their line numbers once copied to
# /usr/lib/debug/.build-id/XX/REST.debug (the path is printed).
# Prints the path of the .deb on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

binary=""
out="$root/target/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "build.sh: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done

for tool in dpkg-deb dpkg objdump; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool is required" >&2; exit 1; }
done

if [ -z "$binary" ]; then
  (cd "$root" && cargo build --release --locked -p errand)
  binary="${CARGO_TARGET_DIR:-$root/target}/release/errand"
fi
[ -x "$binary" ] || { echo "build.sh: $binary is not an executable" >&2; exit 1; }

# The version is the workspace's ([workspace.package] version).
version="$(awk '/^\[/ { section = $0 } section == "[workspace.package]" && /^version *=/ { gsub(/[" ]/, "", $0); sub(/^version=/, "", $0); print; exit }' "$root/Cargo.toml")"
[ -n "$version" ] || { echo "build.sh: no [workspace.package] version in $root/Cargo.toml" >&2; exit 1; }
"$binary" --version | grep -qx "errand $version" \
  || { echo "build.sh: $binary says '$("$binary" --version)', the workspace is $version" >&2; exit 1; }
arch="$(dpkg --print-architecture)"

# The newest glibc symbol version the binary uses sets the libc6 dependency.
glibc="$(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
[ -n "$glibc" ] || { echo "build.sh: cannot read the glibc versions $binary needs" >&2; exit 1; }

stage="$(mktemp -d)"
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out"
deb="$out/errand_${version}_${arch}.deb"

install -D -m 0755 "$binary" "$stage/usr/bin/errand"
if objdump -h "$binary" | grep -q '\.debug_line'; then
  debug="$out/errand_${version}_${arch}.debug"
  objcopy --only-keep-debug "$binary" "$debug"
  objcopy --strip-debug "$stage/usr/bin/errand"
  build_id="$(readelf -n "$binary" | sed -n 's/.*Build ID: *//p')"
  echo "build.sh: debug info in $debug; for line numbers in backtraces install it as /usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug"
fi
install -D -m 0644 "$here/errand.service" "$stage/lib/systemd/system/errand.service"
install -D -m 0644 "$here/errand.toml" "$stage/etc/errand/errand.toml"
install -D -m 0644 "$root/README.md" "$stage/usr/share/doc/errand/README.md"
install -D -m 0644 /dev/stdin "$stage/usr/share/doc/errand/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: errand

Files: *
License: MIT or Apache-2.0
 On Debian systems the full texts are in /usr/share/common-licenses/Apache-2.0;
 the MIT license is the Expat license.
COPYRIGHT

mkdir -p "$stage/DEBIAN"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
echo /etc/errand/errand.toml >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: errand
Version: $version
Architecture: $arch
Maintainer: errand maintainers <errand@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: libc6 (>= $glibc), libgcc-s1, adduser | passwd
Section: net
Priority: optional
Description: durable background-job server and worker runtime
 errand stores background jobs durably (SQLite or PostgreSQL), runs them
 with commands, worker pools, webhooks, SMTP or remote workers, retries
 them with backoff and rescues them when a worker dies. One binary: the
 server (a systemd service here) and its command-line client.
CONTROL

dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
