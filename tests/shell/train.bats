#!/usr/bin/env bats
# train-unet / train-ressegnet: checkpoints the inference programs load, determinism, kill and
# resume, signals, data-parallel ranks (MPI), progress, and bad input. Tiny networks on small
# synthetic cases (tests/scripts/train_check.py synth) so each test takes seconds.
bats_require_minimum_version 1.5.0
load helpers

CHECK() { "$VOXPIPE_PY" "$SCRIPTS/train_check.py" "$@"; }
# a tiny U-Net: 2 stages of 4 and 8 features, 16^3 patches, 2 epochs of 3 iterations
UNET=(--features 4,8 --patch 16,16,16 --epochs 2 --iters-per-epoch 3 --seed 5 -q)
SRN=(--init-filters 4 --norm-groups 2 --blocks-down 1,1 --blocks-up 1 --patch 16,16,16 --epochs 2 --iters-per-epoch 3 --seed 5 -q)

has_mpi() {
    command -v mpirun >/dev/null && train-unet --help | grep -q "MPI yes"
}
# (under AddressSanitizer, leak checks are off for MPI runs: Open MPI never frees its own allocations)
MPIRUN=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun --allow-run-as-root --oversubscribe)

@test "train-unet writes checkpoints infer-unet loads, with the stream's spacing and labels" {
    CHECK synth "$T/syn.vxp" --n 3 --seed 1
    train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --val "$T/syn.vxp" --log-json "$T/log.jsonl"
    for f in last.safetensors best.safetensors last.optim.safetensors curves.svg; do [ -s "$T/run/$f" ]; done
    run CHECK jsonl "$T/log.jsonl"
    echo "$output"
    [[ "$output" == "checkpoint="*" epoch=2 iter=6 val=2 "* ]]
    # the metadata inference needs, taken from the stream: spacing in the network's (z, y, x) and labels
    want=$("$VOXPIPE_PY" -c '
import sys, json; sys.path.insert(0, sys.argv[2]); import vxp, numpy as np
c = next(vxp.read(open(sys.argv[1], "rb")))
a = c["vols"]["image"].affine[:3, :3]; sp = np.sqrt((a * a).sum(0))
print(",".join("%g" % s for s in sp[::-1]), json.dumps(c["meta"]["labels"], sort_keys=True))' "$T/syn.vxp" "$SCRIPTS")
    got=$("$VOXPIPE_PY" -c '
import sys, json; sys.path.insert(0, sys.argv[2]); import train_check as t
m = t.read_st(sys.argv[1])[1]
print(",".join("%g" % float(s) for s in m["spacing"].split(",")), json.dumps(json.loads(m["labels"]), sort_keys=True))' \
        "$T/run/last.safetensors" "$SCRIPTS")
    [ "$got" = "$want" ]
    [ "$(CHECK meta "$T/run/last.safetensors" patch_size)" = "16,16,16" ]
    infer-unet -m "$T/run/last.safetensors" --out-vol pred < "$T/syn.vxp" > "$T/pred.vxp"
    run "$VOXPIPE_PY" "$SCRIPTS/vxp.py" < "$T/pred.vxp"
    [ "${#lines[@]}" -eq 3 ]
    [[ "${lines[0]}" == *"'pred': ('|u1', (24, 20, 16))"* ]]
    # the curve plot: loss and Dice lines in a well-formed SVG
    [ "$(CHECK svg "$T/run/curves.svg")" = "2" ]
}

@test "train-ressegnet writes checkpoints infer-ressegnet loads (voxpipe.roi = the patch)" {
    CHECK synth "$T/syn.vxp" --n 2 --seed 2
    train-ressegnet -i "$T/syn.vxp" -o "$T/run" "${SRN[@]}" --patch 16,16,8 --val-split 0.5
    [ "$(CHECK meta "$T/run/last.safetensors" voxpipe.roi)" = "16,16,8" ]
    [ "$(CHECK meta "$T/run/last.safetensors" voxpipe.arch)" = "segresnet" ]
    np=()  # the image is already preprocessed (where infer-ressegnet applies the model's preprocessing itself)
    if infer-ressegnet --help | grep -q -- --no-preprocess; then np=(--no-preprocess); fi
    infer-ressegnet -m "$T/run/last.safetensors" "${np[@]}" --label pred < "$T/syn.vxp" > "$T/pred.vxp"
    run "$VOXPIPE_PY" "$SCRIPTS/vxp.py" < "$T/pred.vxp"
    [ "${#lines[@]}" -eq 2 ]
    [[ "${lines[0]}" == *"'pred': ('|u1', (24, 20, 16))"* ]]
}

@test "the same seed gives the same bytes whatever --threads; another seed does not" {
    CHECK synth "$T/syn.vxp" --n 2 --seed 1
    train-unet -i "$T/syn.vxp" -o "$T/a" "${UNET[@]}" --threads 1
    train-unet -i "$T/syn.vxp" -o "$T/b" "${UNET[@]}" --threads 2
    cmp "$T/a/last.safetensors" "$T/b/last.safetensors"
    cmp "$T/a/last.optim.safetensors" "$T/b/last.optim.safetensors"
    train-unet -i "$T/syn.vxp" -o "$T/c" "${UNET[@]}" --seed 6
    ! cmp -s "$T/a/last.safetensors" "$T/c/last.safetensors"
}

# wait_for FILE PATTERN : until a line of FILE matches (at most 60 s)
wait_for() {
    for _ in $(seq 1200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

@test "killed with SIGKILL after a checkpoint and resumed: byte-identical to an uninterrupted run" {
    CHECK synth "$T/syn.vxp" --n 3 --seed 1
    opts=(-i "$T/syn.vxp" "${UNET[@]}" --epochs 4 --val-split 0.3 --deterministic)
    train-unet "${opts[@]}" -o "$T/whole"
    train-unet "${opts[@]}" -o "$T/cut" --log-json "$T/cut.jsonl" & p=$!
    wait_for "$T/cut.jsonl" '"type":"checkpoint","epoch":2'
    kill -9 $p
    wait $p || [ $? -eq 137 ]
    # it was killed before the end: the checkpoint is of epoch 2 of 4
    [ "$(CHECK meta "$T/cut/last.safetensors" voxpipe.train.epoch)" -lt 4 ]
    ! cmp -s "$T/whole/last.safetensors" "$T/cut/last.safetensors"
    train-unet "${opts[@]}" -o "$T/cut" --resume --log-json "$T/cut.jsonl"
    cmp "$T/whole/last.safetensors" "$T/cut/last.safetensors"
    cmp "$T/whole/last.optim.safetensors" "$T/cut/last.optim.safetensors"
}

@test "SIGTERM mid-epoch: a checkpoint, exit 130, and the resumed run ends as the uninterrupted one" {
    CHECK synth "$T/syn.vxp" --n 3 --seed 1
    opts=(-i "$T/syn.vxp" "${UNET[@]}" --epochs 3 --iters-per-epoch 5)
    train-unet "${opts[@]}" -o "$T/whole"
    train-unet "${opts[@]}" -o "$T/cut" --log-json "$T/cut.jsonl" 2> "$T/err" & p=$!
    wait_for "$T/cut.jsonl" '"step":7,'
    kill -TERM $p
    st=0; wait $p || st=$?
    [ "$st" -eq 130 ]
    grep -q "train-unet: error: interrupted: checkpoint of step" "$T/err"
    tail -1 "$T/cut.jsonl" | grep -q '"type":"checkpoint"'
    ! ls "$T/cut" | grep -q tmp
    train-unet "${opts[@]}" -o "$T/cut" --resume
    cmp "$T/whole/last.safetensors" "$T/cut/last.safetensors"
}

@test "training from a ZeroMQ endpoint gives the same model as from a file" {
    CHECK synth "$T/syn.vxp" --n 2 --seed 3
    train-unet -i "$T/syn.vxp" -o "$T/file" "${UNET[@]}"
    train-unet -i "@ipc://$T/sock" -o "$T/zmq" "${UNET[@]}" & p=$!
    vol-cat -i "$T/syn.vxp" -o ">ipc://$T/sock"
    wait $p
    cmp "$T/file/last.safetensors" "$T/zmq/last.safetensors"
}

@test "a stream longer than --cache-mb: the oldest cases are replaced, epoch by epoch" {
    CHECK synth "$T/big.vxp" --n 4 --seed 1 --dims 64,64,64
    a=(--features 4,8 --patch 16,16,16 --epochs 3 --iters-per-epoch 2 --seed 5 -v)
    train-unet -i "$T/big.vxp" -o "$T/small" "${a[@]}" --cache-mb 3 2> "$T/small.txt"
    train-unet -i "$T/big.vxp" -o "$T/large" "${a[@]}" --cache-mb 100 2> "$T/large.txt"
    cat "$T/small.txt"
    # at the start (the cache is full) and at the next epoch (one more case read)
    [ "$(grep -c "oldest case(s) replaced" "$T/small.txt")" -ge 2 ]
    ! grep -q "oldest case(s) replaced" "$T/large.txt"
    [ -s "$T/small/last.safetensors" ]
    ! cmp -s "$T/small/last.safetensors" "$T/large/last.safetensors"
}

@test "a progress bar on a terminal only" {
    command -v script >/dev/null || skip "no script(1)"
    CHECK synth "$T/syn.vxp" --n 2 --seed 1
    a=(--features 4,8 --patch 16,16,16 --epochs 2 --iters-per-epoch 3 --seed 5)
    script -qec "train-unet -i '$T/syn.vxp' -o '$T/tty' ${a[*]}" /dev/null > "$T/tty.txt"
    grep -q "epoch 2/2 .* it 3/3 loss .* it/s ETA" "$T/tty.txt"
    train-unet -i "$T/syn.vxp" -o "$T/pipe" "${a[@]}" 2> "$T/pipe.txt"
    ! grep -q "ETA" "$T/pipe.txt"
}

@test "2 MPI ranks with batch 1 each give the weights of 1 rank with batch 2" {
    has_mpi || skip "train-unet built without MPI"
    CHECK synth "$T/syn.vxp" --n 3 --seed 1
    # per-sample Dice: nnU-Net's batch Dice would be over each rank's share
    opts=(-i "$T/syn.vxp" "${UNET[@]}" --batch 2 --dice sample)
    "${MPIRUN[@]}" -np 2 train-unet "${opts[@]}" -o "$T/r2"
    train-unet "${opts[@]}" -o "$T/r1"
    CHECK cmp "$T/r1/last.safetensors" "$T/r2/last.safetensors" --rtol 1e-4 --atol 1e-6
    # and the comparison can tell: one rank with batch 1 trains on other patches
    train-unet "${opts[@]}" --batch 1 -o "$T/b1"
    ! CHECK cmp "$T/r1/last.safetensors" "$T/b1/last.safetensors" --rtol 1e-4 --atol 1e-6
}

@test "a rank killed with SIGKILL, or hanging, stops the others with a clear error" {
    has_mpi || skip "train-unet built without MPI"
    CHECK synth "$T/syn.vxp" --n 3 --seed 1
    opts=(-i "$T/syn.vxp" "${UNET[@]}" --epochs 1000 --batch 2 --rank-timeout 3)
    for sig in KILL STOP; do
        rm -f "$T/log.jsonl"
        SECONDS=0
        "${MPIRUN[@]}" -np 2 train-unet "${opts[@]}" -o "$T/run$sig" --log-json "$T/log.jsonl" 2> "$T/err$sig" & mp=$!
        wait_for "$T/log.jsonl" '"step":2,'
        victim=$(ps -o pid= --ppid $mp | tail -1)
        [ -n "$victim" ]
        kill -$sig $victim
        st=0; wait $mp || st=$?
        kill -9 $victim 2>/dev/null || true
        cat "$T/err$sig"
        [ "$st" -ne 0 ]
        [ "$SECONDS" -lt 30 ]
    done
    grep -q "exited on signal 9" "$T/errKILL"
    grep -q "train-unet: error: rank 0 of 2: gradient all-reduce at step [0-9]*: no answer from the other ranks within 3 s" "$T/errSTOP"
}

@test "--init starts from a model file; a model of the other architecture is refused" {
    CHECK synth "$T/syn.vxp" --n 2 --seed 1
    train-unet -i "$T/syn.vxp" -o "$T/a" "${UNET[@]}"
    train-unet -i "$T/syn.vxp" -o "$T/b" "${UNET[@]}" --init "$T/a/last.safetensors" --epochs 1
    train-unet -i "$T/syn.vxp" -o "$T/c" "${UNET[@]}" --epochs 1
    # the architecture comes from the file (here 4,8 features either way) and the weights too
    [ "$(CHECK meta "$T/b/last.safetensors" features_per_stage)" = "4,8" ]
    ! cmp -s "$T/b/last.safetensors" "$T/c/last.safetensors"
    train-ressegnet -i "$T/syn.vxp" -o "$T/s" "${SRN[@]}" --epochs 1
    refuses train-unet 3 train-unet -i "$T/syn.vxp" -o "$T/d" "${UNET[@]}" --init "$T/s/last.safetensors"
    says "a segresnet model, not unet"
    [ ! -e "$T/d" ]
}

# ---- bad input: exit code, one clear message, nothing written

@test "a case without a label volume exits 3 naming the case, nothing written" {
    CHECK synth "$T/in.vxp" --n 2 --bad nolabel
    refuses train-unet 3 train-unet -i "$T/in.vxp" -o "$T/run" "${UNET[@]}"
    says "case 'syn001'" "no label volume 'label'"
    nothing_left in.vxp
}

@test "a label off the image grid exits 3, nothing written" {
    CHECK synth "$T/in.vxp" --n 2 --bad grid
    refuses train-unet 3 train-unet -i "$T/in.vxp" -o "$T/run" "${UNET[@]}"
    says "case 'syn001'" "not the same grid"
    nothing_left in.vxp
}

@test "a label value beyond the classes exits 3, nothing written" {
    CHECK synth "$T/in.vxp" --n 1 --bad range
    refuses train-ressegnet 3 train-ressegnet -i "$T/in.vxp" -o "$T/run" "${SRN[@]}"
    says "case 'syn000'" "is not a class in [0, 3)"
    nothing_left in.vxp
}

@test "a patch larger than allowed, or not a multiple of the network's divisor, exits 2" {
    CHECK synth "$T/in.vxp" --n 1
    refuses train-unet 2 train-unet -i "$T/in.vxp" -o "$T/run" "${UNET[@]}" --patch 2048,16,16
    says "larger than allowed"
    refuses train-unet 2 train-unet -i "$T/in.vxp" -o "$T/run" "${UNET[@]}" --patch 16,15,16
    says "multiple of"
    nothing_left in.vxp
}

@test "--resume without a checkpoint exits 1; a corrupt checkpoint exits 3 and stays as it was" {
    CHECK synth "$T/in.vxp" --n 1
    refuses train-unet 1 train-unet -i "$T/in.vxp" -o "$T/none" "${UNET[@]}" --resume
    says "cannot resume"
    nothing_left in.vxp
    train-unet -i "$T/in.vxp" -o "$T/run" "${UNET[@]}"
    head -c 1000 "$T/run/last.optim.safetensors" > "$T/cut"
    cp "$T/cut" "$T/run/last.optim.safetensors"
    cp "$T/run/last.safetensors" "$T/last.copy"
    refuses train-unet 3 train-unet -i "$T/in.vxp" -o "$T/run" "${UNET[@]}" --resume --epochs 3
    says "last.optim.safetensors"
    cmp "$T/cut" "$T/run/last.optim.safetensors"
    cmp "$T/last.copy" "$T/run/last.safetensors"
    [ "$(ls "$T/run" | sort | tr '\n' ' ')" = "best.safetensors curves.svg last.optim.safetensors last.safetensors " ] ||
        [ "$(ls "$T/run" | sort | tr '\n' ' ')" = "curves.svg last.optim.safetensors last.safetensors " ]
}
