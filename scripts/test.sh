#!/usr/bin/env bash
# Runs every errand test on a fresh machine: installs what the tests need
# (nothing beyond the Rust toolchain and python3 yet), then the whole suite.
# Slow soak tests are #[ignore]d; run them with: cargo test --release -- --ignored
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
for tool in cargo python3 sh; do
  need "$tool" || { echo "scripts/test.sh: $tool is required" >&2; exit 1; }
done

cargo test --workspace --release
