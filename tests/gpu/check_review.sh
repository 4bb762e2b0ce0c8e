#!/usr/bin/env bash
# tests/gpu/check_review.sh - the real-GPU checks of the CUDA backend review (issue 6, H7): what the
# CPU emulator (tests/gpu/emulate.sh) cannot show. Run on a machine with an NVIDIA GPU, by hand or
# from tests/gpu/check.sh; without a GPU it says SKIP and exits 0. Each step prints one
# "review STEP: PASS|FAIL|SKIP ..." line; the last line sums up. About 2 minutes on one H100 (at
# most 7.5 with every step at its timeout); use the nvidia-h100-x1 kind (compute-sanitizer does not
# attach on the gVisor H200 machines).
#   env      the driver, nvcc, cuDNN and compute-sanitizer the binaries will use; libcudnn.so.9
#            found (ldconfig, /usr/local/cuda, or a pip wheel's nvidia/cudnn/lib, then put on
#            LD_LIBRARY_PATH) -- the first thing a fresh machine gets wrong
#   arch     the test driver holds machine code for this GPU's sm_XY (or PTX the driver can JIT)
#   small    build/gpu/test_cuda_ops --small: one case of each op, device NCDHW and NDHWC, every
#            math, and f32 convolutions that must be exact where TF32 is not (cuDNN's algorithm +
#            math-type pairing)
#   memcheck compute-sanitizer memcheck of the same run, cuDNN's kernels included (out-of-bounds
#            or misaligned accesses, e.g. a workspace smaller than the algorithm needs)
#   racecheck, synccheck  compute-sanitizer on the shared-memory reduction trees (k_*_partial):
#            races, __syncthreads in divergent code
#   initcheck compute-sanitizer on this project's kernels (k_*): reads of uninitialised device
#            memory (stream-ordered pool memory read before it was written)
#   big      build/gpu/test_cuda_ops --big: tensors past the 1-D grid's cap (grid-stride loops
#            that go round more than once) and a 2^28-element norm group (16384 blocks along x),
#            against the reference; about 7 GiB of device memory
# The driver: the pack's when VP_GPU_PACK names one (tests/gpu/pack.sh, as check.sh), else
# build/gpu/test_cuda_ops as found when it is newer than its source and the library, else built
# here (make gpu-check-build).
#   usage: tests/gpu/check_review.sh      exit 0 all pass or skipped, 1 a step failed
#   env:   REVIEW_STEPS="small memcheck ..." (default: all), OUT (log folder; else tests/tmp/gpu),
#          VP_GPU_PACK (a pack's folder), REVIEW_DRIVER (another test_cuda_ops, e.g. the emulated
#          build/gpu-emu/rt/test_cuda_ops with stand-ins for nvidia-smi to try this script)
set -u
cd "$(dirname "$0")/../.." || exit 1
LOG=${OUT:-tests/tmp/gpu}
mkdir -p "$LOG"
. tests/gpu/common.sh
CHECK=review
STEPS=${REVIEW_STEPS:-env arch small memcheck racecheck synccheck initcheck big}
T=${REVIEW_DRIVER:-build/gpu/test_cuda_ops} # REVIEW_DRIVER: another build of it (the emulated one, to try this script)

need_gpu "review: SKIP: no NVIDIA GPU on this machine (nvidia-smi finds none)"
CC_GPU=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')

# ---- the driver program: from a pack (tests/gpu/pack.sh; VP_GPU_PACK, as check.sh), as carried, or built here
if [ -n "${VP_GPU_PACK:-}" ]; then
    # shellcheck source=tests/gpu/pack_env.sh
    . tests/gpu/pack_env.sh
    vp_pack_setup || { say "review: FAIL: the pack $VP_GPU_PACK cannot be used"; exit 1; }
elif [ -z "${REVIEW_DRIVER:-}" ] && { [ ! -x "$T" ] || [ tests/gpu/test_cuda_ops.c -nt "$T" ] || { [ -f build/libvoxpipe.a ] && [ build/libvoxpipe.a -nt "$T" ]; }; }; then
    if ! timeout 300 make -j"$(nproc)" gpu-check-build >"$LOG/review_build.log" 2>&1; then
        if [ -x "$T" ]; then say "review build: make gpu-check-build failed here; the $T found is used ($LOG/review_build.log)"
        else result build FAIL "make gpu-check-build; last lines of $LOG/review_build.log:"; tail -15 "$LOG/review_build.log"; fi
    fi
fi
[ -x "$T" ] || { say "review: FAIL: no $T"; exit 1; }

# ---- env: where libcudnn.so.9 comes from; a pip wheel's copy when the linker finds none
cudnn_dirs() {
    ldconfig -p 2>/dev/null | awk '/libcudnn\.so\.9/ {print $NF}' | xargs -r -n1 dirname
    ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/*/lib 2>/dev/null
    for py in python3 /opt/torch/.venv/bin/python3; do
        "$py" - <<'EOF' 2>/dev/null
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for d in glob.glob(os.path.join(r, "nvidia", "cudnn", "lib")) + glob.glob(os.path.join(r, "nvidia", "cu*", "lib")):
        print(d)
EOF
    done
}
missing=$(ldd "$T" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
if [ -n "$missing" ]; then
    for d in $(cudnn_dirs | awk '!s[$0]++'); do
        if ls "$d"/libcudnn.so.9* >/dev/null 2>&1 || ls "$d"/libcudart.so.1* >/dev/null 2>&1; then
            export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        fi
    done
    missing=$(ldd "$T" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
fi
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
if want env; then
    say "gpu: $(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader | head -1)"
    NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    say "nvcc: $("$NVCC" --version 2>/dev/null | tail -1)"
    say "cudnn: $(ldd "$T" 2>/dev/null | awk '/libcudnn\.so/ {print $3}')  cudart: $(ldd "$T" 2>/dev/null | awk '/libcudart\.so/ {print $3}')"
    say "compute-sanitizer: ${SAN:-not found}"
    [ -n "${LD_LIBRARY_PATH:-}" ] && say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    if [ -n "$missing" ]; then result env FAIL "$T cannot load: $missing"
    else result env PASS "every library of $T resolves"; fi
fi
[ -n "$missing" ] && { say "review: FAIL (the driver cannot load: $missing)"; exit 1; }

# ---- arch: SASS for this GPU, or PTX of an older compute capability for the driver to JIT
if want arch; then
    if ! command -v cuobjdump >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/cuobjdump ]; then
        result arch SKIP "no cuobjdump"
    else
        OBJ=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
        elfs=$("$OBJ" --list-elf "$T" 2>/dev/null | grep -o 'sm_[0-9]*[a-z]*' | sort -u | tr '\n' ' ')
        ptxs=$("$OBJ" --list-ptx "$T" 2>/dev/null | grep -o 'sm_[0-9]*[a-z]*' | sort -u | tr '\n' ' ')
        if printf '%s' "$elfs" | grep -qw "sm_$CC_GPU"; then result arch PASS "GPU sm_$CC_GPU; machine code for: $elfs; PTX: $ptxs"
        elif [ -n "$ptxs" ]; then result arch PASS "GPU sm_$CC_GPU: no machine code for it (have $elfs), the driver JITs PTX $ptxs (slow first start)"
        else result arch FAIL "GPU sm_$CC_GPU: neither machine code ($elfs) nor PTX in $T"; fi
    fi
fi

# step name timeout command...: run it into $LOG/review_NAME.txt (exit status in RC, seconds in DT);
# report() then says PASS when it exited 0
exec_step() {
    local name=$1 t=$2; shift 2
    local t0=$SECONDS
    timeout "$t" "$@" >"$LOG/review_$name.txt" 2>&1
    RC=$? DT=$((SECONDS - t0)) LIMIT=$t
}
report() {
    local name=$1
    if [ "$RC" -eq 0 ]; then
        result "$name" PASS "$(grep -E 'passed|ERROR SUMMARY|RACECHECK SUMMARY' "$LOG/review_$name.txt" | tail -1), $DT s"
    else
        result "$name" FAIL "exit $RC$([ "$RC" -eq 124 ] && echo ", timed out after $LIMIT s"), $DT s; log $LOG/review_$name.txt"
        grep -E '^FAIL|^=========  ?(Invalid|Race|Barrier|Uninitialized|Program hit|ERROR)|error:' "$LOG/review_$name.txt" | head -12
    fi
}
run() { exec_step "$@" && report "$1"; }
want small && run small 60 "$T" --small
# the sanitizer: exit 9 on any finding. racecheck and synccheck only where there is shared memory
# and __syncthreads (the reduction trees, k_*_partial), initcheck on this project's kernels (k_*;
# cuDNN's own may read padding they never use); memcheck on everything, cuDNN included. Should
# this compute-sanitizer not take the --kernel-name filter, the step runs again without it; on a
# machine it cannot attach to (gVisor: the H200 kind) the step is skipped.
sanitize() {
    local tool=$1 t=$2; shift 2
    if [ -z "$SAN" ]; then result "$tool" SKIP "no compute-sanitizer"; return; fi
    exec_step "$tool" "$t" "$SAN" --tool "$tool" --error-exitcode 9 --print-limit 20 "$@" "$T" --small
    if [ "$RC" -ne 0 ] && grep -q 'Device not supported' "$LOG/review_$tool.txt"; then
        result "$tool" SKIP "compute-sanitizer: Device not supported on this machine (use the nvidia-h100-x1 kind)"
        return
    fi
    if [ "$RC" -ne 0 ] && [ $# -gt 0 ] && grep -qiE 'kernel-name|unrecognized|invalid (option|value)' "$LOG/review_$tool.txt" &&
        ! grep -q 'ERROR SUMMARY: [1-9]' "$LOG/review_$tool.txt"; then
        say "review $tool: the --kernel-name filter was refused; again on every kernel"
        exec_step "$tool" "$t" "$SAN" --tool "$tool" --error-exitcode 9 --print-limit 20 "$T" --small
    fi
    report "$tool"
}
want memcheck && sanitize memcheck 90
want racecheck && sanitize racecheck 60 --kernel-name kns=_partial --racecheck-report hazard
want synccheck && sanitize synccheck 45 --kernel-name kns=_partial
want initcheck && sanitize initcheck 60 --kernel-name kns=k_
want big && run big 120 "$T" --big

if [ ${#fails[@]} -eq 0 ]; then say "review: PASS"; exit 0; fi
say "review: FAIL (${fails[*]})"
exit 1
