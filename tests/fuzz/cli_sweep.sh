#!/usr/bin/env bash
# cli_sweep.sh BIN_DIR [PROG...] - give every option of every program (or of PROG...) bad values and
# report what happened. Each option taking an argument (read from the program's --help) is run with
# the values below on a small valid one-case stream (image i16, label u8, pred u8), 10 s at most:
#   CRASH   killed by a signal, a timeout, or a sanitizer report (run it on the build-san tree)
#   ACCEPT  exit 0 for a value that is no number and no name ('nan', 'abc', '', '1e400', ...): read it
#           by hand; for a name or path option (ENDPOINT, NAME, FILE) it may well be right
#   other exit codes are listed per run in $OUT/sweep.tsv (prog, option, value, exit, stderr line)
# Server programs (fanout, worker) are left out: they bind sockets and wait.
# Needs: .venv python with numpy + msgpack (tests/scripts/vxp.py).
set -u
BIN=$(cd "$1" && pwd); shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${VOXPIPE_PY:-$ROOT/.venv/bin/python}
OUT=${OUT:-$ROOT/tests/tmp/cli_sweep}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) && rm -rf "$OUT"/* && mkdir -p "$OUT/run"
"$PY" - "$OUT/in.vxp" <<'PYEOF'
import sys, numpy as np
sys.path.insert(0, "tests/scripts")
import vxp
rng = np.random.default_rng(1)
aff = np.diag([1.5, 1.5, 2.5, 1.0])
img = rng.integers(-1000, 1000, (12, 10, 8)).astype(np.int16)
lab = np.zeros((12, 10, 8), np.uint8); lab[3:8, 2:7, 2:6] = 1; lab[8:11, 6:9, 4:7] = 2
pred = np.roll(lab, 1, axis=0)
with open(sys.argv[1], "wb") as f:
    vxp.write(f, [{"id": "s1", "meta": {"labels": {"1": "liver", "2": "spleen"}},
                   "vols": {"image": vxp.Vol(img, aff), "label": vxp.Vol(lab, aff), "pred": vxp.Vol(pred, aff)}}])
PYEOF
progs=("$@")
[ ${#progs[@]} -gt 0 ] || progs=($(ls "$BIN"))
values=(-1 0 nan inf -inf abc '' 1e400 99999999999999999999 1,2,x)
printf 'prog\toption\tvalue\texit\tstderr\n' > "$OUT/sweep.tsv"
ncrash=0
for p in "${progs[@]}"; do
    case $p in fanout|worker|vp-keygen) continue ;; esac
    [ -x "$BIN/$p" ] || continue
    opts=$("$BIN/$p" --help 2>/dev/null | sed -n 's/^ \{2,\}\(-., \)\?--\([a-z0-9-]*\) \([^ ]\+\) .*/\2 \3/p' | grep -v -e '^in ' -e '^out ')
    while read -r opt meta; do
        [ -n "$opt" ] || continue
        for v in "${values[@]}"; do
            err="$OUT/run/err"
            ( cd "$OUT/run" && timeout -k 2 10 "$BIN/$p" -i "$OUT/in.vxp" -o "$OUT/run/out.vxp" "--$opt" "$v" </dev/null >/dev/null 2>"$err" )
            rc=$?
            if [ $rc -eq 2 ] && grep -q "unknown option '-i'\|'-i'\|'-o'" "$err"; then  # no -i/-o: plain stdin/stdout
                ( cd "$OUT/run" && timeout -k 2 10 "$BIN/$p" "--$opt" "$v" <"$OUT/in.vxp" >/dev/null 2>"$err" )
                rc=$?
            fi
            line=$(grep -m1 -e 'error' -e 'runtime error' -e 'Sanitizer' "$err" | tr '\t' ' ' | cut -c1-200)
            printf '%s\t--%s\t%s\t%s\t%s\n' "$p" "$opt" "$v" "$rc" "$line" >> "$OUT/sweep.tsv"
            if [ $rc -eq 126 ] || [ $rc -eq 127 ]; then
                echo "SKIP   $p --$opt '$v': not executable now (being rebuilt?)"
            elif [ $rc -ge 124 ] || grep -q -e 'runtime error' -e 'Sanitizer' "$err"; then
                echo "CRASH  $p --$opt '$v': exit $rc: $(grep -m1 -e 'runtime error' -e 'ERROR: ' "$err")"
                cp "$err" "$OUT/crash-$p-$opt-$ncrash.txt"; ncrash=$((ncrash + 1))
            elif [ $rc -eq 0 ] && [[ "$v" =~ ^(nan|inf|-inf|abc|1e400|1,2,x|)$ ]] && [[ ! "$meta" =~ ^(ENDPOINT|FILE|DIR|NAME|PATH|ID|TEXT|STR|PATTERN|LIST)$ ]]; then
                echo "ACCEPT $p --$opt $meta '$v'"
            fi
            rm -f "$OUT/run/out.vxp"
        done
    done <<<"$opts"
done
echo "cli_sweep: $ncrash crash(es); every run in $OUT/sweep.tsv"
[ $ncrash -eq 0 ]
