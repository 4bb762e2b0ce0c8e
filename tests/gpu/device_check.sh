#!/usr/bin/env bash
# tests/gpu/device_check.sh - THE command to run on the device machine (see tests/gpu/README.md for
# the exact tool call): the GPU checks against the binaries of .gpupack (tests/gpu/pack.sh, run
# here first and carried), with nothing built there. In order:
#   env        the machine: GPU, driver, CPU, nvcc, python3/torch, the cuDNN and NCCL found, pack
#   preflight  the pack's environment (tests/gpu/pack_env.sh: bin/ and build/gpu/ linked to the
#              pack, cuDNN/NCCL from the device's pip packages on LD_LIBRARY_PATH, wheels into a
#              Python site); every packed binary and library resolves (ldd: nothing missing but the
#              device's sonames); the shared CT and the golden models are there; the packed
#              programs run on this CPU (vol-read | vol-info on the CT, infer-ressegnet --help);
#              the checks' Python imports (torch, numpy, monai, nnunetv2, dynamic_network_arch.)
#   no GPU     -> "device check: SKIP: no GPU (preflight passed)", exit 0
#   phases     (default all, in this order; names as arguments run only those):
#              check        tests/gpu/check.sh, every step but the benchmark
#              train        tests/gpu/check_train.sh, every step but the benchmark
#              bench        check.sh's benchmark (PyTorch vs voxpipe forward, whole volume)
#              <name>       tests/gpu/check_<name>.sh for each other executable check_*.sh
#                           (check_unet.sh, check_pipeline.sh, check_train_state.sh, ...)
#              train-bench  check_train.sh's benchmark (training iteration vs PyTorch AMP)
#              Each phase runs under a timeout: its cap (CAP_<phase> seconds: check 150, train 110,
#              bench 100, train-bench 100, others 90) clipped to what is left of BUDGET (default
#              400 s from the start) less 25 s for each phase still to come (all that is left when
#              that leaves under 30 s: the order is the priority), so the whole run ends within
#              about 7 minutes on one H100 and a rerun fits in the 15 minutes of device time; a
#              phase given under 20 s is skipped (it says so) -- rerun it alone.
# Output: the console (tool's output_tail), and in $OUT (at most 8 files come back): device_check.log
# (everything printed), summary.md (for BENCHMARKS.md), logs.tgz (every phase's own logs).
#   usage: tests/gpu/device_check.sh [PHASE...]      exit 0 all run phases passed (or no GPU), 1 not
#   env:   VP_GPU_PACK (default .gpupack), BUDGET (s), CAP_check ... , PY (python with torch;
#          default python3), VP_DEVICE_LIBDIRS (replace the search for cuDNN/NCCL; tests)
set -u
cd "$(dirname "$0")/../.." || exit 1
T0=$(date +%s)
export VP_GPU_PACK=${VP_GPU_PACK:-.gpupack}
export PY=${PY:-python3}
BUDGET=${BUDGET:-400}
RES=${OUT:-tests/tmp/gpu-device}
WORK=$(mktemp -d /tmp/vp-device-check.XXXXXX)
mkdir -p "$RES"
exec > >(tee "$RES/device_check.log") 2>&1
TEE=$!
trap 'exec 1>&- 2>&-; wait $TEE 2>/dev/null; rm -rf "$WORK"' EXIT # all of the log written before the tool collects it
say() { printf '%s\n' "$*"; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }
pre_fail=()
pre() { # name ok|FAIL detail
    say "preflight $1: $2${3:+ ($3)}"
    [ "$2" = ok ] || pre_fail+=("$1")
}

say "== env ($(date -u '+%Y-%m-%d %H:%M:%S UTC'), tree $(git rev-parse --short HEAD 2>/dev/null || echo 'without .git'), pack $VP_GPU_PACK)"
say "host: $(uname -srm); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
HAVE_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    HAVE_GPU=1
    nvidia-smi -L
    say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | head -1)"
else
    say "gpu: none (nvidia-smi finds no NVIDIA GPU)"
fi
say "nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo none)"
say "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])' 2>&1 | tail -1)"
TORCH=$("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available())' 2>&1 | tail -1)
say "torch: $TORCH"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || sed -n 's/^commit: \([0-9a-f]\{9\}\).*/\1 (the pack'"'"'s)/p' "$VP_GPU_PACK/MANIFEST" 2>/dev/null)
say "pack: $(sed -n '2,6p' "$VP_GPU_PACK/MANIFEST" 2>/dev/null | paste -sd';' || echo "none at $VP_GPU_PACK")"

# ---- preflight
say "== preflight"
# shellcheck source=tests/gpu/pack_env.sh
. tests/gpu/pack_env.sh
if ! vp_pack_setup; then
    pre setup FAIL "the pack cannot be used: see above"
    say "device check: FAIL: preflight: ${pre_fail[*]}"; exit 1
fi
pre setup ok "bin -> $(readlink bin), build/gpu -> $(readlink build/gpu); LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}; PYTHONPATH=${PYTHONPATH:-}"
for so in $(cat "$VP_GPU_PACK/lib/DEVICE"); do
    if d=$(vp_pack_find_so "$so"); then
        v=$("$PY" -c 'import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); n = ctypes.c_int(0)
print("version", lib.cudnnGetVersion() if "cudnn" in sys.argv[1] else (lib.ncclGetVersion(ctypes.byref(n)), n.value)[1])' "$d/$so" 2>/dev/null)
        case $so in libcudnn*) v="$v; the pack was compiled against cuDNN $(sed -n 's/^cuda:.*cudnn headers //p' "$VP_GPU_PACK/MANIFEST")" ;; esac
        say "  device $so: $(readlink -f "$d/$so")${v:+ ($v)}"
    else say "  device $so: NOT FOUND"; fi
done
miss="" devmiss=""
for f in "$VP_GPU_PACK"/bin/* "$VP_GPU_PACK"/gpu/* "$VP_GPU_PACK"/lib/*.so*; do
    while read -r so; do
        if grep -qx "$so" "$VP_GPU_PACK/lib/DEVICE"; then
            case " $devmiss " in *" $so "*) ;; *) devmiss="$devmiss $so" ;; esac
        else miss="$miss $(basename "$f"):$so"; fi
    done < <(ldd "$f" 2>/dev/null | awk '/not found/ { print $1 }')
done
n=$(find "$VP_GPU_PACK"/bin "$VP_GPU_PACK"/gpu "$VP_GPU_PACK"/lib -type f ! -name DEVICE | wc -l)
[ -z "$miss" ] && pre ldd ok "$n packed files resolve; from the device: $(tr '\n' ' ' <"$VP_GPU_PACK/lib/DEVICE")${devmiss:+-- NOT FOUND here:$devmiss}" ||
    pre ldd FAIL "missing:$miss"
if [ -n "$devmiss" ]; then
    [ $HAVE_GPU = 1 ] && pre device-libs FAIL "not found on this machine:$devmiss (pip nvidia-cudnn-cu13 / nvidia-nccl-cu13?)" ||
        say "preflight device-libs: not here:$devmiss (they come from the device's pip packages; no GPU here, so not an error)"
fi
DATA=$VP_GPU_PACK/data
CT=$DATA/totalseg/example_ct_sm.nii.gz
m=""
for f in "$CT" tests/golden/segresnet/model_small.safetensors tests/golden/unet/model.safetensors; do [ -s "$f" ] || m="$m $f"; done
[ -z "$m" ] && pre data ok "$CT, golden models" || pre data FAIL "missing:$m"
if [ -z "$devmiss" ]; then
    if out=$(timeout 60 bin/vol-read "$CT" 2>&1 >"$WORK/ct.vxp") && info=$(timeout 30 bin/vol-info <"$WORK/ct.vxp" 2>&1 | head -3 | paste -sd' ') &&
        timeout 30 bin/infer-ressegnet --help >/dev/null 2>&1 && timeout 30 bin/train-unet --help >/dev/null 2>&1; then
        pre run ok "vol-read | vol-info: ${info:0:120}; infer-ressegnet, train-unet --help"
    else
        pre run FAIL "${out:-}${info:-} (a packed program does not start on this machine)"
    fi
else
    out=$(timeout 60 bin/vol-read "$CT" 2>&1 >"$WORK/ct.vxp") && pre run ok "vol-read on the CT (the cuDNN programs cannot start without the device's libraries)" ||
        pre run FAIL "vol-read: $out"
fi
py=$("$PY" - 2>&1 <<'EOF'
import importlib
got, bad = [], []
for m in ["numpy", "msgpack", "torch", "monai", "monai.networks.nets", "monai.losses", "nibabel", "nnunetv2.training.loss.compound_losses",
          "nnunetv2.training.loss.deep_supervision", "nnunetv2.training.loss.dice",
          "dynamic_network_architectures.architectures.unet"]:
    try:
        importlib.import_module(m)
        top = importlib.import_module(m.split(".")[0])
        got.append(top.__name__ + " " + str(getattr(top, "__version__", "")).split("+")[0])
    except Exception as e:  # report each one that fails
        bad.append("%s (%s: %s)" % (m, type(e).__name__, e))
print(("FAIL " + "; ".join(bad)) if bad else "ok " + ", ".join(dict.fromkeys(got)))
EOF
)
py=$(tail -1 <<<"$py")
case $py in ok*) pre python ok "${py#ok }" ;; *) pre python FAIL "${py#FAIL }" ;; esac
if [ ${#pre_fail[@]} -gt 0 ]; then
    say "device check: FAIL: preflight: ${pre_fail[*]} ($(($(date +%s) - T0)) s)"
    exit 1
fi
say "preflight: all passed ($(($(date +%s) - T0)) s)"
if [ $HAVE_GPU = 0 ]; then
    say "device check: SKIP: no GPU (preflight passed)"
    exit 0
fi

# ---- phases
others=()
for f in tests/gpu/check_*.sh; do
    n=$(basename "$f" .sh); n=${n#check_}
    [ "$n" = train ] || [ ! -x "$f" ] || others+=("$n")
done
PHASES=("$@")
# bench before the others: check_pipeline.sh reuses the model and volume its bench step writes
[ ${#PHASES[@]} -eq 0 ] && PHASES=(check train bench "${others[@]}" train-bench)
declare -A CAP=([check]=${CAP_check:-150} [train]=${CAP_train:-110} [bench]=${CAP_bench:-100} [train-bench]=${CAP_train_bench:-100})
export VP_GPU_NO_SUBCHECKS=1 # this script runs each check_*.sh itself
rc=0
declare -A RESULT
i=0
for ph in "${PHASES[@]}"; do
    i=$((i + 1))
    cap=${CAP[$ph]:-$(eval echo "\${CAP_${ph//-/_}:-90}")}
    # what is left, less 25 s for each phase still to come, at most the cap; when that leaves under
    # 30 s, all that is left (the phases' order is their priority: the later ones are skipped)
    t=$(($(left) - 25 * (${#PHASES[@]} - i))); [ "$t" -lt 30 ] && t=$(left)
    [ "$t" -gt "$cap" ] && t=$cap
    if [ "$t" -lt 20 ]; then
        say "== $ph: SKIP: $(left) s of the ${BUDGET} s budget left (run it alone: tests/gpu/device_check.sh $ph)"
        RESULT[$ph]="SKIP (time budget)"; continue
    fi
    case $ph in
    check) cmd=(env SKIP_BENCH=1 tests/gpu/check.sh "$DATA") ;;
    train) cmd=(env SKIP_BENCH=1 tests/gpu/check_train.sh) ;;
    bench) cmd=(env VP_GPU_ONLY=bench tests/gpu/check.sh "$DATA") ;;
    train-bench) cmd=(env VP_GPU_ONLY=bench tests/gpu/check_train.sh) ;;
    *) [ -x "tests/gpu/check_$ph.sh" ] || { say "== $ph: no executable tests/gpu/check_$ph.sh"; RESULT[$ph]="FAIL (no script)"; rc=1; continue; }
       cmd=("tests/gpu/check_$ph.sh") ;;
    esac
    mkdir -p "$WORK/logs/$ph"
    say "== $ph: ${cmd[*]} (timeout $t s; $(left) s of the budget left)"
    s=$(date +%s)
    OUT=$WORK/logs/$ph VP_GPU_DEADLINE=$((s + t - 5)) DATA_DIR=$DATA timeout -k 5 "$t" "${cmd[@]}" 2>&1 | tee "$WORK/logs/$ph/console.txt"
    e=${PIPESTATUS[0]}
    d=$(($(date +%s) - s))
    case $e in
    0) if grep -q '^== bench: SKIP' "$WORK/logs/$ph/console.txt"; then RESULT[$ph]="SKIP ($d s: too little time left for it)"
       else RESULT[$ph]="PASS ($d s)"; fi ;;
    124 | 137) RESULT[$ph]="TIMEOUT after $d s (cap $t s)"; rc=1 ;;
    *) RESULT[$ph]="FAIL (exit $e, $d s)"; rc=1 ;;
    esac
    say "== $ph: ${RESULT[$ph]}"
done

# ---- summary for BENCHMARKS.md, logs
{
    say "### GPU check $(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT, tests/gpu/device_check.sh"
    say ""
    say "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1); CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    say "- torch $TORCH; pack: $(sed -n 2,3p "$VP_GPU_PACK/MANIFEST" | paste -sd';')"
    for ph in "${PHASES[@]}"; do say "- $ph: ${RESULT[$ph]:-not run}"; done
    say ""
    say '```'
    for ph in "${PHASES[@]}"; do
        c=$WORK/logs/$ph/console.txt
        [ -s "$c" ] || continue
        say "[$ph]"
        case $ph in
        check | bench) sed -n '/^---- summary/,$p' "$c" ;;
        *) grep -E 'PASS|FAIL|SKIP|ratio|MISSED|^[a-z-]+(-[a-z0-9^.()]+)+ +[0-9.]+ ' "$c" | tail -25 ;;
        esac
    done
    say '```'
} >"$RES/summary.md"
cat "$RES/summary.md"
tar -C "$WORK" -czf "$RES/logs.tgz" logs 2>/dev/null
say "device check: $([ $rc -eq 0 ] && echo PASS || echo FAIL) ($(($(date +%s) - T0)) s); $RES: device_check.log summary.md logs.tgz"
exit $rc
