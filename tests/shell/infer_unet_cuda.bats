#!/usr/bin/env bats
# infer-unet's GPU options on a machine without a GPU (the GPU runs themselves are checked by
# tests/gpu/emulate.sh part 4 on the CPU and tests/gpu/check_unet.sh on a GPU): --backend names and
# --sw-batch checked as usage errors; --backend cuda without a device is exit 4 with the reason on
# stderr, nothing on stdout and no output file.
load helpers
bats_require_minimum_version 1.5.0

M="$VOXPIPE_ROOT/tests/golden/resenc/model.safetensors"

setup_file() {
    [ -f "$VOXPIPE_DATA/totalseg/example_ct_sm.nii.gz" ] || return 0
    mkdir -p "$VOXPIPE_TMP"
    vol-read "$VOXPIPE_DATA/totalseg/example_ct_sm.nii.gz" | crop --box 40,30,6,90,70,20 -o "$VOXPIPE_TMP/unet_cuda_in.vxp"
}

@test "--backend: an unknown name is a usage error (exit 2), nothing written" {
    run -2 infer-unet --backend gpu -m "$M" -i "$VOXPIPE_TMP/unet_cuda_in.vxp" -o "$T/out.vxp"
    [[ "$output" == *"--backend: 'gpu' is not cpu, ref, cuda, cuda:N or cuda:N:MATH"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "--sw-batch outside 1..64 is a usage error (exit 2)" {
    run -2 infer-unet --sw-batch 0 -m "$M"
    [[ "$output" == *"sw-batch"* ]]
    run -2 infer-unet --sw-batch 65 -m "$M"
    [[ "$output" == *"sw-batch"* ]]
}

@test "--backend cuda, cuda:0:tf32 and cuda:1 without a GPU: exit 4, the reason on stderr, stdout empty, no output file" {
    have_gpu && skip "this machine has a GPU (tests/gpu/check_unet.sh covers it)"
    [ -f "$VOXPIPE_TMP/unet_cuda_in.vxp" ] || skip "no shared CT"
    for b in cuda cuda:0:tf32 cuda:1; do
        run --separate-stderr -4 infer-unet --backend "$b" -m "$M" -i "$VOXPIPE_TMP/unet_cuda_in.vxp" -o "$T/out.vxp"
        [ -z "$output" ]
        [[ "$stderr" == *"infer-unet: error: "* ]]
        [[ "$stderr" == *"backend $b is not available"* ]]
        [ ! -e "$T/out.vxp" ]
    done
}

@test "--backend cpu still segments the crop (the CPU path is untouched by the wiring)" {
    [ -f "$VOXPIPE_TMP/unet_cuda_in.vxp" ] || skip "no shared CT"
    infer-unet -m "$M" -i "$VOXPIPE_TMP/unet_cuda_in.vxp" -o "$T/a.vxp"
    infer-unet --backend cpu --sw-batch 4 -m "$M" -i "$VOXPIPE_TMP/unet_cuda_in.vxp" -o "$T/b.vxp"
    run "$VOXPIPE_PY" "$VOXPIPE_ROOT/tests/gpu/emu/compare_infer.py" "$T/a.vxp" "$T/b.vxp"
    [ "$status" -eq 0 ]
    [[ "$output" == *"0 of 28000 labels differ"* ]]
}
