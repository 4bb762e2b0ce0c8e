#!/usr/bin/env bash
# tests/gpu/emu/infer.sh - part 3 of tests/gpu/emulate.sh (which builds the pretend-device objects
# in R first): infer-ressegnet built against the emulated CUDA backend, its --backend cuda runs
# compared with its own --backend cpu run on the shared CT (also the tiled path, taken when the
# case does not fit, and a deconv SegResNet), and its out-of-device-memory path.
# Then --prefetch on (the default) against off on a 3-case stream (byte for byte) and on a stream
# whose case 2 is truncated (case 1 whole, same exit code and messages). The out-of-memory runs
# use the default (--prefetch on: the next case is held in pinned memory when case 1 fails).
# Also: every case uploaded ahead on the copy stream when both fit (-v), only case 1 when a budget
# (VP_CUDA_MEM_LIMIT_MIB) holds one case but not two (-v says why; VP_CUDA_TRACE=1's lines), and
# no pinned memory (VP_CUDA_NO_PINNED=1): a -v note, no error line; each the same bytes.
# EMU_INFER_ONLY=prefetch runs only the cpu reference and the prefetch checks (development).
#   usage: tests/gpu/emu/infer.sh R SAN(0|1) [DATA_DIR]     exit 0 all pass, 1 a failure
set -u
cd "$(dirname "$0")/../../.." || exit 1
. tests/gpu/emu/setup.sh "emulated infer-ressegnet" infer "$@"
M=tests/golden/segresnet/model_small.safetensors
emu_build_ressegnet
# two crops of the shared CT in one stream (the emulated device is slow: its kernels' threads are
# real threads): 30x27x14 (3 x 2 x 2 windows of 16x16x8 at overlap 0.25, overlapping unevenly)
# and 20x14x6 (smaller than the window in y and z: padded); the device state must be clean
# between cases
bin/vol-read "$CT" >"$W/ct.vxp" || exit 1
bin/crop --box 40,30,6,70,57,20 -i "$W/ct.vxp" -o "$W/a.vxp" && bin/crop --box 50,40,10,70,54,16 -i "$W/ct.vxp" -o "$W/b.vxp" &&
    bin/vol-cat -i "$W/a.vxp" -i "$W/b.vxp" -o "$W/ct2.vxp" || exit 1
rc=0
ok() { echo "ok   emulated infer-ressegnet: $*"; }
bad() { echo "FAIL emulated infer-ressegnet: $*"; rc=1; }
live() { sed -n 's/^emu: \([0-9]*\) device allocations live.*/\1/p' "$1"; }
# shellcheck source=tests/gpu/emu/oom_case.sh
. tests/gpu/emu/oom_case.sh

# --prefetch (the default for cuda: the next case read, preprocessed and staged in pinned memory on
# a reader thread while this one runs on the device): a stream of 3 small cases gives the same
# bytes as --prefetch off (labels, frame order, provenance); a stream whose case 2 is truncated
# gives case 1's output whole on stdout, the same exit code and the same messages with and
# without it, and no device or pinned memory left behind
prefetch_checks() {
    bin/crop --box 30,20,4,50,34,10 -i "$W/ct.vxp" -o "$W/c.vxp" && bin/crop --box 60,50,12,80,64,18 -i "$W/ct.vxp" -o "$W/d.vxp" &&
        bin/vol-cat -i "$W/b.vxp" -i "$W/c.vxp" -i "$W/d.vxp" -o "$W/ct3.vxp" || exit 1
    for pf in on off; do
        "$P" -v --backend cuda --prefetch $pf --overlap 0.25 -m "$M" -i "$W/ct3.vxp" -o "$W/pf_$pf.vxp" 2>"$W/pf_$pf.err" ||
            bad "--prefetch $pf: exit $?: $(grep -v '^emu:' "$W/pf_$pf.err" | tail -2)"
    done
    local n3 n1 s1 s2
    n3=$("$PY" -c 'import sys; sys.path.insert(0, "tests/scripts"); import vxp; print(len(list(vxp.read(open(sys.argv[1], "rb")))))' "$W/pf_on.vxp")
    # the streams differ only in the option recorded in the provenance (control: they do differ there)
    local same ctl
    same=$("$PY" tests/gpu/emu/same_stream.py "$W/pf_on.vxp" "$W/pf_off.vxp" --drop-opt --prefetch)
    ctl=$("$PY" tests/gpu/emu/same_stream.py "$W/pf_on.vxp" "$W/pf_off.vxp")
    if [ -s "$W/pf_on.vxp" ] && [ "$n3" = 3 ] && [ "$same" = "same: 3 objects" ] && [ "${ctl%%:*}" = differ ] && grep -q ' 0 bad frees' "$W/pf_on.err" &&
        grep -q -- '--prefetch on: the next case is read' "$W/pf_on.err" && ! grep -q -- '--prefetch on' "$W/pf_off.err"; then
        ok "3 cases, --prefetch on == off byte for byte but the recorded option ($same; control without dropping it: $ctl); $(grep '^emu:' "$W/pf_on.err")"
    else bad "3 cases: --prefetch on ($n3 cases) vs off: $same (control: $ctl); $(grep '^emu:' "$W/pf_on.err")"; fi
    # the upload overlapped with the compute (a copy stream, an event the compute stream waits on,
    # the device copy freed on the compute stream): with room for both, every case is uploaded ahead
    # (-v). The emulator is synchronous: this checks the two-stream logic (events, the order of the
    # frees, the same bytes, nothing leaked or freed twice), not the overlap (tests/gpu/check_overlap.sh)
    local na
    na=$(grep -c 'uploading on the copy stream' "$W/pf_on.err")
    if [ "$na" = 3 ]; then ok "--prefetch on: all 3 cases uploaded ahead on the copy stream (-v), output as --prefetch off (above)"
    else bad "--prefetch on: $na of 3 cases uploaded ahead: $(grep "case '" "$W/pf_on.err" | head -4)"; fi
    # pf_variant TAG ENV...: --prefetch on -v with ENV, must give pf_on.vxp's bytes, no error line, 0 bad frees, no more
    # device memory live at exit than --prefetch off
    pf_variant() {
        local tag=$1; shift
        env "$@" "$P" -v --backend cuda --prefetch on --overlap 0.25 -m "$M" -i "$W/ct3.vxp" -o "$W/pf_$tag.vxp" 2>"$W/pf_$tag.err"
        local e=$?
        if [ $e -eq 0 ] && cmp -s "$W/pf_$tag.vxp" "$W/pf_on.vxp" && ! grep -q ': error:' "$W/pf_$tag.err" && grep -q ' 0 bad frees' "$W/pf_$tag.err" &&
            [ "$(live "$W/pf_$tag.err")" -le "$(live "$W/pf_off.err")" ]; then return 0; fi
        bad "--prefetch on with $*: exit $e, output $(cmp -s "$W/pf_$tag.vxp" "$W/pf_on.vxp" && echo same || echo differs), $(grep -c ': error:' "$W/pf_$tag.err") error line(s); $(grep '^emu:' "$W/pf_$tag.err")"
        return 1
    }
    # room for one case but not two (each needs ~64 MiB by the estimate: image, labels, the network's
    # reserve): case 1 is uploaded ahead (nothing else on the device), cases 2 and 3 when they run, and
    # -v says why; VP_CUDA_TRACE=1 prints one copy line (case 1's) and three compute lines
    if pf_variant budget VP_CUDA_MEM_LIMIT_MIB=100 VP_CUDA_TRACE=1; then
        local a1 nb tc tk
        a1=$(grep -c 'uploading on the copy stream (.*no case on the device now)' "$W/pf_budget.err")
        nb=$(grep -c 'not uploaded ahead: it (.* MiB) and the case on the device (.* MiB) do not both fit' "$W/pf_budget.err")
        tc=$(grep -c "cuda:0: trace: copy case '.*' [0-9.-]*\.\.[0-9.-]* ms" "$W/pf_budget.err")
        tk=$(grep -c "cuda:0: trace: compute case '.*' [0-9.-]*\.\.[0-9.-]* ms" "$W/pf_budget.err")
        if [ "$a1" = 1 ] && [ "$nb" = 2 ] && [ "$tc" = 1 ] && [ "$tk" = 3 ] && ! grep -q 'tiled path' "$W/pf_budget.err"; then
            ok "VP_CUDA_MEM_LIMIT_MIB=100: case 1 uploaded ahead, cases 2 and 3 not (-v: \"$(grep -m1 'do not both fit' "$W/pf_budget.err" | cut -c1-150)\"), whole volume each, the same bytes; trace: $tc copy and $tk compute lines"
        else bad "VP_CUDA_MEM_LIMIT_MIB=100: ahead $a1 (want 1), refused $nb (want 2), trace copy $tc (1) compute $tk (3): $(grep "case '" "$W/pf_budget.err" | head -6)"; fi
    fi
    # no pinned memory (VP_CUDA_NO_PINNED=1): a -v note per case, no "error:" line, no upload ahead, the same bytes
    if pf_variant nopin VP_CUDA_NO_PINNED=1; then
        local np
        np=$(grep -c 'no pinned host memory (.*VP_CUDA_NO_PINNED=1): staged through the backend' "$W/pf_nopin.err")
        if [ "$np" = 3 ] && ! grep -q 'uploading on the copy stream' "$W/pf_nopin.err"; then
            ok "no pinned memory: a -v note for each of the 3 cases, no error line, the same bytes"
        else bad "no pinned memory: $np notes (want 3): $(grep "case '" "$W/pf_nopin.err" | head -4)"; fi
    fi
    s1=$(wc -c <"$W/b.vxp") s2=$(wc -c <"$W/c.vxp")
    head -c $((s1 + s2 / 2)) "$W/ct3.vxp" >"$W/trunc.vxp"
    for pf in on off; do
        "$P" --backend cuda --prefetch $pf --overlap 0.25 -m "$M" -i "$W/trunc.vxp" >"$W/tr_$pf.vxp" 2>"$W/tr_$pf.err"
        echo $? >"$W/tr_$pf.rc"
        grep -v '^emu:' "$W/tr_$pf.err" >"$W/tr_$pf.msg"
    done
    head -c "$(wc -c <"$W/tr_on.vxp")" "$W/pf_on.vxp" >"$W/pf_head.vxp" # case 1 of the whole stream's output
    n1=$("$PY" -c 'import sys; sys.path.insert(0, "tests/scripts"); import vxp; print(len(list(vxp.read(open(sys.argv[1], "rb")))))' "$W/tr_on.vxp")
    if [ "$(cat "$W/tr_on.rc")" != 0 ] && [ "$(cat "$W/tr_on.rc")" = "$(cat "$W/tr_off.rc")" ] && [ -s "$W/tr_on.msg" ] &&
        cmp -s "$W/tr_on.msg" "$W/tr_off.msg" && [ "$n1" = 1 ] && [ "$("$PY" tests/gpu/emu/same_stream.py "$W/tr_on.vxp" "$W/tr_off.vxp" --drop-opt --prefetch)" = "same: 1 objects" ] &&
        cmp -s "$W/tr_on.vxp" "$W/pf_head.vxp" &&
        grep -q ' 0 bad frees' "$W/tr_on.err" && [ "$(live "$W/tr_on.err")" -le "${base:-$(live "$W/pf_off.err")}" ]; then
        ok "case 2 truncated: exit $(cat "$W/tr_on.rc") with and without --prefetch, case 1 whole on stdout ($(wc -c <"$W/tr_on.vxp") bytes), same message \"$(head -c 100 "$W/tr_on.msg")\"; $(grep '^emu:' "$W/tr_on.err")"
    else
        bad "case 2 truncated: exit $(cat "$W/tr_on.rc") (off $(cat "$W/tr_off.rc")), $n1 case(s) out, stdout on/off: $("$PY" tests/gpu/emu/same_stream.py "$W/tr_on.vxp" "$W/tr_off.vxp" --drop-opt --prefetch), on/case-1 equal/$(cmp -s "$W/tr_on.vxp" "$W/pf_head.vxp" && echo y || echo n), messages: $(head -2 "$W/tr_on.msg") / $(head -2 "$W/tr_off.msg"); $(grep '^emu:' "$W/tr_on.err")"
    fi
}
if [ "${EMU_INFER_ONLY:-}" = prefetch ]; then prefetch_checks; exit $rc; fi

"$P" --backend cpu --prob --overlap 0.25 -m "$M" -i "$W/ct2.vxp" -o "$W/cpu.vxp" 2>"$W/cpu.err" || { bad "the cpu run failed: $(tail -2 "$W/cpu.err")"; exit 1; }
# control: the comparison does fail on a real difference (the CPU with constant blending)
"$P" --backend cpu --prob --overlap 0.25 --blend constant -m "$M" -i "$W/ct2.vxp" -o "$W/control.vxp" 2>"$W/control.err" &&
    if c=$("$PY" tests/gpu/emu/compare_infer.py "$W/cpu.vxp" "$W/control.vxp"); then bad "control: the comparison missed a difference: $c"
    else ok "control (cpu --blend constant vs gaussian): the comparison fails as it should: ${c#compare: FAIL: }"; fi
run() { # tag compare-args... -- infer args...: a cuda run compared with the cpu run ($REF, default cpu.vxp)
    local tag=$1; shift
    local ref=${REF:-$W/cpu.vxp} in=${IN:-$W/ct2.vxp} model=${MODEL:-$M}
    local cmpa=()
    while [ "$1" != -- ]; do cmpa+=("$1"); shift; done
    shift
    rm -f "$W/$tag.vxp"
    "$P" -v --overlap 0.25 -m "$model" -i "$in" -o "$W/$tag.vxp" "$@" >"$W/$tag.out" 2>"$W/$tag.err"
    local e=$?
    [ $e -eq 0 ] || { bad "$tag ($*): exit $e: $(grep -v '^emu:' "$W/$tag.err" | tail -2)"; return; }
    [ -s "$W/$tag.out" ] && bad "$tag: $(wc -c <"$W/$tag.out") bytes on stdout"
    grep -q 'device-resident SegResNet' "$W/$tag.err" || bad "$tag: the device path was not taken: $(head -3 "$W/$tag.err")"
    grep -q ' 0 bad frees' "$W/$tag.err" || bad "$tag: $(grep '^emu:' "$W/$tag.err")"
    local c
    if c=$("$PY" tests/gpu/emu/compare_infer.py "$ref" "$W/$tag.vxp" "${cmpa[@]}"); then ok "$tag ($*): $c; $(grep '^emu:' "$W/$tag.err")"
    else bad "$tag ($*): $c"; fi
}
run f32 -- --backend cuda --prob
run tf32 -- --backend cuda:0:tf32 --sw-batch 3 --prob
run f16band --agree 99.9 --prob-tol 2e-3 -- --backend cuda --aggregate f16 --prob
grep -q 'NDHWC activations' "$W/tf32.err" || bad "tf32 did not choose NDHWC: $(grep device-resident "$W/tf32.err")"
grep -q 'NCDHW activations' "$W/f32.err" || bad "f32 did not choose NCDHW: $(grep device-resident "$W/f32.err")"
base=$(live "$W/f32.err")
grep -q 'whole volume on the device' "$W/f32.err" || bad "f32 did not keep the whole case on the device: $(grep "case '" "$W/f32.err" | head -2)"

# the tiled path (the case kept on the host, slabs of 16 rows uploaded, labels back band by band):
# forced by a budget the case cannot fit (VP_CUDA_MEM_LIMIT_MIB), and by the device's real memory
# (EMU_DEVICE_KIB: the case's buffers fit, the estimate for the network's activations does not);
# both must say so under -v and give the cpu's labels
VP_CUDA_MEM_LIMIT_MIB=1 run tiled -- --backend cuda --prob
VP_CUDA_MEM_LIMIT_MIB=1 run tiled_tf32 -- --backend cuda:0:tf32 --sw-batch 3 --prob
EMU_DEVICE_KIB=3072 run tiled_emu -- --backend cuda --sw-batch 2 --prob
for t in tiled tiled_tf32 tiled_emu; do
    { [ "$(grep -c 'tiled path (the case did not fit' "$W/$t.err")" = 2 ] && grep -q 'tiled, slabs of 16 rows' "$W/$t.err"; } ||
        bad "$t: -v does not say that both cases took the tiled path: $(grep "case '\|tiled" "$W/$t.err" | head -3)"
done

# upsample_mode deconv (ConvTranspose3d k2 s2 on the device; the golden model has 2 input
# channels: a two-channel f32 image from the crops, --no-preprocess): cuda == cpu, whole and tiled
"$PY" - "$W/ct2.vxp" "$W/ct2c.vxp" <<'PYEOF' || bad "cannot make the two-channel input"
import sys
sys.path.insert(0, "tests/scripts")
import numpy as np
import vxp
cases = list(vxp.read(open(sys.argv[1], "rb")))
for c in cases:
    v = c["vols"]["image"]
    a = v.data.astype(np.float32) / 1000.0
    c["vols"]["image"] = vxp.Vol(np.stack([a, np.abs(a) - 0.5], axis=3).astype(np.float32), v.affine)
vxp.write(open(sys.argv[2], "wb"), cases)
PYEOF
DM=tests/golden/segresnet/model_deconv.safetensors
"$P" --backend cpu --prob --no-preprocess --overlap 0.25 -m "$DM" -i "$W/ct2c.vxp" -o "$W/dcpu.vxp" 2>"$W/dcpu.err" ||
    bad "the deconv cpu run failed: $(tail -2 "$W/dcpu.err")"
REF=$W/dcpu.vxp IN=$W/ct2c.vxp MODEL=$DM run deconv -- --backend cuda --prob --no-preprocess --sw-batch 2
REF=$W/dcpu.vxp IN=$W/ct2c.vxp MODEL=$DM VP_CUDA_MEM_LIMIT_MIB=1 run deconv_tiled -- --backend cuda:0:tf32 --no-preprocess --prob
grep -q 'device-resident SegResNet (deconv)' "$W/deconv.err" || bad "deconv: not device-resident: $(grep -m1 cuda "$W/deconv.err")"

prefetch_checks

# out of device memory (EMU_DEVICE_KIB budgets, found by trying; if a change of the backend moves
# the point of failure, retune them): while putting the weights on the device, then -- the case
# never fits whole at these budgets, so the tiled path runs -- the aggregation band, the band of
# labels, and the network's forward pass on one window (even one batch does not fit). Each: exit 4, the reason on stderr, no output, no device memory left behind.
for spec in "64:cannot put the model on the device" "330:for the f32 aggregation band" "460:for a band of labels" "490:for activation"; do
    oom_case "${spec%%:*}" "${spec#*:}" --backend cuda --overlap 0.25 -m "$M" -i "$W/ct2.vxp"
done
exit $rc
