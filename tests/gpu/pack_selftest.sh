#!/usr/bin/env bash
# tests/gpu/pack_selftest.sh - checks HERE (no GPU needed, ~1 minute) that .gpupack (tests/gpu/pack.sh)
# will work on the device machine, as far as a machine without a GPU can tell:
#   chroot    the packed programs and drivers in a chroot that holds nothing but glibc, libstdc++,
#             libgcc_s, the pack and an empty folder in place of the device's cuDNN/NCCL: every
#             ELF resolves (ld.so --list) except exactly the sonames of lib/DEVICE (printed: what
#             the device must provide); then, with this machine's libcudnn.so.9 / libnccl.so.2
#             copied in as the device's, vol-read | infer-ressegnet --backend cpu on the shared CT
#             with the golden SegResNet gives labels identical to those of this tree's bin/ outside
#             the chroot, and --backend cuda exits 4 (no CUDA device) with nothing on stdout
#   fresh     a copy of the working tree as the device tool sends it (tracked and untracked-not-
#             ignored files; no bin/, build/, .venv, ../shared) with only .gpupack added:
#             tests/gpu/device_check.sh passes every preflight check and stops at "no GPU: SKIP",
#             with a python that sees only the packages of the device image (KINDS.md's list,
#             linked from .venv) plus the pack's wheels; again with an empty folder for cuDNN/NCCL
#             (VP_DEVICE_LIBDIRS, so nothing is put on LD_LIBRARY_PATH): still SKIP, naming the
#             device's sonames NOT FOUND;
#             check.sh and check_train.sh with VP_GPU_PACK say SKIP (no GPU) and exit 0
#   usage: tests/gpu/pack_selftest.sh       exit 0 all pass, 1 a failure.  Needs root (chroot).
set -u
cd "$(dirname "$0")/../.." || exit 1
SRC=$PWD
PACK=$SRC/.gpupack
T=$(mktemp -d /tmp/vp-packtest.XXXXXX)
trap 'rm -rf "$T"' EXIT
rc=0
ok() { printf 'selftest %s: ok%s\n' "$1" "${2:+ ($2)}"; }
bad() { printf 'selftest %s: FAIL: %s\n' "$1" "$2"; rc=1; }
[ -f "$PACK/MANIFEST" ] || { echo "selftest: no .gpupack (run tests/gpu/pack.sh)"; exit 1; }
CT=../shared/data/totalseg/example_ct_sm.nii.gz
MODEL=tests/golden/segresnet/model_small.safetensors

# ---- chroot: glibc + libstdc++ + libgcc_s + the pack, nothing else
R=$T/root
mkdir -p "$R/lib64" "$R/lib/x86_64-linux-gnu" "$R/devlib" "$R/empty" "$R/w"
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
for so in libc.so.6 libm.so.6 libdl.so.2 librt.so.1 libpthread.so.0 libresolv.so.2 libstdc++.so.6 libgcc_s.so.1; do
    cp -L "/lib/x86_64-linux-gnu/$so" "$R/lib/x86_64-linux-gnu/"
done
cp -r "$PACK" "$R/pack"
cp "$CT" "$MODEL" "$R/w/"
# ld.so --list stops at the first missing library: each one missing gets an empty stand-in with its
# soname in /stub, and the listing is repeated; the stand-ins made are what the device must provide
mkdir -p "$R/stub"
for f in "$R"/pack/bin/* "$R"/pack/gpu/* "$R"/pack/lib/*.so*; do
    file -b "$f" | grep -q '^ELF' || continue
    for _ in 1 2 3 4 5 6 7 8; do
        so=$(chroot "$R" /lib64/ld-linux-x86-64.so.2 --library-path /stub --list "${f#"$R"}" 2>&1 >/dev/null |
            sed -n 's/.*error while loading shared libraries: \([^:]*\): cannot open.*/\1/p')
        [ -n "$so" ] || break
        printf '' | gcc -shared -x c -o "$R/stub/$so" -Wl,-soname,"$so" - || break
    done
done
missing=$(ls "$R/stub" | sort -u | paste -sd' ')
want=$(sort -u "$PACK/lib/DEVICE" | paste -sd' ')
[ "$missing" = "$want" ] && ok chroot-ldd "every packed ELF resolves in the chroot; from the device: $missing" ||
    bad chroot-ldd "unresolved: '$missing', expected only the device's '$want'"
# the device's libraries: this machine's cuDNN dispatcher and NCCL stand in for the pip packages
for so in $(cat "$PACK/lib/DEVICE"); do
    f=$(ldconfig -p | awk -v s="$so" '$1 == s { print $NF; exit }')
    [ -n "$f" ] && { ln -f "$(readlink -f "$f")" "$R/devlib/$so" 2>/dev/null || cp -L "$f" "$R/devlib/$so"; }
done
run() { chroot "$R" /lib64/ld-linux-x86-64.so.2 --library-path /devlib "$@"; }
run /pack/bin/vol-read /w/example_ct_sm.nii.gz >"$R/w/ct.vxp" 2>"$T/c.err" &&
    run /pack/bin/infer-ressegnet --backend cpu -m /w/model_small.safetensors -i /w/ct.vxp -o /w/seg.vxp 2>>"$T/c.err" &&
    run /pack/bin/vol-write -i /w/seg.vxp --vol label -o '/w/chroot-{vol}.nii' 2>>"$T/c.err"
e=$?
bin/vol-read "$CT" | bin/infer-ressegnet --backend cpu -m "$MODEL" -i - -o "$T/seg.vxp" 2>>"$T/c.err" &&
    bin/vol-write -i "$T/seg.vxp" --vol label -o "$T/host-{vol}.nii" 2>>"$T/c.err"
if [ $e -ne 0 ]; then bad chroot-run "exit $e: $(tail -3 "$T/c.err")"
elif cmp -s "$R/w/chroot-label.nii" "$T/host-label.nii"; then ok chroot-run "vol-read | infer-ressegnet --backend cpu | vol-write in the chroot: labels identical to bin/'s ($(stat -c %s "$T/host-label.nii") bytes)"
else bad chroot-run "labels differ from bin/'s"; fi
run /pack/bin/infer-ressegnet --backend cuda -m /w/model_small.safetensors -i /w/ct.vxp -o /w/cuda.vxp >"$T/cu.out" 2>"$T/cu.err"
e=$?
[ $e -eq 4 ] && [ ! -s "$T/cu.out" ] && [ ! -e "$R/w/cuda.vxp" ] && ok chroot-nogpu "--backend cuda: exit 4, \"$(head -1 "$T/cu.err")\", stdout empty, no output" ||
    bad chroot-nogpu "--backend cuda: exit $e, stdout $(wc -c <"$T/cu.out") bytes: $(head -2 "$T/cu.err")"

# ---- fresh: the tree as the device tool sends it, plus .gpupack
F=$T/tree
mkdir -p "$F"
git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$F/" 2>/dev/null ||
    git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$F" -xf -
cp -r "$PACK" "$F/.gpupack"
[ ! -e "$F/bin" ] && [ ! -e "$F/build" ] && [ ! -e "$F/.venv" ] || bad fresh "the copy has bin/, build/ or .venv"
# a python that sees what the device image has (KINDS.md's package list) and nothing else
S=$T/devsite
.venv/bin/python - /work/.library/device/KINDS.md "$S" <<'EOF' || bad fresh "cannot build the device-like python"
import importlib.metadata as md, os, re, sys
text = open(sys.argv[1]).read().split("Packages:", 1)[1].split("\n", 1)[0]
want = {re.sub(r"[-_.]+", "-", n.strip().lower().rstrip(".")) for n in text.split(",")}
out = sys.argv[2]; os.makedirs(out, exist_ok=True)
site = next(p for p in sys.path if p.endswith("site-packages"))
for d in md.distributions():
    if re.sub(r"[-_.]+", "-", d.metadata["Name"].lower()) not in want: continue
    for top in {f.parts[0] for f in d.files or [] if f.parts[0] not in ("..", "__pycache__") and not f.parts[0].endswith(".data")}:
        src, dst = os.path.join(site, top), os.path.join(out, top)
        if os.path.exists(src) and not os.path.lexists(dst): os.symlink(src, dst)
EOF
cat >"$T/python3" <<EOF
#!/bin/sh
PYTHONPATH=\${PYTHONPATH:+\$PYTHONPATH:}$S exec $SRC/.venv/bin/python -S "\$@"
EOF
chmod +x "$T/python3"
"$T/python3" -c 'import monai' 2>/dev/null && bad fresh "the device-like python already has monai"
for mode in found empty; do
    env=(PY="$T/python3" VP_PY_SITE="$T/site-$mode" OUT="$T/out-$mode")
    [ $mode = empty ] && env+=(VP_DEVICE_LIBDIRS="$R/empty")
    (cd "$F" && env "${env[@]}" timeout 300 tests/gpu/device_check.sh) >"$T/dc-$mode.log" 2>&1
    e=$?
    if [ $e -eq 0 ] && grep -q '^preflight: all passed' "$T/dc-$mode.log" && grep -q '^device check: SKIP: no GPU (preflight passed)' "$T/dc-$mode.log" &&
        ! grep -q 'preflight [a-z-]*: FAIL' "$T/dc-$mode.log" && [ -s "$T/out-$mode/device_check.log" ]; then
        ok "fresh-$mode" "$(grep -c '^preflight [a-z-]*: ok' "$T/dc-$mode.log") preflight checks ok; $(grep -m1 '^preflight ldd' "$T/dc-$mode.log" | cut -c1-150)"
    else
        bad "fresh-$mode" "exit $e"; grep -E 'preflight|device check' "$T/dc-$mode.log" | sed 's/^/    /'
    fi
    rm -f "$F/bin" "$F/build/gpu"
done
grep -E '^preflight (python|run|data)' "$T/dc-found.log" | sed 's/^/    /' | cut -c1-200
for s in check check_train; do
    (cd "$F" && env VP_GPU_PACK=.gpupack PY="$T/python3" timeout 60 "tests/gpu/$s.sh") >"$T/$s.log" 2>&1
    e=$?
    [ $e -eq 0 ] && grep -q 'SKIP' "$T/$s.log" && ok "fresh-$s" "$(head -1 "$T/$s.log" | cut -c1-100)" || bad "fresh-$s" "exit $e: $(tail -2 "$T/$s.log")"
done
echo "selftest: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
