# Helpers shared by crop.bats and normalize.bats (load after helpers): golden files of
# tests/scripts/make_golden_preproc.py, the checker, and the bad-input assertions.
G="$VOXPIPE_ROOT/tests/golden/preproc"
CHECK="$SCRIPTS/check_preproc.py"

# the shared CT with its TotalSegmentator labels as one case ('image' i16, 'label' u8), once per file
make_ct_stream() {
    CT_VXP="$BATS_FILE_TMPDIR/ct.vxp"
    [ -s "$CT_VXP" ] || vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" -o "$CT_VXP"
}

# py CODE ARGS... : run Python with vxp and numpy imported (sys.argv[1:] = ARGS)
py() {
    local code=$1
    shift
    "$VOXPIPE_PY" -c "import sys; sys.path.insert(0, '$SCRIPTS'); import vxp, numpy as np, json
def load(p): return list(vxp.read(open(p, 'rb')))
$code" "$@"
}

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
