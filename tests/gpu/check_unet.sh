#!/usr/bin/env bash
# tests/gpu/check_unet.sh - the real-GPU check of nnU-Net inference on the device (issue 6, H1):
# the device-resident PlainConvUNet / ResidualEncoderUNet and nnU-Net's sliding window on the
# device (lib/cuda/nn_cuda_unet*.cu, lib/nn_infer_cuda_unet.c). Run by tests/gpu/check.sh (its
# "others" step runs every executable tests/gpu/check_*.sh) or by hand; without a GPU it says
# SKIP and exits 0. The programs are assumed built (check.sh builds them); the driver
# build/gpu/test_cuda_unet is built here when missing or older than its source or the library.
# Steps, each one "unet STEP: PASS|FAIL|SKIP ..." line; the last line sums up. About 1 minute.
#   test     build/gpu/test_cuda_unet: the device forward of the golden U-Net and ResEnc in every
#            math and layout vs PyTorch, nnU-Net's sliding window on the device (f16/f32, TTA,
#            batches) vs nnU-Net's logits and the CPU predictor's labels
#   infer    infer-unet on the shared CT (122x101x30, 3 mm) with the golden ResEnc (network grid =
#            input grid: labels straight from the device) and the golden PlainConvUNet with CT
#            intensity properties (resampled to 1.5 mm in-plane: the logits come back): --backend
#            cuda (f32, NCDHW), --sw-batch 4 and --tta must give labels identical to --backend cpu;
#            cuda:0:tf32 and cuda:0:f16 (NDHWC) report their agreement; every cuda run must have
#            taken the device path. Prints "unet timing: ..." lines, cuda vs cpu wall time.
#   usage: tests/gpu/check_unet.sh [DATA_DIR]   exit 0 all pass or skipped, 1 a step failed
#   env:   UNET_STEPS="test infer" (default both), OUT (log folder; else tests/tmp/gpu), PY
set -u
cd "$(dirname "$0")/../.." || exit 1
DATA=${1:-../shared/data}
LOG=${OUT:-tests/tmp/gpu}
WORK=tests/tmp/gpu/unet
mkdir -p "$LOG" "$WORK"
. tests/gpu/common.sh
CHECK=unet
STEPS=${UNET_STEPS:-test infer}
need_gpu "unet check: SKIP: no NVIDIA GPU (tests/gpu/emulate.sh part 4 checks this code on the CPU)"

if want test; then
    T=build/gpu/test_cuda_unet
    # with a pack (VP_GPU_PACK, tests/gpu/pack.sh) the driver is the pack's: never rebuilt (or deleted) here
    if [ -z "${VP_GPU_PACK:-}" ] && ! { [ -x "$T" ] && [ "$T" -nt tests/gpu/test_cuda_unet.c ] && [ "$T" -nt build/libvoxpipe.a ]; }; then
        mkdir -p build/gpu
        # shellcheck disable=SC2046 # the link line is meant to split into words
        cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA \
            -o "$T" tests/gpu/test_cuda_unet.c build/libvoxpipe.a $(make -s print-ldlibs) >"$LOG/unet-build.log" 2>&1 || rm -f "$T"
    fi
    if [ ! -x "$T" ]; then result test FAIL "test_cuda_unet does not build: $(tail -2 "$LOG/unet-build.log")"
    else
        timeout 180 "$T" >"$LOG/unet-test.out" 2>"$LOG/unet-test.err"
        e=$?
        grep -v '^ok' "$LOG/unet-test.out"
        if [ $e -eq 0 ]; then result test PASS "$(tail -1 "$LOG/unet-test.out")"
        else result test FAIL "exit $e: $(tail -1 "$LOG/unet-test.out"); $(tail -2 "$LOG/unet-test.err")"; fi
    fi
fi

# prog runs of one model: NAME=BACKEND[,ARG...] ...; the first is the reference, a NAME ending in !
# must give identical labels, the others report their agreement
infer_model() { # tag model "VARIANTS"
    local tag=$1 model=$2 vars=$3 v name f be args e s t ref="" reft="" how
    for v in $vars; do
        name=${v%%=*}; f=${name%!}; IFS=, read -r -a args <<<"${v#*=}"; be=${args[0]}; args=("${args[@]:1}")
        rm -f "$WORK/$tag-$f.vxp" "$WORK/$tag-$f-label.nii"
        s=$(date +%s.%N)
        timeout 150 bin/infer-unet -v --backend "$be" "${args[@]}" -m "$model" -i "$WORK/ct.vxp" -o "$WORK/$tag-$f.vxp" \
            >"$LOG/unet-$tag-$f.out" 2>"$LOG/unet-$tag-$f.err"
        e=$?
        t=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
        if [ $e -ne 0 ] || [ -s "$LOG/unet-$tag-$f.out" ]; then
            result "infer $tag $f" FAIL "--backend $be ${args[*]}: exit $e, $(wc -c <"$LOG/unet-$tag-$f.out") bytes on stdout: $(tail -1 "$LOG/unet-$tag-$f.err")"
            continue
        fi
        bin/vol-write -i "$WORK/$tag-$f.vxp" --vol label -o "$WORK/$tag-$f-{vol}.nii" 2>>"$LOG/unet-$tag-$f.err"
        if [ -z "$ref" ]; then ref=$f reft=$t; continue; fi
        if cmp -s "$WORK/$tag-$ref-label.nii" "$WORK/$tag-$f-label.nii"; then how="labels identical"
        else how="labels differ: $("$PY" tests/gpu/emu/compare_infer.py "$WORK/$tag-$ref.vxp" "$WORK/$tag-$f.vxp" --agree 0 2>&1 | cut -c1-160)"; fi
        local st=PASS
        [ "$name" != "$f" ] && [ "$how" != "labels identical" ] && st=FAIL
        grep -q 'device-resident U-Net' "$LOG/unet-$tag-$f.err" || { st=FAIL; how="$how; NOT the device path"; }
        result "infer $tag $f" "$st" "--backend $be ${args[*]}: $how; $t s vs cpu $reft s"
        say "unet timing: $tag $f (--backend $be ${args[*]}): $t s, cpu $reft s: $(awk -v a="$reft" -v b="$t" 'BEGIN { printf "%.2fx", a / b }') ($(sed -n 's/.*device memory peak \([0-9.]*\) MiB.*/device peak \1 MiB/p' "$LOG/unet-$tag-$f.err" | tail -1))"
    done
}
if want infer; then
    CT=$DATA/totalseg/example_ct_sm.nii.gz
    if [ ! -f "$CT" ]; then result infer SKIP "no $CT"
    elif ! bin/vol-read "$CT" >"$WORK/ct.vxp" ||
        ! "$PY" tests/scripts/nnunet_raw_e2e.py setmeta tests/golden/unet/model.safetensors "$WORK/unet.safetensors" intensity_properties \
            '{"0": {"mean": 38.62, "std": 96.79, "percentile_00_5": -595.68, "percentile_99_5": 334.64}}' >"$LOG/unet-setmeta.log" 2>&1; then
        result infer FAIL "vol-read or the model's setmeta failed: $(tail -1 "$LOG/unet-setmeta.log")"
    else
        infer_model resenc tests/golden/resenc/model.safetensors \
            "cpu=cpu cuda!=cuda cuda-b4!=cuda,--sw-batch,4 tf32=cuda:0:tf32,--sw-batch,4 f16=cuda:0:f16,--sw-batch,4"
        infer_model resenc-tta tests/golden/resenc/model.safetensors "cpu=cpu,--tta cuda!=cuda,--tta,--sw-batch,4"
        infer_model unet "$WORK/unet.safetensors" "cpu=cpu cuda!=cuda,--sw-batch,8 f16=cuda:0:f16,--sw-batch,8"
    fi
fi
say "unet check: $([ ${#fails[@]} -eq 0 ] && echo PASS || echo "FAIL (${fails[*]})")"
[ ${#fails[@]} -eq 0 ]
