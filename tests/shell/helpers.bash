# Shared setup for the bats pipeline tests. Tests run with PATH holding the programs under test
# ($VOXPIPE_BIN), data from $VOXPIPE_DATA (../shared/data), the peer Python in $VOXPIPE_PY
# (.venv with nibabel/numpy/msgpack) and scratch space under $VOXPIPE_TMP.
: "${VOXPIPE_DATA:=$BATS_TEST_DIRNAME/../../../shared/data}"
: "${VOXPIPE_PY:=$BATS_TEST_DIRNAME/../../.venv/bin/python}"
: "${VOXPIPE_ROOT:=$BATS_TEST_DIRNAME/../..}"
TS="$VOXPIPE_DATA/totalseg"
SCRIPTS="$VOXPIPE_ROOT/tests/scripts"

setup() {
    T="${VOXPIPE_TMP:-$BATS_TMPDIR}/$(basename "$BATS_TEST_FILENAME" .bats)-$BATS_TEST_NUMBER"
    rm -rf "$T" && mkdir -p "$T"
}

# assert_exit CODE cmd... : run and check the exit status
assert_exit() {
    local want=$1; shift
    run "$@"
    if [ "$status" -ne "$want" ]; then
        echo "expected exit $want, got $status: $*" >&2
        echo "$output" >&2
        return 1
    fi
}

# ---- bad-input assertions (bad_input.bats, crop.bats, normalize.bats ...)
# refuses PROG CODE CMD... : run CMD (stderr apart); exit code CODE, nothing on stdout, stderr only
# "PROG: error: " lines (and the "(see 'PROG --help')" hint of usage errors)
refuses() {
    local prog=$1 want=$2
    shift 2
    run --separate-stderr "$@"
    printf 'exit %s\nstderr:\n%s\n' "$status" "$stderr"
    [ "$status" -eq "$want" ]
    [ -z "$output" ]
    [ -n "$stderr" ]
    if grep -v -e "^$prog: error: " -e "^(see '$prog --help')\$" <<<"$stderr"; then
        echo "stderr has lines not of the form '$prog: error: ...'"
        return 1
    fi
}

# says TEXT... : the last stderr holds each TEXT
says() {
    local s
    for s in "$@"; do
        [[ "$stderr" == *"$s"* ]] || { echo "stderr lacks: $s"; return 1; }
    done
}

# nothing_left NAME... : $T holds exactly the NAMEs: no output, no temporary file
nothing_left() {
    local have want
    have=$(cd "$T" && find . -mindepth 1 | sed 's|^\./||' | sort)
    want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
    [ "$have" = "$want" ] || { printf 'left behind in %s:\n%s\n' "$T" "$have"; return 1; }
}

# 0 when this machine has an NVIDIA GPU (the GPU-less error paths are then covered by tests/gpu/)
have_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
