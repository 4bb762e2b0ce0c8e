#!/usr/bin/env bash
# nn engine: conv3d 3x3x3, 32 -> 32 channels, padding 1, on a 1x32x96^3 input: voxpipe's CPU
# backend vs torch.nn.functional.conv3d on CPU, same thread count, GFLOP/s both, side by side.
#   usage: bench/bench_nn.sh            (needs `make build/libvoxpipe.a` and .venv with torch)
# bench/bench_nn_conv.c is compiled here against build/libvoxpipe.a into bench/out/ (git-ignored).
# BENCH_ROUNDS (default 5) timed runs each after one warm-up, median taken; BENCH_THREADS (default:
# CPUs). FLOPs counted as 2 * Ci * Co * 27 * 96^3 (multiply and add). About 30 s on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
out=bench/out
rounds=${BENCH_ROUNDS:-5}
threads=${BENCH_THREADS:-$(nproc)}
[ -f build/libvoxpipe.a ] || { echo "bench_nn: build/libvoxpipe.a missing (run make)" >&2; exit 1; }
"$py" -c 'import torch' 2>/dev/null || { echo "bench_nn: $py lacks torch" >&2; exit 1; }
mkdir -p "$out"
cc -std=c11 -D_GNU_SOURCE -O2 -Ilib -o "$out/bench_nn_conv" bench/bench_nn_conv.c build/libvoxpipe.a $(make -s --no-print-directory print-ldlibs)
echo "bench_nn  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peer: torch $("$py" -c 'import torch; print(torch.__version__)') (CPU); threads $threads; median of $rounds"
read -r vs vg < <("$out/bench_nn_conv" 32 32 96 3 "$threads" $((rounds + 1)))
read -r ts tg < <("$py" - "$threads" "$rounds" <<'PY'
import sys, time, torch
import torch.nn.functional as F
nt, rounds = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(nt)
g = torch.Generator().manual_seed(0)
x = torch.rand(1, 32, 96, 96, 96, generator=g) - 0.5
w = torch.rand(32, 32, 3, 3, 3, generator=g) - 0.5
b = torch.rand(32, generator=g)
with torch.no_grad():
    F.conv3d(x, w, b, padding=1)  # warm-up
    ts = []
    for _ in range(rounds):
        t = time.perf_counter(); F.conv3d(x, w, b, padding=1); ts.append(time.perf_counter() - t)
ts.sort()
m = ts[len(ts) // 2]
print(f"{m:.4f} {2 * 32 * 32 * 27 * 96**3 / m * 1e-9:.2f}")
PY
)
printf '%-34s %10s %10s\n' "conv3d 3x3x3 32->32 on 96^3" "seconds" "GFLOP/s"
printf '%-34s %10s %10s\n' "voxpipe (cpu backend)" "$vs" "$vg" "torch.nn.functional.conv3d" "$ts" "$tg"
echo "ratio (torch time / voxpipe time): $(awk -v a="$ts" -v b="$vs" 'BEGIN { printf "%.2fx", a / b }')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
