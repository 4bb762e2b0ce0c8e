#!/usr/bin/env bash
# Peak memory of nnU-Net inference: voxpipe's infer-unet (banded aggregation, and --whole-logits)
# vs nnunetv2's nnUNetPredictor.predict_single_npy_array, same ResEnc weights, same raw CT, same
# thread count: wall time and peak RSS (/usr/bin/time -v) side by side, the ratios, and the label
# agreement.
#   usage: bench/bench_unet_memory.sh     (needs bin/infer-unet, bin/vol-read, .venv with torch + nnunetv2)
# Volume: the shared CT at 1.5 mm, mirror-extended to BENCH_Z slices (default 120: 244 x 202 x 120,
# 5.9 M voxels), i16; the network grid is the image grid (plans spacing 1.5 mm), so neither side
# resamples. Model: bench/unet_memory_peer.py (ResidualEncoderUNet, narrow: features 2..8 so the
# network is cheap and the aggregation dominates memory; BENCH_CLASSES classes, default 32; patch
# 32 x 64 x 64; tile step 0.5, Gaussian, no mirroring, f16 aggregation). Data made once under
# bench/out/unetmem/ (git-ignored). Each program runs BENCH_ROUNDS times (default 1; median taken).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
z=${BENCH_Z:-120}
k=${BENCH_CLASSES:-32}
rounds=${BENCH_ROUNDS:-1}
threads=${BENCH_THREADS:-$(nproc)}
out=bench/out/unetmem/z${z}_k${k}
for b in infer-unet vol-read; do [ -x bin/$b ] || { echo "bench_unet_memory: bin/$b missing (run make)" >&2; exit 1; }; done
[ -x /usr/bin/time ] || { echo "bench_unet_memory: /usr/bin/time missing (Debian package time)" >&2; exit 1; }
"$py" -c 'import nnunetv2, torch, scipy, nibabel' 2>/dev/null || { echo "bench_unet_memory: $py lacks nnunetv2/torch/scipy/nibabel" >&2; exit 1; }
if [ ! -f "$out/results/fold_0/checkpoint_final.pth" ]; then
    "$py" bench/unet_memory_peer.py make "$out" "$z" "$k"
    "$py" tools/convert_nnunet.py "$out/results" "$out/model" 2>/dev/null
fi
bin/vol-read "$out/ct.nii.gz" -o "$out/ct.vxp"

# measure NAME CMD... : run CMD rounds times; "wall_s rss_mib" of the median-wall run into $out/NAME.m
measure() {
    local name=$1; shift
    : > "$out/$name.all"
    for _ in $(seq "$rounds"); do
        /usr/bin/time -v -o "$out/$name.time" "$@" > "$out/$name.stdout"
        awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; w = s}
                    /Maximum resident set size/ {r = $2 / 1024} END {printf "%.2f %.0f\n", w, r}' "$out/$name.time" >> "$out/$name.all"
    done
    sort -n "$out/$name.all" | awk -v m=$(((rounds + 1) / 2)) 'NR == m' > "$out/$name.m"
}

measure band bin/infer-unet --threads "$threads" -m "$out/model_fold_0.safetensors" -i "$out/ct.vxp" -o "$out/band.vxp"
measure whole bin/infer-unet --threads "$threads" --whole-logits -m "$out/model_fold_0.safetensors" -i "$out/ct.vxp" -o "$out/whole.vxp"
measure nnunet "$py" bench/unet_memory_peer.py run "$out" "$threads"

read -r bw br < "$out/band.m"; read -r ww wr < "$out/whole.m"; read -r nw nr < "$out/nnunet.m"
dims=$("$py" -c "import nibabel as n,sys; print('x'.join(map(str, n.load(sys.argv[1]).shape)))" "$out/ct.nii.gz")
echo "nnU-Net inference memory: ${dims} i16 CT, $k classes, ResEnc (narrow), patch 32x64x64, $threads threads, median of $rounds"
printf '%-34s %9s %13s\n' "" "wall s" "peak RSS MiB"
printf '%-34s %9s %13s\n' "voxpipe infer-unet (band)" "$bw" "$br"
printf '%-34s %9s %13s\n' "voxpipe infer-unet --whole-logits" "$ww" "$wr"
printf '%-34s %9s %13s\n' "nnUNetPredictor (nnunetv2)" "$nw" "$nr"
awk -v bw="$bw" -v br="$br" -v wr="$wr" -v nw="$nw" -v nr="$nr" 'BEGIN {
    printf "ratios: memory band/nnU-Net %.3f, band/whole-logits %.3f; speed nnU-Net/band %.2fx\n", br / nr, br / wr, nw / bw }'
printf 'labels, band vs --whole-logits: '; "$py" bench/unet_memory_peer.py same "$out/band.vxp" "$out/whole.vxp"
printf 'labels vs nnU-Net: '; "$py" bench/unet_memory_peer.py agree "$out" "$out/band.vxp"
