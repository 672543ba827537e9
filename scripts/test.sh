#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests with real Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Provider fixtures and the requests Airlock sends must deserialise with the vendors' own SDK
# types (anthropic, openai, google-genai from PyPI), so the shapes are theirs, not ours.
python3 scripts/check_provider_fixtures.py
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# --no-fail-fast: one red test binary must not hide the others.
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$log" || status=1
exit "$status"
