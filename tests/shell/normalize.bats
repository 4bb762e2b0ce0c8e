#!/usr/bin/env bats
# normalize: every mode against its peer's golden output (MONAI transforms, scipy, nnU-Net's
# CTNormalization), within 1e-6 of the output's largest magnitude (the issue asks 1e-5); the
# statistics nnU-Net would use; determinism over --threads; pass-through; bad inputs.
load helpers
load preproc_helpers
bats_require_minimum_version 1.5.0

setup_file() {
    make_ct_stream
}

setup() {
    T="${VOXPIPE_TMP:-$BATS_TMPDIR}/normalize-$BATS_TEST_NUMBER"
    rm -rf "$T" && mkdir -p "$T"
    CT_VXP="$BATS_FILE_TMPDIR/ct.vxp"
}

# golden NAME [TOL] : run normalize with the golden's options on its input and compare
golden() {
    local -a args
    local input
    mapfile -t args < <("$VOXPIPE_PY" "$CHECK" args "$G" norm "$1")
    input=$("$VOXPIPE_PY" -c 'import json, sys; print([e["input"] for e in json.load(open(sys.argv[1])) if e["name"] == sys.argv[2]][0])' "$G/norm.json" "$1")
    normalize "${args[@]}" -i "$G/$input" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHECK" norm "$G" "$1" "$T/out.vxp" "${2:-1e-6}"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--range -1000,1000,0,1 --clip = MONAI ScaleIntensityRange(clip=True)" { golden range_clip; }
@test "--range -175,250,-1,1 = MONAI ScaleIntensityRange(clip=False)" { golden range_noclip; }
@test "--zscore = MONAI NormalizeIntensity()" { golden zscore; }
@test "--zscore --nonzero = MONAI NormalizeIntensity(nonzero=True)" { golden zscore_nonzero; }
@test "--zscore --nonzero --channel-wise on 2 channels = MONAI NormalizeIntensity(channel_wise=True)" { golden zscore_channelwise; }
@test "--ct = nnU-Net CTNormalization with the case's foreground percentiles, mean, std" { golden ct_case; }
@test "--ct-stats = nnU-Net CTNormalization with given intensity properties" { golden ct_given; }
@test "--gaussian 0.4 = MONAI GaussianSmooth(0.4)" { golden gauss_monai; }
@test "--gaussian 1.5,1,0 (per axis, one axis untouched) = MONAI GaussianSmooth((1.5, 1, 0))" { golden gauss_monai_aniso; }
@test "--gaussian 4.5mm at 3 mm spacing = MONAI GaussianSmooth(1.5)" { golden gauss_monai_mm; }
@test "--gaussian 1.2 --kernel scipy = scipy.ndimage.gaussian_filter(1.2)" { golden gauss_scipy; }
@test "--kernel scipy on axes shorter than the radius = scipy (periodic mirror)" { golden gauss_scipy_thin; }
@test "--gaussian 2 on axes shorter than the radius = MONAI (zero padding)" { golden gauss_monai_thin; }
@test "--minmax -1,1 = MONAI ScaleIntensity(minv=-1, maxv=1)" { golden minmax; }
@test "--chain monailabel = MONAI NormalizeIntensity(nonzero) + GaussianSmooth(0.4) + ScaleIntensity(-1, 1)" { golden chain_monailabel; }

@test "--ct on the whole shared CT: nnU-Net's foreground statistics (percentiles exact)" {
    normalize --ct -i "$CT_VXP" -o "$T/ct.vxp"
    run py '
c, = load(sys.argv[1])
rec = c["meta"]["normalize"][-1]
want = [float(x) for x in open(sys.argv[2]).read().split(",")]
got = [rec[k] for k in ("percentile_00_5", "percentile_99_5", "mean", "std")]
assert got[:2] == want[:2], (got, want)
assert all(abs(g - w) <= 1e-6 * abs(w) for g, w in zip(got[2:], want[2:])), (got, want)
print(rec["mode"], c["vols"]["image"].data.dtype)' "$T/ct.vxp" "$G/ct_stats.txt"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ct float32" ]
}

@test "every mode gives the same bytes with --threads 1 and 3" {
    for m in "--zscore --nonzero" "--ct" "--gaussian 1.3" "--gaussian 2 --kernel scipy" "--minmax -1,1" "--chain monailabel"; do
        # shellcheck disable=SC2086
        normalize $m --threads 1 -i "$CT_VXP" -o "$T/t1.vxp"
        # shellcheck disable=SC2086
        normalize $m --threads 3 -i "$CT_VXP" -o "$T/t3.vxp"
        cmp "$T/t1.vxp" "$T/t3.vxp" || { echo "differs: $m"; return 1; }
    done
}

@test "other volumes and meta pass through; the volume keeps dims and affine; a record goes to meta" {
    normalize --vol image --range -1000,1000 -i "$CT_VXP" -o "$T/n.vxp"
    run py '
a, = load(sys.argv[1]); b, = load(sys.argv[2])
assert a["vols"]["label"].data.tobytes() == b["vols"]["label"].data.tobytes()
assert a["vols"]["image"].affine.tobytes() == b["vols"]["image"].affine.tobytes()
assert a["meta"]["nifti"] == b["meta"]["nifti"]
print(b["vols"]["image"].data.shape == a["vols"]["image"].data.shape, b["vols"]["image"].data.dtype, b["meta"]["normalize"])' "$CT_VXP" "$T/n.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "True float32 [{'vol': 'image', 'mode': 'range', 'a_min': -1000.0, 'a_max': 1000.0, 'b_min': 0.0, 'b_max': 1.0, 'clip': 0.0}]" ]
}

# ---- bad input (issue 3 item 6): exit code, message, nothing written

@test "a missing volume name (--vol, --fg): exit 3, no output" {
    refuses normalize 3 normalize --vol ct --zscore -i "$CT_VXP" -o "$T/out.vxp"
    says "case 'example_ct_sm': no volume 'ct' (--vol)"
    refuses normalize 3 normalize --ct --fg seg -i "$CT_VXP" -o "$T/out.vxp"
    says "case 'example_ct_sm': no volume 'seg' (--fg) for the foreground statistics"
    nothing_left
}

@test "--ct with an empty foreground or a foreground on another grid: exit 3" {
    py 'a, = load(sys.argv[1]); l = a["vols"]["label"]; a["vols"]["label"] = vxp.Vol(np.zeros_like(l.data), l.affine); a["vols"]["small"] = vxp.Vol(np.ones((4, 4, 4), np.uint8), l.affine); vxp.write(open(sys.argv[2], "wb"), [a])' "$CT_VXP" "$T/in.vxp"
    refuses normalize 3 normalize --ct -i "$T/in.vxp" -o "$T/out.vxp"
    says "volume 'label' (--fg) has no voxel > 0"
    refuses normalize 3 normalize --ct --fg small -i "$T/in.vxp" -o "$T/out.vxp"
    says "volumes 'image' and 'small' (--fg) must have one channel and share one grid"
    nothing_left in.vxp
}

@test "parameters out of range: exit 2 (A0 = A1, P0.5 > P99.5, STD <= 0, negative or huge sigma, two modes)" {
    refuses normalize 2 normalize --range 5,5 -i "$CT_VXP" -o "$T/out.vxp"
    says "option '--range': A0 and A1 are equal"
    refuses normalize 2 normalize --ct-stats 100,-100,0,1 -i "$CT_VXP" -o "$T/out.vxp"
    says "option '--ct-stats': P0.5 (100) is above P99.5 (-100)"
    refuses normalize 2 normalize --ct-stats -100,100,0,0 -i "$CT_VXP" -o "$T/out.vxp"
    says "option '--ct-stats': STD must be > 0"
    refuses normalize 2 normalize --gaussian=-1 -i "$CT_VXP" -o "$T/out.vxp"
    says "option '--gaussian': sigma -1 is outside [0, 1000] voxels"
    refuses normalize 2 normalize --gaussian 4000mm -i "$CT_VXP" -o "$T/out.vxp"
    says "sigma 4000 mm is" "above 1000"
    refuses normalize 2 normalize --zscore --minmax -1,1 -i "$CT_VXP" -o "$T/out.vxp"
    says "give exactly one mode"
    refuses normalize 2 normalize --chain nnunet -i "$CT_VXP" -o "$T/out.vxp"
    says "unknown chain 'nnunet'"
    nothing_left
}
