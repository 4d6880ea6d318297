#!/usr/bin/env bash
# The lwIP backend's C test, under ASan+UBSan, run inside a network namespace with a TAP device.
# Usage: tools/ctest_lwip.sh ip netns exec NS   (tools/test.sh passes the prefix of the namespace it made)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/ctest
mkdir -p "$OUT"
COMP=components/tcp_core
mapfile -t SRCS < <(grep -v '^\s*#' $COMP/sources.txt | sed '/^\s*$/d; s|^|'$COMP'/|')
mapfile -t -O ${#SRCS[@]} SRCS < <(grep -v '^\s*#' main/sources.txt | sed '/^\s*$/d; s|^|main/|')
# the lwip backend's sources (port/backends.txt): the shared lwIP source and the TAP shim
mapfile -t -O ${#SRCS[@]} SRCS < <(awk -v c="$COMP" '$1 == "lwip" { for (i = 2; i <= NF; i++) print c "/" $i }' \
    $COMP/port/backends.txt)
# shellcheck disable=SC2046
gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
    -I$COMP/include -I$COMP/src -I$COMP/port/os/posix -Imain/app $(pkg-config --cflags lwip) host_tests/c/test_lwip_backend.c "${SRCS[@]}" \
    $(pkg-config --libs lwip) -lpthread -o "$OUT/test_lwip_backend.asan"
if "$@" env ASAN_OPTIONS=detect_leaks=1 "$OUT/test_lwip_backend.asan" >"$OUT/test_lwip_backend.log" 2>&1; then
    echo "  ok    test_lwip_backend.asan ($(grep -c '^measured' "$OUT/test_lwip_backend.log" || true) measurements)"
else
    echo "  FAIL  test_lwip_backend.asan (log: $OUT/test_lwip_backend.log)"
    tail -30 "$OUT/test_lwip_backend.log" | sed 's/^/        /'
    exit 1
fi
