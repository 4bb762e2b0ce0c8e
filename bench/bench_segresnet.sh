#!/usr/bin/env bash
# SegResNet forward on a 1x1x96^3 patch: voxpipe (lib/nn_segresnet, CPU backend) vs MONAI's
# SegResNet in PyTorch on CPU, same weights, same thread count, side by side with the ratio.
#   usage: bench/bench_segresnet.sh [INIT_FILTERS...]   (default: 16; the issue also names 32)
# Needs `make build/libvoxpipe.a` and .venv with torch + monai. Model: blocks 1,2,2,4 / 1,1,1,
# GroupNorm(8), nontrainable upsampling, 26 output classes, seeded random weights, written to
# bench/out/ (git-ignored) as safetensors. Interleaved: after one warm-up forward each, every round
# times one PyTorch forward and one voxpipe forward (bench_segresnet in serve mode, a process kept
# running), in alternating order, with the 1-minute load average; printed: the median times, the
# median of the per-round ratios, and the load range. BENCH_ROUNDS (default 5); BENCH_THREADS
# (default: CPUs); BENCH_VERBOSE=1 prints every round; BENCH_SEGRESNET_BASE=PATH also times another
# build of bench_segresnet (e.g. an older library) in the same rounds, as "base". GFLOP/s = 2 x multiply-accumulates / time; "peak" is
# bench/bench_nn_peak.c's FMA loop on the same threads (timed in CPU time, so the cores' peak even
# on a busy machine), and "% peak" voxpipe's GFLOP/s against it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
out=bench/out
rounds=${BENCH_ROUNDS:-5}
threads=${BENCH_THREADS:-$(nproc)}
# bench/run.sh passes every bench the data folder: only numeric arguments are init_filters
filters=()
for a in "$@"; do [[ "$a" =~ ^[0-9]+$ ]] && filters+=("$a"); done
[ ${#filters[@]} -gt 0 ] || filters=(16)
[ -f build/libvoxpipe.a ] || { echo "bench_segresnet: build/libvoxpipe.a missing (run make)" >&2; exit 1; }
"$py" -c 'import monai' 2>/dev/null || { echo "bench_segresnet: $py lacks torch/monai" >&2; exit 1; }
mkdir -p "$out"
cc -std=c11 -D_GNU_SOURCE -O2 -Ilib -o "$out/bench_segresnet" bench/bench_segresnet.c build/libvoxpipe.a $(make -s --no-print-directory print-ldlibs)
cc -std=c11 -D_GNU_SOURCE -O2 -pthread -o "$out/bench_nn_peak" bench/bench_nn_peak.c
read -r peak isa < <("$out/bench_nn_peak" "$threads")
echo "bench_segresnet  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peer: torch $("$py" -c 'import torch; print(torch.__version__)') + monai $("$py" -c 'import monai; print(monai.__version__)') (CPU); threads $threads; $rounds interleaved rounds, medians"
echo "peak: $peak GFLOP/s f32 ($isa FMA loop, $threads threads)"
printf '%-14s %12s %12s %8s %12s %12s %8s %12s\n' "init_filters" "voxpipe s" "GFLOP/s" "% peak" "torch s" "GFLOP/s" "speedup" "load 1m"
for f in "${filters[@]}"; do
    model="$out/segresnet_f$f.safetensors"
    while read -r tag a b c d e; do
        case "$tag" in
        RESULT) # voxpipe s, torch s, ratio, GFLOP, load range
            printf '%-14s %12s %12.2f %7.0f%% %12s %12.2f %7.2fx %12s\n' "$f" "$a" "$(awk -v g="$d" -v t="$a" 'BEGIN { print g / t }')" \
                "$(awk -v g="$d" -v t="$a" -v p="$peak" 'BEGIN { print (p > 0 ? 100 * g / t / p : 0) }')" "$b" \
                "$(awk -v g="$d" -v t="$b" 'BEGIN { print g / t }')" "$c" "$e" ;;
        BASE) printf '%-14s %12s %12s %8s %12s %12s %7.2fx   (voxpipe is %.3fx the base)\n' "  base" "$a" "" "" "" "" "$b" "$c" ;;
        *) echo "$tag $a $b $c $d $e" ;;
        esac
    done < <("$py" - "$f" "$threads" "$rounds" "$model" "$out/bench_segresnet" "${BENCH_SEGRESNET_BASE:-}" <<'PY'
import json, os, struct, subprocess, sys, time, torch
from monai.networks.nets import SegResNet
f, nt, rounds, path, vbin, base = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
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
procs = {}
for name, b in [("voxpipe", vbin)] + ([("base", base)] if base else []):
    p = subprocess.Popen([b, path, "96", str(nt), "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready": sys.exit(f"bench_segresnet: {b} did not start")
    procs[name] = p
gflop = 0.0
def vox(name):
    global gflop
    p = procs[name]
    p.stdin.write("\n"); p.stdin.flush()
    s, g = map(float, p.stdout.readline().split())
    gflop = s * g
    return s
def tor():
    t = time.perf_counter(); m(x); return time.perf_counter() - t
t = {k: [] for k in ["torch", *procs]}
loads = []
with torch.no_grad():
    m(x)  # warm-up
    for r in range(rounds):  # alternate who goes first, so a drift in load hits both alike
        loads.append(os.getloadavg()[0])
        for k in (["torch", *procs] if r % 2 == 0 else [*procs, "torch"]):
            t[k].append(tor() if k == "torch" else vox(k))
        if os.environ.get("BENCH_VERBOSE") == "1":
            print(f"  round {r + 1}: " + "  ".join(f"{k} {t[k][-1]:.3f} s" for k in t) + f"  load {loads[-1]:.2f}", flush=True)
for p in procs.values():
    p.stdin.close(); p.wait()
med = lambda v: sorted(v)[len(v) // 2]
ratio = lambda a, b: med([x / y for x, y in zip(t[a], t[b])])
print(f"RESULT {med(t['voxpipe']):.4f} {med(t['torch']):.4f} {ratio('torch', 'voxpipe'):.3f} {gflop:.2f} {min(loads):.1f}-{max(loads):.1f}")
if base:
    print(f"BASE {med(t['base']):.4f} {ratio('torch', 'base'):.3f} {ratio('base', 'voxpipe'):.3f}")
PY
)
done
echo "speedup = median over rounds of torch time / voxpipe time (goal >= 1.2); load 1m = 1-minute load average range over the rounds"
