#!/usr/bin/env bats
# vol-read streams .nii.gz voxels (igzip on a second thread): multi-member files written by
# vol-write read back exactly; the CRC-32 of every member is checked; the whole-file path and the
# streaming path agree.
load helpers

@test "a multi-member .nii.gz from vol-write streams back identical to what nibabel reads" {
    vol-read "$TS/example_ct_sm.nii.gz" | vol-write -o "$T/ct.nii.gz" --gzip-level 6
    # more than one gzip member: the header is its own member
    run "$VOXPIPE_PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.count(b"\x1f\x8b\x08") >= 2)' "$T/ct.nii.gz"
    [ "$output" = "True" ]
    vol-read "$T/ct.nii.gz" > "$T/s.vxp"
    run "$VOXPIPE_PY" -c '
import sys; sys.path.insert(0, sys.argv[3]); import vxp, nibabel as nib, numpy as np
c = next(vxp.read(open(sys.argv[1], "rb"))); ref = nib.load(sys.argv[2])
print(np.array_equal(c["vols"]["image"].data, np.asanyarray(ref.dataobj)), np.allclose(c["vols"]["image"].affine, ref.affine, atol=1e-6))' \
        "$T/s.vxp" "$TS/example_ct_sm.nii.gz" "$SCRIPTS"
    [ "$output" = "True True" ]
}

@test "streaming and whole-file reading give the same voxels" {
    # --labels forces the whole-file path (the label map needs the voxels); the image is the same
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" > "$T/stream.vxp"
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" --labels totalseg-v2 > "$T/whole.vxp"
    run "$VOXPIPE_PY" -c '
import sys; sys.path.insert(0, sys.argv[3]); import vxp, numpy as np
a = next(vxp.read(open(sys.argv[1], "rb"))); b = next(vxp.read(open(sys.argv[2], "rb")))
print(all(np.array_equal(a["vols"][k].data, b["vols"][k].data) and np.array_equal(a["vols"][k].affine, b["vols"][k].affine) for k in ("image", "label")))' \
        "$T/stream.vxp" "$T/whole.vxp" "$SCRIPTS"
    [ "$output" = "True" ]
}

@test "a CRC-32 mismatch in a .nii.gz is bad data (exit 3), and no output is left" {
    vol-read "$TS/example_ct_sm.nii.gz" | vol-write -o "$T/ct.nii.gz"
    # flip one bit of the last member's CRC-32 (the 8-byte trailer is CRC then size)
    "$VOXPIPE_PY" -c 'import sys; p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[-8] ^= 1; open(p,"wb").write(d)' "$T/ct.nii.gz"
    assert_exit 3 vol-read "$T/ct.nii.gz" -o "$T/out.vxp"
    [[ "$output" == *"corrupt gzip data (CRC-32 mismatch)"* ]]
    [ ! -e "$T/out.vxp" ]
    [ -z "$(ls -A "$T" | grep -v '^ct.nii.gz$')" ]
}
