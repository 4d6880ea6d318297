#!/usr/bin/env bash
# Chip-compiler check (compile only, -Wall -Wextra -Werror): the portable core (every file of sources.txt), the demo
# firmware's portable services (main/sources.txt, on the core's public headers only) and the
# lwIP backend (port/lwip/tc_sock_lwip.c with the chips' shim tc_lwip_esp.c) for two 32-bit targets with picolibc,
# which has neither <pthread.h> nor <poll.h>:
#   rv32imc  Debian's gcc-riscv64-unknown-elf, -march=rv32imc -mabi=ilp32 (the ESP32-C3's ISA)
#   lx106    Debian's gcc-xtensa-lx106 (the ESP8266 of seed 000, a 32-bit Xtensa)
# The core is built with the platform port without an OS (port/os/none: no threads). The lwIP backend is built
# against Debian's lwIP headers (/usr/include/lwip, liblwip-dev) with an lwipopts.h like ESP-IDF's
# (tools/cross_check/lwip), and once more with the other branch of every lwIP option it reads (TC_XCHECK_HOSTLIKE).
# A probe that includes a header the device lacks must fail, or the check proves nothing. Every function of these
# files stays within 512 bytes of stack as the chip compilers lay it out (-Wstack-usage=512: the loop task has 8 KB;
# tools/ctest.sh checks the same with the host gcc).
# With CI=true or TC_REQUIRE_LWIP=1 a missing compiler is a failure; otherwise the target is skipped with a warning.
# Usage: tools/cross_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COMP=components/tcp_core
OUT=build/cross_check
mkdir -p "$OUT"
required=0
if [ "${CI:-}" = true ] || [ "${TC_REQUIRE_LWIP:-0}" = 1 ]; then
    required=1
fi

mapfile -t CORE < <(grep -v '^\s*#' $COMP/sources.txt | sed '/^\s*$/d; s|^|'$COMP'/|')
mapfile -t DEMO < <(grep -v '^\s*#' main/sources.txt | sed '/^\s*$/d; s|^|main/|')
mapfile -t LWIP < <(awk -v c="$COMP" '$1 == "esp" { for (i = 2; i <= NF; i++) print c "/" $i }' $COMP/port/backends.txt)
CFLAGS=(-std=c11 -Os -Wall -Wextra -Werror -Wstack-usage=512 -I$COMP/include -I$COMP/src -I$COMP/port/os/none)
LWIP_INC=(-Itools/cross_check/lwip -I/usr/include/lwip)

# picolibc's specs file: next to gcc's own files (riscv64) or under /usr/lib/<triplet> (lx106).
specs_for() { # gcc, triplet
    local f
    for f in "$("$1" -print-file-name=picolibc.specs)" "/usr/lib/$2/picolibc.specs" \
        "/usr/lib/picolibc/$2/picolibc.specs"; do
        if [ -f "$f" ]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

fail=0
checked=0
for target in rv32imc lx106; do
    case $target in
    rv32imc) gcc=riscv64-unknown-elf-gcc triplet=riscv64-unknown-elf arch=(-march=rv32imc -mabi=ilp32) pkg=(gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf) ;;
    lx106) gcc=xtensa-lx106-elf-gcc triplet=xtensa-lx106-elf arch=() pkg=(gcc-xtensa-lx106 picolibc-xtensa-lx106-elf) ;;
    esac
    specs=""
    if command -v "$gcc" >/dev/null; then
        specs=$(specs_for "$gcc" "$triplet" || true)
    fi
    if [ -z "$specs" ] || [ ! -d /usr/include/lwip/lwip ]; then
        msg="$gcc with picolibc, or lwIP's headers, missing (apt-get install ${pkg[*]} liblwip-dev)"
        if [ $required -eq 1 ]; then
            echo "cross_check: FAIL: $msg" >&2
            fail=1
        else
            echo "cross_check: WARNING: $target skipped: $msg" >&2
        fi
        continue
    fi
    CC=("$gcc" "${arch[@]}" -specs="$specs")
    echo "$target: $("$gcc" --version | head -1) ${arch[*]} picolibc"
    bad=0
    for src in "${CORE[@]}"; do
        if ! "${CC[@]}" "${CFLAGS[@]}" -c "$src" -o "$OUT/$target-$(basename "$src" .c).o" 2>"$OUT/$target.log"; then
            echo "  FAIL  $src"
            sed 's/^/        /' "$OUT/$target.log" | head -20
            bad=1
        fi
    done
    [ $bad -eq 0 ] && echo "  ok    core: ${#CORE[@]} sources (port/os/none)"
    # The demo's services see the component as a user does: include/ only, no src/.
    for src in "${DEMO[@]}"; do
        if ! "${CC[@]}" -std=c11 -Os -Wall -Wextra -Werror -Wstack-usage=512 -I$COMP/include -Imain/app -c "$src" \
            -o "$OUT/$target-demo-$(basename "$src" .c).o" 2>"$OUT/$target.log"; then
            echo "  FAIL  $src"
            sed 's/^/        /' "$OUT/$target.log" | head -20
            bad=1
        fi
    done
    [ $bad -eq 0 ] && echo "  ok    demo services: ${#DEMO[@]} sources (main/sources.txt, the component's include/ only)"
    for variant in esp-like hostlike; do
        defs=()
        [ $variant = hostlike ] && defs=(-DTC_XCHECK_HOSTLIKE)
        for src in "${LWIP[@]}"; do
            if ! "${CC[@]}" "${CFLAGS[@]}" "${defs[@]}" "${LWIP_INC[@]}" -c "$src" \
                -o "$OUT/$target-$variant-$(basename "$src" .c).o" 2>"$OUT/$target.log"; then
                echo "  FAIL  $src (lwipopts: $variant)"
                sed 's/^/        /' "$OUT/$target.log" | head -20
                bad=1
            fi
        done
    done
    [ $bad -eq 0 ] && echo "  ok    lwIP backend: ${LWIP[*]#"$COMP/"} (lwipopts: ESP-IDF-like and host-like)"
    # The negative check: headers a hosted toolchain has and this device does not must stop the build here.
    for header in pthread.h poll.h sys/socket.h; do
        printf '#include <%s>\n' "$header" >"$OUT/probe.c"
        if "${CC[@]}" "${CFLAGS[@]}" "${LWIP_INC[@]}" -c "$OUT/probe.c" -o "$OUT/probe.o" 2>/dev/null; then
            echo "  FAIL  probe: <$header> compiled for $target: this check would not catch a header the device lacks"
            bad=1
        fi
    done
    [ $bad -eq 0 ] && echo "  ok    probe: <pthread.h>, <poll.h> and <sys/socket.h> are refused"
    fail=$((fail | bad))
    checked=$((checked + 1))
done
if [ $checked -eq 0 ] && [ $required -eq 1 ]; then
    fail=1
fi
exit $fail
