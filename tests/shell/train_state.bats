#!/usr/bin/env bats
# train-unet / train-ressegnet: the f16 loss scaler's state in the training-state file
# (last.optim.safetensors metadata voxpipe.train.loss_scale, _growth, _backoff, _interval,
# _tracker) as the CPU sees it: checkpoints without it (older ones, CPU runs) resume as before,
# state present is checked and ignored by a run without f16 loss scaling, malformed state or a
# malformed VP_LOSS_SCALE is refused. The GPU side (saved by an f16 run, restored on resume,
# SIGKILL + resume = uninterrupted) is tests/gpu/emu_train_resume.sh (emulated device) and
# tests/gpu/check_train_state.sh (a real GPU).
bats_require_minimum_version 1.5.0
load helpers

ST() { "$VOXPIPE_PY" "$SCRIPTS/train_state.py" "$@"; }
UNET=(--features 4,8 --patch 16,16,16 --iters-per-epoch 2 --seed 5)
# what an f16 run writes (the values of a run that skipped twice and grew once)
SCALER=(voxpipe.train.loss_scale=32768 voxpipe.train.loss_scale_growth=2 voxpipe.train.loss_scale_backoff=0.5
        voxpipe.train.loss_scale_interval=2000 voxpipe.train.loss_scale_tracker=17)

@test "a CPU run's training state has no loss-scaler keys (the format of older checkpoints)" {
    "$VOXPIPE_PY" "$SCRIPTS/train_check.py" synth "$T/syn.vxp" --n 2 --seed 1
    train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --epochs 1
    [ "$(ST meta "$T/run/last.optim.safetensors" voxpipe.train.epoch)" = 1 ]
    [ -z "$(ST meta "$T/run/last.optim.safetensors" voxpipe.train.loss_scale)" ]
    [ -z "$(ST meta "$T/run/last.optim.safetensors" voxpipe.train.loss_scale_tracker)" ]
}

@test "a checkpoint without scaler state resumes; with it, a CPU run checks it, says so under -v, ends the same" {
    "$VOXPIPE_PY" "$SCRIPTS/train_check.py" synth "$T/syn.vxp" --n 2 --seed 1
    train-unet -i "$T/syn.vxp" -o "$T/whole" "${UNET[@]}" --epochs 2
    train-unet -i "$T/syn.vxp" -o "$T/old" "${UNET[@]}" --epochs 1
    cp -r "$T/old" "$T/new"
    ST set "$T/new/last.optim.safetensors" "${SCALER[@]}"
    [ "$(ST meta "$T/new/last.optim.safetensors" voxpipe.train.loss_scale_tracker)" = 17 ]
    train-unet -i "$T/syn.vxp" -o "$T/old" "${UNET[@]}" --epochs 2 --resume
    run --separate-stderr train-unet -i "$T/syn.vxp" -o "$T/new" "${UNET[@]}" --epochs 2 --resume -v --log-json "$T/new.jsonl"
    echo "$stderr"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"loss-scaler state (scale 32768) not used: this run has no f16 loss scaling"* ]]
    cmp "$T/whole/last.optim.safetensors" "$T/old/last.optim.safetensors"
    cmp "$T/whole/last.safetensors" "$T/new/last.safetensors"
    # the resumed CPU run writes no scaler state of its own
    [ -z "$(ST meta "$T/new/last.optim.safetensors" voxpipe.train.loss_scale)" ]
}

@test "malformed loss-scaler state exits 3 naming the key; the checkpoint stays as it was" {
    "$VOXPIPE_PY" "$SCRIPTS/train_check.py" synth "$T/syn.vxp" --n 2 --seed 1
    train-unet -i "$T/syn.vxp" -o "$T/good" "${UNET[@]}" --epochs 1
    ST set "$T/good/last.optim.safetensors" "${SCALER[@]}"
    for bad in loss_scale=inf loss_scale=0 loss_scale=abc loss_scale_growth=0.5 loss_scale_backoff=2 \
               loss_scale_interval=0 loss_scale_interval=4294967296 loss_scale_tracker=-1 loss_scale_tracker=2000 loss_scale_interval=x; do
        rm -rf "$T/run"
        cp -r "$T/good" "$T/run"
        ST set "$T/run/last.optim.safetensors" "voxpipe.train.$bad"
        cp "$T/run/last.optim.safetensors" "$T/state.copy"
        refuses train-unet 3 train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --epochs 2 --resume -q
        says "last.optim.safetensors: corrupt training state"
        if [ "${bad%%=*}" = loss_scale_tracker ] && [ "${bad#*=}" = 2000 ]; then says "growth tracker 2000 not below its interval 2000"
        else says "voxpipe.train.${bad%%=*} '${bad#*=}'"; fi
        cmp "$T/state.copy" "$T/run/last.optim.safetensors"
        [ "$(ST meta "$T/run/last.safetensors" voxpipe.train.epoch)" = 1 ]
    done
    # incomplete: the scale without the rest
    rm -rf "$T/run"
    cp -r "$T/good" "$T/run"
    ST del "$T/run/last.optim.safetensors" voxpipe.train.loss_scale_tracker
    refuses train-unet 3 train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --epochs 2 --resume -q
    says "corrupt training state: no metadata voxpipe.train.loss_scale_tracker"
}

@test "a malformed VP_LOSS_SCALE is a usage error (exit 2), nothing written" {
    "$VOXPIPE_PY" "$SCRIPTS/train_check.py" synth "$T/syn.vxp" --n 2 --seed 1
    for v in abc 0 1e39 65536, 65536,0 65536,x 65536:2000; do
        refuses train-unet 2 env "VP_LOSS_SCALE=$v" train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --epochs 1 -q
        says "VP_LOSS_SCALE '$v': expected INIT[,INTERVAL]"
        nothing_left syn.vxp
    done
    # a well-formed one is accepted (and unused without f16)
    VP_LOSS_SCALE=1024,10 train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --epochs 1
    [ -e "$T/run/last.optim.safetensors" ]
}
