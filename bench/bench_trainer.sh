#!/usr/bin/env bash
# One training iteration of the train-unet program (patch sampling from the cache, forward, loss,
# backward, all-reduce (one rank: none), SGD step, JSON log line) vs nnU-Net's train_step in PyTorch
# (bench/trainer_peer.py: PlainConvUNet + DeepSupervision DC_and_CE + SGD Nesterov + clip 12), both
# on CPU, same features, patch, batch, classes (3) and threads; side by side with the ratio.
#   usage: bench/bench_trainer.sh            env: BENCH_ROUNDS (3), BENCH_THREADS (nproc), BENCH_ITERS (6)
# voxpipe's time per iteration: the differences of the "t" stamps of consecutive iteration lines of
# --log-json (the first iteration left out as warm-up), median over all rounds; the peer prints its
# per-iteration times the same way. CPU seconds per iteration (all threads; on a shared, loaded
# machine they depend less on the scheduler than wall time): voxpipe's from /usr/bin/time of a run
# of ITERS+1 iterations minus a run of 1 iteration, divided by ITERS; the peer's from
# time.process_time() around each iteration. Data: a synthetic stream written deterministically
# to bench/out/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
out=bench/out/trainer
rounds=${BENCH_ROUNDS:-3}
threads=${BENCH_THREADS:-$(nproc)}
iters=${BENCH_ITERS:-6}
[ -x bin/train-unet ] || { echo "bench_trainer: bin/train-unet missing (run make)" >&2; exit 1; }
"$py" -c 'import nnunetv2, dynamic_network_architectures' 2>/dev/null || { echo "bench_trainer: $py lacks nnunetv2" >&2; exit 1; }
mkdir -p "$out"
"$py" tests/scripts/train_check.py synth "$out/syn.vxp" --n 2 --seed 1 --dims 40,40,40 --classes 3
echo "bench_trainer  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peer: torch $("$py" -c 'import torch; print(torch.__version__)') + nnunetv2 (CPU, f32); threads $threads; $iters iterations x $rounds rounds, median"
printf '%-22s %-10s %6s %12s %12s %8s %12s %12s %8s\n' "features" "patch" "batch" "voxpipe s/it" "torch s/it" "speedup" \
    "voxpipe cpu" "torch cpu" "speedup"
cpu_of() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -1 | awk '{print $1 + $2}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for cfg in "8,16,32 32,32,32 2" "16,32,64,128 32,32,32 2"; do
    read -r feats patch batch <<<"$cfg"
    : > "$out/vp.txt"; : > "$out/pt.txt"; : > "$out/vpc.txt"
    for r in $(seq "$rounds"); do
        rm -rf "$out/run" "$out/log.jsonl"
        tu=(bin/train-unet -i "$out/syn.vxp" --features "$feats" --patch "$patch" --batch "$batch" --epochs 1
            --val-every 0 --threads "$threads" -q)
        c1=$(cpu_of "${tu[@]}" -o "$out/run1" --iters-per-epoch 1)
        cn=$(cpu_of "${tu[@]}" -o "$out/run" --iters-per-epoch $((iters + 1)) --log-json "$out/log.jsonl")
        echo "($cn - $c1) / $iters" | bc -l >> "$out/vpc.txt"
        rm -rf "$out/run1"
        "$py" -c '
import json, sys
t = [o["t"] for o in map(json.loads, open(sys.argv[1])) if o["type"] == "iter"]
print("\n".join("%.6f" % (b - a) for a, b in zip(t[:-1], t[1:])))' "$out/log.jsonl" >> "$out/vp.txt"
        "$py" bench/trainer_peer.py "$feats" "$patch" "$batch" "$iters" "$threads" >> "$out/pt.txt"
    done
    vp=$(median < "$out/vp.txt"); pt=$(cut -d' ' -f1 "$out/pt.txt" | median)
    vc=$(median < "$out/vpc.txt"); tc=$(cut -d' ' -f2 "$out/pt.txt" | median)
    printf '%-22s %-10s %6s %12.4f %12.4f %7.2fx %12.4f %12.4f %7.2fx\n' "$feats" "$patch" "$batch" "$vp" "$pt" \
        "$(echo "$pt / $vp" | bc -l)" "$vc" "$tc" "$(echo "$tc / $vc" | bc -l)"
done
