#!/usr/bin/env bash
# EVM source tests against a real local chain (anvil).
#
# Installs anvil from the npm package @foundry-rs/anvil-linux-amd64 into target/evm-tools
# when it is missing, exports TICKGATE_TEST_ANVIL and runs the tests that need it (the
# connector's chain tests and the gateway's on-chain tests). Without npm, or when the
# install fails (offline), it says SKIPPED and passes: those tests then skip themselves in
# `cargo test --workspace` too, and the mock-node tests still run there.
set -euo pipefail

cd "$(dirname "$0")/.."

ANVIL_VERSION="1.7.1"
target_dir="${CARGO_TARGET_DIR:-target}"
tools="$target_dir/evm-tools"
anvil="$tools/node_modules/.bin/anvil"

if [[ ! -x "$anvil" ]]; then
    if command -v npm >/dev/null; then
        echo "installing anvil $ANVIL_VERSION (npm @foundry-rs/anvil-linux-amd64) into $tools"
        mkdir -p "$tools"
        npm install --silent --no-audit --no-fund --prefix "$tools" \
            "@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION" \
            || echo "npm install failed"
    else
        echo "npm not found"
    fi
fi

if [[ ! -x "$anvil" ]] || ! "$anvil" --version >/dev/null 2>&1; then
    echo "SKIPPED EVM chain tests: no working anvil binary"
    exit 0
fi

"$anvil" --version | head -1
export TICKGATE_TEST_ANVIL
TICKGATE_TEST_ANVIL="$(cd "$(dirname "$anvil")" && pwd)/$(basename "$anvil")"
cargo test -p connectors --test evm
cargo test -p server --test it onchain
