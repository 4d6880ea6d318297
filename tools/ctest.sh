#!/usr/bin/env bash
# The C layer of the tests: every host_tests/c/test_*.c built twice and run — under AddressSanitizer + UBSan, and
# as 32-bit code (-m32, the device's word size) — the fuzz corpora replayed under the sanitizers, a short libFuzzer
# run per harness when clang is there, and the exported-symbol check (the host library exports tc_* only).
# Usage: tools/ctest.sh [--fuzz-seconds N]   (lwIP tests are run by tools/test.sh inside their namespace)
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=10
[ "${1:-}" = "--fuzz-seconds" ] && FUZZ_SECONDS="$2"

OUT=build/ctest
mkdir -p "$OUT"
COMP=components/tcp_core
mapfile -t SRCS < <(grep -v '^\s*#' $COMP/sources.txt | sed '/^\s*$/d; s|^|'$COMP'/|')
# The demo firmware's services (main/sources.txt): the connection fuzzer drives them; not part of the component.
mapfile -t -O ${#SRCS[@]} SRCS < <(grep -v '^\s*#' main/sources.txt | sed '/^\s*$/d; s|^|main/|')
# A backend's sources, from the one list of them (port/backends.txt).
backend_srcs() { awk -v b="$1" -v c="$COMP" '$1 == b { for (i = 2; i <= NF; i++) print c "/" $i }' $COMP/port/backends.txt; }
mapfile -t -O ${#SRCS[@]} SRCS < <(backend_srcs linux)
CFLAGS=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$COMP/include -I$COMP/src -I$COMP/port/os/posix -Imain/app)
SAN=(-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
JOBS=$(nproc)

# The core compiled once per flavour into an archive that every test and harness links (it was compiled again for
# each of them: 8.5 of CI's 19 minutes), the files compiled in parallel. compile_all DIR COMPILER FLAGS...: the
# objects in DIR, then DIR.a.
compile_all() {
    local dir=$1 cc=$2 rc=0 s o
    shift 2
    mkdir -p "$dir"
    local objs=() pids=()
    for s in "${SRCS[@]}"; do
        o="$dir/${s//\//_}.o"
        objs+=("$o")
        "$cc" "$@" -c "$s" -o "$o" &
        pids+=($!)
        if [ ${#pids[@]} -ge "$JOBS" ]; then
            wait "${pids[0]}" || rc=1
            pids=("${pids[@]:1}")
        fi
    done
    for s in "${pids[@]}"; do
        wait "$s" || rc=1
    done
    [ $rc -eq 0 ] && rm -f "$dir.a" && ar rcs "$dir.a" "${objs[@]}"
    return $rc
}

fail=0
ran=0
run() { # name, command...
    local name=$1
    shift
    if "$@" >"$OUT/$name.log" 2>&1; then
        echo "  ok    $name"
    else
        echo "  FAIL  $name (log: $OUT/$name.log)"
        tail -20 "$OUT/$name.log" | sed 's/^/        /'
        fail=1
    fi
    ran=$((ran + 1))
}

echo "C unit and integration tests (ASan+UBSan, -m32):"
rm -rf "$OUT"/*.asan "$OUT"/*.m32 "$OUT"/*.replay "$OUT"/*.fuzz "$OUT"/core-* "$OUT"/sym "$OUT"/stack # nothing stale runs or links
run core.build-asan compile_all "$OUT/core-asan" gcc "${CFLAGS[@]}" "${SAN[@]}"
run core.build-m32 compile_all "$OUT/core-m32" gcc -m32 -O2 "${CFLAGS[@]}"
for t in host_tests/c/test_*.c; do
    name=$(basename "$t" .c)
    case $name in test_lwip*) continue ;; esac
    run "$name.build-asan" gcc "${CFLAGS[@]}" "${SAN[@]}" "$t" "$OUT/core-asan.a" -lpthread -o "$OUT/$name.asan"
    [ -x "$OUT/$name.asan" ] && run "$name.asan" "$OUT/$name.asan"
    run "$name.build-m32" gcc -m32 -O2 "${CFLAGS[@]}" "$t" "$OUT/core-m32.a" -lpthread -o "$OUT/$name.m32"
    [ -x "$OUT/$name.m32" ] && run "$name.m32" "$OUT/$name.m32"
done
# The Linux backend's loop runs on epoll; lwIP's on poll(). The core test once more with poll() forced keeps that
# path under the sanitizers on the fast backend too.
run "test_tcp_core.build-poll-asan" gcc "${CFLAGS[@]}" "${SAN[@]}" -DTC_CFG_USE_EVSET=0 host_tests/c/test_tcp_core.c \
    "${SRCS[@]}" -lpthread -o "$OUT/test_tcp_core.poll-asan"
[ -x "$OUT/test_tcp_core.poll-asan" ] && run "test_tcp_core.poll-asan" "$OUT/test_tcp_core.poll-asan"

# Stack: the core runs on the loop's task, 8 KB on a device, so no function may take more than STACK_MAX bytes of
# it (gcc's -Wstack-usage, frames as the optimiser leaves them: -O2 64-bit, -O2 and -Os 32-bit like the chips).
# No file has an exception: larger buffers live in the request's or the connection's state, or on the heap for the
# call.
STACK_MAX=512
stack_check() { # compiler flags...
    compile_all "$OUT/stack" gcc "$@" "${CFLAGS[@]}" -Wstack-usage=$STACK_MAX
}
echo "stack usage (no function of the core over $STACK_MAX bytes):"
run stack-usage-O2 stack_check -O2
run stack-usage-m32-O2 stack_check -m32 -O2
run stack-usage-m32-Os stack_check -m32 -Os

echo "fuzz corpora (replay under ASan+UBSan and -m32; libFuzzer ${FUZZ_SECONDS}s each when clang is installed):"
for f in host_tests/fuzz/fuzz_*.c; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .c)
    corpus=host_tests/fuzz/corpus/${name#fuzz_}
    if [ ! -d "$corpus" ]; then
        echo "  FAIL  $name: no corpus at $corpus"
        fail=1
        continue
    fi
    run "$name.build-replay" gcc "${CFLAGS[@]}" "${SAN[@]}" "$f" host_tests/fuzz/replay_main.c "$OUT/core-asan.a" \
        -lpthread -o "$OUT/$name.replay"
    [ -x "$OUT/$name.replay" ] && run "$name.replay" "$OUT/$name.replay" "$corpus"
    run "$name.build-m32" gcc -m32 -O2 "${CFLAGS[@]}" "$f" host_tests/fuzz/replay_main.c "$OUT/core-m32.a" \
        -lpthread -o "$OUT/$name.m32"
    [ -x "$OUT/$name.m32" ] && run "$name.replay-m32" "$OUT/$name.m32" "$corpus"
    if command -v clang >/dev/null && [ "$FUZZ_SECONDS" -gt 0 ]; then
        if [ ! -e "$OUT/core-fuzz.a" ]; then
            run core.build-libfuzzer compile_all "$OUT/core-fuzz" clang "${CFLAGS[@]}" -g -O1 \
                -fsanitize=fuzzer-no-link,address,undefined
        fi
        run "$name.build-libfuzzer" clang "${CFLAGS[@]}" -g -O1 -fsanitize=fuzzer,address,undefined "$f" \
            "$OUT/core-fuzz.a" -lpthread -o "$OUT/$name.fuzz"
        # Findings go to build/, never into the committed corpus.
        mkdir -p "$OUT/$name.corpus"
        [ -x "$OUT/$name.fuzz" ] && run "$name.libfuzzer" "$OUT/$name.fuzz" -max_total_time="$FUZZ_SECONDS" \
            -artifact_prefix="$OUT/$name." "$OUT/$name.corpus" "$corpus"
    fi
done

echo "exported symbols of the host library (tc_ prefix only):"
compile_all "$OUT/sym" gcc "${CFLAGS[@]}" -O2
objs=("$OUT"/sym/*.o)
bad=$(nm --defined-only -g "${objs[@]}" | awk 'NF==3 {print $3}' | grep -v '^tc_' || true)
if [ -n "$bad" ]; then
    echo "  FAIL  symbols without the tc_ prefix: $bad"
    fail=1
else
    echo "  ok    $(nm --defined-only -g "${objs[@]}" | awk 'NF==3' | wc -l) symbols, all tc_*"
fi
ran=$((ran + 1))

if [ "$ran" -eq 0 ]; then
    echo "ctest: nothing ran" >&2
    exit 1
fi
exit $fail
