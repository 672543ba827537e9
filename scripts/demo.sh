#!/usr/bin/env bash
# Runs the ci-incident example end to end: the bundled portal, a real Chromium, a scripted
# model, every action gated and recorded, the host verifier, then the audit chain verified.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --bin airlock
home="$(mktemp -d)/airlock-home"
bin=target/release/airlock
echo "== approve-all: the note is submitted and the host verifies it"
"$bin" --home "$home" run examples/ci-incident/task.toml \
  --model scripted:examples/ci-incident/transcript.jsonl --approvals approve-all
echo
echo "== deny: the run stops at the submit and nothing changes (exit 4 expected)"
set +e
"$bin" --home "$home" run examples/ci-incident/task.toml \
  --model scripted:examples/ci-incident/transcript.jsonl --approvals deny
code=$?
set -e
[ "$code" -eq 4 ] || { echo "demo: expected exit 4 from the deny run, got $code" >&2; exit 1; }
echo
echo "== audit: every run's hash chain recomputed"
"$bin" --home "$home" audit verify
echo
echo "audit home: $home (try: $bin --home $home audit list)"
