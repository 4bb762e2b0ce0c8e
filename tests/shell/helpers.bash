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
