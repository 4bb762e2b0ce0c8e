#!/usr/bin/env bats
# infer-ressegnet's GPU options on a machine without a GPU (the GPU runs themselves are checked by
# tests/gpu/emulate.sh on the CPU and tests/gpu/check.sh on a GPU): --backend names, --aggregate
# f16 and --sw-batch checked as usage errors; --backend cuda without a device is exit 4 with the
# reason on stderr, nothing on stdout and no output file; a deconv model is no longer refused (the
# device runs it), and --help documents the tiled fallback (VP_CUDA_MEM_LIMIT_MIB); --prefetch on|off:
# other values are usage errors, without a GPU it changes nothing (exit 4), the CPU path ignores it.
load helpers
bats_require_minimum_version 1.5.0

G="$VOXPIPE_ROOT/tests/golden/segresnet"
CHK="$VOXPIPE_ROOT/tests/scripts/segresnet_check.py"

@test "--backend: an unknown name is a usage error (exit 2), nothing written" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    run -2 infer-ressegnet --backend gpu -m "$G/model_small.safetensors" -i "$T/in.vxp" -o "$T/out.vxp"
    [[ "$output" == *"--backend: 'gpu' is not cpu, ref, cuda, cuda:N or cuda:N:MATH"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "--aggregate f16 with a CPU backend is a usage error (exit 2)" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    run -2 infer-ressegnet --aggregate f16 -m "$G/model_small.safetensors" -i "$T/in.vxp" -o "$T/out.vxp"
    [[ "$output" == *"--aggregate f16 is for the cuda backend"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "--sw-batch outside 1..64 is a usage error (exit 2)" {
    run -2 infer-ressegnet --sw-batch 0 -m "$G/model_small.safetensors"
    [[ "$output" == *"sw-batch"* ]]
    run -2 infer-ressegnet --sw-batch 65 -m "$G/model_small.safetensors"
    [[ "$output" == *"sw-batch"* ]]
}

@test "--backend cuda and cuda:0:f16 without a GPU: exit 4, the reason on stderr, stdout empty, no output file" {
    have_gpu && skip "this machine has a GPU (tests/gpu/check.sh covers it)"
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    for b in cuda cuda:0:f16; do
        run --separate-stderr -4 infer-ressegnet --backend "$b" -m "$G/model_small.safetensors" -i "$T/in.vxp" -o "$T/out.vxp"
        [ -z "$output" ]
        [[ "$stderr" == *"infer-ressegnet: error: "* ]]
        [[ "$stderr" == *"backend $b is not available"* ]]
        [ ! -e "$T/out.vxp" ]
    done
}

@test "a deconv model with --backend cuda --aggregate f16 is no usage error any more (the device runs deconv): without a GPU, exit 4" {
    have_gpu && skip "this machine has a GPU (tests/gpu/check_pipeline.sh covers it)"
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    run --separate-stderr -4 infer-ressegnet --backend cuda --aggregate f16 --no-preprocess -m "$G/model_deconv.safetensors" -i "$T/in.vxp" -o "$T/out.vxp"
    [ -z "$output" ]
    [[ "$stderr" != *"runs op by op"* ]]
    [[ "$stderr" == *"backend cuda is not available"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "--help documents the tiled fallback and VP_CUDA_MEM_LIMIT_MIB, and deconv on the device" {
    run -0 infer-ressegnet --help
    [[ "$output" == *"takes the tiled path"* ]]
    [[ "$output" == *"VP_CUDA_MEM_LIMIT_MIB=N"* ]]
    [[ "$output" == *"upsample_mode deconv"*"run their ConvTranspose3d on the device"* ]]
    [[ "$output" != *"host-staged, slow"* ]]
}

@test "--prefetch: a value other than on|off is a usage error (exit 2), nothing written; --help documents it" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    for v in maybe ON 1 ""; do
        run -2 infer-ressegnet --backend cuda --prefetch "$v" -m "$G/model_small.safetensors" -i "$T/in.vxp" -o "$T/out.vxp"
        [[ "$output" == *"option '--prefetch': unknown value '$v'"* ]]
        [ ! -e "$T/out.vxp" ]
    done
    run -0 infer-ressegnet --help
    [[ "$output" == *"--prefetch on|off"* ]]
    [[ "$output" == *"With --prefetch on (the default for cuda) a"*"at most one case ahead"* ]]
}

@test "--prefetch on|off with --backend cuda and no GPU: exit 4 as before, stdout empty, no output file" {
    have_gpu && skip "this machine has a GPU (tests/gpu/check_pipeline.sh covers it)"
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    for v in on off; do
        run --separate-stderr -4 infer-ressegnet --backend cuda --prefetch "$v" -m "$G/model_small.safetensors" -i "$T/in.vxp" -o "$T/out.vxp"
        [ -z "$output" ]
        [[ "$stderr" == *"backend cuda is not available"* ]]
        [ ! -e "$T/out.vxp" ]
    done
}

@test "--prefetch on|off leaves the CPU path as it was: the same stream as without the option (but the recorded option)" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    vol-cat -i "$T/in.vxp" -i "$T/in.vxp" -o "$T/in2.vxp"
    infer-ressegnet -m "$G/model_small.safetensors" --no-preprocess -i "$T/in2.vxp" -o "$T/plain.vxp"
    for v in on off; do
        run -0 infer-ressegnet -v --prefetch "$v" -m "$G/model_small.safetensors" --no-preprocess -i "$T/in2.vxp" -o "$T/$v.vxp"
        [[ "$output" != *"--prefetch on: the next case"* ]]
        run -0 "$VOXPIPE_PY" "$VOXPIPE_ROOT/tests/gpu/emu/same_stream.py" "$T/plain.vxp" "$T/$v.vxp" --drop-opt --prefetch
        [ "$output" = "same: 2 objects" ]
    done
    # control: the comparison sees the recorded option when it is not dropped
    run -1 "$VOXPIPE_PY" "$VOXPIPE_ROOT/tests/gpu/emu/same_stream.py" "$T/plain.vxp" "$T/on.vxp"
    [[ "$output" == "differ: object 0" ]]
}
