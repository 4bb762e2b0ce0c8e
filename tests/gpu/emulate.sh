#!/usr/bin/env bash
# tests/gpu/emulate.sh - the CUDA backend without a GPU, in two parts:
#  1. kernels: lib/cuda/nn_cuda_kernels.cu, nn_cuda_kernels_grad.cu and nn_cuda_sliding.cu are
#     turned into host C++ (tests/gpu/emu/prep.py: launches become loops over blocks and threads,
#     emu.h; shared-memory reductions run as real threads at a barrier) and checked against the
#     reference ops (tests/gpu/emu/test_emu_*.cc);
#  2. the whole backend: every lib/cuda file but the cuDNN one, on a pretend device whose memory is
#     host memory with a 4 GiB budget (emu_rt.h/.cc; the convolutions are the reference ops), runs
#     the GPU test programs themselves -- test_cuda_ops (also --oom), test_cuda_grad,
#     test_cuda_sliding, test_cuda_segresnet -- and counts leaked and doubly freed device memory;
#  3. infer-ressegnet itself, built against the pretend device (filters/infer-ressegnet.c + the
#     wiring lib/nn_infer_cuda.c; tests/gpu/emu/infer.sh): on two crops of the shared CT
#     (../shared/data/totalseg/example_ct_sm.nii.gz; one smaller than the window) in one stream,
#     with the golden SegResNet (tests/golden/segresnet/model_small), the labels of --backend cuda
#     (f32, NCDHW) and cuda:0:tf32 (NDHWC, --sw-batch 3), both with --prob, must equal --backend
#     cpu's voxel for voxel (probabilities within f16 rounding); --aggregate f16 must agree on
#     >= 99.9% of voxels; then out of device memory (budgets that fail while loading the weights,
#     uploading the case, and inside the sliding window): exit 4, "out of device memory" on
#     stderr, nothing on stdout, no output file left, no bad frees, and no more device allocations
#     live at exit than after a successful run (nothing leaked); tests/gpu/emu/infer_graphs.sh: the
#     same with VP_CUDA_GRAPHS=1 (captured and replayed window batches) equal to the eager stream.
#  4. infer-unet itself, built against the pretend device (filters/infer-unet.c + lib/nn_infer_cuda_unet.c
#     + lib/cuda/nn_cuda_unet*.cu; tests/gpu/emu/infer_unet.sh): the golden ResEnc and PlainConvUNet
#     on crops of the shared CT, --backend cuda labels equal to --backend cpu's (f16 and f32 bands,
#     tile batches, two folds, --tta, tf32/NDHWC, the resampled path), out of device memory exit 4.
# This checks indexing, layouts, staging, in-place rules, errors, memory handling, the deterministic
# sums and the sliding window's ring band on any machine; cuDNN, the precisions' numerics, streams
# and real parallel execution are left to tests/gpu/check.sh on a GPU. Needs build/ (make) for the
# library objects, and CUDA's headers (/usr/local/cuda/include). About 4 minutes on 2 cores.
#   usage: tests/gpu/emulate.sh        exit 0 all pass, 1 a failure
#   env:   EMU_ONLY=kernels|backend|infer|unet  one part only (backend, infer and unet build part 2's objects)
#          EMU_SAN=1  the same under AddressSanitizer + UndefinedBehaviorSanitizer (needs build-san/:
#          make SAN=1), which also catches out-of-bounds indexing in the kernels
set -u
cd "$(dirname "$0")/../.." || exit 1
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
LIBB=build B=build/gpu-emu SAN=() SANMAKE=0
# shellcheck disable=SC2054 # -fsanitize=address,undefined is one flag
[ "${EMU_SAN:-0}" = 1 ] && LIBB=build-san B=build-san/gpu-emu SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer) SANMAKE=1
mkdir -p "$B"
[ -f "$CUDA_HOME/include/cuda_fp16.h" ] || { echo "emulate: SKIP: no CUDA headers in $CUDA_HOME/include"; exit 0; }
ls "$LIBB"/lib/*.o >/dev/null 2>&1 || { echo "emulate: build the library first (make, or make SAN=1 for EMU_SAN=1)"; exit 1; }
CXX=${CXX:-g++}
ONLY=${EMU_ONLY:-all}
rc=0
FL=(-std=c++20 -pthread -O1 -g -w "${SAN[@]}" -Ilib -Itests/gpu/emu -I"$CUDA_HOME/include" -I/usr/include/nifti)
for f in nn_cuda_kernels nn_cuda_kernels_grad nn_cuda_sliding; do
    python3 tests/gpu/emu/prep.py "lib/cuda/$f.cu" >"$B/$f.cc" || exit 1
done
# the sliding window's entry point under another name (the emulated tensors are host tensors)
sed -i 's/#include "emu.h"/#include "emu_sl.h"/; s/extern "C" int vp_cuda_sliding_window/int emu_sliding_window/' "$B/nn_cuda_sliding.cc"
# the library without the CUDA objects, with the stub
cc -std=c11 -D_GNU_SOURCE -O1 "${SAN[@]}" -Ilib -I/usr/include/nifti -c -o "$B/stub.o" lib/nn_cuda_stub.c || exit 1
rm -f "$B/libnocuda.a"
ar rcs "$B/libnocuda.a" "$LIBB"/lib/*.o "$B/stub.o"
LDLIBS=$(make -s SAN=$SANMAKE print-ldlibs)
# shellcheck disable=SC2086 # the link line is meant to split into words
if [ "$ONLY" = all ] || [ "$ONLY" = kernels ]; then
"$CXX" "${FL[@]}" -o "$B/test_emu_kernels" tests/gpu/emu/test_emu_kernels.cc "$B/nn_cuda_kernels.cc" "$B/nn_cuda_kernels_grad.cc" \
    "$B/libnocuda.a" $LDLIBS || exit 1
# shellcheck disable=SC2086
"$CXX" "${FL[@]}" -o "$B/test_emu_sliding" tests/gpu/emu/test_emu_sliding.cc "$B/nn_cuda_sliding.cc" "$B/libnocuda.a" $LDLIBS || exit 1
"$B/test_emu_kernels" || rc=1
"$B/test_emu_sliding" || rc=1
fi
[ "$ONLY" = kernels ] && { echo "emulate: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"; exit $rc; }

# ---- 2: the whole backend on the pretend device, with the GPU test programs
R=$B/rt
mkdir -p "$R"
for f in nn_cuda nn_cuda_mem nn_cuda_ops nn_cuda_grad nn_cuda_segresnet nn_cuda_sliding nn_cuda_kernels nn_cuda_kernels_grad nn_cuda_loss; do
    python3 tests/gpu/emu/prep.py "lib/cuda/$f.cu" emu_rt.h >"$R/$f.cc" && "$CXX" "${FL[@]}" -Ilib/cuda -c -o "$R/$f.o" "$R/$f.cc" || exit 1
done
"$CXX" "${FL[@]}" -Ilib/cuda -c -o "$R/emu_rt.o" tests/gpu/emu/emu_rt.cc || exit 1
rm -f "$R/libnostub.a"
ar rcs "$R/libnostub.a" "$LIBB"/lib/*.o
for t in test_cuda_ops test_cuda_grad test_cuda_sliding test_cuda_segresnet; do
    cc -std=c11 -D_GNU_SOURCE -O1 -g "${SAN[@]}" -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA -c -o "$R/$t.o" "tests/gpu/$t.c" || exit 1
    # shellcheck disable=SC2086
    "$CXX" -pthread "${SAN[@]}" -o "$R/$t" "$R/$t.o" "$R"/nn_cuda*.o "$R/emu_rt.o" "$R/libnostub.a" $LDLIBS || exit 1
done
[ "$ONLY" = all ] || [ "$ONLY" = backend ] && for t in test_cuda_ops test_cuda_grad test_cuda_sliding test_cuda_segresnet; do
    out=$("$R/$t" --no-bench 2>"$R/$t.err"); e=$?
    printf '%s\n' "$out" | grep -v '^ok'
    echo "emulated $t: exit $e; $(grep '^emu:' "$R/$t.err")"
    [ $e -eq 0 ] || { rc=1; tail -5 "$R/$t.err"; }
done
if [ "$ONLY" = all ] || [ "$ONLY" = backend ]; then
"$R/test_cuda_ops" --oom >"$R/oom.out" 2>"$R/oom.err"; e=$?
if [ $e -eq 4 ] && grep -q 'out of device memory' "$R/oom.err" && [ ! -s "$R/oom.out" ]; then echo "emulated out of device memory: ok (exit 4, message on stderr only)"
else echo "emulated out of device memory: FAIL (exit $e)"; rc=1; fi
fi

# ---- 3: infer-ressegnet on the pretend device vs its own --backend cpu
if [ "$ONLY" = all ] || [ "$ONLY" = infer ]; then
    tests/gpu/emu/infer.sh "$R" "$SANMAKE" || rc=1
    tests/gpu/emu/infer_graphs.sh "$R" "$SANMAKE" || rc=1 # CUDA graphs of the patch forward (VP_CUDA_GRAPHS=1)
fi

# ---- 4: infer-unet (PlainConvUNet / ResEnc, nnU-Net's sliding window) on the pretend device vs --backend cpu
if [ "$ONLY" = all ] || [ "$ONLY" = unet ]; then
    tests/gpu/emu/infer_unet.sh "$R" "$SANMAKE" || rc=1
fi
echo "emulate: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
