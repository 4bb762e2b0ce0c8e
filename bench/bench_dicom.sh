#!/usr/bin/env bash
# dcm-fetch vs dcm2niix, side by side.   usage: bench/bench_dicom.sh [DATA_DIR]
#
# 1. a 512x512x141 uncompressed (explicit little endian) CT series, written once by pydicom from the
#    shared JPEG 2000 series (tests/scripts/dicom_fixtures.py uncompressed: its 20 decoded slices
#    tiled along z, 2 mm apart, one series UID):
#      dcm-fetch --keep-identifiers DIR > /dev/null    vs   dcm2niix -z n (NIfTI to bench/out)
#    goal: dcm-fetch at least as fast (ratio >= 1). dcm-fetch parses each header with DCMTK, reads
#    the pixel bytes of these uncompressed slices straight into the volume (pread) and converts
#    them there, all files in parallel (lib/dicom_series.c).
# 2. the shared 20-slice JPEG 2000 series, dcm-fetch with --threads 1 and all threads, vs dcm2niix.
# 3. that series with UIDs and a ~10 degree gantry tilt (dicom_fixtures.py identify, tilt):
#    dcm-fetch --uniform (tilt corrected) vs dcm2niix (which writes a tilt-corrected _Tilt_1 too).
# Both programs write their output (stream / NIfTI) to a file under bench/out, removed before each run.
# VOXPIPE_BIN: the build to time (default bin).
# Medians of BENCH_ROUNDS (default 5) interleaved rounds; the page cache is warm for both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-../shared/data}
py=.venv/bin/python
out=bench/out/dicom
rounds=${BENCH_ROUNDS:-5}
ct="$data/totalseg/ct_dicom"
[ -d "$ct" ] || { echo "bench_dicom: missing $ct" >&2; exit 1; }
bin=${VOXPIPE_BIN:-bin}
[ -x "$bin/dcm-fetch" ] || { echo "bench_dicom: $bin/dcm-fetch missing (run make)" >&2; exit 1; }
command -v dcm2niix >/dev/null || { echo "bench_dicom: dcm2niix missing (apt-get install dcm2niix)" >&2; exit 1; }
mkdir -p "$out/bin" "$out/nii"
cp -f "$bin/dcm-fetch" "$out/bin/dcm-fetch.tmp" && mv -f "$out/bin/dcm-fetch.tmp" "$out/bin/dcm-fetch"
if [ "$(ls "$out/u141" 2>/dev/null | wc -l)" -ne 141 ]; then
    echo "bench_dicom: writing the 512x512x141 uncompressed series (once)" >&2
    rm -rf "$out/u141"
    "$py" tests/scripts/dicom_fixtures.py uncompressed "$ct" "$out/u141" 141
fi
if [ "$(ls "$out/tilt" 2>/dev/null | wc -l)" -ne 20 ]; then
    rm -rf "$out/tilt" "$out/id"
    "$py" tests/scripts/dicom_fixtures.py identify "$ct" "$out/id"
    "$py" tests/scripts/dicom_fixtures.py tilt "$out/id" "$out/tilt"
fi

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "dicom bench  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg); dcm2niix $(dcm2niix -v 2>&1 | grep -o 'v[0-9][^ ]*' | head -1)"
run_pair() { # label DIR [dcm-fetch options]
    local a=() b=() c=() label=$1 dir=$2
    shift 2
    for _ in $(seq "$rounds"); do
        # both write their output file (into the page cache), each removed before the next run
        rm -f "$out"/nii/out.vxp
        a+=("$(t "$out/bin/dcm-fetch" -q --keep-identifiers "$@" "$dir" -o "$out/nii/out.vxp")")
        rm -f "$out"/nii/*.nii # dcm2niix would otherwise add outa.nii, outb.nii ...
        b+=("$(t dcm2niix -z n -b n -f out -o "$out/nii" "$dir")")
        rm -f "$out"/nii/out.vxp
        c+=("$(t "$out/bin/dcm-fetch" -q --threads 1 --keep-identifiers "$@" "$dir" -o "$out/nii/out.vxp")")
    done
    local ma mb mc
    ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median); mc=$(printf '%s\n' "${c[@]}" | median)
    printf '%-34s dcm-fetch %6.3f s (1 thread %6.3f s)   dcm2niix %6.3f s   ratio %5.2fx\n' \
        "$label" "$ma" "$mc" "$mb" "$(echo "$mb / $ma" | bc -l)"
}
run_pair "512x512x141 uncompressed" "$out/u141"
run_pair "512x512x20 JPEG 2000 lossless" "$ct"
run_pair "20 J2K slices, tilt, --uniform" "$out/tilt" --uniform
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
