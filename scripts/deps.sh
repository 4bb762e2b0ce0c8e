#!/bin/sh
# Install the Debian packages voxpipe needs, if any are missing. Usage: scripts/deps.sh [build|test|peers|fuzz|gpupack]
#   build: compilers and libraries;  fuzz: + clang and its libFuzzer runtime;  gpupack: + patchelf (tests/gpu/pack.sh);  test: + test frameworks;  peers: + Python peers in .venv
set -e
what=${1:-build}
pkgs="build-essential pkg-config libmsgpack-dev libzmq3-dev libnifti2-dev libniftiio-dev libznz-dev zlib1g-dev libdeflate-dev libisal-dev libdcmtk-dev libopenjp2-7-dev libsodium-dev libssl-dev libopenmpi-dev openmpi-bin libcurl4-openssl-dev g++"
[ "$what" = fuzz ] && pkgs="$pkgs clang libclang-rt-14-dev"
[ "$what" = gpupack ] && pkgs="$pkgs patchelf"
[ "$what" = build ] || [ "$what" = fuzz ] || [ "$what" = gpupack ] || pkgs="$pkgs libcriterion-dev bats python3 python3-venv python3-pip time dcm2niix dcmtk dicom3tools orthanc orthanc-dicomweb openssl iproute2"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing:$missing" >&2
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi
if [ "$what" = peers ] || [ "$what" = test ]; then
    # Python peers (nibabel, numpy) for golden files and cross-checks, isolated in .venv
    # (torch from PyPI brings the CUDA wheels: about 6.5 GiB installed; no pip cache, so the
    # downloads are not kept twice)
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import nibabel, numpy, msgpack, scipy, pydicom, highdicom, torch, monai, nnunetv2, safetensors' 2>/dev/null; then
        echo "deps: creating .venv with the Python peers (scripts/requirements-peers.txt)" >&2
        df -h . >&2 || true
        python3 -m venv .venv
        .venv/bin/pip install -q --no-cache-dir --disable-pip-version-check -r scripts/requirements-peers.txt >&2
    fi
fi
