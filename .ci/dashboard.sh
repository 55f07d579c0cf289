#!/usr/bin/env bash
# The dashboard's JavaScript tests (docs/dashboard.md):
#   1. node --test unit tests of the page's modules (book mirror, CRC-32, decimals, RFC 9421
#      signer, audit chain): no dependency;
#   2. the live cross-check (test/live.test.mjs) and the real-browser test
#      (test/browser.test.mjs) against `tickgate serve`, driving Debian's Chromium through
#      playwright-core (pinned in crates/server/ui/test/package-lock.json; it downloads no
#      browser). Screenshots: target/ci-artifacts/dashboard/.
#
# Usage: .ci/dashboard.sh [PATH/TO/tickgate]   (default: target/debug/tickgate, built if absent)
# Installs what a fresh machine lacks (nodejs/npm and chromium with apt-get, the npm packages
# with npm ci). Says SKIPPED, and passes, only when something cannot be installed (no
# network); the unit tests need nothing but node and always run when node is there.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
target_dir="${CARGO_TARGET_DIR:-target}"
bin="${1:-$target_dir/debug/tickgate}"
tests=crates/server/ui/test
# An absolute CARGO_TARGET_DIR is used as it is (prefixing the root made a work/ tree here).
case "$target_dir" in
    /*) artifacts="$target_dir/ci-artifacts/dashboard" ;;
    *) artifacts="$root/$target_dir/ci-artifacts/dashboard" ;;
esac

apt_install() {
    command -v apt-get >/dev/null || return 1
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
    if [[ -z "${DASHBOARD_APT_UPDATED:-}" ]]; then
        $sudo apt-get update -qq >/dev/null 2>&1 || true
        DASHBOARD_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null 2>&1
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node/npm not found: installing Debian's nodejs and npm"
    apt_install nodejs npm || true
fi
if ! command -v node >/dev/null; then
    echo "SKIPPED dashboard tests: node is not installed and could not be installed"
    exit 0
fi
node --version

echo "--- unit tests (node --test)"
node --test "$tests/unit/"

# Node 20 has the WebSocket global behind a flag; newer versions have it on.
node_flags=()
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
    node_flags+=(--experimental-websocket)
fi

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
    echo "$chromium not found: installing Debian's chromium"
    apt_install chromium || true
fi
if [[ ! -x "$chromium" ]]; then
    echo "SKIPPED dashboard browser test: no $chromium and apt-get could not install it"
    browser=""
else
    "$chromium" --version 2>/dev/null || true
    browser=browser.test.mjs
fi

if ! (cd "$tests" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "SKIPPED dashboard browser test: npm ci could not install playwright-core (offline?)"
    browser=""
fi

[[ -x "$bin" ]] || cargo build -p tickgate
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

echo "--- live cross-check${browser:+ and browser test} against $bin"
mkdir -p "$artifacts"
cd "$tests"
TICKGATE_BIN="$bin" CHROMIUM="$chromium" ARTIFACTS="$artifacts" \
    node "${node_flags[@]}" --test --test-concurrency=1 live.test.mjs $browser
echo "screenshots: $artifacts"
