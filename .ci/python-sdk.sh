#!/usr/bin/env bash
# The Python SDK (clients/python, docs/python.md): installed from the checkout into a
# virtualenv with its dev extra, then mypy --strict, ruff (lint and format), and pytest: the
# unit tests and the integration tests against the gateway binary `cargo test` built (started
# on port 0 per test). TICKGATE_REQUIRE_GATEWAY=1 turns a missing binary into a failure, and
# pytest's exit code 5 (no tests collected) fails this script like any other non-zero code.
# Ends with a short run of the throughput benchmark, to keep it working (its figures are not
# checked: benchmarks are measured on a quiet machine, docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
printf '\n=== %s\n' "python SDK: mypy --strict, ruff, pytest against the gateway"

target_dir="${CARGO_TARGET_DIR:-target}"
tickgate_bin="$(cd "$target_dir" && pwd)/debug/tickgate"
[[ -x "$tickgate_bin" ]] || cargo build -p tickgate
venv="$(cd "$target_dir" && pwd)/py-sdk"
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check './clients/python[dev]'

cd clients/python
"$py" -m mypy
"$py" -m ruff check src tests bench ../../examples/python/sdk
"$py" -m ruff format --check src tests bench ../../examples/python/sdk
# Run the installed package, not the source tree: what `pip install` gives users is tested.
TICKGATE_BIN="$tickgate_bin" TICKGATE_REQUIRE_GATEWAY=1 \
    "$py" -m pytest -p no:cacheprovider -q tests
"$py" bench/throughput.py --bin "$tickgate_bin" --secs 0.5 --warmup 0.2 --rounds 1 \
    --fast-rate 2000 --steady-rate 200 >/dev/null
echo "ok: python SDK"
