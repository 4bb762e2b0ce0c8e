#!/usr/bin/env bash
# tests/gpu/build.sh - builds what the GPU checks run, in the tree: programs into bin/ (make) and the
# drivers tests/gpu/*.c into build/gpu/ (linked against build/libvoxpipe.a with make's link line,
# `make print-ldlibs`). Used by check.sh and check_train.sh (their build-it-yourself mode) and by
# pack.sh. A driver is rebuilt only when its source or the library is newer than it. The drivers
# named in REQUIRED must build; any other tests/gpu/*.c (a check being written now) is built when it
# can be and reported when it cannot.
#   usage: tests/gpu/build.sh all|check|train [LOG]   all: `make` (every program) and every driver;
#          check: the programs and drivers check.sh runs; train: those of check_train.sh
#   env:   JOBS (make -j, default: nproc)
#   exit:  0 built, 1 a required part failed (last lines of LOG printed)
set -u
cd "$(dirname "$0")/../.." || exit 1
WHAT=${1:-all}
LOG=${2:-/dev/stderr}
JOBS=${JOBS:-$(nproc)}
CHECK_PROGS=(bin/infer-ressegnet bin/infer-unet bin/normalize bin/vol-read bin/vol-write)
TRAIN_PROGS=(bin/train-unet bin/train-ressegnet)
case $WHAT in
all) TARGETS=(all gpu-check-build) DRIVERS="test_cuda_grad test_cuda_sliding test_cuda_segresnet bench_segresnet test_cuda_train" ;;
check) TARGETS=("${CHECK_PROGS[@]}" gpu-check-build) DRIVERS="test_cuda_grad test_cuda_sliding test_cuda_segresnet bench_segresnet" ;;
train) TARGETS=("${TRAIN_PROGS[@]}" build/libvoxpipe.a) DRIVERS="test_cuda_train" ;;
*) echo "usage: tests/gpu/build.sh all|check|train [LOG]" >&2; exit 2 ;;
esac
REQUIRED=$DRIVERS
fail() { echo "gpu build: FAIL: $*" >&2; [ "$LOG" != /dev/stderr ] && tail -20 "$LOG" >&2; exit 1; }

if ! timeout 900 make -k -j"$JOBS" "${TARGETS[@]}" >>"$LOG" 2>&1; then
    [ "$WHAT" = all ] || fail "make ${TARGETS[*]}"
    # `make` (every program) failed somewhere (a program being written now?): what the checks need must build
    timeout 900 make -j"$JOBS" "${CHECK_PROGS[@]}" "${TRAIN_PROGS[@]}" gpu-check-build >>"$LOG" 2>&1 || fail "make (the checks' programs)"
    echo "gpu build: warning: \`make\` failed for some program (see $LOG); the checks' programs built" >&2
fi
ls build/lib/cuda/*.o >/dev/null 2>&1 || fail "the CUDA backend was not built (nvcc/cuDNN not found by the Makefile)"
LDLIBS=$(make -s print-ldlibs)
mkdir -p build/gpu
if [ "$WHAT" = all ]; then # every driver, the required ones first
    for f in tests/gpu/*.c; do
        d=$(basename "$f" .c)
        [ "$d" = test_cuda_ops ] || case " $DRIVERS " in *" $d "*) ;; *) DRIVERS="$DRIVERS $d" ;; esac
    done
fi
for d in $DRIVERS; do
    out=build/gpu/$d
    [ -x "$out" ] && [ "$out" -nt "tests/gpu/$d.c" ] && [ "$out" -nt build/libvoxpipe.a ] && continue
    # shellcheck disable=SC2086 # the link line is meant to split into words
    if ! cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA \
        -o "$out" "tests/gpu/$d.c" build/libvoxpipe.a $LDLIBS >>"$LOG" 2>&1; then
        case " $REQUIRED " in
        *" $d "*) fail "build of tests/gpu/$d.c" ;;
        *) echo "gpu build: warning: tests/gpu/$d.c does not build (not a required driver; left out)" >&2; rm -f "$out" ;;
        esac
    fi
done
exit 0
