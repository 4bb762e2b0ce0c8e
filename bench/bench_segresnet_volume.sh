#!/usr/bin/env bash
# Whole-volume SegResNet inference: voxpipe's infer-ressegnet vs MONAI's sliding_window_inference
# (PyTorch on CPU), same weights, same volume, same thread count: wall time and peak RSS
# (/usr/bin/time -v) side by side, and how many voxels the two label maps agree on.
#   usage: bench/bench_segresnet_volume.sh          (needs bin/infer-ressegnet, .venv with torch + monai)
# Volume: ../shared/data/totalseg/example_ct_sm.nii.gz (int16, 122x101x30 at 3 mm) resampled to
# 1.5 mm (scipy.ndimage.zoom, order 1: 244x202x60) and mirror-extended (numpy.pad "symmetric") to
# the size of a 1.5 mm chest CT, BENCH_VOL_SIZE (default 333,333,188); intensities clipped to
# [-1000, 1000] HU and divided by 1000 (f32). Deterministic; written to bench/out/ (git-ignored).
# Network: MONAI SegResNet, init_filters 16 (BENCH_FILTERS), blocks 1,2,2,4 / 1,1,1, GroupNorm 8,
# nontrainable upsampling, 1 -> 26 classes, torch.manual_seed(0) weights.
# Inference, both sides: ROI 96^3, sw_batch_size 1, overlap 0.25 (the default of MONAI's
# sliding_window_inference; infer-ressegnet's own default is 0.4), gaussian importance map
# sigma 0.125 (MONAI's default mode is "constant"; gaussian is what SlidingWindowInferer in MONAI
# Label's SegResNet configs and nnU-Net use), constant padding, then argmax over classes.
# One run each (about 5 minutes on 2 cores). BENCH_THREADS (default: CPUs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
out=bench/out/segvol
threads=${BENCH_THREADS:-$(nproc)}
size=${BENCH_VOL_SIZE:-333,333,188}
filters=${BENCH_FILTERS:-16}
data=${VOXPIPE_DATA:-$root/../shared/data}/totalseg/example_ct_sm.nii.gz
[ -x bin/infer-ressegnet ] || { echo "bench_segresnet_volume: bin/infer-ressegnet missing (run make)" >&2; exit 1; }
"$py" -c 'import monai, scipy, nibabel' 2>/dev/null || { echo "bench_segresnet_volume: $py lacks torch/monai/scipy/nibabel" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_segresnet_volume: /usr/bin/time missing (Debian package time)" >&2; exit 1; }
mkdir -p "$out"
tag="${size//,/x}_f$filters"
vol="$out/ct_$tag.vxp" npy="$out/ct_$tag.npy" model="$out/segresnet_f${filters}_c26.safetensors"

# ---- the volume and the model (deterministic; made once)
if [ ! -f "$vol" ] || [ ! -f "$npy" ] || [ ! -f "$model" ]; then
    PYTHONPATH=tests/scripts "$py" - "$data" "$size" "$filters" "$vol" "$npy" "$model" <<'PY'
import json, struct, sys
import nibabel as nib, numpy as np, scipy.ndimage as ndi, torch
import vxp
from monai.networks.nets import SegResNet
src, size, f, vol, npy, model = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3]), *sys.argv[4:]
img = nib.load(src)
a = np.asarray(img.dataobj).astype(np.float32)
zoom = [z / 1.5 for z in img.header.get_zooms()[:3]]
a = ndi.zoom(a, zoom, order=1)                      # 1.5 mm
pad = [(max(0, (t - s) // 2), max(0, t - s - (t - s) // 2)) for s, t in zip(a.shape, size)]
a = np.pad(a, pad, mode="symmetric")[: size[0], : size[1], : size[2]]
a = (np.clip(a, -1000, 1000) / 1000).astype(np.float32)
np.save(npy, a)
aff = np.diag([1.5, 1.5, 1.5, 1.0])
with open(vol, "wb") as fh:
    vxp.write(fh, [{"id": "chest", "vols": {"image": vxp.Vol(a, aff)}, "meta": {}}])
torch.manual_seed(0)
m = SegResNet(init_filters=f, in_channels=1, out_channels=26).eval()
meta = {"voxpipe.arch": "segresnet", "voxpipe.init_filters": str(f), "voxpipe.in_channels": "1",
        "voxpipe.out_channels": "26", "voxpipe.blocks_down": "1,2,2,4", "voxpipe.blocks_up": "1,1,1",
        "voxpipe.upsample_mode": "nontrainable", "voxpipe.roi": "96,96,96"}
head, blobs, off = {"__metadata__": meta}, [], 0
for k, v in m.state_dict().items():
    b = v.contiguous().numpy().astype("<f4").tobytes()
    head[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(head).encode(); h += b" " * (-len(h) % 8)
open(model, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print("volume", a.shape, "from", src, file=sys.stderr)
PY
fi

echo "bench_segresnet_volume  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "volume ${size//,/x} (1.5 mm), SegResNet init_filters $filters, 26 classes; ROI 96^3, overlap 0.25, gaussian; threads $threads; one run each"
echo "peer: torch $("$py" -c 'import torch; print(torch.__version__)') + monai $("$py" -c 'import monai; print(monai.__version__)') (CPU)"

# peak RSS (KiB), wall seconds and CPU seconds (user + system) from /usr/bin/time -v's report
rss() { sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$1"; }
cpu() { awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.1f", s }' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$1"; }

# ---- voxpipe
/usr/bin/time -v -o "$out/time_vp.txt" bin/infer-ressegnet -q --threads "$threads" -m "$model" -i "$vol" -o "$out/vp_$tag.vxp" \
    --roi 96,96,96 --overlap 0.25 --blend gaussian --sigma 0.125 --padding constant
# ---- MONAI
/usr/bin/time -v -o "$out/time_monai.txt" "$py" - "$npy" "$model" "$threads" "$out/monai_$tag.npy" <<'PY' > "$out/monai_inner.txt"
import json, struct, sys, time
import numpy as np, torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import SegResNet
npy, model, nt, dst = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(nt)
raw = open(model, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
meta = head.pop("__metadata__")
sd = {k: torch.from_numpy(np.frombuffer(raw, "<f4", int(np.prod(v["shape"])), 8 + n + v["data_offsets"][0]).reshape(v["shape"]).copy())
      for k, v in head.items()}
m = SegResNet(init_filters=int(meta["voxpipe.init_filters"]), in_channels=1, out_channels=26).eval()
m.load_state_dict(sd)
x = torch.from_numpy(np.load(npy))[None, None]
t = time.perf_counter()
with torch.no_grad():
    y = sliding_window_inference(x, (96, 96, 96), 1, m, overlap=0.25, mode="gaussian", sigma_scale=0.125)
    lab = torch.argmax(y, 1)[0].to(torch.uint8).numpy()
print(f"{time.perf_counter() - t:.2f}")
np.save(dst, lab)
PY

# ---- side by side
agree=$(PYTHONPATH=tests/scripts "$py" - "$out/vp_$tag.vxp" "$out/monai_$tag.npy" <<'PY'
import sys, numpy as np, vxp
c = next(vxp.read(open(sys.argv[1], "rb")))
a, b = c["vols"]["label"].data.astype(np.int64), np.load(sys.argv[2]).astype(np.int64)
print(f"{(a == b).mean() * 100:.4f}")
PY
)
vw=$(wall "$out/time_vp.txt") mw=$(wall "$out/time_monai.txt") mi=$(cat "$out/monai_inner.txt")
vr=$(rss "$out/time_vp.txt") mr=$(rss "$out/time_monai.txt")
vc=$(cpu "$out/time_vp.txt") mc=$(cpu "$out/time_monai.txt")
printf '%-44s %10s %10s %14s\n' "" "wall s" "CPU s" "peak RSS MiB"
printf '%-44s %10s %10s %14s\n' "voxpipe infer-ressegnet (whole process)" "$vw" "$vc" "$((vr / 1024))"
printf '%-44s %10s %10s %14s\n' "MONAI sliding_window_inference (process)" "$mw" "$mc" "$((mr / 1024))"
printf '%-44s %10s %10s %14s\n' "  of which inference + argmax" "$mi" "" ""
awk -v a="$mi" -v b="$vw" -v r1="$mr" -v r2="$vr" -v c1="$mc" -v c2="$vc" 'BEGIN {
    printf "speedup (MONAI inference / voxpipe process): %.2fx wall, %.2fx CPU time (goal >= 1.5)\n", a / b, c1 / c2
    printf "memory: voxpipe %.2f of MONAI (goal <= 0.33)\n", r2 / r1 }'
echo "(on a shared machine the wall times depend on the load; the CPU times much less so)"
echo "labels equal on $agree% of voxels (random weights: near-ties between logits decide the rest)"
