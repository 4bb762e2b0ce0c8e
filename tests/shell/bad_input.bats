#!/usr/bin/env bats
# Bad input: each malformed input (made by tests/scripts/make_bad_inputs.py) is refused with the
# documented exit code (3 = bad input data, 1 = missing input or unwritable output), stderr holds only
# "PROGRAM: error: ..." lines that name the case (its id, "frame N" before the id is known, or the
# NIfTI file) and the field, nothing crashes (no signal, no sanitizer report), and no output is left
# behind: neither the -o target nor a ".NAME.tmp.*" temporary file.
load helpers
bats_require_minimum_version 1.5.0

setup_file() {
    export BAD="${VOXPIPE_TMP:-$BATS_TMPDIR}/bad_input-files"
    rm -rf "$BAD" && mkdir -p "$BAD"
    "$VOXPIPE_PY" "$SCRIPTS/make_bad_inputs.py" "$BAD"
}


# a virtual memory cap for the command in `bash -c`; ASan reserves terabytes of shadow memory, so
# the cap is left out under the sanitizers (the build-san tree)
memcap() {
    if [[ "$VOXPIPE_BIN" == *build-san* ]]; then echo ":"; else echo "ulimit -v 524288"; fi
}

@test "control: the valid inputs the bad ones are made from are accepted" {
    run vol-cat -i "$BAD/good.vxp" -o "$T/out.vxp"
    [ "$status" -eq 0 ]
    run vol-read "$BAD/good.nii.gz" -o "$T/good.vxp"
    [ "$status" -eq 0 ]
    [ -s "$T/out.vxp" ] && [ -s "$T/good.vxp" ]
}

# ---- truncated frames

@test "frame cut in the middle of the payload (file): exit 3, truncated, case and field named" {
    refuses vol-cat 3 vol-cat -i "$BAD/trunc_payload.vxp" -o "$T/out.vxp"
    says "trunc_payload.vxp: case 'trunc1': volume 'image': field 'data': truncated frame"
    nothing_left
}

@test "frame cut in the middle of the payload (pipe): exit 3, truncated, case and field named" {
    refuses vol-cat 3 bash -c 'cat "$1" | vol-cat -o "$2"' _ "$BAD/trunc_payload.vxp" "$T/out.vxp"
    says "<stdin>: case 'trunc1': volume 'image': field 'data': truncated frame: unexpected end of input"
    nothing_left
}

@test "frame cut in the header (inside the affine): exit 3, truncated, case and field named" {
    refuses vol-cat 3 vol-cat -i "$BAD/trunc_header.vxp" -o "$T/out.vxp"
    says "case 'trunc2'" "volume 'image'" "field 'affine'" "truncated frame"
    nothing_left
}

@test "frame cut inside the id: exit 3, truncated, named as frame 1 and field 'id'" {
    refuses vol-cat 3 vol-cat -i "$BAD/trunc_id.vxp" -o "$T/out.vxp"
    says "frame 1: field 'id': truncated frame"
    nothing_left
}

@test "vol-write with a NIfTI pattern on a truncated frame: exit 3, no file written" {
    refuses vol-write 3 vol-write -i "$BAD/trunc_payload.vxp" -o "$T/{id}_{vol}.nii.gz"
    says "case 'trunc1'" "field 'data'" "truncated frame"
    nothing_left
}

@test "vol-write to a stream file on a truncated frame: exit 3, no file written" {
    refuses vol-write 3 vol-write -i "$BAD/trunc_payload.vxp" -o "$T/out.vxp"
    says "case 'trunc1'" "field 'data'" "truncated frame"
    nothing_left
}

# ---- header contents

@test "unknown format version 2: exit 3, frame 1, field 'voxpipe'" {
    refuses vol-cat 3 vol-cat -i "$BAD/version2.vxp" -o "$T/out.vxp"
    says "frame 1: field 'voxpipe': unsupported format version 2"
    nothing_left
}

@test "format version 2 in the second frame: exit 3, frame 2, nothing of the first case kept" {
    refuses vol-cat 3 vol-cat -i "$BAD/second_frame_v2.vxp" -o "$T/out.vxp"
    says "frame 2: field 'voxpipe': unsupported format version 2"
    nothing_left
}

@test "dims x dtype size != payload length: exit 3, case and field 'data' named with both sizes" {
    refuses vol-cat 3 vol-cat -i "$BAD/size_mismatch.vxp" -o "$T/out.vxp"
    says "case 'mismatch': volume 'image': field 'data': payload is 100 bytes but dims 4x4x4x1 of f32 need 256"
    nothing_left
}

@test "dims product overflowing 64 bits: exit 3, rejected before any allocation" {
    refuses vol-cat 3 bash -c "$(memcap); vol-cat -i \"\$1\" -o \"\$2\"" _ "$BAD/dims_overflow.vxp" "$T/out.vxp"
    says "case 'huge': volume 'image': field 'dims': dims x dtype size overflows"
    nothing_left
}

@test "zero voxel spacing (affine with a zero column): exit 3, field 'affine'" {
    refuses vol-cat 3 vol-cat -i "$BAD/zero_spacing.vxp" -o "$T/out.vxp"
    says "case 'flat': volume 'image': field 'affine': zero voxel spacing"
    nothing_left
}

@test "NaN in the affine: exit 3, field 'affine'" {
    refuses vol-cat 3 vol-cat -i "$BAD/nan_affine.vxp" -o "$T/out.vxp"
    says "case 'nanaff': volume 'image': field 'affine': contains a non-finite value"
    nothing_left
}

@test "top-level value is an array: exit 3, frame 1, not a map" {
    refuses vol-cat 3 vol-cat -i "$BAD/not_map_array.vxp" -o "$T/out.vxp"
    says "frame 1: top-level value is not a map"
    nothing_left
}

@test "top-level value is an int: exit 3, frame 1, not a map" {
    refuses vol-cat 3 vol-cat -i "$BAD/not_map_int.vxp" -o "$T/out.vxp"
    says "frame 1: top-level value is not a map"
    nothing_left
}

# ---- lying lengths: never allocate what the input cannot hold

@test "bin32 declaring 4 GB in a 1 KiB file: exit 3 at once, truncated frame" {
    refuses vol-cat 3 timeout 20 bash -c "$(memcap); vol-cat -i \"\$1\" -o \"\$2\"" _ "$BAD/bin_4g.vxp" "$T/out.vxp"
    says "case 'liar': volume 'image': field 'data': truncated frame: declared payload of 4290772992 bytes runs past the end of the input"
    nothing_left
}

@test "bin32 declaring 4 GB through a pipe: exit 3 quickly, truncated frame, no gigabyte allocation" {
    refuses vol-cat 3 timeout 20 bash -c "$(memcap); cat \"\$1\" | vol-cat -o \"\$2\"" _ "$BAD/bin_4g.vxp" "$T/out.vxp"
    says "<stdin>: case 'liar': volume 'image': field 'data': truncated frame: unexpected end of input"
    nothing_left
}

@test "meta bin32 declaring 4 GB in a file and through a pipe: exit 3, field 'meta', truncated frame" {
    refuses vol-cat 3 timeout 20 bash -c "$(memcap); vol-cat -i \"\$1\" -o \"\$2\"" _ "$BAD/meta_bin_4g.vxp" "$T/out.vxp"
    says "case 'liarmeta': field 'meta': truncated frame"
    nothing_left
    refuses vol-cat 3 timeout 20 bash -c "$(memcap); cat \"\$1\" | vol-cat -o \"\$2\"" _ "$BAD/meta_bin_4g.vxp" "$T/out.vxp"
    says "<stdin>: case 'liarmeta': field 'meta': truncated frame"
    nothing_left
}

# ---- limits

@test "id longer than the 1024-byte limit: exit 3, frame 1, field 'id'" {
    refuses vol-cat 3 vol-cat -i "$BAD/long_id.vxp" -o "$T/out.vxp"
    says "frame 1: field 'id': string too long"
    nothing_left
}

@test "meta nested 1000 deep (limit 32): exit 3, field 'meta', no stack overflow" {
    refuses vol-cat 3 vol-cat -i "$BAD/deep_meta.vxp" -o "$T/out.vxp"
    says "case 'deep': field 'meta': values nested too deeply"
    nothing_left
}

# ---- NIfTI input (sform_code 0: pixdim is the spacing)

@test "NIfTI with negative pixdim: exit 3, file and pixdim[1] named" {
    refuses vol-read 3 vol-read "$BAD/neg_pixdim.nii.gz" -o "$T/out.vxp"
    says "neg_pixdim.nii.gz': pixdim[1] (voxel spacing) is negative"
    nothing_left
}

@test "NIfTI with NaN pixdim: exit 3, file and pixdim[2] named" {
    refuses vol-read 3 vol-read "$BAD/nan_pixdim.nii.gz" -o "$T/out.vxp"
    says "nan_pixdim.nii.gz': pixdim[2] (voxel spacing) is NaN"
    nothing_left
}

@test "NIfTI with zero pixdim: exit 3, file and pixdim[3] named" {
    refuses vol-read 3 vol-read "$BAD/zero_pixdim.nii.gz" -o "$T/out.vxp"
    says "zero_pixdim.nii.gz': pixdim[3] (voxel spacing) is zero"
    nothing_left
}

@test "corrupt .nii.gz (valid gzip header, garbage deflate data): exit 3" {
    refuses vol-read 3 vol-read "$BAD/corrupt.nii.gz" -o "$T/out.vxp"
    says "corrupt.nii.gz': corrupt gzip data"
    nothing_left
}

@test "truncated .nii.gz: exit 3, truncated" {
    refuses vol-read 3 vol-read "$BAD/truncated.nii.gz" -o "$T/out.vxp"
    says "truncated.nii.gz': corrupt gzip data" "truncated"
    nothing_left
}

@test "truncated .nii (uncompressed): exit 3, truncated voxel data" {
    refuses vol-read 3 vol-read "$BAD/truncated.nii" -o "$T/out.vxp"
    says "truncated.nii': truncated: header declares 65536 bytes of voxel data"
    nothing_left
}

# ---- missing input, unwritable output (exit 1)

@test "missing input file: exit 1 from vol-cat and vol-read, no output" {
    refuses vol-cat 1 vol-cat -i "$T/nope.vxp" -o "$T/out.vxp"
    says "nope.vxp': cannot open: No such file or directory"
    nothing_left
    refuses vol-read 1 vol-read "$T/nope.nii.gz" -o "$T/out.vxp"
    says "nope.nii.gz': cannot open: No such file or directory"
    nothing_left
    refuses vol-write 1 vol-write -i "$T/nope.vxp" -o "$T/{id}_{vol}.nii.gz"
    says "nope.vxp': cannot open: No such file or directory"
    nothing_left
}

# Tests run as root, so a 0555 directory would not stop them: the output goes under a regular file.
@test "unwritable output (a path under a regular file): exit 1 from every writer, nothing left" {
    : >"$T/afile"
    refuses vol-cat 1 vol-cat -i "$BAD/good.vxp" -o "$T/afile/out.vxp"
    says "afile/out.vxp': cannot create output: Not a directory"
    refuses vol-read 1 vol-read "$BAD/good.nii.gz" -o "$T/afile/out.vxp"
    says "afile/out.vxp': cannot create output: Not a directory"
    refuses vol-write 1 vol-write -i "$BAD/good.vxp" -o "$T/afile/{id}_{vol}.nii.gz"
    says "afile/good_image.nii.gz': cannot create output: Not a directory"
    refuses vol-write 1 vol-write -i "$BAD/good.vxp" -o "$T/afile/x.nii"
    says "afile/x.nii': cannot create output: Not a directory"
    refuses vol-write 1 vol-write -i "$BAD/good.vxp" -o "$T/afile/out.vxp"
    says "afile/out.vxp': cannot create output: Not a directory"
    nothing_left afile
}

@test "unwritable output under /proc: exit 1, even for root" {
    refuses vol-cat 1 vol-cat -i "$BAD/good.vxp" -o /proc/voxpipe-bad-input.vxp
    says "/proc/voxpipe-bad-input.vxp': cannot create output"
    [ ! -e /proc/voxpipe-bad-input.vxp ]
    nothing_left
}
