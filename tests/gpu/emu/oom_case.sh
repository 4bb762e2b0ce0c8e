# shellcheck shell=bash
# tests/gpu/emu/oom_case.sh - sourced by infer.sh and infer_unet.sh: one out-of-device-memory case
# of an emulated inference program. The caller defines P (the program), W (its work folder), ok,
# bad, live (device allocations live at exit, from an emu: line) and base (live after a successful
# run).
#   oom_case KIB WHERE ARG...: run "$P" ARG... -o "$W/oom.vxp" with a device budget of KIB KiB; it
#   must exit 4 saying "out of device memory" and WHERE on stderr, write nothing to stdout, leave no
#   output or temporary file, free nothing twice and leave no more device memory live than base.
oom_case() {
    local kib=$1 where=$2 e why
    shift 2
    rm -f "$W/oom.vxp"
    EMU_DEVICE_KIB=$kib "$P" "$@" -o "$W/oom.vxp" >"$W/oom$kib.out" 2>"$W/oom$kib.err"
    e=$?
    why="exit $e, stdout $(wc -c <"$W/oom$kib.out") bytes, $(grep '^emu:' "$W/oom$kib.err")"
    if [ $e -eq 4 ] && grep -q 'out of device memory' "$W/oom$kib.err" && grep -q "$where" "$W/oom$kib.err" && [ ! -s "$W/oom$kib.out" ] &&
        [ ! -e "$W/oom.vxp" ] && ! ls "$W"/.oom.vxp.* >/dev/null 2>&1 && grep -q ' 0 bad frees' "$W/oom$kib.err" && [ -n "$base" ] &&
        [ "$(live "$W/oom$kib.err")" -le "$base" ]; then
        ok "out of device memory at $kib KiB ($where): $why; \"$(grep -m1 'out of device memory' "$W/oom$kib.err" | cut -c1-120)\""
    else
        bad "out of device memory at $kib KiB (expected: $where): $why (a successful run leaves ${base:-?} live); stderr: $(grep -v '^emu:' "$W/oom$kib.err" | tail -3)"
    fi
}
