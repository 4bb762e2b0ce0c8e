#!/usr/bin/env bash
# Run the whole test suite: Criterion unit tests, then the bats pipeline tests.
# usage: tests/run.sh BUILD_DIR BIN_DIR DATA_DIR     (called by `make test` and `make test-san`)
set -u
build=${1:-build} bin=${2:-bin} data=${3:-../shared/data}
root=$(cd "$(dirname "$0")/.." && pwd)
export VOXPIPE_BIN="$root/$bin" VOXPIPE_DATA="$(cd "$data" 2>/dev/null && pwd || echo "$data")"
export VOXPIPE_ROOT="$root" PATH="$root/$bin:$PATH"
export VOXPIPE_PY="$root/.venv/bin/python"
export VOXPIPE_TMP="$root/tests/tmp/$(basename "$build")"
rm -rf "$VOXPIPE_TMP" && mkdir -p "$VOXPIPE_TMP"
# leak checking stays on under ASan; a missing symbolizer must not hide reports
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

pass=0 fail=0
echo "== unit tests ($build)"
for t in "$root/$build"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" --jobs 1 2>&1); rc=$?
    syn=$(printf '%s\n' "$out" | grep -E '^\[====\] Synthesis' | tail -1)
    p=$(printf '%s' "$syn" | sed -nE 's/.*Passing: ([0-9]+).*/\1/p')
    f=$(printf '%s' "$syn" | sed -nE 's/.*Failing: ([0-9]+).*/\1/p')
    c=$(printf '%s' "$syn" | sed -nE 's/.*Crashing: ([0-9]+).*/\1/p')
    p=${p:-0} f=${f:-0} c=${c:-0}
    if [ $rc -ne 0 ] || [ -z "$syn" ]; then [ "$f" = 0 ] && [ "$c" = 0 ] && f=1; printf '%s\n' "$out" | grep -vE '^\[----\]' | tail -30; fi
    echo "  $(basename "$t"): $p passed, $((f + c)) failed"
    pass=$((pass + p)); fail=$((fail + f + c))
done

echo "== pipeline tests (bats)"
tap=$(bats --tap "$root"/tests/shell/*.bats 2>&1); rc=$?
printf '%s\n' "$tap" | grep -vE '^(ok|1\.\.)' || true
bp=$(printf '%s\n' "$tap" | grep -cE '^ok ')
bf=$(printf '%s\n' "$tap" | grep -cE '^not ok ')
[ $rc -ne 0 ] && [ "$bf" = 0 ] && bf=1
echo "  bats: $bp passed, $bf failed"
pass=$((pass + bp)); fail=$((fail + bf))
echo
echo "$pass passed, $fail failed"
# scratch space (a few GiB) is kept only when something failed, to look at
if [ "$fail" = 0 ]; then rm -rf "$VOXPIPE_TMP"; else echo "scratch space kept: $VOXPIPE_TMP"; fi
[ "$fail" = 0 ]
