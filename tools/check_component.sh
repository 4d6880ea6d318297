#!/usr/bin/env bash
# The component as the ESP Component Registry would receive it: `compote component pack` builds the archive from
# components/tcp_core/idf_component.yml, and this checks that the archive holds what the registry and a user need
# (README, LICENSE, CHANGELOG, the manifest, the umbrella header, every source of sources.txt, the examples) and no
# build debris, nor the demo firmware's code (main/: tc_app, the dashboard, the demo frames). Also compiles the umbrella header alone on the host (C11, -Wall -Wextra -Werror).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! command -v compote >/dev/null; then
    echo "component: FAIL: compote is missing (pip install idf-component-manager; tools/setup.sh does)" >&2
    exit 1
fi
version=$(sed -n 's/^version: *"\(.*\)"/\1/p' components/tcp_core/idf_component.yml)
(cd components/tcp_core && compote component pack --name tcp_core --dest-dir "$tmp" >"$tmp/pack.log" 2>&1) ||
    { cat "$tmp/pack.log" >&2; exit 1; }
archive="$tmp/tcp_core_$version.tgz"
[ -f "$archive" ] || { echo "component: FAIL: no $archive" >&2; cat "$tmp/pack.log" >&2; exit 1; }
tar -tzf "$archive" | sed 's#^\./##' >"$tmp/list.txt"
need=(README.md LICENSE CHANGELOG.md idf_component.yml CMakeLists.txt Kconfig sources.txt include/tcp_core.h
    include/tc_version.h port/backends.txt port/linux/tc_sock_linux.c
    port/lwip/tc_sock_lwip.c port/lwip/tc_lwip_esp.c port/os/freertos/tc_port_os.h)
while read -r src; do need+=("$src"); done < <(grep -v '^#' components/tcp_core/sources.txt | sed '/^ *$/d')
for ex in tcp_echo_client http_stream_stop captive_portal httpd_adapter; do
    need+=("examples/$ex/CMakeLists.txt" "examples/$ex/main/CMakeLists.txt" "examples/$ex/main/main.c"
        "examples/$ex/main/idf_component.yml" "examples/$ex/README.md")
done
missing=0
for f in "${need[@]}"; do
    grep -qx "$f" "$tmp/list.txt" || { echo "component: FAIL: $f is not in the archive" >&2; missing=1; }
done
if grep -E '(^|/)(tc_app|tc_demo_frames|tc_dashboard)\.[ch]$|dashboard\.html$' "$tmp/list.txt"; then
    echo "component: FAIL: the demo firmware's code (above) is in the component: it belongs to main/" >&2
    missing=1
fi
if grep -rlE '#include "(tc_app|tc_demo_frames|tc_dashboard)\.h"' components/tcp_core --include='*.[ch]'; then
    echo "component: FAIL: the component's files above include a demo header" >&2
    missing=1
fi
if grep -E '(__pycache__|\.pyc$|/build/|\.o$|\.so$)' "$tmp/list.txt"; then
    echo "component: FAIL: build debris in the archive (above)" >&2
    missing=1
fi
[ $missing -eq 0 ] || exit 1
# The three version numbers agree.
header=$(sed -n 's/^#define TC_VERSION "\(.*\)"/\1/p' components/tcp_core/include/tc_version.h)
py=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
[ "$version" = "$header" ] && [ "$version" = "$py" ] ||
    { echo "component: FAIL: versions differ: manifest $version, tc_version.h $header, pyproject $py" >&2; exit 1; }
printf '#include "tcp_core.h"\nint main(void) { return TC_OK + TC_VERSION_MAJOR * 0; }\n' >"$tmp/umbrella.c"
gcc -std=c11 -Wall -Wextra -Werror -Icomponents/tcp_core/include "$tmp/umbrella.c" -fsyntax-only
echo "component: ok: $(basename "$archive"), $(wc -l <"$tmp/list.txt") files, $(du -k "$archive" | cut -f1) KiB" \
    "(no url/repository/issues/documentation in the manifest: the project has no public address yet)"
