#!/usr/bin/env bats
# train-unet / train-ressegnet --backend: the option's errors and the CPU default, on any machine.
# The GPU path itself is checked by tests/gpu/emulate_train.sh (CPU emulation of the device) and
# tests/gpu/check_train.sh (a real GPU).
bats_require_minimum_version 1.5.0
load helpers

CHECK() { "$VOXPIPE_PY" "$SCRIPTS/train_check.py" "$@"; }
UNET=(--features 2,4 --patch 8,8,8 --epochs 1 --iters-per-epoch 2 --seed 5 --batch 2 -q)
SRN=(--init-filters 2 --norm-groups 1 --blocks-down 1,1 --blocks-up 1 --patch 8,8,8 --epochs 1 --iters-per-epoch 2 --seed 5 -q)

has_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }

@test "--backend cpu gives the same bytes as no --backend" {
    CHECK synth "$T/syn.vxp" --n 2 --seed 1
    train-unet -i "$T/syn.vxp" -o "$T/a" "${UNET[@]}"
    train-unet -i "$T/syn.vxp" -o "$T/b" "${UNET[@]}" --backend cpu
    cmp "$T/a/last.optim.safetensors" "$T/b/last.optim.safetensors"
    cmp "$T/a/last.safetensors" "$T/b/last.safetensors"
}

@test "a malformed --backend is a usage error (exit 2), nothing written" {
    CHECK synth "$T/syn.vxp" --n 2 --seed 1
    for b in gpu cuda:x cuda:0:f64 cuda:0:f16:x cudax; do
        refuses train-unet 2 train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --backend "$b"
        says "--backend '$b': expected cpu, cuda, cuda:N, cuda:MATH or cuda:N:MATH"
        refuses train-ressegnet 2 train-ressegnet -i "$T/syn.vxp" -o "$T/run" "${SRN[@]}" --backend "$b"
        nothing_left syn.vxp
    done
}

@test "--backend cuda without a usable GPU: exit 4, the reason on stderr, nothing written" {
    has_gpu && skip "this machine has a GPU (tests/gpu/check_train.sh covers it)"
    CHECK synth "$T/syn.vxp" --n 2 --seed 1
    for b in cuda cuda:0:bf16 cuda:f16; do
        refuses train-unet 4 train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --backend "$b"
        says "cuda"
        [[ "$stderr" == *"no CUDA device"* || "$stderr" == *"built without CUDA"* ]]
        refuses train-ressegnet 4 train-ressegnet -i "$T/syn.vxp" -o "$T/run" "${SRN[@]}" --backend "$b"
        nothing_left syn.vxp
    done
}

@test "--backend cuda:N with several ranks is refused (each rank takes the GPU of its local rank)" {
    command -v mpirun >/dev/null && train-unet --help | grep -q "MPI yes" || skip "train-unet built without MPI"
    CHECK synth "$T/syn.vxp" --n 2 --seed 1
    run --separate-stderr env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun --allow-run-as-root --oversubscribe \
        -np 2 train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --backend cuda:1
    echo "$stderr"
    [ "$status" -ne 0 ]
    says "with 2 ranks each rank takes GPU (local rank % devices): leave N out"
    [ ! -e "$T/run" ]
}
