#!/usr/bin/env bats
# Hardening: malformed inputs of each kind the hardening audit fuzzed (tests/fuzz) and that
# bad_input.bats does not already cover, made by tests/scripts/make_hardening_inputs.py, plus the
# fuzzers' saved reproducers (tests/fuzz/regress/); then the error-path promises per program class:
# a run failing mid-stream leaves no output (no half-written file, no half-written case), a closed
# downstream pipe gives a clean exit (1, "downstream closed the pipe", no signal, no sanitizer
# report), and out-of-range option values are refused with exit 2. Every refusal is checked for its
# exit code, a "PROG: error:" message naming the file and the field, and nothing left behind.
load helpers
bats_require_minimum_version 1.5.0

setup_file() {
    export H="${VOXPIPE_TMP:-$BATS_TMPDIR}/hardening-files"
    rm -rf "$H" && mkdir -p "$H"
    "$VOXPIPE_PY" "$SCRIPTS/make_hardening_inputs.py" "$H"
    export REGRESS="$VOXPIPE_ROOT/tests/fuzz/regress"
}

# no_crash: the last run was not killed by a signal and printed no sanitizer report
no_crash() {
    [ "$status" -lt 128 ] || { echo "killed: exit $status"; return 1; }
    if [[ "$stderr$output" == *"runtime error"* || "$stderr$output" == *"Sanitizer"* ]]; then
        echo "sanitizer report"; return 1
    fi
}

# closed_stdout CMD...: run CMD with stdout a pipe whose reading end is already closed (as when a
# downstream `head` has exited); its status is the command's ($? of a signal death is 128+N)
closed_stdout() {
    "$VOXPIPE_PY" -c '
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
p = subprocess.run(sys.argv[1:], stdout=w)
sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)' "$@"
}

# ---- streams: wrong types and lying lengths (each read by vol-cat into a file: exit 3, nothing left)

@test "control: the valid hardening inputs are accepted" {
    run vol-cat -i "$H/good.vxp" -o "$T/out.vxp"
    [ "$status" -eq 0 ] && [ -s "$T/out.vxp" ]
    run vol-read "$H/slope_nan.nii" -o "$T/n.vxp"
    [ "$status" -eq 0 ]
}

stream_refused() { # FILE FIELD WHY
    refuses vol-cat 3 vol-cat -i "$H/$1" -o "$T/out.vxp"
    says "$1: " "$2" "$3"
    nothing_left
}

@test "stream: dims given as a string: exit 3, field 'dims'" {
    stream_refused dims_str.vxp "case 'h': volume 'image': field 'dims'" "must be an array of 3 or 4 sizes"
}

@test "stream: dtype given as an integer: exit 3, field 'dtype'" {
    stream_refused dtype_int.vxp "volume 'image': field 'dtype'" "must be a string"
}

@test "stream: a string inside the affine: exit 3, field 'affine'" {
    stream_refused affine_str.vxp "volume 'image': field 'affine'" "must be an array of 16 numbers"
}

@test "stream: float32 +inf in the affine: exit 3, field 'affine', non-finite" {
    stream_refused affine_inf32.vxp "volume 'image': field 'affine'" "non-finite"
}

@test "stream: negative, float and 2^64-1 sizes in dims: exit 3, field 'dims'" {
    stream_refused dims_neg.vxp "field 'dims'" "sizes must be positive integers"
    stream_refused dims_float.vxp "field 'dims'" "sizes must be positive integers"
    stream_refused dims_u64max.vxp "field 'dims'" "size beyond the limit"
}

@test "stream: meta map32 declaring 2^32-1 keys: exit 3 before reading them, field 'meta'" {
    stream_refused meta_map32.vxp "case 'h': field 'meta'" "too many keys"
}

@test "stream: id str32 declaring 4 GiB in a tiny file: exit 3, frame 1, field 'id'" {
    stream_refused id_str32.vxp "frame 1: field 'id'" "string too long"
}

@test "stream: a volume keyed by an integer: exit 3, field 'vols'" {
    stream_refused vols_key_int.vxp "case 'h': field 'vols'" "map key is not a string"
}

@test "stream: data as an array32 declaring 2^32-1 chunks: exit 3, field 'data'" {
    stream_refused chunks_huge.vxp "volume 'image': field 'data'" "too many chunks"
}

@test "stream: the same inputs through a pipe into a streaming filter: exit 3, no crash" {
    for f in dims_str dtype_int affine_str affine_inf32 dims_neg dims_u64max meta_map32 id_str32 vols_key_int chunks_huge; do
        run --separate-stderr bash -c 'cat "$1" | resample --spacing 2 -o "$2"' _ "$H/$f.vxp" "$T/out.vxp"
        echo "$f: exit $status: $stderr"
        [ "$status" -eq 3 ] && no_crash
        [[ "$stderr" == "resample: error: <stdin>: "* ]]
    done
    nothing_left
}

# ---- NIfTI (vol-read: exit 3, the file and the header field named, nothing left)

nifti_refused() { # FILE WHY...
    local f=$1; shift
    refuses vol-read 3 vol-read "$H/$f" -o "$T/out.vxp"
    says "'$H/$f': " "$@"
    nothing_left
}

@test "NIfTI: vox_offset past the end of the file: exit 3, truncated" {
    nifti_refused voxoff_eof.nii "truncated" "offset 1000000000"
}

@test "NIfTI: dims x bitpix too large (32767^3), NIfTI-2 dims overflowing 64 bits: exit 3" {
    nifti_refused dims_bitpix.nii "dimensions 32767x32767x32767x1 are too large"
    nifti_refused dims_ovf2.nii.gz "dimensions 4611686018427387904x4611686018427387904x4611686018427387904x1 are too large"
}

@test "NIfTI: negative dim, dim[0] out of range, unknown datatype: exit 3, field named" {
    nifti_refused dim_neg.nii "dim[2] = -8 is not positive"
    nifti_refused dim0_9.nii "dim[0] = 9 is outside 1..7"
    nifti_refused datatype_bad.nii "unsupported NIfTI datatype 1234"
}

@test "NIfTI: scl_slope NaN reads unscaled, as nibabel; a NaN intercept with a valid slope is refused" {
    run vol-read "$H/slope_nan.nii" -o "$T/n.vxp"
    [ "$status" -eq 0 ]
    run "$VOXPIPE_PY" -c '
import sys, numpy as np, nibabel as nib
sys.path.insert(0, sys.argv[3])
import vxp
ref = nib.load(sys.argv[1])
want = np.asarray(ref.dataobj)
got = next(vxp.read(open(sys.argv[2], "rb")))["vols"]["image"]
assert ref.header.get_slope_inter() == (None, None), ref.header.get_slope_inter()
assert got.data.dtype == want.dtype, (got.data.dtype, want.dtype)
assert np.array_equal(got.data, want)
print("same", want.dtype, int(want.max()))' "$H/slope_nan.nii" "$T/n.vxp" "$SCRIPTS"
    echo "$output"
    [ "$status" -eq 0 ]
    rm -f "$T/n.vxp"
    nifti_refused slope_ok_inter_nan.nii "invalid scl_inter nan"
}

# ---- safetensors model files (infer-ressegnet --model: exit 3, the file and tensor named)

model_refused() { # FILE WHY...
    local f=$1; shift
    refuses infer-ressegnet 3 infer-ressegnet --model "$H/$f" -i "$H/good.vxp" -o "$T/out.vxp"
    says "$H/$f: " "$@"
    nothing_left
}

@test "safetensors: header length 2^64-1: exit 3, bad header" {
    model_refused st_hlen_huge.safetensors "bad header: length 18446744073709551615 does not fit"
}

@test "safetensors: data_offsets past the end of the file: exit 3, tensor named" {
    model_refused st_off_out.safetensors 'tensor "w": data_offsets [0, 4096] out of range'
}

@test "safetensors: dtype that does not match the byte length: exit 3, tensor named" {
    model_refused st_dtype_len.safetensors 'tensor "w": F16 shape needs 12 bytes, data_offsets give 24'
}

@test "safetensors: two tensors on the same bytes: exit 3, both named" {
    model_refused st_overlap.safetensors 'overlaps tensor' '"w"' '"v"'
}

@test "safetensors: shape whose byte size overflows 64 bits: exit 3, tensor named" {
    model_refused st_shape_ovf.safetensors 'tensor "w": shape overflows'
}

# ---- DICOM (dcm-fetch: exit 3, the file named, nothing left)

dicom_refused() { # FILE WHY...
    local f=$1; shift
    refuses dcm-fetch 3 dcm-fetch --keep-identifiers "$H/$f" -o "$T/out.vxp"
    says "'$H/$f': " "$@"
    nothing_left
}

@test "DICOM: control: the valid 8x8 slice is read" {
    run dcm-fetch --keep-identifiers "$H/dcm_good.dcm" -o "$T/out.vxp"
    [ "$status" -eq 0 ] && [ -s "$T/out.vxp" ]
}

@test "DICOM: file cut in the pixel data: exit 3" {
    dicom_refused dcm_trunc.dcm
}

@test "DICOM: BitsAllocated 0: exit 3, BitsAllocated named" {
    dicom_refused dcm_bits0.dcm "BitsAllocated"
}

@test "DICOM: NumberOfFrames 100000 (rows*cols*frames far beyond the file), Rows 0: exit 3" {
    dicom_refused dcm_frames.dcm "NumberOfFrames"
    dicom_refused dcm_rows0.dcm "Rows"
}

# ---- the fuzzers' reproducers (tests/fuzz/regress/TARGET/*), through the programs

@test "fuzz reproducers: streams through vol-cat and a streaming filter: exit 0 or 3, no crash, nothing half-written" {
    for f in "$REGRESS"/frame/*; do
        for prog in "vol-cat" "resample --spacing 2"; do
            run --separate-stderr $prog -i "$f" -o "$T/out.vxp"
            echo "$(basename "$f") $prog: exit $status: $stderr"
            no_crash
            [ "$status" -eq 0 ] || [ "$status" -eq 3 ]
            if [ "$status" -eq 3 ]; then nothing_left; fi
            rm -f "$T/out.vxp"
        done
    done
}

@test "fuzz reproducer: deflated DICOM element declaring 1 GiB in a 5 KiB file: exit 3, nothing reserved for it, no temporary left" {
    # DCMTK alone reserves the declared length (a deflate stream cannot be skipped): under a 512 MiB
    # address-space cap that read failed with "Virtual Memory exhausted"; dcm-fetch inflates the
    # dataset into a temporary file first, where the long value stays on disk
    local f=$REGRESS/dicom/element_len_1gib.dcm
    if [[ "$VOXPIPE_BIN" == *build-san* ]]; then cap=":"; else cap="ulimit -v 524288"; fi
    mkdir -p "$T/tmp"
    run --separate-stderr env TMPDIR="$T/tmp" bash -c "$cap; dcm-fetch --keep-identifiers \"\$1\" -o \"\$2\"" _ "$f" "$T/out.vxp"
    echo "exit $status: $stderr"
    no_crash
    [ "$status" -eq 3 ]
    [[ "$stderr" == "dcm-fetch: error: '$f': "* ]]
    [[ "$stderr" != *"Virtual Memory exhausted"* ]]
    [ -z "$(ls -A "$T/tmp")" ] && rmdir "$T/tmp"
    nothing_left
}

# ---- error paths per program class: failing mid-stream leaves nothing

# stream filters (stream in, stream out): case h1 is good, case h2 is cut inside its last payload
FILTERS=("vol-cat" "reorient" "resample --spacing 2" "augment --seed 1" "label-clean --largest" "normalize --zscore")

@test "filters failing on the second case (file and pipe input): exit 3, no output file, no temporary" {
    for f in "${FILTERS[@]}"; do
        prog=${f%% *}
        refuses "$prog" 3 $f -i "$H/good_then_trunc.vxp" -o "$T/out.vxp"
        says "case 'h2': volume 'label': field 'data': truncated frame"
        nothing_left
        refuses "$prog" 3 bash -c "cat \"\$1\" | $f -o \"\$2\"" _ "$H/good_then_trunc.vxp" "$T/out.vxp"
        says "<stdin>: case 'h2'"
        nothing_left
    done
}

@test "filters on the good stream write it (control for the test above)" {
    for f in "${FILTERS[@]}"; do
        run $f -i "$H/good.vxp" -o "$T/out.vxp"
        [ "$status" -eq 0 ] && [ -s "$T/out.vxp" ]
        rm -f "$T/out.vxp"
    done
}

@test "sources: vol-read with a bad second file: exit 3, no stream file left" {
    run vol-read "$H/slope_nan.nii" -o "$T/out.vxp"
    [ "$status" -eq 0 ] && rm "$T/out.vxp"
    refuses vol-read 3 vol-read "$H/slope_nan.nii" "$H/voxoff_eof.nii" -o "$T/out.vxp"
    says "voxoff_eof.nii"
    nothing_left
}

@test "sources: dcm-fetch with a good and a truncated file: exit 3, no stream file left" {
    mkdir "$T/in" && cp "$H/dcm_good.dcm" "$H/dcm_trunc.dcm" "$T/in/"
    refuses dcm-fetch 3 dcm-fetch --keep-identifiers "$T/in" -o "$T/out.vxp"
    says "dcm_trunc.dcm"
    nothing_left in in/dcm_good.dcm in/dcm_trunc.dcm
}

@test "sinks: vol-write to NIfTI failing in case h2: h1 complete, nothing of h2 (not even its finished volume), no temporary" {
    refuses vol-write 3 vol-write -i "$H/good_then_trunc.vxp" -o "$T/w/{id}_{vol}.nii.gz"
    says "case 'h2': volume 'label': field 'data': truncated frame"
    nothing_left w w/h1_image.nii.gz w/h1_label.nii.gz
    # h1's files are whole: the same bytes as from the good stream
    mkdir "$T/ref"
    run vol-write -i "$H/good.vxp" -o "$T/ref/{id}_{vol}.nii.gz"
    [ "$status" -eq 0 ]
    cmp "$T/w/h1_image.nii.gz" "$T/ref/h1_image.nii.gz"
    cmp "$T/w/h1_label.nii.gz" "$T/ref/h1_label.nii.gz"
    [ -f "$T/ref/h2_image.nii.gz" ] && [ -f "$T/ref/h2_label.nii.gz" ]
}

@test "sinks: vol-write to uncompressed .nii (spliced payloads) failing in case h2: nothing of h2 left" {
    refuses vol-write 3 vol-write -i "$H/good_then_trunc.vxp" -o "$T/w/{id}_{vol}.nii"
    nothing_left w w/h1_image.nii w/h1_label.nii
}

@test "sinks: vol-write --vol naming a volume case h1 lacks: exit 3, volume named, nothing written, no temporary" {
    refuses vol-write 3 vol-write -i "$H/good.vxp" --vol image --vol seg -o "$T/w/{id}_{vol}.nii.gz"
    says "case 'h1': no volume 'seg' (--vol)"
    nothing_left w
    # control: the volumes it has are written
    run vol-write -i "$H/good.vxp" --vol image --vol label -o "$T/w/{id}_{vol}.nii.gz"
    [ "$status" -eq 0 ]
    nothing_left w w/h1_image.nii.gz w/h1_label.nii.gz w/h2_image.nii.gz w/h2_label.nii.gz
    # two selected volumes into one name without {vol}: refused before either overwrites the other
    rm -r "$T/w"
    for ext in nii nii.gz; do
        refuses vol-write 2 vol-write -i "$H/good.vxp" --vol image --vol label -o "$T/w/{id}.$ext"
        says "pattern '$T/w/{id}.$ext' has no {vol}"
        nothing_left w
    done
}

@test "reports: vol-info --labels naming a missing volume: exit 3, volume named; an existing one is counted" {
    run --separate-stderr vol-info -i "$H/good.vxp" --labels seg
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"vol-info: error: case 'h1': no volume 'seg' (--labels)"* ]]
    run vol-info -i "$H/good.vxp" --labels label
    [ "$status" -eq 0 ]
    [[ "$output" == *"case h2"* ]]
}

@test "label-map --map with a missing file: exit 1 naming it; a malformed map: exit 2" {
    refuses label-map 1 label-map --map "$T/nope.txt" -i "$H/good.vxp" -o "$T/out.vxp"
    says "--map '$T/nope.txt'" "No such file"
    printf '1 x\n' > "$T/bad.txt"
    refuses label-map 2 label-map --map "$T/bad.txt" -i "$H/good.vxp" -o "$T/out.vxp"
    nothing_left bad.txt
}

@test "metrics: metric-dice and hausdorff failing on case h2 leave no table" {
    for p in metric-dice hausdorff; do
        refuses $p 3 $p --pred label --ref label -i "$H/good_then_trunc.vxp" -o "$T/table.tsv"
        says "case 'h2'"
        nothing_left
        run $p --pred label --ref label -i "$H/good.vxp" -o "$T/table.tsv"
        [ "$status" -eq 0 ] && [ -s "$T/table.tsv" ]
        rm "$T/table.tsv"
    done
}

# ---- a closed downstream pipe (EPIPE; SIGPIPE is ignored by every program): exit 1 with a message

@test "closed stdout: sources, filters and metrics exit 1 with 'downstream closed the pipe', no signal" {
    local cmds=("vol-read $TS/example_seg.nii.gz" "vol-cat -i $H/good.vxp" "resample --spacing 2 -i $H/good.vxp"
                "augment --seed 1 -i $H/good.vxp" "metric-dice --pred label --ref label -i $H/good.vxp"
                "hausdorff --pred label --ref label -i $H/good.vxp" "dcm-fetch --keep-identifiers $H/dcm_good.dcm")
    for c in "${cmds[@]}"; do
        run --separate-stderr closed_stdout $c
        echo "$c: exit $status: $stderr"
        no_crash
        [ "$status" -eq 1 ]
        [[ "$stderr" == "${c%% *}: error: '<stdout>': downstream closed the pipe"* ]]
    done
}

@test "closed stdout: vol-info (text report) exits 1 with an error, no signal" {
    run --separate-stderr closed_stdout vol-info -i "$H/good.vxp"
    echo "exit $status: $stderr"
    no_crash
    [ "$status" -eq 1 ]
    [[ "$stderr" == "vol-info: error: "* ]]
}

# ---- out-of-range option values: exit 2 before any input is read or socket bound

@test "every program refuses --threads 0 and --threads 2000 with exit 2 naming the option" {
    local n=0
    for p in "$VOXPIPE_BIN"/*; do
        p=$(basename "$p")
        for v in 0 2000 -3 x; do
            refuses "$p" 2 timeout 10 "$p" --threads "$v"
            says "option '--threads'"
        done
        n=$((n + 1))
    done
    [ "$n" -ge 20 ]
}

@test "numeric options out of their range, NaN or not numbers: exit 2 with the option named, per program class" {
    local cases=(
        "resample|--order|2" "resample|--spacing|0" "resample|--spacing|nan" "resample|--spacing|-1,1,1"
        "augment|--seed|-1" "augment|--p-rotation|1.5" "augment|--p-noise|nan"
        "crop|--margin|-1|--foreground" "label-clean|--min-size|-5"
        "vol-write|--gzip-level|13" "hausdorff|--percentile|101" "hausdorff|--tolerance|nan"
        "ttest|--level|1.5" "report|--level|0" "dcm-fetch|--tolerance|0.9"
        "infer-ressegnet|--overlap|1" "infer-unet|--step|0" "fanout|--max-attempts|0" "worker|--credit|0"
        "train-unet|--momentum|1.5" "train-ressegnet|--init-filters|0")
    for c in "${cases[@]}"; do
        IFS='|' read -r p o v extra <<<"$c"
        refuses "$p" 2 timeout 10 "$p" $extra "$o" "$v" -i "$H/good.vxp"
        says "'$o'"
    done
}
