#!/usr/bin/env bats
# infer-unet --prefetch on|off on a machine without a GPU (the device runs are checked by
# tests/gpu/emu/infer_unet.sh, emulate.sh part 4, and on a GPU by tests/gpu/check_unet*.sh): a
# value other than on|off is a usage error; with --backend cuda and no device exit 4 as before;
# on the CPU path (one case at a time, whatever the option) the stream is the same as without the
# option but for the option recorded in the provenance. Also: --help documents the tiled fallback
# of the device path, and VP_CUDA_MEM_LIMIT_MIB leaves the CPU path alone.
load helpers
bats_require_minimum_version 1.5.0

M="$VOXPIPE_ROOT/tests/golden/resenc/model.safetensors"

setup_file() {
    [ -f "$VOXPIPE_DATA/totalseg/example_ct_sm.nii.gz" ] || return 0
    mkdir -p "$VOXPIPE_TMP"
    # two small crops of the shared CT in one stream (the second smaller than the patch: zero-padded)
    vol-read "$VOXPIPE_DATA/totalseg/example_ct_sm.nii.gz" >"$VOXPIPE_TMP/unet_pf_ct.vxp"
    crop --box 42,34,8,86,66,21 -i "$VOXPIPE_TMP/unet_pf_ct.vxp" -o "$VOXPIPE_TMP/unet_pf_d.vxp"
    crop --box 50,40,10,80,60,18 -i "$VOXPIPE_TMP/unet_pf_ct.vxp" -o "$VOXPIPE_TMP/unet_pf_c.vxp"
    vol-cat -i "$VOXPIPE_TMP/unet_pf_d.vxp" -i "$VOXPIPE_TMP/unet_pf_c.vxp" -o "$VOXPIPE_TMP/unet_pf_in.vxp"
}

@test "--prefetch: a value other than on|off is a usage error (exit 2), nothing written; --help documents it" {
    for v in maybe ON 1 ""; do
        run -2 infer-unet --backend cuda --prefetch "$v" -m "$M" -i "$VOXPIPE_TMP/unet_pf_in.vxp" -o "$T/out.vxp"
        [[ "$output" == *"option '--prefetch': unknown value '$v'"* ]]
        [ ! -e "$T/out.vxp" ]
    done
    run -0 infer-unet --help
    [[ "$output" == *"--prefetch on|off"* ]]
    [[ "$output" == *"With --prefetch on (the default for cuda) a reader thread"*"reported after this case is written"* ]]
}

@test "--prefetch on|off with --backend cuda and no GPU: exit 4 as before, stdout empty, no output file" {
    have_gpu && skip "this machine has a GPU (tests/gpu/check_unet.sh covers it)"
    [ -f "$VOXPIPE_TMP/unet_pf_in.vxp" ] || skip "no shared CT"
    for v in on off; do
        run --separate-stderr -4 infer-unet --backend cuda --prefetch "$v" -m "$M" -i "$VOXPIPE_TMP/unet_pf_in.vxp" -o "$T/out.vxp"
        [ -z "$output" ]
        [[ "$stderr" == *"backend cuda is not available"* ]]
        [ ! -e "$T/out.vxp" ]
    done
}

@test "--prefetch on|off leaves the CPU path as it was: the same stream as without the option (but the recorded option)" {
    [ -f "$VOXPIPE_TMP/unet_pf_in.vxp" ] || skip "no shared CT"
    infer-unet -m "$M" -i "$VOXPIPE_TMP/unet_pf_in.vxp" -o "$T/plain.vxp"
    for v in on off; do
        run -0 infer-unet -v --prefetch "$v" -m "$M" -i "$VOXPIPE_TMP/unet_pf_in.vxp" -o "$T/$v.vxp"
        [[ "$output" != *"--prefetch on: the next case"* ]]
        run -0 "$VOXPIPE_PY" "$VOXPIPE_ROOT/tests/gpu/emu/same_stream.py" "$T/plain.vxp" "$T/$v.vxp" --drop-opt --prefetch
        [ "$output" = "same: 2 objects" ]
    done
    # control: the comparison sees the recorded option when it is not dropped
    run -1 "$VOXPIPE_PY" "$VOXPIPE_ROOT/tests/gpu/emu/same_stream.py" "$T/plain.vxp" "$T/on.vxp"
    [[ "$output" == "differ: object 0" ]]
}

@test "--help documents the device path's tiled fallback; VP_CUDA_MEM_LIMIT_MIB does not change the CPU path" {
    run -0 infer-unet --help
    [[ "$output" == *"the tiled path runs: the case stays on"*"the host, the slab of patch-depth rows"* ]]
    [[ "$output" == *"VP_CUDA_MEM_LIMIT_MIB"* ]]
    [[ "$output" == *"one batch of tiles does not fit), or no GPU: exit 4"* ]]
    [ -f "$VOXPIPE_TMP/unet_pf_in.vxp" ] || skip "no shared CT"
    infer-unet -m "$M" -i "$VOXPIPE_TMP/unet_pf_c.vxp" -o "$T/a.vxp"
    VP_CUDA_MEM_LIMIT_MIB=0 infer-unet -m "$M" -i "$VOXPIPE_TMP/unet_pf_c.vxp" -o "$T/b.vxp"
    cmp "$T/a.vxp" "$T/b.vxp"
}
