#!/usr/bin/env bash
# Installs what Airlock needs on a Debian machine when it is missing: Debian's Chromium,
# bubblewrap (the namespaces each run's browser lives in) and the
# fonts the bundled portal's layout is measured with. Safe to run repeatedly.
set -euo pipefail

need=()
[ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] || need+=(fonts-liberation)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The web UI tests drive Chromium with Playwright from Node (tests/ui).
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# venvs with pip (the MCP SDK below, the provider SDKs) need ensurepip.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
# The fault tests put a home on a tmpfs or a read-only bind mount in a private mount namespace.
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v mount >/dev/null 2>&1 || need+=(mount)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} from Debian's packages" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi

# The official MCP Python SDK that tests/mcp.rs drives `airlock mcp` with, pinned in
# tests/mcp/requirements.txt, in a venv under the cargo target directory. Reinstalled only when
# the pins change.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CARGO_TARGET_DIR:-$root/target}/mcp-sdk-venv"
reqs="$root/tests/mcp/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$reqs" "$venv/requirements.txt"; then
  echo "setup: installing the MCP Python SDK into $venv" >&2
  python3 -m venv --clear "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
  cp "$reqs" "$venv/requirements.txt"
fi

# Playwright (playwright-core only: it drives Debian's /usr/bin/chromium, downloads no browser),
# pinned in tests/ui/package-lock.json, for the real-browser tests of the web UI. Reinstalled
# only when the lock file changes.
ui="$root/tests/ui"
if [ ! -d "$ui/node_modules/playwright-core" ] || ! cmp -s "$ui/package-lock.json" "$ui/node_modules/.package-lock.copy"; then
  echo "setup: installing playwright-core into $ui/node_modules" >&2
  (cd "$ui" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund)
  cp "$ui/package-lock.json" "$ui/node_modules/.package-lock.copy"
fi
