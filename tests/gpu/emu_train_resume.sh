#!/usr/bin/env bash
# tests/gpu/emu_train_resume.sh - the f16 loss scaler across a kill and a resume, without a GPU.
# Builds train-unet against the pretend device exactly as tests/gpu/emulate_train.sh does (every
# lib/cuda file but the cuDNN one turned into host C++ by tests/gpu/emu/prep.py, linked with
# tests/gpu/emu/emu_rt.cc; its own build folder, so both can run), then on synthetic cases:
#   1. an uninterrupted --backend cuda:0:f16 --deterministic run (the reference), whose loss scale
#      must have moved (the scaler's state changes during the run);
#   2. the same run killed with SIGKILL after its epoch-1 checkpoint and resumed with --resume:
#      last.safetensors and last.optim.safetensors byte-identical to the uninterrupted run, the
#      checkpoint holds the loss scaler's state (voxpipe.train.loss_scale*), -v says it was restored;
#   3. the control: the same resume from that checkpoint with the scaler state removed (as a
#      checkpoint written before it was saved) loads, says so under -v, and ends with other
#      weights: the comparison in 2 can fail;
#   4. a malformed loss_scale in the checkpoint: exit 3 naming the key, the checkpoint unchanged.
# The emulated device computes f16 convolutions in f32, where a power-of-two scale is exact unless
# it overflows (no gradient here comes near 2^127) or underflows: VP_LOSS_SCALE=2^-126,3 (the
# smallest normal scale, doubled every 3 steps) makes the scaled gradients lose bits to underflow,
# so the weights depend on the scale and the growth tracker at every step. The skip-and-halve rule
# on inf/NaN is checked by tests/gpu/test_cuda_train.c (emulate_train.sh) and on a real GPU by
# tests/gpu/check_train_state.sh.
#   usage: tests/gpu/emu_train_resume.sh     exit 0 all pass, 1 a failure
#   env:   EMU_SAN=1 under AddressSanitizer + UBSan (needs build-san/), PY (default .venv/bin/python)
# Needs build/ (make). About 4 minutes on 2 busy cores.
# shellcheck disable=SC2054,SC2015 # option lists hold commas; A && B || C is meant
set -u
cd "$(dirname "$0")/../.." || exit 1
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
PY=${PY:-$PWD/.venv/bin/python}
LIBB=build B=build/gpu-emu-resume SAN=() SANMAKE=0
# shellcheck disable=SC2054 # -fsanitize=address,undefined is one flag
[ "${EMU_SAN:-0}" = 1 ] && LIBB=build-san B=build-san/gpu-emu-resume SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer) SANMAKE=1
mkdir -p "$B"
[ -f "$CUDA_HOME/include/cuda_fp16.h" ] || { echo "emu_train_resume: SKIP: no CUDA headers in $CUDA_HOME/include"; exit 0; }
ls "$LIBB"/lib/*.o >/dev/null 2>&1 || { echo "emu_train_resume: build the library first (make, or make SAN=1 for EMU_SAN=1)"; exit 1; }
CXX=${CXX:-g++}
FL=(-std=c++20 -pthread -O1 -g -w "${SAN[@]}" -Ilib -Ilib/cuda -Itests/gpu/emu -I"$CUDA_HOME/include" -I/usr/include/nifti)
CF=(-std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Wno-unused-parameter "${SAN[@]}" -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA)
LDLIBS=$(make -s SAN=$SANMAKE print-ldlibs)
for f in nn_cuda nn_cuda_mem nn_cuda_ops nn_cuda_grad nn_cuda_segresnet nn_cuda_sliding nn_cuda_kernels nn_cuda_kernels_grad nn_cuda_train; do
    [ "$B/$f.o" -nt "lib/cuda/$f.cu" ] && [ "$B/$f.o" -nt tests/gpu/emu/emu_rt.h ] && continue
    python3 tests/gpu/emu/prep.py "lib/cuda/$f.cu" emu_rt.h >"$B/$f.cc" && "$CXX" "${FL[@]}" -c -o "$B/$f.o" "$B/$f.cc" || exit 1
done
[ "$B/emu_rt.o" -nt tests/gpu/emu/emu_rt.cc ] || "$CXX" "${FL[@]}" -c -o "$B/emu_rt.o" tests/gpu/emu/emu_rt.cc || exit 1
rm -f "$B/libnostub.a"
ar rcs "$B/libnostub.a" "$LIBB"/lib/*.o
cc "${CF[@]}" -c -o "$B/train-unet.o" trainers/train-unet.c || exit 1
# shellcheck disable=SC2086 # the link line is meant to split into words
"$CXX" -pthread "${SAN[@]}" -o "$B/train-unet" "$B/train-unet.o" "$B"/nn_cuda*.o "$B/emu_rt.o" "$B/libnostub.a" $LDLIBS || exit 1

rc=0
fail() { echo "FAIL: $*"; rc=1; }
T=$B/run
rm -rf "$T" && mkdir -p "$T"
"$PY" tests/scripts/train_check.py synth "$T/syn.vxp" --n 3 --seed 1 || exit 1
# 2^-126, growth every 3 steps: the epoch-1 checkpoint (step 2) holds the scale of a fresh start and
# growth tracker 2, so in the control below the tracker alone makes the difference
export VP_LOSS_SCALE=1.17549435e-38,3
A=(-i "$T/syn.vxp" --features 2,4 --patch 8,8,8 --iters-per-epoch 2 --epochs 3 --seed 5 --batch 2 --deterministic
   --backend cuda:0:f16)
ST() { "$PY" tests/scripts/train_state.py "$@"; }
run() { # name args...: run train-unet, keep stderr, fail on a non-zero exit
    local name=$1
    shift
    "$B/train-unet" "${A[@]}" "$@" 2>"$T/$name.err" || { fail "$name: exit $? ($(tail -2 "$T/$name.err"))"; return 1; }
}

# ---- 1. the reference
run whole -o "$T/whole" -q || { echo "emu_train_resume: FAIL (the reference run failed: nothing to compare)"; exit 1; }
ls=$(ST meta "$T/whole/last.optim.safetensors" voxpipe.train.loss_scale)
if [ -n "$ls" ] && [ "$ls" != 1.17549435e-38 ]; then echo "ok the loss scale moved during the run: 2^-126 -> $ls"
else fail "the loss scale did not move ('${ls:-none}'): the test would not see a lost state"; fi

# ---- 2. SIGKILL after the epoch-1 checkpoint, then --resume
"$B/train-unet" "${A[@]}" -o "$T/cut" -q --log-json "$T/cut.jsonl" 2>"$T/cut.err" &
p=$!
for _ in $(seq 600); do grep -q '"type":"checkpoint","epoch":1' "$T/cut.jsonl" 2>/dev/null && break; sleep 0.1; done
kill -KILL $p 2>/dev/null
wait $p 2>/dev/null
ep=$(ST meta "$T/cut/last.optim.safetensors" voxpipe.train.epoch)
if [ -n "$ep" ] && [ "$ep" -lt 3 ]; then echo "ok killed with SIGKILL at epoch $ep of 3"
else fail "the kill came too late or too early (checkpoint epoch '${ep:-none}')"; fi
cp -r "$T/cut" "$T/old" # for 3 and 4
ls=$(ST meta "$T/cut/last.optim.safetensors" voxpipe.train.loss_scale)
tr=$(ST meta "$T/cut/last.optim.safetensors" voxpipe.train.loss_scale_tracker)
if [ -n "$ls" ] && [ -n "$tr" ]; then echo "ok the checkpoint holds the loss scaler: scale $ls, growth tracker $tr"
else fail "no loss-scaler state in the checkpoint"; fi
run resume -o "$T/cut" --resume -v
if cmp -s "$T/whole/last.safetensors" "$T/cut/last.safetensors" && cmp -s "$T/whole/last.optim.safetensors" "$T/cut/last.optim.safetensors"; then
    echo "ok killed and resumed f16 run: last.safetensors and last.optim.safetensors byte-identical to the uninterrupted run"
else fail "killed and resumed f16 run differs from the uninterrupted one ($(ST cmp "$T/cut/last.optim.safetensors" "$T/whole/last.optim.safetensors"))"; fi
grep -q "loss scale .* restored" "$T/resume.err" && echo "ok -v says the loss scale was restored" || fail "no 'restored' note under -v"

# ---- 3. control: the same checkpoint without the scaler state (an old checkpoint)
cp -r "$T/old" "$T/noscale"
ST strip "$T/noscale/last.optim.safetensors" || exit 1
run noscale -o "$T/noscale" --resume -v
grep -q "no loss-scaler state" "$T/noscale.err" && echo "ok an old checkpoint without scaler state loads, -v says so" ||
    fail "old checkpoint: no note under -v ($(tail -2 "$T/noscale.err"))"
if cmp -s "$T/whole/last.optim.safetensors" "$T/noscale/last.optim.safetensors"; then fail "resumed without the scaler state yet identical: the check cannot fail"
else echo "ok control: resumed without the scaler state, the weights differ ($(ST cmp "$T/noscale/last.optim.safetensors" "$T/whole/last.optim.safetensors"))"; fi

# ---- 4. malformed scaler state: exit 3, the checkpoint unchanged
cp -r "$T/old" "$T/bad"
ST set "$T/bad/last.optim.safetensors" voxpipe.train.loss_scale=inf || exit 1
cp "$T/bad/last.optim.safetensors" "$T/bad.copy"
"$B/train-unet" "${A[@]}" -o "$T/bad" --resume 2>"$T/bad.err"; e=$?
if [ $e -eq 3 ] && grep -q "voxpipe.train.loss_scale 'inf'" "$T/bad.err" && cmp -s "$T/bad.copy" "$T/bad/last.optim.safetensors"; then
    echo "ok a malformed loss_scale: exit 3 naming it, the checkpoint unchanged"
else fail "malformed loss_scale: exit $e ($(head -1 "$T/bad.err"))"; fi
echo "emu_train_resume: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
