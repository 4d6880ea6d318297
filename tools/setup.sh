#!/usr/bin/env bash
# Install everything tcp_core's host build, tests and benchmarks need, on a fresh Debian machine (root), then build
# the package (C core through cffi) in place. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    python3-pip python3-dev python3-venv  # pip and Python.h for the cffi build (Debian's python3 comes without them)
    build-essential gcc-multilib          # host build; -m32 parser tests (the device is 32-bit)
    clang libclang-rt-14-dev clang-format # libFuzzer harnesses, formatting
    liblwip-dev                           # upstream lwIP for the lwip backend (TAP in a network namespace)
    gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf # chip-compiler check: rv32imc (tools/cross_check.sh)
    gcc-xtensa-lx106 picolibc-xtensa-lx106-elf           # and the ESP8266's Xtensa lx106
    libuv1-dev                            # the libuv peer of the echo benchmark
    nginx-light                           # the nginx peer of bench/http_bench.py and bench/compare.py (~1 MB)
    iproute2 tcpdump                      # ip netns / ip tuntap for the lwIP tests
    nftables                              # deterministic packet loss for host_tests/test_loss.py (numgen)
    curl wrk                              # peers nobody here wrote, for the HTTP tests
    chromium                              # the browser of the dashboard tests (Playwright drives it; no download)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's own python3 refuses pip installs outside a virtual environment (PEP 668); this machine is for
# tcp_core, so the package and its test tools go into /usr/local there (pyenv's or a venv's python3 needs nothing).
PIP_FLAGS=(-q --disable-pip-version-check)
if python3 -c 'import os, sys, sysconfig
sys.exit(0 if sys.prefix == sys.base_prefix and
         os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
    PIP_FLAGS+=(--break-system-packages)
fi
python3 -m pip install "${PIP_FLAGS[@]}" -e '.[test,dev]'

# The Autobahn WebSocket test suite runs on Python 2.7 (pyenv has one on this machine kind).
PY27=${TC_PYTHON27:-$HOME/.pyenv/versions/2.7.18/bin/python}
if [ -x "$PY27" ] && [ ! -x "$(dirname "$PY27")/wstest" ]; then
    "$PY27" -m pip install -q --disable-pip-version-check autobahntestsuite 2>/dev/null ||
        echo "setup: could not install autobahntestsuite (the Autobahn test will say so)" >&2
fi
echo "setup: done (tcp-core $(python3 -c 'import tcp_core; print(tcp_core.__version__)'), backends:" \
    "$(python3 -c 'import tcp_core; print(", ".join(tcp_core.available_backends()))'))"
