#!/usr/bin/env bash
# End-to-end SegResNet inference on a raw CT: infer-ressegnet (preprocessing from the model's
# metadata, sliding window, label back on the input grid) vs the same chain in MONAI (MONAI Label's
# Spacing -> ScaleIntensityRange -> sliding_window_inference -> argmax -> resample back), same
# weights and thread count: wall time (median of BENCH_ROUNDS, default 3) and peak RSS
# (/usr/bin/time -v, the largest over the rounds) side by side, voxpipe's default bounded
# aggregation (--aggregate band) and MONAI's layout (--aggregate f32), and the label agreement.
#   usage: bench/bench_infer_e2e.sh     (needs bin/infer-ressegnet, bin/vol-read; .venv with torch,
#                                        monai, nibabel, safetensors)
# Data (deterministic, bench/out/infer_e2e/): ../shared/data/totalseg/example_ct_sm.nii.gz (i16,
# 122x101x30 at 3 mm) -> 2 mm on the network grid (182x151x44 voxels, 26 classes), SegResNet
# init_filters 8 (seed 0), roi 64,64,32, overlap 0.25. BENCH_THREADS (default: CPUs).
# CPU time (user + sys) is printed too: on this shared 2-core machine wall time depends on the load.
# Python's RSS includes torch itself (about 300-400 MiB imported); the aggregation buffer MONAI
# holds is also printed (classes x voxels x 4 bytes, plus the count map).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
bin=${VOXPIPE_BIN:-$root/bin}
out=bench/out/infer_e2e
threads=${BENCH_THREADS:-$(nproc)}
rounds=${BENCH_ROUNDS:-3}
ct=${VOXPIPE_DATA:-$root/../shared/data}/totalseg/example_ct_sm.nii.gz
[ -x "$bin/infer-ressegnet" ] || { echo "bench_infer_e2e: $bin/infer-ressegnet missing (run make)" >&2; exit 1; }
mkdir -p "$out"
if [ ! -f "$out/model.safetensors" ]; then
    "$py" bench/infer_e2e_peer.py make "$ct" "$out/ckpt.pt"
    "$py" tools/convert_monai.py "$out/ckpt.pt" "$out/model.safetensors" --roi 64,64,32 --spacing 2,2,2 \
        --norm range --a-min -175 --a-max 250 --b-min 0 --b-max 1 2>/dev/null
fi
"$bin/vol-read" "$ct" -o "$out/ct.vxp"

# run NAME CMD...: time and peak RSS of one command into $out/NAME.ROUND
measure() {
    local name=$1; shift
    for r in $(seq "$rounds"); do
        /usr/bin/time -v -o "$out/$name.$r.time" "$@" >/dev/null
    done
}
median() { sort -g | awk '{a[NR]=$1} END {printf "%.2f ", a[int((NR+1)/2)]}'; }
stats() { # name -> "median_wall_s median_cpu_s max_rss_mib"
    local name=$1
    for f in "$out/$name".*.time; do
        awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$f"
    done | median
    for f in "$out/$name".*.time; do
        awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$f"
    done | median
    for f in "$out/$name".*.time; do awk -F': ' '/Maximum resident/ {print $2}' "$f"; done | sort -g | tail -1 |
        awk '{printf "%.0f\n", $1/1024}'
}
measure vp_band "$bin/infer-ressegnet" --threads "$threads" -m "$out/model.safetensors" --overlap 0.25 -i "$out/ct.vxp" -o "$out/vp.vxp"
measure vp_f32 "$bin/infer-ressegnet" --threads "$threads" -m "$out/model.safetensors" --overlap 0.25 --aggregate f32 -i "$out/ct.vxp" -o "$out/vp32.vxp"
measure monai "$py" bench/infer_e2e_peer.py run "$ct" "$out/ckpt.pt" "$out/monai.npy" "$threads"
read -r tb cb rb <<<"$(stats vp_band)"
read -r tf cf rf <<<"$(stats vp_f32)"
read -r tm cm rm <<<"$(stats monai)"
agree=$(PYTHONPATH=tests/scripts "$py" -c '
import sys, numpy as np, vxp
(c,) = list(vxp.read(open(sys.argv[1], "rb"))); a = c["vols"]["label"].data; b = np.load(sys.argv[2])
print(f"{(a == b).mean() * 100:.3f}% of {a.size} voxels")' "$out/vp.vxp" "$out/monai.npy")
echo "bench_infer_e2e: raw CT 122x101x30 (3 mm) -> 2 mm, SegResNet f8, 26 classes, $threads threads, median of $rounds, load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-34s %8s %8s %12s\n' "" "wall s" "CPU s" "peak RSS MiB"
printf '%-34s %8s %8s %12s\n' "infer-ressegnet (--aggregate band)" "$tb" "$cb" "$rb"
printf '%-34s %8s %8s %12s\n' "infer-ressegnet --aggregate f32" "$tf" "$cf" "$rf"
printf '%-34s %8s %8s %12s\n' "MONAI (torch $("$py" -c 'import torch; print(torch.__version__)'))" "$tm" "$cm" "$rm"
awk -v tb="$tb" -v tm="$tm" -v cb="$cb" -v cm="$cm" -v rb="$rb" -v rm="$rm" \
    'BEGIN {printf "ratio MONAI/voxpipe (band): wall %.2fx, CPU %.2fx, peak RSS %.2fx\n", tm/tb, cm/cb, rm/rb}'
echo "MONAI's aggregation buffers: 26 x 182 x 151 x 44 x 4 B + count = $(( (26 + 1) * 182 * 151 * 44 * 4 / 1048576 )) MiB; labels equal on $agree"
