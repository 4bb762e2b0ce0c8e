# Helpers shared by crop.bats and normalize.bats (load after helpers): golden files of
# tests/scripts/make_golden_preproc.py, and the checker (the bad-input assertions are in helpers.bash).
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

