#!/usr/bin/env bash
# Runs every coverage-guided fuzz target (cargo-fuzz + libFuzzer, nightly) for a bounded time
# and prints executions and crashes per target.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      default: 60 s, every target
#
# Each target's corpus is fuzz/corpus/TARGET (not committed), seeded from fuzz/seeds/TARGET
# (committed). A crash leaves its input in fuzz/artifacts/TARGET/ and makes the script exit 1:
# reproduce it with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`, then turn
# it into a regression test in the crate that owns the parser (docs/security.md §Fuzzing).
# FUZZ_JOBS=N runs N workers per target (default 1).
# FUZZ_RUNS=N stops each target after N executions (whichever comes first, that or the time).
# FUZZ_SANITIZER=address|none (default none): the workspace forbids `unsafe` (Cargo.toml
# [workspace.lints]), so AddressSanitizer finds nothing in our code and costs 2-4x in
# executions per second; panics, overflows (debug assertions) and OOMs are caught either way.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(client_message venue_frames signature config capture)
fi
jobs="${FUZZ_JOBS:-1}"
sanitizer="${FUZZ_SANITIZER:-none}"
parallel=()
runs=()
if [[ -n "${FUZZ_RUNS:-}" ]]; then
    runs=(-runs="$FUZZ_RUNS")
fi
if [[ $jobs -gt 1 ]]; then
    parallel=(-fork="$jobs")
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzzing needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked --quiet
fi

# Release build with debug assertions (integer overflow and debug_assert! become crashes).
cargo +nightly fuzz build -s "$sanitizer" --debug-assertions 2>&1 | tail -n 3 || {
    echo "fuzz build failed" >&2
    exit 2
}

# Longest input per target: a little above the largest legitimate one, so the fuzzer spends its
# time on structure rather than on megabyte inputs.
max_len() {
    case "$1" in
        venue_frames) echo 16384 ;;
        capture) echo 16384 ;;
        config) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

summary=()
failed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="artifacts/$target/last-run.log"
    echo "=== $target: ${seconds}s"
    rc=0
    cargo +nightly fuzz run -s "$sanitizer" --debug-assertions "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${parallel[@]}" "${runs[@]}" \
        -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1 || rc=$?
    execs=$(awk '/stat::number_of_executed_units/ {s += $NF} END {print s + 0}' "$log")
    crashes=$(find "artifacts/$target" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
    corpus=$(find "corpus/$target" -type f | wc -l)
    summary+=("$(printf '%-16s %14s executions  %6s corpus  %3s crashes  exit %s' "$target" "$execs" "$corpus" "$crashes" "$rc")")
    if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
        failed=1
        tail -n 30 "$log"
    fi
done
echo
echo "=== fuzz summary (${seconds}s per target, $jobs job(s))"
printf '%s\n' "${summary[@]}"
exit "$failed"
