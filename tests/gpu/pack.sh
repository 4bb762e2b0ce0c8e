#!/usr/bin/env bash
# tests/gpu/pack.sh - run HERE (the build machine) before a device call: builds voxpipe and the GPU
# test drivers, and collects into .gpupack/ (git-ignored) everything the GPU checks need on the
# device machine, which has the NVIDIA driver, nvcc, python3 with torch and the pip packages
# nvidia-cudnn-cu13 / nvidia-nccl-cu13, but none of our Debian libraries, no ../shared/data, no
# monai/nibabel/nnunetv2 and no network. Only the tree and the paths named in the call's `carry`
# travel (64 MiB in all), so the pack and the tree together stay under 62 MiB:
#   bin/   every program of bin/ but dcm-*, gpu/  the drivers of tests/gpu/*.c (build/gpu/), both with their
#          debug information stripped and RUNPATH $ORIGIN/../lib
#   lib/   the shared libraries they need (the ldd closure) minus what the device has: glibc,
#          libstdc++, libgcc_s, the driver (libcuda), and cuDNN / NCCL (the sonames listed in
#          lib/DEVICE; device_check.sh finds them in the device's pip packages); RUNPATH $ORIGIN.
#          libcudart is packed (the version the backend was compiled against).
#   data/  ../shared/data's README and totalseg/*.nii.gz (the shared CT and its segmentations)
#   whl/   pure-Python wheels the checks' Python needs and the device lacks (monai, nibabel,
#          nnunetv2, dynamic_network_architectures, batchgenerators), the versions of .venv
#   MANIFEST  commit, date, sizes, what comes from the device
# and checks the pack: no object compiled with -march other than x86-64 (the device's CPU is
# another one), every packed ELF resolves (ldd) with only the device's libraries left over.
# Then: tests/gpu/pack_selftest.sh (optional, ~1 min) and the device call of tests/gpu/README.md.
#   usage: tests/gpu/pack.sh [--no-build]     env: JOBS (make -j; default 2), DATA (../shared/data),
#          PACK (.gpupack), NO_WHEELS=1 (leave whl/ as it is: no pip download)
#   needs: patchelf (Debian package), pip (in .venv) for the wheels
set -u
cd "$(dirname "$0")/../.." || exit 1
PACK=${PACK:-.gpupack}
DATA=${DATA:-../shared/data}
export JOBS=${JOBS:-2}
say() { printf 'pack: %s\n' "$*"; }
die() { printf 'pack: FAIL: %s\n' "$*" >&2; exit 1; }
command -v patchelf >/dev/null || die "patchelf is missing (apt-get install patchelf)"
grep -qx '/.gpupack/' .git/info/exclude 2>/dev/null || git check-ignore -q "$PACK" || echo '/.gpupack/' >>.git/info/exclude

if [ "${1:-}" != --no-build ]; then
    mkdir -p build
    say "building (make -j$JOBS and the drivers of tests/gpu; log build/gpu-pack.log)"
    : >build/gpu-pack.log
    tests/gpu/build.sh all build/gpu-pack.log || die "build"
fi
ls build/gpu/test_cuda_ops build/gpu/test_cuda_train bin/infer-ressegnet >/dev/null || die "nothing built (run without --no-build)"

# ---- the CPU target: every compile unit of every program and driver for generic x86-64
bad=""
for f in bin/* build/gpu/*; do
    [ -x "$f" ] && [ -f "$f" ] || continue
    file -b "$f" | grep -q '^ELF' || continue
    p=$(readelf --debug-dump=info --dwarf-depth=1 "$f" 2>/dev/null | grep -a DW_AT_producer | sed 's/.*DW_AT_producer *: *//; s/^(indirect string, offset: 0x[0-9a-f]*): //' | sort -u)
    [ -n "$p" ] || { bad="$bad $f(no debug info: cannot check -march)"; continue; }
    grep -q -- '-march=x86-64 ' <<<"$p" || bad="$bad $f"
    grep -Eq -- '-march=(native|[^x ]|x86-64-v[234])|-m(avx|sse4|fma|bmi)' <<<"$p" && bad="$bad $f"
done
[ -z "$bad" ] || die "built for this CPU, not generic x86-64:$bad (readelf --debug-dump=info ... | grep DW_AT_producer)"
say "cpu target: every compile unit -march=x86-64 (run-time ISA dispatch inside; no -march=native)"

# ---- binaries
rm -rf "$PACK.new" && mkdir -p "$PACK.new"/{bin,gpu,lib,data,whl}
N=$PACK.new
# every program but the DICOM network tools (dcm-*: DCMTK, OpenSSL, curl and ICU would add ~60 MiB)
for f in bin/*; do
    case $(basename "$f") in dcm-*) continue ;; esac
    [ -f "$f" ] && [ -x "$f" ] && strip --strip-debug -o "$N/bin/$(basename "$f")" "$f"
done
for f in build/gpu/*; do [ -f "$f" ] && [ -x "$f" ] && file -b "$f" | grep -q '^ELF' && strip --strip-debug -o "$N/gpu/$(basename "$f")" "$f"; done

# ---- the library closure
BASE='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libresolv\.so|libutil\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libnvidia-)'
DEVICE='^(libcudnn[a-z_]*\.so|libnccl\.so|libcublas(Lt)?\.so|libnvrtc)'
: >"$N/lib/DEVICE"
for f in "$N"/bin/* "$N"/gpu/*; do
    ldd "$f" | awk '/=>/ { print $1, $3 } !/=>/ { print $1, "" }'
done | sort -u | while read -r so path; do
    so=${so##*/}
    [[ $so =~ $BASE ]] && continue
    if [[ $so =~ $DEVICE ]]; then echo "$so" >>"$N/lib/DEVICE"; continue; fi
    [ -n "$path" ] && [ "$path" != not ] || die "$so: not found here (ldd)"
    [ -f "$N/lib/$so" ] || cp -L "$path" "$N/lib/$so"
done || exit 1
sort -u -o "$N/lib/DEVICE" "$N/lib/DEVICE"
for f in "$N"/lib/*.so*; do strip --strip-debug "$f" 2>/dev/null; chmod u+w "$f"; patchelf --set-rpath '$ORIGIN' "$f" || die "patchelf $f"; done
for f in "$N"/bin/* "$N"/gpu/*; do patchelf --set-rpath '$ORIGIN/../lib' "$f" || die "patchelf $f"; done
# every packed ELF resolves from the pack but for the device's sonames (here those come from
# /usr/local/cuda/lib64 through the system; device_check.sh repeats this there with its own)
miss="" plib=$(readlink -f "$N/lib")
for f in "$N"/bin/* "$N"/gpu/* "$N"/lib/*.so*; do
    while read -r so _ path _; do
        [[ $so =~ $BASE ]] && continue
        if [[ $so =~ $DEVICE ]]; then grep -qx "$so" "$N/lib/DEVICE" || miss="$miss $so"; continue; fi
        [ "$path" != not ] && [ "$(dirname "$(readlink -f "$path")")" = "$plib" ] || miss="$miss $(basename "$f"):$so=>$path"
    done < <(ldd "$(readlink -f "$f")" 2>/dev/null | grep '=>')
done
[ -z "$miss" ] || die "resolved outside the pack:$miss"
say "libraries: $(find "$N/lib" -name '*.so*' | wc -l) packed; from the device: $(tr '\n' ' ' <"$N/lib/DEVICE")"

# ---- data and wheels
# the NIfTI volumes of ../shared/data/totalseg only: no GPU check reads the DICOM series (6.7 MiB)
if [ -d "$DATA/totalseg" ]; then
    mkdir -p "$N/data/totalseg" && cp -L "$DATA"/README* "$N/data/" 2>/dev/null
    cp -L "$DATA"/totalseg/*.nii.gz "$N/data/totalseg/" && chmod -R u+w "$N/data" || die "cannot copy $DATA/totalseg"
else die "no $DATA/totalseg (DATA=...)"; fi
if [ "${NO_WHEELS:-0}" = 1 ] && [ -d "$PACK/whl" ]; then
    cp "$PACK"/whl/*.whl "$N/whl/"
else
    PY=.venv/bin/python
    [ -x "$PY" ] || PY=python3
    for pkg in monai nibabel nnunetv2 dynamic_network_architectures batchgenerators; do
        v=$("$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$pkg" 2>/dev/null) ||
            die "$pkg is not installed in $PY (its version is the one packed)"
        w=$(ls "$PACK"/whl/"$pkg"-"$v"-*.whl 2>/dev/null | head -1)
        if [ -n "$w" ]; then cp "$w" "$N/whl/"; continue; fi
        timeout 300 "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d "$N/whl" "$pkg==$v" || die "pip download $pkg==$v"
    done
fi
for w in "$N"/whl/*.whl; do
    case $w in *-py3-none-any.whl | *-cp312-*manylinux*.whl) ;; *) die "$w is neither pure Python nor cp312 manylinux" ;; esac
done

# ---- manifest, size, swap in
{
    echo "voxpipe GPU pack (tests/gpu/pack.sh)"
    echo "commit: $(git rev-parse HEAD) ($(git status --porcelain --untracked-files=no | wc -l) tracked files modified)"
    echo "built: $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -m), $(gcc --version | head -1), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "cuda: $(/usr/local/cuda/bin/nvcc --version | tail -1); cudnn headers $(sed -n 's/#define CUDNN_\(MAJOR\|MINOR\|PATCHLEVEL\) //p' /usr/local/cuda/include/cudnn_version.h | paste -sd.)"
    echo "from the device: $(tr '\n' ' ' <"$N/lib/DEVICE")(+ libcuda.so.1, glibc, libstdc++, libgcc_s)"
    echo "wheels: $(cd "$N/whl" && ls | tr '\n' ' ')"
    echo "files:"
    (cd "$N" && find . -type f -printf '%s %p\n' | sort -k2)
} >"$N/MANIFEST"
rm -rf "$PACK" && mv "$N" "$PACK"
kib=$(du -sk "$PACK" | cut -f1)
say "$PACK: $((kib / 1024)) MiB ($(du -sk "$PACK/bin" "$PACK/gpu" "$PACK/lib" "$PACK/data" "$PACK/whl" | awk '{ split($2, p, "/"); printf "%s %.1f, ", p[2], $1 / 1024 }')MiB)"
tree_kib=$(git ls-files -co --exclude-standard -z | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1) # what the tool sends
say "with the tree (~$((tree_kib / 1024)) MiB: tracked and untracked-not-ignored files): $(((kib + tree_kib) / 1024)) MiB of the tool's 64"
# 2 MiB kept free for what du does not count (directories, the transfer's own overhead)
[ $((kib + tree_kib)) -le $((62 * 1024)) ] || die "$PACK and the tree together are over 62 MiB: the device tool takes 64 MiB in all"
say "ok: now the device call of tests/gpu/README.md (or first tests/gpu/pack_selftest.sh)"
