# tests/gpu/emu/setup.sh - the common start of the emulated program checks (infer.sh,
# infer_graphs.sh, infer_unet.sh), sourced as `. tests/gpu/emu/setup.sh NAME SUBDIR "$@"` from the
# repository root, the caller's arguments being R SAN(0|1) [DATA_DIR]: sets R, SANMAKE, DATA, SAN,
# CXX, PY, CT, W (R/SUBDIR, created), LDLIBS and CF (the C flags of a program built against the
# pretend device); exits 0 with "NAME: SKIP" when the shared CT or the stream tools are missing.
# emu_build_ressegnet then links infer-ressegnet against the pretend device into W (sets P).
# shellcheck shell=bash disable=SC2034 # the variables are the caller's
R=$3 SANMAKE=${4:-0} DATA=${5:-../shared/data}
SAN=()
# shellcheck disable=SC2054 # one flag
[ "$SANMAKE" = 1 ] && SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer)
CXX=${CXX:-g++}
PY=${VOXPIPE_PY:-.venv/bin/python}
CT=$DATA/totalseg/example_ct_sm.nii.gz
W=$R/$2
mkdir -p "$W"
if [ ! -f "$CT" ] || [ ! -x bin/vol-read ] || [ ! -x bin/crop ] || [ ! -x bin/vol-cat ]; then
    echo "$1: SKIP (no $CT, or no bin/vol-read, bin/crop, bin/vol-cat: make)"; exit 0
fi
LDLIBS=$(make -s SAN="$SANMAKE" print-ldlibs)
CF=(-std=c11 -D_GNU_SOURCE -O1 -g "${SAN[@]}" -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA)

emu_build_ressegnet() {
    cc "${CF[@]}" -c -o "$W/infer-ressegnet.o" filters/infer-ressegnet.c || exit 1
    cc "${CF[@]}" -c -o "$W/nn_infer_cuda.o" lib/nn_infer_cuda.c || exit 1
    # shellcheck disable=SC2086 # the link line is meant to split into words
    "$CXX" -pthread "${SAN[@]}" -o "$W/infer-ressegnet" "$W/infer-ressegnet.o" "$W/nn_infer_cuda.o" "$R"/nn_cuda*.o "$R/emu_rt.o" \
        "$R/libnostub.a" $LDLIBS || exit 1
    P=$W/infer-ressegnet
}
