# shellcheck shell=bash
# tests/gpu/pack_env.sh - sourced (never run) by device_check.sh, check.sh and check_train.sh when
# VP_GPU_PACK names a pack made by tests/gpu/pack.sh: sets the environment in which the packed
# binaries and the checks' Python run on the device machine. Sourcing defines functions only;
# vp_pack_setup does the work, once per process tree (VP_GPU_ENV_DONE=1 is exported after it).
# Ownership: nothing here allocates; the links and the Python site it makes live until the machine
# goes back.

# vp_pack_find_so SONAME: prints the folder that holds SONAME on this machine, looking in the
# loader's cache, then the nvidia/ pip packages of ${PY:-python3} (torch's venv on the device:
# nvidia-cudnn-cu13, nvidia-nccl-cu13, ...), then CUDA's own folders; VP_DEVICE_LIBDIRS (a colon
# list) replaces the search (an empty folder there shows what the device must provide).
vp_pack_find_so() {
    local so=$1 d f r
    if [ -n "${VP_DEVICE_LIBDIRS+x}" ]; then
        local IFS=:
        for d in $VP_DEVICE_LIBDIRS; do [ -e "$d/$so" ] && { echo "$d"; return 0; }; done
        return 1
    fi
    f=$(ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s && /x86-64/ { print $NF; exit }')
    [ -n "$f" ] && { dirname "$f"; return 0; }
    while read -r r; do
        [ -d "$r/nvidia" ] || continue
        f=$(find "$r/nvidia" -name "$so" 2>/dev/null | sort | head -1)
        [ -n "$f" ] && { dirname "$f"; return 0; }
    done < <("${PY:-python3}" -c 'import site, sys
print("\n".join(dict.fromkeys(site.getsitepackages() + [p for p in sys.path if p.endswith("-packages")])))' 2>/dev/null)
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
        [ -e "$d/$so" ] && { echo "$d"; return 0; }
    done
    return 1
}

# vp_pack_setup: in the repository root, with VP_GPU_PACK set: links bin -> PACK/bin and
# build/gpu -> PACK/gpu where those are absent (the scripts of tests/gpu name bin/... and
# build/gpu/...; a tree that has its own build is refused, so that no check runs a mix), puts the
# folders of the device's sonames (PACK/lib/DEVICE) on LD_LIBRARY_PATH (the pack's own libraries
# come through RUNPATH, so that python3 never loads them), installs the pack's wheels into
# VP_PY_SITE (default /tmp/vp-gpu-site) and puts it on PYTHONPATH, and exports VP_DEVICE_MISSING
# (the device sonames not found). Returns 1 with a message on stderr when the pack is unusable.
vp_pack_setup() {
    [ "${VP_GPU_ENV_DONE:-0}" = 1 ] && return 0
    local P=${VP_GPU_PACK:?} so d dirs="" miss="" link
    [ -f "$P/MANIFEST" ] && [ -d "$P/bin" ] && [ -d "$P/gpu" ] || { echo "pack: no pack at $P (run tests/gpu/pack.sh here and carry .gpupack)" >&2; return 1; }
    case $P in /*) link=$P ;; *) link=$PWD/$P ;; esac
    for d in bin build/gpu; do
        local want=$link/${d#build/}
        if [ -e "$d" ] || [ -L "$d" ]; then
            [ "$(readlink -f "$d")" = "$(readlink -f "$want")" ] ||
                { echo "pack: $d/ exists and is not the pack's (a tree with its own build: unset VP_GPU_PACK to use it, or run from a fresh copy)" >&2; return 1; }
        else
            mkdir -p "$(dirname "$d")" && ln -s "$want" "$d" || return 1
        fi
    done
    while read -r so; do
        [ -n "$so" ] || continue
        if d=$(vp_pack_find_so "$so"); then
            case ":$dirs:" in *":$d:"*) ;; *) dirs=${dirs:+$dirs:}$d ;; esac
        else miss="$miss $so"; fi
    done <"$P/lib/DEVICE"
    export LD_LIBRARY_PATH=$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export VP_DEVICE_MISSING=${miss# }
    local site=${VP_PY_SITE:-/tmp/vp-gpu-site} list
    list=$(cd "$P/whl" 2>/dev/null && ls ./*.whl 2>/dev/null | tr '\n' ' ')
    if [ -n "$list" ] && [ "$(cat "$site/.vp-wheels" 2>/dev/null)" != "$list" ]; then
        rm -rf "$site" && mkdir -p "$site"
        if ! "${PY:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$P"/whl/*.whl >"$site.log" 2>&1; then
            # no pip: the wheels are pure Python, so unpacking them is installing them
            "${PY:-python3}" -c 'import sys, zipfile
for w in sys.argv[2:]: zipfile.ZipFile(w).extractall(sys.argv[1])' "$site" "$P"/whl/*.whl || { echo "pack: cannot install the wheels (see $site.log)" >&2; return 1; }
        fi
        echo "$list" >"$site/.vp-wheels"
    fi
    [ -n "$list" ] && export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
    export VP_GPU_ENV_DONE=1
    return 0
}
