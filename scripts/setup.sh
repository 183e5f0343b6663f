#!/usr/bin/env bash
# Set up lmmr1's CPU environment: everything the test suite needs, the real stack included
# (torch + torchvision, transformers, OpenRLHF 0.11.2 with DeepSpeed/Ray/flash-attn, vLLM for CPU,
# Google Research Football). Idempotent: a second run checks and returns in seconds.
#
#   ./scripts/setup.sh            # Debian packages (if missing), uv, then `uv sync` of the lock file into .venv
#
# GPU clusters install differently (CUDA vLLM, prebuilt flash-attn): see README, "Install on a GPU cluster".
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
EXTRAS=(--extra cpu --extra openrlhf --extra football)

# 1. Debian packages: the compilers and libraries Google Research Football's C++ engine builds against.
DEBIAN_PACKAGES=(cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev
                 libsdl2-gfx-dev libboost-all-dev libdirectfb-dev mesa-utils xvfb)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
        echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. uv, pinned, in a private tool environment (.tools) so the system Python is left alone.
if ! .tools/bin/uv --version 2>/dev/null | grep -q "^uv ${UV_VERSION}"; then
    echo "setup: installing uv ${UV_VERSION} into .tools"
    python3.11 -m venv .tools
    .tools/bin/python -m pip install -q --disable-pip-version-check "uv==${UV_VERSION}"
fi

# 3. The project environment, exactly as locked (uv.lock). flash-attn builds as its pure-Python package and
#    gfootball compiles from source on the first run (~5 min on 2 cores); both are cached afterwards.
.tools/bin/uv sync --frozen --python 3.11 "${EXTRAS[@]}"
echo "setup: ready (.venv). Run the tests with: .venv/bin/python -m pytest"
