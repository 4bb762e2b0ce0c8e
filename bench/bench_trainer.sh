#!/usr/bin/env bash
# One training iteration of the train-unet program (patch sampling from the cache, forward, loss,
# backward, all-reduce (one rank: none), SGD step, JSON log line) vs nnU-Net's train_step in PyTorch
# (bench/trainer_peer.py: PlainConvUNet + DeepSupervision DC_and_CE + SGD Nesterov + clip 12), both
# on CPU, same features, patch, batch, classes (3) and threads; side by side with the ratio.
#   usage: bench/bench_trainer.sh            env: BENCH_ROUNDS (3), BENCH_THREADS (nproc), BENCH_ITERS (6),
#   BENCH_CONFIGS ("8,16,32 16,32,64,128": the features lists to run), BENCH_VP_BASE (another build
#   of train-unet, e.g. before a change: timed in the same rounds, interleaved, as extra columns
#   "base" and base/voxpipe)
# voxpipe's time per iteration: the differences of the "t" stamps of consecutive iteration lines of
# --log-json (the first iteration left out as warm-up), median over all rounds; the peer prints its
# per-iteration times the same way. CPU seconds per iteration (all threads; on a shared, loaded
# machine they depend less on the scheduler than wall time): voxpipe's from /usr/bin/time of a run
# of ITERS+1 iterations minus a run of 1 iteration, divided by ITERS; the peer's from
# time.process_time() around each iteration. Data: a synthetic stream written deterministically
# to bench/out/trainer/ (the per-run files in a directory of their own: runs may overlap).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
top=bench/out/trainer
rounds=${BENCH_ROUNDS:-3}
threads=${BENCH_THREADS:-$(nproc)}
iters=${BENCH_ITERS:-6}
base=${BENCH_VP_BASE:-}
[ -x bin/train-unet ] || { echo "bench_trainer: bin/train-unet missing (run make)" >&2; exit 1; }
[ -z "$base" ] || [ -x "$base" ] || { echo "bench_trainer: BENCH_VP_BASE $base is not an executable" >&2; exit 1; }
"$py" -c 'import nnunetv2, dynamic_network_architectures' 2>/dev/null || { echo "bench_trainer: $py lacks nnunetv2" >&2; exit 1; }
mkdir -p "$top"
out=$(mktemp -d "$top/run.XXXXXX")
trap 'rm -rf "$out"' EXIT
"$py" tests/scripts/train_check.py synth "$out/syn.vxp" --n 2 --seed 1 --dims 40,40,40 --classes 3
echo "bench_trainer  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peer: torch $("$py" -c 'import torch; print(torch.__version__)') + nnunetv2 (CPU, f32); threads $threads; $iters iterations x $rounds rounds, median"
[ -z "$base" ] || echo "base: $base (timed in the same rounds)"
printf '%-22s %-10s %6s %12s %12s %8s %12s %12s %8s' "features" "patch" "batch" "voxpipe s/it" "torch s/it" "speedup" \
    "voxpipe cpu" "torch cpu" "speedup"
[ -z "$base" ] && echo || printf ' %12s %12s %9s\n' "base s/it" "base cpu" "base/vp"
cpu_of() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -1 | awk '{print $1 + $2}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# one timing of binary $1 into $out/$2.txt (wall per iteration) and $out/$2c.txt (cpu per iteration)
time_vp() {
    local bin=$1 tag=$2
    rm -rf "$out/run" "$out/run1" "$out/log.jsonl"
    local tu=("$bin" -i "$out/syn.vxp" --features "$feats" --patch "$patch" --batch "$batch" --epochs 1
        --val-every 0 --threads "$threads" -q)
    local c1 cn
    c1=$(cpu_of "${tu[@]}" -o "$out/run1" --iters-per-epoch 1)
    cn=$(cpu_of "${tu[@]}" -o "$out/run" --iters-per-epoch $((iters + 1)) --log-json "$out/log.jsonl")
    echo "($cn - $c1) / $iters" | bc -l >> "$out/${tag}c.txt"
    "$py" -c '
import json, sys
t = [o["t"] for o in map(json.loads, open(sys.argv[1])) if o["type"] == "iter"]
print("\n".join("%.6f" % (b - a) for a, b in zip(t[:-1], t[1:])))' "$out/log.jsonl" >> "$out/$tag.txt"
}
for feats in ${BENCH_CONFIGS:-8,16,32 16,32,64,128}; do
    patch=32,32,32 batch=2
    : > "$out/vp.txt"; : > "$out/pt.txt"; : > "$out/vpc.txt"; : > "$out/bs.txt"; : > "$out/bsc.txt"
    for r in $(seq "$rounds"); do
        time_vp bin/train-unet vp
        [ -z "$base" ] || time_vp "$base" bs
        "$py" bench/trainer_peer.py "$feats" "$patch" "$batch" "$iters" "$threads" >> "$out/pt.txt"
    done
    vp=$(median < "$out/vp.txt"); pt=$(cut -d' ' -f1 "$out/pt.txt" | median)
    vc=$(median < "$out/vpc.txt"); tc=$(cut -d' ' -f2 "$out/pt.txt" | median)
    printf '%-22s %-10s %6s %12.4f %12.4f %7.2fx %12.4f %12.4f %7.2fx' "$feats" "$patch" "$batch" "$vp" "$pt" \
        "$(echo "$pt / $vp" | bc -l)" "$vc" "$tc" "$(echo "$tc / $vc" | bc -l)"
    if [ -z "$base" ]; then
        echo
    else
        bs=$(median < "$out/bs.txt"); bc_=$(median < "$out/bsc.txt")
        printf ' %12.4f %12.4f %8.2fx\n' "$bs" "$bc_" "$(echo "$bc_ / $vc" | bc -l)"
    fi
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
