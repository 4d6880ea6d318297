#!/usr/bin/env bash
# Every test layer of tcp_core, in order: lint and types, the C layer (sanitizers, -m32, fuzz corpora), the chip
# compilers (tools/cross_check.sh), then the Python integration suite over real sockets on both host backends. The
# lwIP layer runs inside a network namespace that this script creates and removes; with TC_REQUIRE_LWIP=1 (CI) a
# layer that cannot run is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
NARROWED=$(($# > 0)) # arguments go to pytest: the caller chose the tests
step() { printf '\n==> %s\n' "$*"; }

step "lint (ruff) and types (mypy)"
$PY -m ruff check .
$PY -m ruff format --check .
$PY -m mypy

step "packaging: sdist -> wheel -> fresh venv -> python -m tcp_core serve"
bash tools/test_packaging.sh

step "ESP Component Registry archive (compote component pack)"
bash tools/check_component.sh

step "C layer"
bash tools/ctest.sh --fuzz-seconds "${TC_FUZZ_SECONDS:-10}"

step "chip compilers (core and lwIP backend for rv32imc and Xtensa lx106, picolibc, compile only)"
bash tools/cross_check.sh

lwip_ok=1
why=""
if [ "$(id -u)" -ne 0 ]; then
    lwip_ok=0 why="not root (the lwIP layer needs ip netns and a TAP device)"
elif [ ! -c /dev/net/tun ]; then
    lwip_ok=0 why="/dev/net/tun is missing"
elif ! $PY -c 'import sys, tcp_core; sys.exit("lwip" not in tcp_core.available_backends())'; then
    lwip_ok=0 why="the lwip extension is not built (install liblwip-dev, then pip install -e .)"
elif [ ! -x tools/lwip_netns.sh ]; then
    lwip_ok=0 why="tools/lwip_netns.sh is missing"
fi
if [ $lwip_ok -eq 0 ]; then
    if [ "${TC_REQUIRE_LWIP:-0}" = 1 ]; then
        echo "test: FAIL: the lwIP layer is required (TC_REQUIRE_LWIP=1) but cannot run: $why" >&2
        exit 1
    fi
    echo "test: WARNING: the lwIP layer is skipped: $why" >&2
fi

if [ $lwip_ok -eq 1 ]; then
    NS=tctest$$
    cleanup() { bash tools/lwip_netns.sh down "$NS" >/dev/null 2>&1 || true; }
    trap cleanup EXIT
    step "network namespace $NS with a TAP device for lwIP"
    eval "$(bash tools/lwip_netns.sh up "$NS")" # sets TC_LWIP_TAP, TC_LWIP_ADDRESS, TC_LWIP_PEER
    export TC_LWIP_TAP TC_LWIP_ADDRESS TC_LWIP_PEER
    IN_NS=(ip netns exec "$NS")
    step "lwIP backend, C level (inside $NS)"
    bash tools/ctest_lwip.sh "${IN_NS[@]}"
else
    IN_NS=()
fi

# Both backends at once when lwIP runs: one pytest process per backend (TC_SHARD, host_tests/conftest.py), both in
# the namespace. The suite mostly waits on sockets and timers, so two processes share the two cores without making
# the run depend on load (its time bounds are seconds apart from the broken cases). Each log is printed whole when
# both have ended; either failing fails the step. Without lwIP: one process, the whole suite.
suite() {
    if [ ${#IN_NS[@]} -eq 0 ]; then
        "$@"
        return
    fi
    local logs rc_linux=0 rc_lwip=0 p_linux p_lwip
    logs=$(mktemp -d)
    "${IN_NS[@]}" env TC_SHARD=linux "$@" >"$logs/linux" 2>&1 &
    p_linux=$!
    "${IN_NS[@]}" env TC_SHARD=lwip "$@" >"$logs/lwip" 2>&1 &
    p_lwip=$!
    wait "$p_linux" || rc_linux=$?
    wait "$p_lwip" || rc_lwip=$?
    printf -- '--- Linux backend and backend-free tests (exit %s)\n' "$rc_linux"
    cat "$logs/linux"
    printf -- '--- lwIP backend (exit %s)\n' "$rc_lwip"
    cat "$logs/lwip"
    rm -rf "$logs"
    # 5: nothing collected in a shard. Forgiven only when the caller narrowed the run (a -k that selects only the
    # other shard's tests) and the other ran; a whole run in which a shard collects nothing fails (CI: a layer that
    # did not run).
    if [ "$NARROWED" = 1 ]; then
        [ "$rc_linux" = 5 ] && [ "$rc_lwip" = 0 ] && rc_linux=0
        [ "$rc_lwip" = 5 ] && [ "$rc_linux" = 0 ] && rc_lwip=0
    fi
    [ "$rc_linux" = 0 ] && [ "$rc_lwip" = 0 ]
}

step "integration suite (pytest; backends: linux${IN_NS:+ and lwip})"
suite env TC_REQUIRE_LWIP="${TC_REQUIRE_LWIP:-0}" $PY -m pytest "$@"

# The same C built with the device's Kconfig default sizes (read buffer 4 KiB, high water 8 KiB, write queue 32 KiB,
# 16 connections; tcp_core_build/build.py reads them from components/tcp_core/Kconfig): HTTP, WebSocket, MJPEG,
# stop and the connection lifecycle on both backends, so nothing passes only thanks to the host's larger limits.
step "device limits (Kconfig defaults): HTTP, WebSocket, MJPEG, TCP, stop, lifecycle, hostile clients (backends: linux${IN_NS:+ and lwip})"
suite env TCP_CORE_LIMITS=device TC_REQUIRE_LWIP="${TC_REQUIRE_LWIP:-0}" $PY -m pytest \
    host_tests/test_http.py host_tests/test_mjpeg.py host_tests/test_tcp.py host_tests/test_lifecycle.py \
    host_tests/test_hostile.py "$@"
