#!/usr/bin/env bash
# replay_filters.sh BIN_DIR CORPUS_DIR... - feed every stream in the corpora (e.g. the fuzz_frame
# corpus tests/tmp/fuzz/corpus/frame, the seeds, tests/fuzz/regress/frame) to every stream-reading
# program, from a file and through a pipe, and report any run that crashes (signal, timeout,
# sanitizer report), exits with a code other than 0/3, or leaves its -o file behind after failing.
# Use the build-san tree. Prints one line per problem and a summary; exit 1 if any.
set -u
BIN=$(cd "$1" && pwd); shift
OUT=$(mktemp -d "${TMPDIR:-/tmp}/vp-replay.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
progs=("vol-cat" "reorient" "resample --spacing 2" "augment --seed 1" "label-clean --largest" "normalize --zscore"
       "crop --foreground" "label-map --preset spine25" "metric-dice --pred label --ref label"
       "hausdorff --pred label --ref label" "vol-info" "vol-write --vol image -o $OUT/w/{id}.nii.gz")
nrun=0 nbad=0
for dir in "$@"; do
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        for p in "${progs[@]}"; do
            for how in file pipe; do
                rm -rf "$OUT/o" "$OUT/w"; mkdir -p "$OUT/o"
                out="-o $OUT/o/out"
                [[ $p == vol-write* ]] && out=""
                [[ $p == vol-info* ]] && out=""
                if [ $how = file ]; then
                    timeout -k 2 20 $BIN/$p -i "$f" $out >/dev/null 2>"$OUT/err"; rc=$?
                else
                    timeout -k 2 20 $BIN/$p $out <"$f" >/dev/null 2>"$OUT/err"; rc=$?
                fi
                nrun=$((nrun + 1))
                why=""
                if [ $rc -eq 126 ] || [ $rc -eq 127 ]; then echo "SKIP $p: not executable now (being rebuilt?)"; continue
                elif [ $rc -ge 124 ]; then why="exit $rc (signal or timeout)"
                elif grep -q -e 'runtime error' -e 'Sanitizer' "$OUT/err"; then why="sanitizer report"
                elif [ $rc -ne 0 ] && [ $rc -ne 3 ]; then why="exit $rc"
                elif [ $rc -ne 0 ] && [ -n "$(ls -A "$OUT/o")" ]; then why="output left after exit $rc"
                fi
                if [ -n "$why" ]; then
                    nbad=$((nbad + 1))
                    echo "PROBLEM $p ($how) on $f: $why: $(grep -m1 -e 'error' -e 'ERROR' "$OUT/err")"
                fi
            done
        done
    done
done
echo "replay_filters: $nrun runs, $nbad problem(s)"
[ $nbad -eq 0 ]
