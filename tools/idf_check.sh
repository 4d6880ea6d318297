#!/usr/bin/env bash
# tools/idf_check.sh - build and check the demo firmware (main/ + components/tcp_core) with an ESP-IDF tree, by hand:
# CI cannot fetch ESP-IDF, so these checks run where one is installed (README "Firmware" says what ran last, where).
#
#   tools/idf_check.sh linux      build the linux target, then pytest-embedded on it (pytest_tcp_core.py)
#   tools/idf_check.sh esp32c3    build the default firmware (sizes, size-components), then compile the project's
#                                 files in every Kconfig variant below; any chip target works (esp32, esp32s3, ...)
#   tools/idf_check.sh qemu       build the Ethernet (OpenCores MAC) firmware for esp32c3 and run pytest_tcp_core.py
#                                 on it under Espressif's QEMU (qemu-system-riscv32 on PATH), user networking with
#                                 host port forwards on 127.0.0.1 only
#   tools/idf_check.sh qemu-app   build the component's test app (components/tcp_core/test_apps/tcp_core) for esp32c3
#                                 with its Ethernet choice (OpenCores MAC) and run pytest_tcp_core_app.py on it under
#                                 Espressif's QEMU: 100 echoes over lwIP's loopback, 100 with an echo peer on this
#                                 machine's 127.0.0.1 (10.0.2.2 to the device), everything freed
#   tools/idf_check.sh examples [target...]
#                                 build every example of components/tcp_core/examples/ as a user who downloaded it
#                                 would (a copy under the build root, its idf_component.yml pointing at this tree's
#                                 component), for each target (default: esp32c3 linux); an example whose
#                                 main/CMakeLists.txt has no linux branch (it needs Wi-Fi, which the linux target
#                                 lacks) is reported as "n/a" there, not as a pass. TC_IDF_EXAMPLES: the names to
#                                 build (default: all)
#
# Needs: IDF_PATH and idf.py on PATH (. $IDF_PATH/export.sh), ESP-IDF >= 5.2 (>= 5.3 for the linux target); the
#         linux target also libbsd-dev.
# Environment: TC_IDF_BUILD_ROOT  where the build directories go (default: build/idf in this tree, git-ignored);
#              TC_IDF_EXTRA_DEFAULTS  ';'-separated sdkconfig defaults files added after the project's own (e.g. a
#              stand-in toolchain's); TC_IDF_VARIANTS  the variant names to compile (default: all for the target).
# Exit status: 0 when every build passed with 0 warnings and 0 errors in the project's files (and the tests passed).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
: "${IDF_PATH:?export an ESP-IDF tree first: . \$IDF_PATH/export.sh}"
command -v idf.py > /dev/null || { echo "idf.py is not on PATH: . \$IDF_PATH/export.sh" >&2; exit 2; }
root=${TC_IDF_BUILD_ROOT:-$here/build/idf}
mkdir -p "$root"
export IDF_CCACHE_ENABLE=${IDF_CCACHE_ENABLE:-$(command -v ccache > /dev/null && echo 1 || echo 0)}

# The Kconfig variants: name, then the sdkconfig lines it adds to the project's defaults.
declare -A VARIANT=(
    [default]=""
    [sta]="CONFIG_DEMO_WIFI_STA=y"
    [apsta-client]="CONFIG_DEMO_WIFI_APSTA=y
CONFIG_DEMO_CLIENT_ENABLE=y"
    [openeth]="CONFIG_DEMO_ETH_OPENETH=y"
    [qemu]="CONFIG_DEMO_ETH_OPENETH=y
CONFIG_DEMO_HTTPD_ADAPTER=y
CONFIG_DEMO_CLIENT_ENABLE=y
CONFIG_DEMO_CLIENT_HOST=\"10.0.2.2\"
CONFIG_TCP_CORE_BACKOFF_MAX_MS=2000
CONFIG_DEMO_CAPTIVE_PORTAL=y
CONFIG_DEMO_CAPTIVE_DEVICE_HOST=\"127.0.0.1\""
    [emac]="CONFIG_DEMO_ETH_EMAC=y"
    [console-off]="CONFIG_DEMO_CONSOLE=n"
    [no-console-device]="CONFIG_ESP_CONSOLE_NONE=y"
    [captive-off]="CONFIG_DEMO_CAPTIVE_PORTAL=n"
    [captive-online-no-dns]="CONFIG_DEMO_CAPTIVE_MODE_ONLINE=y
CONFIG_DEMO_DNS_SERVER=n
CONFIG_DEMO_DHCP_CAPTIVE_URI=n"
    [httpd-client]="CONFIG_DEMO_HTTPD_ADAPTER=y
CONFIG_DEMO_CLIENT_ENABLE=y"
    [qemu-app]="CONFIG_TC_TEST_APP_NET_OPENETH=y"
)
ORDER=(default sta apsta-client openeth qemu emac console-off no-console-device captive-off captive-online-no-dns
    httpd-client)

# The defaults list for one build: the project's, the extra ones, the variant's own file.
defaults_for() { # <build dir> <variant>
    local list="$proj/sdkconfig.defaults"
    [[ -z ${TC_IDF_EXTRA_DEFAULTS:-} ]] || list+=";$TC_IDF_EXTRA_DEFAULTS"
    if [[ -n ${VARIANT[$2]} ]]; then
        printf '%s\n' "${VARIANT[$2]}" > "$1.variant"
        list+=";$1.variant"
    fi
    echo "$list"
}

# Count the diagnostics in the project's own files (main/, components/tcp_core/) of a build log; print them.
project_diagnostics() { # <log>
    local pat='(^|/)(main|components/tcp_core)/[^:]*:[0-9]+(:[0-9]+)?: (warning|error)'
    grep -E "$pat" "$1" | sort -u || true
}

# Configure a fresh sdkconfig for <target> and <variant> in <dir> (the project tree gets no sdkconfig of its own).
configure() { # <dir> <target> <variant>
    local dir=$1 target=$2 variant=$3 preview=()
    [[ $target != linux ]] || preview=(--preview)
    [[ -f $dir/CMakeCache.txt ]] || rm -rf "$dir" # set-target refuses a directory that is not a build directory
    rm -f "$dir/sdkconfig"
    local args=("${preview[@]}" -C "$proj" -B "$dir" -DSDKCONFIG="$dir/sdkconfig"
        -DSDKCONFIG_DEFAULTS="$(defaults_for "$dir" "$variant")")
    if [[ -f $dir/CMakeCache.txt ]] && grep -q "^IDF_TARGET:STRING=$target\$" "$dir/CMakeCache.txt"; then
        idf.py "${args[@]}" reconfigure > "$dir.configure.log" 2>&1
    else
        idf.py "${args[@]}" set-target "$target" > "$dir.configure.log" 2>&1
    fi || { tail -30 "$dir.configure.log" >&2; echo "configure failed: $dir.configure.log" >&2; return 1; }
}

fails=0
proj=$here # the project idf.py builds: the demo firmware, or a copy of an example
report() { # <what> <log> <rc>
    local diags n
    diags=$(project_diagnostics "$2")
    n=$(printf '%s' "$diags" | grep -c . || true)
    if [[ $3 != 0 || $n != 0 ]]; then
        fails=$((fails + 1))
        echo "FAIL  $1: exit $3, $n diagnostics in project files ($2)"
        [[ -z $diags ]] || printf '%s\n' "$diags" | head -20
        [[ $3 == 0 ]] || grep -E 'error|FAILED' "$2" | head -10
    else
        echo "ok    $1: 0 warnings, 0 errors in project files; $(grep -c 'warning:' "$2" || true) warnings in all"
    fi
}

build_full() { # <dir> <what>
    local rc=0 log=$1/build.log
    idf.py -C "$proj" -B "$1" -DSDKCONFIG="$1/sdkconfig" build > "$log" 2>&1 || rc=$?
    report "$2" "$log" $rc
    return 0
}

# Only the project's two component libraries: enough to see every diagnostic of its files in a variant.
build_project() { # <dir> <what>
    local rc=0 log=$1/build.log
    ninja -C "$1" esp-idf/main/libmain.a esp-idf/tcp_core/libtcp_core.a > "$log" 2>&1 || rc=$?
    report "$2" "$log" $rc
}

sizes() { # <dir>
    local bin part
    bin=$(stat -c %s "$1/tcp_core_demo.bin")
    part=$(python3 - "$here/partitions.csv" << 'EOF'
import sys
sizes = [int(f[4], 0) for f in (l.split(",") for l in open(sys.argv[1]) if l.strip() and not l.startswith("#"))
         if f[1].strip() == "app"]
print(min(sizes))
EOF
)
    echo "size  tcp_core_demo.bin $bin bytes in an app slot of $part: $((100 * (part - bin) / part)) % free"
    idf.py -B "$1" -DSDKCONFIG="$1/sdkconfig" size > "$1/size.txt" 2>&1 || true
    idf.py -B "$1" -DSDKCONFIG="$1/sdkconfig" size-components > "$1/size-components.txt" 2>&1 || true
    grep -E 'Total image size|^. (Flash Code|Flash Data|DRAM|IRAM) ' "$1/size.txt" || true
    grep -E 'Archive File|libtcp_core|libmain|liblwip|libnet80211|libesp_eth' "$1/size-components.txt" | head -8 || true
    echo "      (tables: $1/size.txt, $1/size-components.txt)"
}

case ${1:-} in
linux)
    dir=$root/linux
    configure "$dir" linux default
    build_full "$dir" "linux target"
    if python3 -c 'import pytest_embedded_idf' 2> /dev/null; then
        rc=0
        python3 -m pytest "$here/pytest_tcp_core.py" --target linux --embedded-services idf --app-path "$here" \
            --build-dir "$dir" -p no:cacheprovider -q || rc=$?
        [[ $rc == 0 ]] || fails=$((fails + 1))
    else
        echo "skip  pytest-embedded: pip install -e '.[embedded]'"
    fi
    ;;
qemu)
    command -v qemu-system-riscv32 > /dev/null ||
        { echo "qemu-system-riscv32 (Espressif's QEMU) is not on PATH" >&2; exit 2; }
    dir=$root/qemu-esp32c3
    # Ethernet over the OpenCores MAC, esp_http_server on, the client dialling 10.0.2.2 (QEMU's name for this
    # machine's 127.0.0.1), the captive portal in portal mode with its DNS responder on the interface's address
    # (the clients reach the device's own pages as 127.0.0.1:PORT, its own Host there). pytest-embedded-qemu writes
    # the flash image; pytest_tcp_core.py the eFuses (chip revision v0.3) and the QEMU network arguments (free
    # 127.0.0.1 ports forwarded to the services, TCP, and UDP to the DNS responder's port 53).
    configure "$dir" esp32c3 qemu
    build_full "$dir" "esp32c3 qemu (OpenCores Ethernet)"
    [[ ! -f $dir/tcp_core_demo.bin ]] || sizes "$dir"
    rc=0
    python3 -m pytest "$here/pytest_tcp_core.py" --target esp32c3 --embedded-services idf,qemu \
        --app-path "$here" --build-dir "$dir" \
        -p no:cacheprovider -q -rs ${TC_PYTEST_ARGS:-} || rc=$?
    [[ $rc == 0 ]] || fails=$((fails + 1))
    ;;
qemu-app)
    command -v qemu-system-riscv32 > /dev/null ||
        { echo "qemu-system-riscv32 (Espressif's QEMU) is not on PATH" >&2; exit 2; }
    # A copy of the test app, as for the examples: nothing (dependencies.lock, sdkconfig) is written into this tree;
    # its manifest's override_path becomes this tree's component, resolved locally by the component manager.
    export IDF_COMPONENT_MANAGER=1
    proj=$root/qemu-app/tcp_core_test_app
    rm -rf "$proj"
    mkdir -p "$root/qemu-app"
    cp -r "$here/components/tcp_core/test_apps/tcp_core" "$proj"
    sed -i "s#^\( *override_path:\).*#\1 \"$here/components/tcp_core\"#" "$proj/main/idf_component.yml"
    dir=$root/qemu-app-esp32c3
    configure "$dir" esp32c3 qemu-app
    build_full "$dir" "test app esp32c3 qemu (OpenCores Ethernet)"
    bin=$dir/tcp_core_test_app.bin
    [[ ! -f $bin ]] || echo "size  tcp_core_test_app.bin $(stat -c %s "$bin") bytes"
    rc=0
    python3 -m pytest "$here/components/tcp_core/test_apps/tcp_core/pytest_tcp_core_app.py" --target esp32c3 \
        --embedded-services idf,qemu --app-path "$proj" --build-dir "$dir" \
        -p no:cacheprovider -q -rs ${TC_PYTEST_ARGS:-} || rc=$?
    [[ $rc == 0 ]] || fails=$((fails + 1))
    proj=$here
    ;;
esp32*)
    target=$1
    dir=$root/$target
    configure "$dir" "$target" default
    build_full "$dir" "$target default"
    [[ ! -f $dir/tcp_core_demo.bin ]] || sizes "$dir"
    vdir=$root/$target-variants
    for v in ${TC_IDF_VARIANTS:-${ORDER[@]}}; do
        [[ $v != default ]] || continue
        if [[ $v == emac && $target != esp32 ]]; then
            continue # the internal EMAC is the ESP32's only (SOC_EMAC_SUPPORTED; the P4's is not covered here)
        fi
        configure "$vdir" "$target" "$v"
        build_project "$vdir" "$target $v"
    done
    ;;
examples)
    shift
    targets=("${@:-esp32c3}")
    [[ $# -gt 0 ]] || targets=(esp32c3 linux)
    mkdir -p "$root/examples"
    # The examples name tcp_core in main/idf_component.yml (override_path), as a downloaded example does: the
    # component manager resolves it locally (nothing is downloaded; "idf" is the tree in use).
    export IDF_COMPONENT_MANAGER=1
    for ex in "$here"/components/tcp_core/examples/*/; do
        name=$(basename "$ex")
        [[ -z ${TC_IDF_EXAMPLES:-} || " $TC_IDF_EXAMPLES " == *" $name "* ]] || continue
        # A copy, so nothing (dependencies.lock, sdkconfig) is written into this tree; its manifest's override_path
        # ("../../../", the component seen from the example inside it) becomes this tree's component.
        proj=$root/examples/$name
        rm -rf "$proj"
        cp -r "$ex" "$proj"
        sed -i "s#^\( *override_path:\).*#\1 \"$here/components/tcp_core\"#" "$proj/main/idf_component.yml"
        for target in "${targets[@]}"; do
            dir=$root/examples-$name-$target
            if [[ $target == linux ]] && ! grep -q 'STREQUAL "linux"' "$proj/main/CMakeLists.txt"; then
                echo "n/a   example $name on linux: it needs Wi-Fi (a soft-AP), which the linux target does not have"
                continue
            fi
            if configure "$dir" "$target" default; then
                build_full "$dir" "example $name $target"
                bin=$(ls "$dir"/*.bin 2> /dev/null | grep -v -e bootloader -e partition | head -1 || true)
                [[ -z $bin ]] || echo "size  $name.bin $(stat -c %s "$bin") bytes"
            else
                fails=$((fails + 1))
                echo "FAIL  example $name $target: configure ($dir.configure.log)"
            fi
        done
    done
    proj=$here
    ;;
*)
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
[[ $fails == 0 ]] && echo "all passed" || { echo "$fails failed"; exit 1; }
