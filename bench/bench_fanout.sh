#!/usr/bin/env bash
# fanout throughput, median of REPS runs (numbers depend on this shared 2-core machine).
# 1. N copies of the shared CT through `resample --spacing 1.5` (CPU-bound): a plain pipe against
#    fanout with 1, 2 and 4 workers (--insecure, ipc://) and 1 worker over CURVE. Per-case overhead
#    of 1 worker against the pipe: (fanout - pipe) / N, which includes the one-off start (workers
#    join, the filter process starts), and the marginal cost from N and 2*N cases, which does not.
# 2. CURVE cost per GB: NB frames of ~64 MiB (the CT resampled to 0.84 mm, f32) through fanout to
#    one worker running `cat` (the transport alone: every byte goes broker -> worker -> broker), with
#    and without CURVE (NB=8: 0.5 GB); MB/s of frames, and the extra seconds CURVE costs per GB crossing the link.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATH=$ROOT/bin:$PATH
OUT=$ROOT/bench/out/fanout; N=${N:-40}; NB=${NB:-8}; REPS=${REPS:-3}
CT=$ROOT/../shared/data/totalseg/example_ct_sm.nii.gz
FILTER=(resample --spacing 1.5)
mkdir -p "$OUT" && cd "$OUT"
gen() { # FILE COUNT: COUNT copies of the CT, ids c0001...
    [ -s "$1" ] && [ "$(cat "$1.n" 2>/dev/null)" = "$2" ] && return
    for i in $(seq -f %04g 1 "$2"); do vol-read --id "c$i" "$CT"; done > "$1"
    echo "$2" > "$1.n"
}
gen in.vxp "$N"; gen in2.vxp $((2 * N))
if ! [ -s big.vxp ] || [ "$(cat big.vxp.n 2>/dev/null)" != "$NB" ]; then
    for i in $(seq -f %04g 1 "$NB"); do vol-read --id "b$i" "$CT" | resample --spacing 0.84 --threads 1; done > big.vxp
    echo "$NB" > big.vxp.n
fi
[ -s keys/b.key ] || { rm -rf keys; mkdir -p keys/allow; (cd keys && vp-keygen -q b && vp-keygen -q w && cp w.pub allow/); }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
calc() { echo "$*" | bc -l; }
t_pipe() { # INPUT
    local t=$(now); "${FILTER[@]}" < "$1" > /dev/null; calc "$(now) - $t"
}
t_fan() { # INPUT WORKERS insecure|curve FILTER...
    local in=$1 n=$2 mode=$3; shift 3
    local sec=(--insecure) wsec=(--insecure) pids=() rc=0
    [ "$mode" = curve ] && sec=(--key keys/b.key --allow keys/allow) && wsec=(--key keys/w.key --server-key keys/b.pub)
    rm -f sock
    for _ in $(seq "$n"); do worker -q "${wsec[@]}" -c "ipc://$OUT/sock" -- "$@" & pids+=($!); done
    sleep 0.3 # the workers start (not timed); they join once the broker is up (timed)
    local t=$(now)
    fanout -q "${sec[@]}" --bind "ipc://$OUT/sock" -i "$in" -o /dev/null || rc=$?
    calc "$(now) - $t"
    [ $rc = 0 ] || { echo "fanout failed (exit $rc): timing not valid" >&2; kill "${pids[@]}" 2>/dev/null; }
    wait "${pids[@]}" 2>/dev/null || true
}
# The machine is shared and its load drifts: every configuration runs once per round, REPS rounds,
# and each row is the median over the rounds.
TIMES=$OUT/times.txt
: > "$TIMES"
for _ in $(seq "$REPS"); do
    echo "pipe $(t_pipe in.vxp)"
    for w in 1 2 4; do echo "fan$w $(t_fan in.vxp "$w" insecure "${FILTER[@]}")"; done
    echo "curve1 $(t_fan in.vxp 1 curve "${FILTER[@]}")"
    echo "pipe2 $(t_pipe in2.vxp)"
    echo "fan1x2 $(t_fan in2.vxp 1 insecure "${FILTER[@]}")"
    echo "big_insecure $(t_fan big.vxp 1 insecure cat)"
    echo "big_curve $(t_fan big.vxp 1 curve cat)"
done >> "$TIMES"
med() { awk -v k="$1" '$1 == k {print $2}' "$TIMES" | median; }
row() { printf "%-34s %7.3f s  %6.1f cases/s%s\n" "$1" "$2" "$(calc "$3 / $2")" "${4:-}"; }

echo "== $N cases of ${FILTER[*]} (CT 122x101x30 int16 -> 244x202x60 f32), median of $REPS rounds"
pipe=$(med pipe)
row "plain pipe" "$pipe" "$N"
for w in 1 2 4; do
    t=$(med "fan$w")
    row "fanout $w worker(s), insecure" "$t" "$N" "$(printf "  %.2f x the pipe's throughput" "$(calc "$pipe / $t")")"
done
t1=$(med fan1) tc=$(med curve1) pipe2=$(med pipe2) t12=$(med fan1x2)
row "fanout 1 worker, CURVE" "$tc" "$N"
printf "per-case overhead, 1 worker vs the pipe: %.1f ms (all in), %.1f ms marginal (%d vs %d cases: pipe %.3f s, fanout %.3f s)\n" \
    "$(calc "($t1 - $pipe) * 1000 / $N")" "$(calc "(($t12 - $t1) - ($pipe2 - $pipe)) * 1000 / $N")" $((2 * N)) "$N" "$pipe2" "$t12"
printf "CURVE, 1 worker: %+.1f ms per case\n" "$(calc "($tc - $t1) * 1000 / $N")"

bytes=$(stat -c %s big.vxp)
gb=$(calc "$bytes / 1000000000")
echo "== CURVE cost: $NB frames, $(calc "$bytes / $NB / 1048576" | xargs printf %.1f) MiB each ($(printf %.2f "$gb") GB), fanout -> worker 'cat' -> fanout, median of $REPS rounds"
ti=$(med big_insecure) tcu=$(med big_curve)
for m in insecure CURVE; do
    t=$ti; [ $m = CURVE ] && t=$tcu
    printf "%-10s %7.3f s  %7.1f MB/s of frames  %6.2f s/GB of frames\n" "$m" "$t" "$(calc "$gb * 1000 / $t")" "$(calc "$t / $gb")"
done
printf "CURVE cost: %+.2f s per GB of frames, %+.2f s per GB on the wire (each frame crosses twice: case out, result back)\n" \
    "$(calc "($tcu - $ti) / $gb")" "$(calc "($tcu - $ti) / (2 * $gb)")"
printf "load average at the end: %s\n" "$(cut -d' ' -f1-3 /proc/loadavg)"
