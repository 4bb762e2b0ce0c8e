#!/usr/bin/env bash
# tests/gpu/emulate_train.sh - GPU training (trainer_cuda.h, nn_cuda_train.h) without a GPU, by the
# approach of tests/gpu/emulate.sh (part 2): every lib/cuda file but the cuDNN one is turned into
# host C++ (tests/gpu/emu/prep.py), on a pretend device whose memory is host memory
# (tests/gpu/emu/emu_rt.h/.cc; convolutions are the reference ops), and linked with
#   1. tests/gpu/test_cuda_train.c: a small SegResNet (AdamW, DiceCE) and a small PlainConvUNet
#      (anisotropic stride, deep supervision, SGD nesterov, clipping) trained 3 steps on the CPU
#      path and on the device path in f32 -- loss, every gradient and every weight within 1e-4
#      relative per tensor -- plus the loss scaler (an injected inf / NaN skips the step and halves
#      the scale; growth after the interval), the restart of the device optimizer and the
#      checkpoint round trip;
#   2. the trainer programs themselves (trainers/train-unet.c, train-ressegnet.c) with
#      --backend cuda against --backend cpu on synthetic cases: checkpoints (weights, optimizer
#      state, metadata) equal within float reassociation, in the same format, --resume of a
#      device run continues it, and bad --backend names are usage errors (exit 2, nothing written);
#   1b. tests/gpu/test_cuda_tape.c: the device tape (vp_trainable_bind_device: activations,
#      gradients and weights on the device) against the CPU path and the staged GPU path, 3 steps
#      of both networks within 1e-4 relative; the host<->device copies of a step, counted by the
#      emulated runtime (every cudaMemcpyAsync of lib/cuda goes through EMU_CNT_MEMCPY here): with
#      the loss on the device (lib/cuda/nn_cuda_loss.cu, the default) the batch and its targets up
#      (2 copies), only the loss scalars down; with VP_TRAIN_HOST_LOSS=1 the logits' gradients up
#      and the logits down; nothing per layer; the device loss against vp_loss_eval for every
#      loss configuration, and the tape with device loss vs host loss (weights within 1e-5);
#      Then test_cuda_tape --pair 1e-5: the tape with NDHWC (channels-last) activations against the
#      NCDHW tape of the same model, SegResNet and U-Net, 3 steps, loss, gradients and weights within
#      1e-5 relative per tensor (the U-Net's bit-identical: InstanceNorm sums in the same order in
#      both layouts; SegResNet's GroupNorm with 2 channels per group does not: about 2e-6);
#   3. device memory: the emulated runtime counts the allocations alive at exit; the test programs
#      and the trainer programs must end with no more than a run that only creates the backend
#      (its lasting scratch and pinned buffers, made lazily: fewer is no leak, one more is); a
#      deliberate leak (test_cuda_tape --leak) must fail that check.
#   The trainers also run with VP_TRAIN_LAYOUT=ndhwc (part 2): checkpoints within 1e-5 of NCDHW's
#   (train-unet: the same bytes).
# The trainer programs train on the device tape by default; part 2 also runs them with
# VP_TRAIN_STAGED=1 (the per-op host staging of before) and compares the checkpoints.
# Proves the logic (indexing, staging, update formulas, scaler rules, file format) on any machine;
# cuDNN, f16/bf16 numerics, NCCL and speed are for tests/gpu/check_train.sh on a GPU.
#   usage: tests/gpu/emulate_train.sh        exit 0 all pass, 1 a failure
#   env:   EMU_SAN=1  the same under AddressSanitizer + UndefinedBehaviorSanitizer (needs build-san/)
#          EMU_ONLY=engine|tape|programs  one part alone (1, 1b, 2; the leak counts go with them)
#          EMU_TAPE_ARGS="--only unet --layout ndhwc"  arguments of test_cuda_tape (part 1b;
#                     --only loss|segresnet|unet|unet4 runs one section)
#          PY         python with numpy (default .venv/bin/python)
# Needs build/ (make) for the library objects and CUDA's headers. About 8 minutes on 2 busy cores.
set -u
cd "$(dirname "$0")/../.." || exit 1
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
PY=${PY:-$PWD/.venv/bin/python}
LIBB=build B=${EMU_B:-build/gpu-emu-train} SAN=() SANMAKE=0
# shellcheck disable=SC2054 # -fsanitize=address,undefined is one flag
[ "${EMU_SAN:-0}" = 1 ] && LIBB=build-san B=${EMU_B:-build-san/gpu-emu-train} SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer) SANMAKE=1
mkdir -p "$B"
[ -f "$CUDA_HOME/include/cuda_fp16.h" ] || { echo "emulate_train: SKIP: no CUDA headers in $CUDA_HOME/include"; exit 0; }
ls "$LIBB"/lib/*.o >/dev/null 2>&1 || { echo "emulate_train: build the library first (make, or make SAN=1 for EMU_SAN=1)"; exit 1; }
CXX=${CXX:-g++}
FL=(-std=c++20 -pthread -O1 -g -w "${SAN[@]}" -Ilib -Ilib/cuda -Itests/gpu/emu -I"$CUDA_HOME/include" -I/usr/include/nifti)
CF=(-std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Wno-unused-parameter "${SAN[@]}" -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA)
LDLIBS=$(make -s SAN=$SANMAKE print-ldlibs)
# host<->device copy counters: every cudaMemcpyAsync of the emulated files is counted by kind
cat >"$B/emu_count.h" <<'HDR'
#pragma once
#include <stddef.h>
extern "C" long long vp_emu_copy_calls[4], vp_emu_copy_bytes[4];
static inline void emu_note_copy(int kind, size_t n)
{
    if (kind >= 0 && kind < 4) vp_emu_copy_calls[kind]++, vp_emu_copy_bytes[kind] += (long long)n;
}
#define EMU_CNT_MEMCPY(d, s, n, k, st) (emu_note_copy((int)(k), (size_t)(n)), cudaMemcpyAsync(d, s, n, k, st))
HDR
printf 'extern "C" { long long vp_emu_copy_calls[4], vp_emu_copy_bytes[4]; }\n' >"$B/emu_count.cc"
for f in nn_cuda nn_cuda_mem nn_cuda_ops nn_cuda_grad nn_cuda_segresnet nn_cuda_sliding nn_cuda_kernels nn_cuda_kernels_grad nn_cuda_train nn_cuda_loss; do
    python3 tests/gpu/emu/prep.py "lib/cuda/$f.cu" emu_rt.h | sed 's/\bcudaMemcpyAsync(/EMU_CNT_MEMCPY(/g' >"$B/$f.cc" &&
        "$CXX" "${FL[@]}" -include "$B/emu_count.h" -c -o "$B/$f.o" "$B/$f.cc" || exit 1
done
"$CXX" "${FL[@]}" -c -o "$B/emu_rt.o" tests/gpu/emu/emu_rt.cc || exit 1
"$CXX" "${FL[@]}" -c -o "$B/emu_count.o" "$B/emu_count.cc" || exit 1
rm -f "$B/libnostub.a"
ar rcs "$B/libnostub.a" "$LIBB"/lib/*.o
link() { # output, C sources...
    local out=$1 objs=()
    shift
    for s in "$@"; do
        cc "${CF[@]}" -c -o "$B/$(basename "$s" .c).o" "$s" || return 1
        objs+=("$B/$(basename "$s" .c).o")
    done
    # shellcheck disable=SC2086 # the link line is meant to split into words
    "$CXX" -pthread "${SAN[@]}" -o "$out" "${objs[@]}" "$B"/nn_cuda*.o "$B/emu_rt.o" "$B/emu_count.o" "$B/libnostub.a" $LDLIBS
}
link "$B/test_cuda_train" tests/gpu/test_cuda_train.c || exit 1
link "$B/test_cuda_tape" tests/gpu/test_cuda_tape.c || exit 1
link "$B/train-unet" trainers/train-unet.c || exit 1
link "$B/train-ressegnet" trainers/train-ressegnet.c || exit 1

# the emulated shared-memory kernels start a real thread per GPU thread (emu.h): most of a
# section's time is the kernel making thread stacks (the 3-stage U-Net section: 183 s of system
# time of 216 s CPU); glibc's stack cache sized to keep them all (address space, not memory) makes
# the runs about 1.7x faster
export GLIBC_TUNABLES=${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.pthread.stack_cache_size=4294967296
rc=0
fail() { echo "FAIL: $*"; rc=1; }
live() { sed -n 's/^emu: \([0-9]*\) device allocations live.*/\1/p' "$1"; }

part() { [ -z "${EMU_ONLY:-}" ] || [ "$EMU_ONLY" = "$1" ]; }
"$B/test_cuda_train" --baseline 2>"$B/base.err" || fail "baseline run (exit $?): $(tail -3 "$B/base.err")"
base=$(live "$B/base.err")
engine() { # program name [args]: run, print, check the exit and the allocations alive at exit
    local prog=$1 out e n
    shift
    out=$("$B/$prog" "$@" 2>"$B/$prog.err"); e=$?
    printf '%s\n' "$out"
    [ $e -eq 0 ] || { fail "$prog exit $e"; tail -5 "$B/$prog.err"; }
    n=$(live "$B/$prog.err")
    if leak_ok "$n"; then echo "ok $prog device memory: $n allocations alive at exit, the backend alone leaves $base: no leak"
    else fail "$prog device memory: ${n:-?} allocations alive at exit, more than the backend alone leaves (${base:-?}): a leak"; fi
}
# a leak is MORE allocations alive at exit than the backend's own lasting ones (its scratch and
# pinned buffers, made lazily: a run that never needs one ends with fewer, which is no leak);
# both counts must be numbers
leak_ok() { [[ "$base" =~ ^[0-9]+$ && "$1" =~ ^[0-9]+$ ]] && [ "$1" -le "$base" ]; }
# ---- 1. the engine: parity, scaler, restart, round trip
part engine && engine test_cuda_train
# ---- 1b. the device tape: parity with the CPU and the staged path, host<->device copies per step
# shellcheck disable=SC2086 # EMU_TAPE_ARGS is meant to split into words
part tape && engine test_cuda_tape ${EMU_TAPE_ARGS:-}
# the NDHWC tape against the NCDHW tape of the same model (test_cuda_tape --pair): SegResNet and
# the 3-stage U-Net, 3 steps, gradients and weights within 1e-5 relative per tensor (the U-Net
# bit-identical; GroupNorm with several channels per group sums in another order in NDHWC)
part tape && [ -z "${EMU_TAPE_ARGS:-}" ] && for sec in segresnet unet; do engine test_cuda_tape --pair 1e-5 --only $sec; done
# the leak check itself: test_cuda_tape --leak keeps one device tensor past exit (no section runs;
# its warm-up makes the backend's lasting allocations, as the baseline has them): it must fail
if part tape; then
    "$B/test_cuda_tape" --only none --leak >/dev/null 2>"$B/leak.err"
    n=$(live "$B/leak.err")
    if [[ "$n" =~ ^[0-9]+$ ]] && ! leak_ok "$n"; then echo "ok the leak check catches a deliberate leak: $n allocations alive at exit > $base"
    else fail "the leak check misses a deliberate leak: ${n:-?} allocations alive at exit, baseline ${base:-?}"; fi
fi
part programs || { echo "emulate_train: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"; exit $rc; }

# ---- 2. the programs: --backend cuda vs cpu, same files, resume
T=$B/prog
rm -rf "$T" && mkdir -p "$T"
CHECK() { "$PY" tests/scripts/train_check.py "$@"; }
CHECK synth "$T/syn.vxp" --n 3 --seed 1 || exit 1
# tiny networks: the emulated device runs every op on one thread (about 20 s per epoch here)
UNET=(--features 2,4 --patch 8,8,8 --iters-per-epoch 2 --seed 5 --batch 2 -q)
SRN=(--init-filters 2 --norm-groups 1 --blocks-down 1,1 --blocks-up 1 --patch 8,8,8 --iters-per-epoch 2 --seed 5 -q)
prog() { # name program args...: run, keep stderr, fail on a non-zero exit
    local name=$1
    shift
    "$@" 2>"$T/$name.err" || { fail "$name: exit $? ($(tail -2 "$T/$name.err"))"; return 1; }
}
for arch in unet ressegnet; do
    if [ $arch = unet ]; then A=("${UNET[@]}"); else A=("${SRN[@]}"); fi
    prog "$arch-cuda" "$B/train-$arch" -i "$T/syn.vxp" -o "$T/$arch-cuda" --epochs 2 "${A[@]}" --backend cuda:0:f32
    prog "$arch-cuda-2" "$B/train-$arch" -i "$T/syn.vxp" -o "$T/$arch-cuda2" --epochs 2 "${A[@]}" --backend cuda:0:f32
    prog "$arch-cpu-2" "$B/train-$arch" -i "$T/syn.vxp" -o "$T/$arch-cpu2" --epochs 2 "${A[@]}"
    VP_TRAIN_STAGED=1 prog "$arch-staged" "$B/train-$arch" -i "$T/syn.vxp" -o "$T/$arch-staged" --epochs 2 "${A[@]}" --backend cuda:0:f32
    if o=$(CHECK cmp "$T/$arch-cuda/last.optim.safetensors" "$T/$arch-staged/last.optim.safetensors" --rtol 1e-4 --atol 1e-6); then
        echo "ok train-$arch --backend cuda, device tape vs VP_TRAIN_STAGED=1 (host staging), 2 epochs: $o$(cmp -s "$T/$arch-cuda/last.optim.safetensors" "$T/$arch-staged/last.optim.safetensors" && echo ', same bytes')"
    else fail "train-$arch device tape vs staged: $o"; fi
    # the device tape with NDHWC (channels-last) activations: the checkpoint of the NCDHW run
    VP_TRAIN_LAYOUT=ndhwc prog "$arch-ndhwc" "$B/train-$arch" -i "$T/syn.vxp" -o "$T/$arch-ndhwc" --epochs 2 "${A[@]}" --backend cuda:0:f32
    for f in last.safetensors last.optim.safetensors; do
        if o=$(CHECK cmp "$T/$arch-ndhwc/$f" "$T/$arch-cuda/$f" --rtol 1e-5 --atol 1e-7); then
            echo "ok train-$arch --backend cuda, VP_TRAIN_LAYOUT=ndhwc vs ncdhw, 2 epochs, $f: $o$(cmp -s "$T/$arch-ndhwc/$f" "$T/$arch-cuda/$f" && echo ', same bytes')"
        else fail "train-$arch ndhwc vs ncdhw $f: $o"; fi
    done
    n=$(live "$T/$arch-cuda.err")
    if leak_ok "$n"; then echo "ok train-$arch --backend cuda: $n device allocations alive at exit, as the backend alone"
    else fail "train-$arch --backend cuda: $n device allocations alive at exit (backend alone: $base)"; fi
    if cmp -s "$T/$arch-cuda/last.optim.safetensors" "$T/$arch-cuda2/last.optim.safetensors"; then
        echo "ok train-$arch --backend cuda: two runs give the same bytes"
    else fail "train-$arch --backend cuda: two runs differ"; fi
    for f in last.safetensors last.optim.safetensors; do
        if o=$(CHECK cmp "$T/$arch-cuda/$f" "$T/$arch-cpu2/$f" --rtol 1e-3 --atol 1e-5); then echo "ok train-$arch cuda vs cpu, 2 epochs, $f: $o"
        else fail "train-$arch cuda vs cpu $f: $o"; fi
    done
    # the same metadata (architecture, spacing, labels, patch, counters) as the CPU trainer writes
    m=$("$PY" -c '
import sys; sys.path.insert(0, "tests/scripts"); import train_check as t
a, b = (t.read_st(p)[1] for p in sys.argv[1:3])
print("same" if a == b else "differ: %s" % sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))' \
        "$T/$arch-cuda/last.safetensors" "$T/$arch-cpu2/last.safetensors")
    if [ "$m" = same ]; then echo "ok train-$arch cuda vs cpu: same __metadata__ in last.safetensors"
    else fail "train-$arch metadata $m"; fi
    # resume both runs for a third epoch (the poly learning rate depends on --epochs, so the
    # reference is the CPU run resumed the same way): the device run continues as the CPU one
    cp -r "$T/$arch-cuda" "$T/$arch-cross" # a device checkpoint, resumed on the CPU
    prog "$arch-cross" "$B/train-$arch" -i "$T/syn.vxp" -o "$T/$arch-cross" --epochs 3 "${A[@]}" --resume
    prog "$arch-resume" "$B/train-$arch" -i "$T/syn.vxp" -o "$T/$arch-cuda" --epochs 3 "${A[@]}" --backend cuda --resume
    prog "$arch-cpu-resume" "$B/train-$arch" -i "$T/syn.vxp" -o "$T/$arch-cpu2" --epochs 3 "${A[@]}" --resume
    if o=$(CHECK cmp "$T/$arch-cuda/last.optim.safetensors" "$T/$arch-cpu2/last.optim.safetensors" --rtol 1e-3 --atol 1e-5); then
        echo "ok train-$arch --resume for a 3rd epoch, cuda vs cpu: $o"
    else fail "train-$arch resume: $o"; fi
    if o=$(CHECK cmp "$T/$arch-cross/last.optim.safetensors" "$T/$arch-cpu2/last.optim.safetensors" --rtol 1e-3 --atol 1e-5); then
        echo "ok train-$arch device checkpoint resumed on the CPU = CPU run resumed: $o"
    else fail "train-$arch cross resume: $o"; fi
done
# bad --backend names: usage error, nothing written
for b in gpu cuda:x cuda:0:f64; do
    "$B/train-unet" -i "$T/syn.vxp" -o "$T/bad" "${UNET[@]}" --epochs 1 --backend "$b" 2>"$T/bad.err"; e=$?
    if [ $e -eq 2 ] && grep -q "backend" "$T/bad.err" && [ ! -e "$T/bad" ]; then echo "ok --backend $b: exit 2, nothing written"
    else fail "--backend $b: exit $e ($(head -1 "$T/bad.err"))"; fi
done
echo "emulate_train: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
