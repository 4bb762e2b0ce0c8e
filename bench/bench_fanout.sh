#!/usr/bin/env bash
# fanout throughput: 1, 2, 4 workers (resample, CPU-bound) vs the same filter in a plain pipe, on
# N copies of the shared CT; per-case overhead = (fanout with 1 worker - pipe) / N. --insecure and
# CURVE side by side for 1 worker. Median of REPS runs. Numbers depend on this 2-core machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATH=$ROOT/bin:$PATH
OUT=$ROOT/bench/out/fanout; N=${N:-40}; REPS=${REPS:-3}
FILTER=(resample --spacing 1.5)
mkdir -p "$OUT" && cd "$OUT"
[ -s in.vxp ] || for i in $(seq -w 1 "$N"); do vol-read --id "c$i" "$ROOT/../shared/data/totalseg/example_ct_sm.nii.gz"; done > in.vxp
[ -s keys/b.key ] || { rm -rf keys; mkdir -p keys/allow; (cd keys && vp-keygen -q b && vp-keygen -q w && cp w.pub allow/); }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t_pipe() { local t=$(now); "${FILTER[@]}" < in.vxp > /dev/null; echo "$(now) - $t" | bc; }
t_fan() { # WORKERS [curve]
    local sec=(--insecure) wsec=(--insecure) pids=()
    [ "${2:-}" = curve ] && sec=(--key keys/b.key --allow keys/allow) && wsec=(--key keys/w.key --server-key keys/b.pub)
    rm -f sock
    for _ in $(seq "$1"); do worker -q "${wsec[@]}" -c "ipc://$OUT/sock" -- "${FILTER[@]}" & pids+=($!); done
    sleep 0.5 # let the workers join; not timed
    local t=$(now)
    fanout -q "${sec[@]}" --bind "ipc://$OUT/sock" -i in.vxp -o /dev/null
    echo "$(now) - $t" | bc
    wait "${pids[@]}" 2>/dev/null || true
}
pipe=$(for _ in $(seq "$REPS"); do t_pipe; done | median)
printf "%-28s %8s s  %7s cases/s\n" "plain pipe" "$pipe" "$(echo "$N / $pipe" | bc -l | xargs printf %.1f)"
for w in 1 2 4; do
    t=$(for _ in $(seq "$REPS"); do t_fan "$w"; done | median)
    printf "%-28s %8s s  %7s cases/s  ratio vs pipe %.2f\n" "fanout $w worker(s), insecure" "$t" "$(echo "$N / $t" | bc -l | xargs printf %.1f)" "$(echo "$pipe / $t" | bc -l)"
    [ "$w" = 1 ] && printf "  per-case overhead (fork/exec + 2 copies + ipc): %.1f ms\n" "$(echo "($t - $pipe) * 1000 / $N" | bc -l)"
done
t=$(for _ in $(seq "$REPS"); do t_fan 1 curve; done | median)
printf "%-28s %8s s  %7s cases/s\n" "fanout 1 worker, CURVE" "$t" "$(echo "$N / $t" | bc -l | xargs printf %.1f)"
