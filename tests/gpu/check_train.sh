#!/usr/bin/env bash
# tests/gpu/check_train.sh - GPU training checks, run by hand (or by the device tool) on a machine
# with an NVIDIA GPU, in one call of at most ~5 minutes; never part of `make test`. Without a GPU:
# says SKIP, exits 0 (tests/gpu/emulate_train.sh checks the same logic on the CPU). Steps, each with
# its own timeout (a failing step does not stop the others):
#   build    bin/train-unet, bin/train-ressegnet and build/gpu/test_cuda_train (make's link line)
#   parity   test_cuda_train --half: SegResNet (AdamW) and PlainConvUNet (SGD nesterov, deep
#            supervision, clipping) 3 steps on the device vs the CPU engine in f32 (loss, every
#            gradient, every weight <= 1e-4 relative per tensor), the loss scaler (injected inf/NaN
#            skip the step and halve the scale), restart and checkpoint round trip, then f16 with
#            loss scaling and bf16 within 2e-2 of f32
#   programs train-unet / train-ressegnet --backend cuda:0:f32 vs --backend cpu on synthetic cases:
#            checkpoints within 1e-3 relative (same tensors, same format); --backend cuda:0:f16 and
#            bf16 runs finish with finite weights
#   nccl     with 2 or more GPUs: mpirun -n 2 train-unet --backend cuda (NCCL all-reduce) vs one
#            rank with the whole batch, within 1e-3; a rank killed mid-run stops the other with an
#            error within --rank-timeout (SKIP with one GPU: NCCL needs one GPU per rank)
#   bench    one training iteration (forward, loss, backward, step), voxpipe --backend cuda in bf16
#            vs PyTorch AMP bf16 + channels_last_3d (tests/gpu/bench_train_torch.py) on the same
#            GPU: SegResNet init 32 and PlainConvUNet 32..256 on 96^3 patches, batch 2, 3 classes;
#            prints seconds per iteration, peak memory and the ratio (goal: torch / voxpipe >= 1.3)
# and prints a summary for BENCHMARKS.md. Logs go to $OUT (the device tool's output folder) or
# tests/tmp/gpu-train.
#   usage: tests/gpu/check_train.sh         env: SKIP_BENCH=1, PY (default .venv/bin/python)
#   env:   VP_GPU_PACK=DIR  the prebuilt binaries of a pack (tests/gpu/pack.sh; on the device machine
#          through tests/gpu/device_check.sh): nothing built, bin/ and build/gpu/ link into the pack
#          (tests/gpu/pack_env.sh); unset: built here (tests/gpu/build.sh train)
#          VP_GPU_ONLY="parity programs nccl bench ..."  run only these steps (names of `step`)
#          VP_GPU_DEADLINE=EPOCH  clip every step's timeout to end by then
set -u
# shellcheck disable=SC2317,SC2054 # the step functions run through `bash -c`; option lists hold commas
cd "$(dirname "$0")/../.." || exit 1
WORK=tests/tmp/gpu-train
LOG=${OUT:-$WORK}
mkdir -p "$WORK" "$LOG"
. tests/gpu/common.sh
need_gpu "gpu train check: SKIP: no NVIDIA GPU on this machine (tests/gpu/emulate_train.sh checks the logic on the CPU)"
NGPU=$(nvidia-smi -L | grep -c '^GPU')
say "gpu train check on: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1) x $NGPU"
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }

if [ -n "${VP_GPU_PACK:-}" ]; then
    # shellcheck source=tests/gpu/pack_env.sh
    . tests/gpu/pack_env.sh
    vp_pack_setup || { say "gpu train check: FAIL: the pack $VP_GPU_PACK cannot be used"; exit 1; }
    for f in bin/train-unet bin/train-ressegnet build/gpu/test_cuda_train; do
        [ -x "$f" ] || { say "gpu train check: FAIL: $f is not in the pack $VP_GPU_PACK (tests/gpu/pack.sh)"; exit 1; }
    done
    say "build: none: the pack's binaries ($(sed -n 2p "$VP_GPU_PACK/MANIFEST"))"
else
    : >"$LOG/train-build.log"
    JOBS=$(nproc) tests/gpu/build.sh train "$LOG/train-build.log" || { say "gpu train check: FAIL: build (see $LOG/train-build.log)"; exit 1; }
    say "build: ok ($(elapsed) s)"
fi

rc=0
step() { # name timeout command...  (skipped unless in VP_GPU_ONLY; timeout clipped to VP_GPU_DEADLINE)
    local name=$1 t=$2
    shift 2
    case " ${VP_GPU_ONLY:-$name} " in *" $name "*) ;; *) return 0 ;; esac
    if [ -n "${VP_GPU_DEADLINE:-}" ] && [ $((VP_GPU_DEADLINE - $(date +%s))) -lt "$t" ]; then
        t=$((VP_GPU_DEADLINE - $(date +%s)))
        [ "$t" -ge 5 ] || { say "== $name: SKIP (no time left before VP_GPU_DEADLINE)"; return 0; }
    fi
    say "== $name"
    timeout "$t" "$@" >"$LOG/train-$name.log" 2>&1
    local e=$?
    grep -v '^ok' "$LOG/train-$name.log" | tail -25
    say "$name: $([ $e -eq 0 ] && echo ok || echo "FAIL (exit $e)") ($(elapsed) s)"
    [ $e -eq 0 ] || { rc=1; fails+=("$name"); }
}

step parity 150 build/gpu/test_cuda_train --half

programs() {
    local T=$WORK/prog r=0
    rm -rf "$T" && mkdir -p "$T"
    "$PY" tests/scripts/train_check.py synth "$T/syn.vxp" --n 3 --seed 1 || return 1
    local U=(--features 8,16,32 --patch 16,32,32 --iters-per-epoch 4 --epochs 2 --seed 5 --batch 2 -q)
    local S=(--init-filters 8 --norm-groups 4 --blocks-down 1,2,2 --blocks-up 1,1 --patch 16,32,32 --iters-per-epoch 4 --epochs 2 --seed 5 -q)
    for arch in unet ressegnet; do
        local A
        if [ $arch = unet ]; then A=("${U[@]}"); else A=("${S[@]}"); fi
        bin/train-$arch -i "$T/syn.vxp" -o "$T/$arch-cpu" "${A[@]}" || { echo "FAIL train-$arch cpu"; r=1; continue; }
        bin/train-$arch -i "$T/syn.vxp" -o "$T/$arch-cuda" "${A[@]}" --backend cuda:0:f32 || { echo "FAIL train-$arch cuda"; r=1; continue; }
        for f in last.safetensors last.optim.safetensors; do
            o=$("$PY" tests/scripts/train_check.py cmp "$T/$arch-cuda/$f" "$T/$arch-cpu/$f" --rtol 1e-3 --atol 1e-5) && echo "ok $arch $f: $o" ||
                { echo "FAIL $arch cuda vs cpu $f: $o"; r=1; }
        done
        for m in f16 bf16; do
            bin/train-$arch -i "$T/syn.vxp" -o "$T/$arch-$m" "${A[@]}" --backend cuda:0:$m --log-json "$T/$arch-$m.jsonl" &&
                "$PY" -c '
import sys, numpy as np; sys.path.insert(0, "tests/scripts"); import train_check as t, json
w = t.read_st(sys.argv[1])[0]; assert all(np.isfinite(v).all() for v in w.values())
it = [j for j in map(json.loads, open(sys.argv[2])) if j.get("type") == "iter"]
print("ok %s %s: finite weights, loss %.4f -> %.4f" % (sys.argv[3], sys.argv[4], it[0]["loss"], it[-1]["loss"]))' \
                    "$T/$arch-$m/last.safetensors" "$T/$arch-$m.jsonl" "$arch" "$m" || { echo "FAIL $arch $m"; r=1; }
        done
    done
    return $r
}
export WORK PY NGPU
export -f programs
step programs 120 bash -c programs

nccl() {
    local T=$WORK/nccl
    if [ "$NGPU" -lt 2 ]; then echo "SKIP: $NGPU GPU (NCCL needs one GPU per rank)"; return 0; fi
    command -v mpirun >/dev/null || { echo "SKIP: no mpirun"; return 0; }
    rm -rf "$T" && mkdir -p "$T"
    "$PY" tests/scripts/train_check.py synth "$T/syn.vxp" --n 3 --seed 1 || return 1
    local U=(--features 8,16,32 --patch 16,32,32 --iters-per-epoch 4 --epochs 2 --seed 5 --batch 2 -q --deterministic)
    bin/train-unet -i "$T/syn.vxp" -o "$T/one" "${U[@]}" --backend cuda || return 1
    mpirun --allow-run-as-root -n 2 bin/train-unet -i "$T/syn.vxp" -o "$T/two" "${U[@]}" --backend cuda || return 1
    "$PY" tests/scripts/train_check.py cmp "$T/two/last.optim.safetensors" "$T/one/last.optim.safetensors" --rtol 1e-3 --atol 1e-5 || return 1
    # a rank killed mid-run (a child of mpirun): the other stops with an error within the timeout
    mpirun --allow-run-as-root -n 2 bin/train-unet -i "$T/syn.vxp" -o "$T/dead" "${U[@]}" --epochs 1000 --backend cuda \
        --rank-timeout 5 --log-json "$T/dead.jsonl" 2>"$T/dead.err" &
    local mp=$! victim
    for _ in $(seq 100); do grep -q '"step":2,' "$T/dead.jsonl" 2>/dev/null && break; sleep 0.3; done
    victim=$(ps -o pid= --ppid $mp | tail -1)
    [ -n "$victim" ] || { echo "FAIL dead rank: no rank found"; kill $mp; return 1; }
    SECONDS=0
    kill -KILL $victim
    local e=0
    wait $mp || e=$?
    [ $e -ne 0 ] && [ $SECONDS -lt 30 ] && echo "ok dead rank: mpirun exit $e after ${SECONDS} s ($(grep -m1 -o 'error:.*' "$T/dead.err"))" ||
        { echo "FAIL dead rank: exit $e after ${SECONDS} s"; return 1; }
}
export -f nccl
step nccl 120 bash -c nccl

if [ "${SKIP_BENCH:-0}" != 1 ]; then
    bench() {
        printf '%-34s %10s %10s %9s %9s %7s\n' "iteration (batch 2, 3 classes)" "voxpipe s" "torch s" "vp MiB" "torch MiB" "ratio"
        while read -r name arch f size math; do
            read -r vs vm < <(timeout 100 build/gpu/test_cuda_train --backend "cuda:0:$math" --bench "$arch" "$f" "$size" 2 3)
            read -r ts tm < <(timeout 100 "$PY" tests/gpu/bench_train_torch.py "$arch" "$f" "$size" 2 3 5 "$math")
            awk -v n="$name" -v vs="${vs:-nan}" -v ts="${ts:-nan}" -v vm="${vm:-nan}" -v tm="${tm:-nan}" \
                'BEGIN { printf "%-34s %10.4f %10.4f %9.0f %9.0f %7.2f%s\n", n, vs, ts, vm, tm, ts / vs, (ts / vs >= 1.3 ? "" : "  (goal 1.3: MISSED)") }'
        done <<'CASES'
segresnet-f32-96^3-AdamW-bf16 segresnet 32 96 bf16
unet-32..256-96^3-SGD(ds)-bf16 unet 32 96 bf16
segresnet-f32-96^3-AdamW-f16 segresnet 32 96 f16
CASES
    }
    export -f bench
    step bench 200 bash -c bench
    cat "$LOG/train-bench.log"
fi
say "== summary (paste into BENCHMARKS.md): $(date -u '+%Y-%m-%d %H:%M UTC'), $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
say "gpu train check: $([ $rc -eq 0 ] && echo PASS || echo "FAIL: ${fails[*]}") ($(elapsed) s)"
exit $rc
