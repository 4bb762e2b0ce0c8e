#!/usr/bin/env bash
# tests/gpu/emu/infer_graphs.sh - CUDA graphs of the SegResNet patch forward (VP_CUDA_GRAPHS=1,
# lib/cuda/nn_cuda_graph.cu) on the pretend device, called from the infer part of
# tests/gpu/emulate.sh (which builds the pretend-device objects in R first). The emulated stream
# capture is real (tests/gpu/emu/emu_rt.h): launches, copies and convolutions are recorded and
# replayed by cudaGraphLaunch, and cudaMalloc, synchronisation or pinned allocation inside a
# capture fail it, so a capture that succeeds shows that the captured forward allocates nothing
# but graph memory nodes. On two crops of the shared CT in one stream (case 1: 12 windows, batches
# of 2: eager, captured, replayed; case 2 replays the same graph with another case's buffers):
#  - graphs on == graphs off message for message (labels, --prob, provenance), f32/NCDHW --sw-batch 2
#    and tf32/NDHWC --sw-batch 3 (a partial last batch: eager), -v saying it captured and replayed;
#  - control: the graph replayed with a stale input (VP_CUDA_GRAPHS_TEST=stale skips the copy into
#    its buffer) gives other labels, so the comparison can fail;
#  - fallback, never an error: the scratch growing inside the capture (VP_CUDA_GRAPHS_TEST=nowarm),
#    a convolution refusing the capture (EMU_GRAPH_FAIL=conv, as a cuDNN call might) and a failing
#    cudaGraphInstantiate each give exit 0, a -v note, no "error:" line, the eager output;
#  - no device memory left behind (live allocations at exit as with graphs off, 0 bad frees).
#   usage: tests/gpu/emu/infer_graphs.sh R SAN(0|1) [DATA_DIR]     exit 0 all pass, 1 a failure
#   env:   GRAPHS_QUICK=1  only f32, the control and the nowarm fallback (for the sanitizer build)
set -u
cd "$(dirname "$0")/../../.." || exit 1
. tests/gpu/emu/setup.sh "emulated cuda graphs" graphs "$@"
M=tests/golden/segresnet/model_small.safetensors
emu_build_ressegnet
rm -f "$W"/eager_* "$W"/graph_* "$W"/fb_* "$W"/stale.* # the results of an earlier run
bin/vol-read "$CT" >"$W/ct.vxp" || exit 1
bin/crop --box 40,30,6,70,57,20 -i "$W/ct.vxp" -o "$W/a.vxp" && bin/crop --box 50,40,10,70,54,16 -i "$W/ct.vxp" -o "$W/b.vxp" &&
    bin/vol-cat -i "$W/a.vxp" -i "$W/b.vxp" -o "$W/ct2.vxp" || exit 1
rc=0
ok() { echo "ok   emulated cuda graphs: $*"; }
bad() { echo "FAIL emulated cuda graphs: $*"; rc=1; }
live() { sed -n 's/^emu: \([0-9]*\) device allocations live.*/\1/p' "$1"; }
emu() { grep '^emu:' "$1"; }
infer() { # tag args...: one run under -v; its exit code in $W/tag.rc
    local tag=$1; shift
    rm -f "$W/$tag.vxp"
    "$P" -v --overlap 0.25 --prob -m "$M" -i "$W/ct2.vxp" -o "$W/$tag.vxp" "$@" >"$W/$tag.out" 2>"$W/$tag.err"
    echo $? >"$W/$tag.rc"
}
same() { "$PY" tests/gpu/emu/same_stream.py "$W/$1.vxp" "$W/$2.vxp"; }
replays() { sed -n 's/.*cuda graphs: segresnet: \([0-9]*\) batches replayed.*/\1/p' "$W/$1.err"; }
clean() { # tag: exit 0, nothing on stdout, no error line, no bad frees, no more live memory than eager
    [ "$(cat "$W/$1.rc")" = 0 ] && [ ! -s "$W/$1.out" ] && ! grep -q 'error:' "$W/$1.err" && grep -q ' 0 bad frees' "$W/$1.err" &&
        [ "$(live "$W/$1.err")" = "$(live "$W/${2:-eager}.err")" ]
}

# graphs off (the default) and on: the same stream, message for message
modes=(f32 tf32) fallbacks=("VP_CUDA_GRAPHS_TEST=nowarm:scratch area grew inside the capture" "EMU_GRAPH_FAIL=conv:CUDNN_STATUS_NOT_SUPPORTED"
    "EMU_GRAPH_FAIL=instantiate:cudaGraphInstantiate")
[ "${GRAPHS_QUICK:-0}" = 1 ] && modes=(f32) fallbacks=("${fallbacks[0]}")
for mode in "${modes[@]}"; do
    if [ "$mode" = f32 ]; then a=(--backend cuda --sw-batch 2); else a=(--backend cuda:0:tf32 --sw-batch 3); fi
    infer "eager_$mode" "${a[@]}"
    VP_CUDA_GRAPHS=1 infer "graph_$mode" "${a[@]}"
    [ "$(cat "$W/eager_$mode.rc")" = 0 ] || { bad "$mode eager: exit $(cat "$W/eager_$mode.rc"): $(grep -v '^emu:' "$W/eager_$mode.err" | tail -2)"; continue; }
    s=$(same "eager_$mode" "graph_$mode") n=$(replays "graph_$mode")
    if [ "$s" = "same: 2 objects" ] && clean "graph_$mode" "eager_$mode" && [ "${n:-0}" -gt 0 ] &&
        grep -q 'cuda graphs: segresnet: the forward of a .* batch captured' "$W/graph_$mode.err" && ! grep -q 'cuda graphs' "$W/eager_$mode.err"; then
        ok "$mode (${a[*]}): graphs on == off ($s), $(grep -o '[0-9]* batches replayed from a graph, [0-9]* run eagerly' "$W/graph_$mode.err"); $(emu "$W/graph_$mode.err")"
    else
        bad "$mode (${a[*]}): graphs on vs off: $s, exit $(cat "$W/graph_$mode.rc"), replays ${n:-none}; $(grep 'cuda graphs\|error' "$W/graph_$mode.err" | head -3); $(emu "$W/graph_$mode.err")"
    fi
done
[ -f "$W/graph_tf32.err" ] && ! grep -q 'NDHWC activations' "$W/graph_tf32.err" && bad "tf32 did not run NDHWC: $(grep -m1 device-resident "$W/graph_tf32.err")"

# control: a graph replayed on a stale input buffer must give other labels
VP_CUDA_GRAPHS=1 VP_CUDA_GRAPHS_TEST=stale infer stale --backend cuda --sw-batch 2
s=$(same eager_f32 stale)
if c=$("$PY" tests/gpu/emu/compare_infer.py "$W/eager_f32.vxp" "$W/stale.vxp"); then bad "control (stale input): the comparison missed it: $c ($s)"
elif [ "${s%%:*}" = differ ] && [ "$(replays stale)" -gt 0 ]; then ok "control (graph replayed with a stale input): differs as it should: ${c#compare: FAIL: }"
else bad "control (stale input): $s, $c"; fi

# fallback: a capture that fails is a -v note and the eager path, never an error
for spec in "${fallbacks[@]}"; do
    envv=${spec%%:*} why=${spec#*:} tag=fb_${envv#*=}
    env VP_CUDA_GRAPHS=1 "$envv" "$P" -v --overlap 0.25 --prob -m "$M" -i "$W/ct2.vxp" -o "$W/$tag.vxp" --backend cuda --sw-batch 2 \
        >"$W/$tag.out" 2>"$W/$tag.err"
    echo $? >"$W/$tag.rc"
    s=$(same eager_f32 "$tag")
    if [ "$s" = "same: 2 objects" ] && clean "$tag" eager_f32 && grep -q "cuda graphs: segresnet: cannot capture.*$why.*the eager path from now on" "$W/$tag.err" &&
        [ "$(replays "$tag")" = 0 ]; then
        ok "fallback ($envv): exit 0, the eager output ($s), -v: $(grep -o 'cannot capture.*' "$W/$tag.err" | head -c 160)"
    else
        bad "fallback ($envv): exit $(cat "$W/$tag.rc"), $s, $(grep 'cuda graphs\|error' "$W/$tag.err" | head -3); $(emu "$W/$tag.err")"
    fi
done
exit $rc
