#!/usr/bin/env bats
# Trainer validation (lib/trainer_val.c) and train-ressegnet --dice batch: the sliding-window
# validation Dice equals the Dice of the inference program run on the written checkpoint; the
# cheap patch validation (nnU-Net's online Dice) does not disturb training. Tiny networks on
# synthetic cases larger than the patch (several windows per case), seconds each.
bats_require_minimum_version 1.5.0
load helpers

CHECK() { "$VOXPIPE_PY" "$SCRIPTS/train_check.py" "$@"; }
UNET=(--features 4,8 --patch 16,16,8 --epochs 2 --iters-per-epoch 4 --seed 5 -q)
SRN=(--init-filters 4 --norm-groups 2 --blocks-down 1,1 --blocks-up 1 --patch 16,8,8 --epochs 2 --iters-per-epoch 4 --seed 5 -q)

@test "train-ressegnet: window validation Dice = infer-ressegnet's Dice on the checkpoint" {
    CHECK synth "$T/train.vxp" --n 3 --seed 1
    CHECK synth "$T/val.vxp" --n 3 --seed 7
    train-ressegnet -i "$T/train.vxp" --val "$T/val.vxp" -o "$T/run" "${SRN[@]}" --log-json "$T/log.jsonl"
    grep -q '"type":"val","epoch":1,"mode":"window"' "$T/log.jsonl"
    infer-ressegnet -m "$T/run/last.safetensors" --no-preprocess --label pred < "$T/val.vxp" > "$T/pred.vxp"
    got=$(CHECK valdice "$T/log.jsonl")
    want=$(CHECK casedice "$T/val.vxp" "$T/pred.vxp" label pred)
    echo "trainer: $got"
    echo "infer-ressegnet: $want"
    [ -n "$want" ]
    [ "$got" = "$want" ]
    # a smaller overlap gives other windows and another Dice (the comparison can fail)
    train-ressegnet -i "$T/train.vxp" --val "$T/val.vxp" -o "$T/run2" "${SRN[@]}" --val-overlap 0 --log-json "$T/log2.jsonl"
    infer-ressegnet -m "$T/run2/last.safetensors" --no-preprocess --overlap 0 --label pred < "$T/val.vxp" > "$T/pred2.vxp"
    got2=$(CHECK valdice "$T/log2.jsonl")
    echo "overlap 0: $got2"
    [ "$got2" = "$(CHECK casedice "$T/val.vxp" "$T/pred2.vxp" label pred)" ]
    [ "$got2" != "$got" ]
}

@test "train-unet --val-mode window: validation Dice = infer-unet's Dice on the checkpoint" {
    CHECK synth "$T/train.vxp" --n 3 --seed 1
    CHECK synth "$T/val.vxp" --n 3 --seed 7
    train-unet -i "$T/train.vxp" --val "$T/val.vxp" -o "$T/run" "${UNET[@]}" --val-mode window --log-json "$T/log.jsonl"
    grep -q '"type":"val","epoch":1,"mode":"window"' "$T/log.jsonl"
    infer-unet -m "$T/run/last.safetensors" --no-preprocess --out-vol pred < "$T/val.vxp" > "$T/pred.vxp"
    got=$(CHECK valdice "$T/log.jsonl")
    want=$(CHECK casedice "$T/val.vxp" "$T/pred.vxp" label pred)
    echo "trainer: $got"
    echo "infer-unet: $want"
    [ -n "$want" ]
    [ "$got" = "$want" ]
}

@test "train-unet validates on patches by default (nnU-Net's online Dice) without changing the training" {
    CHECK synth "$T/syn.vxp" --n 4 --seed 3
    train-unet -i "$T/syn.vxp" --val-split 0.5 -o "$T/run" "${UNET[@]}" --val-iters 3 --log-json "$T/log.jsonl"
    grep -q '"type":"val","epoch":0,"mode":"patch"' "$T/log.jsonl"
    grep -q '"type":"val","epoch":1,"mode":"patch"' "$T/log.jsonl"
    # no validation, or window validation: the same weights (validation draws from its own generator)
    train-unet -i "$T/syn.vxp" --val-split 0.5 -o "$T/none" "${UNET[@]}" --val-every 0
    train-unet -i "$T/syn.vxp" --val-split 0.5 -o "$T/win" "${UNET[@]}" --val-mode window
    cmp "$T/run/last.safetensors" "$T/none/last.safetensors"
    cmp "$T/run/last.safetensors" "$T/win/last.safetensors"
    # the same run again: the same validation Dice; more batches: another estimate
    train-unet -i "$T/syn.vxp" --val-split 0.5 -o "$T/again" "${UNET[@]}" --val-iters 3 --log-json "$T/again.jsonl"
    [ "$(CHECK valdice "$T/log.jsonl")" = "$(CHECK valdice "$T/again.jsonl")" ]
    train-unet -i "$T/syn.vxp" --val-split 0.5 -o "$T/more" "${UNET[@]}" --val-iters 7 --log-json "$T/more.jsonl"
    [ "$(CHECK valdice "$T/log.jsonl")" != "$(CHECK valdice "$T/more.jsonl")" ]
}

@test "train-ressegnet --dice batch trains on MONAI's batch Dice: other losses and weights than --dice sample" {
    CHECK synth "$T/syn.vxp" --n 3 --seed 2
    train-ressegnet -i "$T/syn.vxp" -o "$T/s" "${SRN[@]}" --val-every 0 --log-json "$T/s.jsonl"
    train-ressegnet -i "$T/syn.vxp" -o "$T/b" "${SRN[@]}" --val-every 0 --dice batch --log-json "$T/b.jsonl"
    train-ressegnet -i "$T/syn.vxp" -o "$T/s2" "${SRN[@]}" --val-every 0 --dice sample
    cmp "$T/s/last.safetensors" "$T/s2/last.safetensors"
    ! cmp -s "$T/s/last.safetensors" "$T/b/last.safetensors"
    first() { "$VOXPIPE_PY" -c 'import json,sys; print([o for o in map(json.loads, open(sys.argv[1])) if o["type"] == "iter"][0]["loss"])' "$1"; }
    [ "$(first "$T/s.jsonl")" != "$(first "$T/b.jsonl")" ]
    train-ressegnet --help | grep -q -- "--dice MODE"
    train-unet --help | grep -q -- "--dice MODE"
}

@test "bad validation options exit 2" {
    CHECK synth "$T/syn.vxp" --n 2 --seed 2
    refuses train-unet 2 train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --val-mode sliding
    refuses train-ressegnet 2 train-ressegnet -i "$T/syn.vxp" -o "$T/run" "${SRN[@]}" --val-overlap 1
    refuses train-unet 2 train-unet -i "$T/syn.vxp" -o "$T/run" "${UNET[@]}" --val-iters 0
    refuses train-ressegnet 2 train-ressegnet -i "$T/syn.vxp" -o "$T/run" "${SRN[@]}" --dice both
    [ ! -e "$T/run" ]
}
