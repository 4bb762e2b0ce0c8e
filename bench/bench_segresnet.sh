#!/usr/bin/env bash
# SegResNet forward on a 1x1x96^3 patch: voxpipe (lib/nn_segresnet, CPU backend) vs MONAI's
# SegResNet in PyTorch on CPU, same weights, same thread count, side by side with the ratio.
#   usage: bench/bench_segresnet.sh [INIT_FILTERS...]   (default: 16; the issue also names 32)
# Needs `make build/libvoxpipe.a` and .venv with torch + monai. Model: blocks 1,2,2,4 / 1,1,1,
# GroupNorm(8), nontrainable upsampling, 26 output classes, seeded random weights, written to
# bench/out/ (git-ignored) as safetensors. BENCH_ROUNDS (default 3) timed runs after one warm-up,
# median; BENCH_THREADS (default: CPUs). GFLOP/s = 2 x multiply-accumulates / time; "peak" is
# bench/bench_nn_peak.c's FMA loop on the same threads (timed in CPU time, so the cores' peak even
# on a busy machine), and "% peak" voxpipe's GFLOP/s against it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
out=bench/out
rounds=${BENCH_ROUNDS:-3}
threads=${BENCH_THREADS:-$(nproc)}
filters=("${@:-16}")
[ -f build/libvoxpipe.a ] || { echo "bench_segresnet: build/libvoxpipe.a missing (run make)" >&2; exit 1; }
"$py" -c 'import monai' 2>/dev/null || { echo "bench_segresnet: $py lacks torch/monai" >&2; exit 1; }
mkdir -p "$out"
cc -std=c11 -D_GNU_SOURCE -O2 -Ilib -o "$out/bench_segresnet" bench/bench_segresnet.c build/libvoxpipe.a $(make -s --no-print-directory print-ldlibs)
cc -std=c11 -D_GNU_SOURCE -O2 -pthread -o "$out/bench_nn_peak" bench/bench_nn_peak.c
read -r peak isa < <("$out/bench_nn_peak" "$threads")
echo "bench_segresnet  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peer: torch $("$py" -c 'import torch; print(torch.__version__)') + monai $("$py" -c 'import monai; print(monai.__version__)') (CPU); threads $threads; median of $rounds"
echo "peak: $peak GFLOP/s f32 ($isa FMA loop, $threads threads)"
printf '%-14s %12s %12s %8s %12s %12s %8s\n' "init_filters" "voxpipe s" "GFLOP/s" "% peak" "torch s" "GFLOP/s" "speedup"
for f in "${filters[@]}"; do
    model="$out/segresnet_f$f.safetensors"
    read -r ts tg < <("$py" - "$f" "$threads" "$rounds" "$model" <<'PY'
import json, struct, sys, time, torch
from monai.networks.nets import SegResNet
f, nt, rounds, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(nt)
torch.manual_seed(0)
m = SegResNet(init_filters=f, in_channels=1, out_channels=26).eval()
meta = {"voxpipe.arch": "segresnet", "voxpipe.init_filters": str(f), "voxpipe.in_channels": "1",
        "voxpipe.out_channels": "26", "voxpipe.blocks_down": "1,2,2,4", "voxpipe.blocks_up": "1,1,1",
        "voxpipe.upsample_mode": "nontrainable"}
head, blobs, off = {"__metadata__": meta}, [], 0
for k, v in m.state_dict().items():
    b = v.contiguous().numpy().astype("<f4").tobytes()
    head[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(head).encode(); h += b" " * (-len(h) % 8)
open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
x = torch.rand(1, 1, 96, 96, 96) - 0.5
with torch.no_grad():
    m(x)
    ts = []
    for _ in range(rounds):
        t = time.perf_counter(); m(x); ts.append(time.perf_counter() - t)
ts.sort()
print(f"{ts[len(ts) // 2]:.4f} 0")
PY
)
    read -r vs vg < <("$out/bench_segresnet" "$model" 96 "$threads" $((rounds + 1)))
    tg=$(awk -v v="$vs" -v g="$vg" -v t="$ts" 'BEGIN { printf "%.2f", g * v / t }')
    pct=$(awk -v g="$vg" -v p="$peak" 'BEGIN { printf "%.0f%%", (p > 0 ? 100 * g / p : 0) }')
    printf '%-14s %12s %12s %8s %12s %12s %7.2fx\n' "$f" "$vs" "$vg" "$pct" "$ts" "$tg" "$(awk -v a="$ts" -v b="$vs" 'BEGIN { print a / b }')"
done
echo "speedup = torch time / voxpipe time (goal >= 1.2)"
