#!/usr/bin/env bash
# tests/gpu/check_train_state.sh - the GPU training state a resumed or distributed run needs (issue
# 7, H5), on a machine with an NVIDIA GPU, in one call (about 2 minutes expected; the step timeouts
# bound it at 8 with the build); never part of
# `make test`. Without a GPU: says SKIP, exits 0 (tests/gpu/emu_train_resume.sh checks the resume
# logic on the CPU). Steps, each with its own timeout and one "name: PASS|FAIL|SKIP" line:
#   f16-resume  train-unet --backend cuda:0:f16 --deterministic with VP_LOSS_SCALE=2^40,2 (real f16
#               operands overflow at that scale: the scaler skips and halves, then grows every 2
#               steps): two uninterrupted runs give the same bytes; a run killed with SIGKILL after
#               a checkpoint and resumed ends byte-identical to them; the control (the same
#               checkpoint without its loss-scaler state, as an old one) ends with other weights
#   nccl-init   2 MPI ranks, rank 1 stalled before it joins NCCL (VP_TEST_NCCL_STALL=1): rank 0 must
#               stop within --rank-timeout 5 (+ margin) with "ncclCommInitRank ... no answer", and
#               mpirun must end (no hang). Needs one GPU.
#   nccl-1gpu   2 MPI ranks on one GPU, nothing stalled: NCCL refuses two ranks on one device
#               ("Duplicate GPU detected", ncclInvalidUsage) as far as its documentation says;
#               PASS when every rank stops with an NCCL error (and says which) or, should this
#               NCCL accept it, when the run trains; FAIL only on a hang or a silent failure
#   nccl-dead   with 2+ GPUs (or when nccl-1gpu trained): rank 1 stalled before its 3rd all-reduce
#               (VP_TEST_NCCL_STALL=1:3): rank 0 stops with "gradient all-reduce ... no answer from
#               the other GPUs" within the timeout; then 2 --deterministic runs give the same bytes,
#               and -v shows NCCL_ALGO=Ring / NCCL_PROTO=Simple pinned. SKIP with one GPU.
# The nccl steps SKIP when train-unet was built without NCCL or MPI ("NCCL yes" in its --help) or
# mpirun is missing. Logs go to $OUT (the device tool's output folder) or tests/tmp/gpu-train-state.
#   usage: tests/gpu/check_train_state.sh      env: PY (default .venv/bin/python)
# Wiring: tests/gpu/check_train.sh may call it as one step (`step state 460 tests/gpu/check_train_state.sh`)
# after its build; alone it builds bin/train-unet itself.
# shellcheck disable=SC2317,SC2054,SC2015 # step functions run through `bash -c`; option lists hold commas; A && B || C is meant
set -u
cd "$(dirname "$0")/../.." || exit 1
WORK=tests/tmp/gpu-train-state
LOG=${OUT:-$WORK}
mkdir -p "$WORK" "$LOG"
. tests/gpu/common.sh
need_gpu "gpu train state check: SKIP: no NVIDIA GPU on this machine (tests/gpu/emu_train_resume.sh checks the resume on the CPU)"
NGPU=$(nvidia-smi -L | grep -c '^GPU')
say "gpu train state check on: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1) x $NGPU"
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
if [ -n "${VP_GPU_PACK:-}" ]; then # the pack's prebuilt programs (tests/gpu/pack.sh): nothing is built on the device
    # shellcheck source=tests/gpu/pack_env.sh
    . tests/gpu/pack_env.sh
    vp_pack_setup || { say "gpu train state check: FAIL: the pack $VP_GPU_PACK cannot be used"; exit 1; }
    [ -x bin/train-unet ] || { say "gpu train state check: FAIL: bin/train-unet is not in the pack $VP_GPU_PACK"; exit 1; }
elif ! timeout 240 make -j"$(nproc)" bin/train-unet >"$LOG/state-build.log" 2>&1; then
    say "gpu train state check: FAIL: build (last lines of $LOG/state-build.log):"; tail -20 "$LOG/state-build.log"; exit 1
fi
rc=0
step() { # name timeout command...: the step's last line is its verdict (PASS, SKIP or FAIL ...)
    local name=$1 t=$2
    shift 2
    timeout "$t" "$@" >"$LOG/state-$name.log" 2>&1
    local e=$?
    grep -v '^ok' "$LOG/state-$name.log" | tail -12 | sed 's/^/  /'
    if [ "$e" -eq 0 ]; then say "$name: $(tail -1 "$LOG/state-$name.log" | grep -q '^SKIP' && echo SKIP || echo PASS) ($(elapsed) s)"
    else say "$name: FAIL (exit $e$([ "$e" -eq 124 ] && echo ": timed out, a hang?")) ($(elapsed) s)"; rc=1; fails+=("$name"); fi
}
ST() { "$PY" tests/scripts/train_state.py "$@"; }
export WORK PY NGPU
export -f ST

f16_resume() {
    local T=$WORK/f16 r=0
    rm -rf "$T" && mkdir -p "$T"
    "$PY" tests/scripts/train_check.py synth "$T/syn.vxp" --n 3 --seed 1 --dims 40,36,32 || return 1
    export VP_LOSS_SCALE=1099511627776,2 # 2^40
    local A=(-i "$T/syn.vxp" --features 16,32,64 --patch 32,32,32 --iters-per-epoch 8 --epochs 4 --seed 5 --batch 2
             --deterministic --backend cuda:0:f16 -q)
    bin/train-unet "${A[@]}" -o "$T/whole" --log-json "$T/whole.jsonl" || { echo "FAIL uninterrupted run"; return 1; }
    bin/train-unet "${A[@]}" -o "$T/whole2" || { echo "FAIL second run"; return 1; }
    cmp -s "$T/whole/last.optim.safetensors" "$T/whole2/last.optim.safetensors" && echo "ok two f16 runs: the same bytes" ||
        { echo "FAIL two uninterrupted f16 runs differ: $(ST cmp "$T/whole/last.optim.safetensors" "$T/whole2/last.optim.safetensors" | tail -1)"; r=1; }
    echo "scaler: $(ST skips "$T/whole.jsonl") of 32 steps skipped; final scale $(ST meta "$T/whole/last.optim.safetensors" voxpipe.train.loss_scale)"
    bin/train-unet "${A[@]}" -o "$T/cut" --log-json "$T/cut.jsonl" &
    local p=$!
    for _ in $(seq 3000); do grep -q '"type":"checkpoint","epoch":1' "$T/cut.jsonl" 2>/dev/null && break; sleep 0.02; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    local ep
    ep=$(ST meta "$T/cut/last.optim.safetensors" voxpipe.train.epoch)
    if [ -z "$ep" ] || [ "$ep" -ge 4 ]; then echo "FAIL the kill came too late (checkpoint epoch '${ep:-none}' of 4): run again"; return 1; fi
    echo "killed at epoch $ep of 4: checkpoint scale $(ST meta "$T/cut/last.optim.safetensors" voxpipe.train.loss_scale), tracker $(ST meta "$T/cut/last.optim.safetensors" voxpipe.train.loss_scale_tracker)"
    cp -r "$T/cut" "$T/noscale"
    bin/train-unet "${A[@]}" -o "$T/cut" --resume || { echo "FAIL resume"; return 1; }
    if cmp -s "$T/whole/last.optim.safetensors" "$T/cut/last.optim.safetensors" && cmp -s "$T/whole/last.safetensors" "$T/cut/last.safetensors"; then
        echo "ok SIGKILL + --resume = uninterrupted (bytes)"
    else echo "FAIL resumed f16 run differs: $(ST cmp "$T/cut/last.optim.safetensors" "$T/whole/last.optim.safetensors" | tail -1)"; r=1; fi
    ST strip "$T/noscale/last.optim.safetensors" && bin/train-unet "${A[@]}" -o "$T/noscale" --resume || { echo "FAIL control run"; return 1; }
    if cmp -s "$T/whole/last.optim.safetensors" "$T/noscale/last.optim.safetensors"; then
        echo "FAIL control: without the scaler state the run ends the same: the check cannot tell"; r=1
    else echo "ok control: resumed without the scaler state, other weights ($(ST cmp "$T/noscale/last.optim.safetensors" "$T/whole/last.optim.safetensors" | tail -1))"; fi
    return "$r"
}
export -f f16_resume
step f16-resume 150 bash -c f16_resume

have_nccl() {
    bin/train-unet --help 2>&1 | grep -q "NCCL yes" || { echo "SKIP: train-unet built without NCCL/MPI ($(bin/train-unet --help 2>&1 | grep -o 'data parallel:.*'))"; return 1; }
    command -v mpirun >/dev/null || { echo "SKIP: no mpirun"; return 1; }
}
opts() { # the mpirun line and the options of the nccl steps
    MPIRUN=(mpirun --allow-run-as-root --oversubscribe -n 2)
    U=(--features 8,16,32 --patch 16,32,32 --iters-per-epoch 4 --seed 5 --batch 2 --backend cuda --rank-timeout 5)
}
export -f have_nccl opts

nccl_init() {
    have_nccl || return 0
    opts
    local T=$WORK/nccl-init
    rm -rf "$T" && mkdir -p "$T"
    "$PY" tests/scripts/train_check.py synth "$T/syn.vxp" --n 3 --seed 1 || return 1
    SECONDS=0
    local e=0
    "${MPIRUN[@]}" -x VP_TEST_NCCL_STALL=1 bin/train-unet -i "$T/syn.vxp" -o "$T/run" "${U[@]}" --epochs 2 2>"$T/err" || e=$?
    cat "$T/err"
    if [ "$e" -ne 0 ] && [ "$SECONDS" -lt 40 ] && grep -q "ncclCommInitRank on GPU [0-9]*: no answer from the other ranks within 5 s" "$T/err"; then
        echo "ok a rank that never joins: exit $e after $SECONDS s"; echo PASS
    else echo "FAIL a rank that never joins: exit $e after $SECONDS s"; return 1; fi
}
export -f nccl_init
step nccl-init 90 bash -c nccl_init

nccl_1gpu() {
    have_nccl || return 0
    opts
    local T=$WORK/nccl-1gpu
    rm -rf "$T" && mkdir -p "$T"
    "$PY" tests/scripts/train_check.py synth "$T/syn.vxp" --n 3 --seed 1 || return 1
    SECONDS=0
    local e=0
    CUDA_VISIBLE_DEVICES=0 "${MPIRUN[@]}" -x CUDA_VISIBLE_DEVICES -x NCCL_DEBUG=WARN bin/train-unet -i "$T/syn.vxp" -o "$T/run" "${U[@]}" --epochs 1 2>"$T/err" || e=$?
    cat "$T/err"
    if [ "$e" -eq 0 ]; then echo "2 ranks on one GPU: NCCL accepted it and the run trained ($SECONDS s)"; echo ONE_GPU_TRAINS; echo PASS
    elif grep -q "NCCL" "$T/err" && [ "$SECONDS" -lt 40 ]; then
        echo "2 ranks on one GPU: refused, every rank stopped after $SECONDS s: $(grep -m1 -o -e 'Duplicate GPU[^.]*' -e 'train-unet: error: .*NCCL.*' "$T/err" | head -1)"; echo PASS
    else echo "FAIL 2 ranks on one GPU: exit $e after $SECONDS s without an NCCL error"; return 1; fi
}
export -f nccl_1gpu
step nccl-1gpu 90 bash -c nccl_1gpu

nccl_dead() {
    have_nccl || return 0
    opts
    if [ "$NGPU" -lt 2 ] && ! grep -q ONE_GPU_TRAINS "$LOG/state-nccl-1gpu.log"; then echo "SKIP: one GPU, and NCCL wants one GPU per rank"; return 0; fi
    local T=$WORK/nccl-dead r=0
    rm -rf "$T" && mkdir -p "$T"
    "$PY" tests/scripts/train_check.py synth "$T/syn.vxp" --n 3 --seed 1 || return 1
    SECONDS=0
    local e=0
    "${MPIRUN[@]}" -x VP_TEST_NCCL_STALL=1:3 bin/train-unet -i "$T/syn.vxp" -o "$T/run" "${U[@]}" --epochs 100 2>"$T/err" || e=$?
    cat "$T/err"
    if [ "$e" -ne 0 ] && [ "$SECONDS" -lt 40 ] && grep -q "rank 0 of 2: gradient all-reduce at step 2: no answer from the other GPUs within 5 s" "$T/err"; then
        echo "ok a rank hung in the all-reduce: exit $e after $SECONDS s"
    else echo "FAIL a rank hung in the all-reduce: exit $e after $SECONDS s"; r=1; fi
    for k in 1 2; do
        "${MPIRUN[@]}" bin/train-unet -i "$T/syn.vxp" -o "$T/det$k" "${U[@]}" --epochs 2 --deterministic -v 2>"$T/det$k.err" ||
            { echo "FAIL deterministic run $k"; tail -3 "$T/det$k.err"; return 1; }
    done
    grep -q -- "--deterministic: NCCL_ALGO=Ring" "$T/det1.err" && grep -q -- "--deterministic: NCCL_PROTO=Simple" "$T/det1.err" &&
        echo "ok -v: NCCL_ALGO=Ring, NCCL_PROTO=Simple pinned" || { echo "FAIL no pinning note under -v"; r=1; }
    cmp -s "$T/det1/last.optim.safetensors" "$T/det2/last.optim.safetensors" && echo "ok 2 ranks --deterministic: two runs, the same bytes" ||
        { echo "FAIL 2 ranks --deterministic: two runs differ"; r=1; }
    [ "$r" -eq 0 ] && echo PASS
    return "$r"
}
export -f nccl_dead
export LOG
step nccl-dead 120 bash -c nccl_dead

say "gpu train state check: $([ $rc -eq 0 ] && echo PASS || echo "FAIL: ${fails[*]}") ($(elapsed) s)"
exit $rc
