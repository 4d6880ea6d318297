#!/usr/bin/env bash
# The Python package as a user gets it: build the sdist, build the wheel from that sdist (python -m build does both,
# the wheel in an isolated environment from the unpacked sdist), install the wheel into a fresh venv, import it,
# run `python -m tcp_core serve` on loopback and fetch /api/status from it. Nothing of this checkout is on the path.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
serve_pid=""
cleanup() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

$PY -m build --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; exit 1; }
sdist=$(ls "$tmp"/dist/*.tar.gz)
wheel=$(ls "$tmp"/dist/*.whl)
case "$wheel" in *-abi3-*) ;; *) echo "packaging: FAIL: $(basename "$wheel") is not an abi3 wheel" >&2; exit 1 ;; esac
echo "packaging: built $(basename "$sdist") and, from it, $(basename "$wheel")"
tar -tzf "$sdist" >"$tmp/sdist.txt" # (a listing file: grep -q on a pipe would end tar with SIGPIPE under pipefail)
for f in python/tcp_core_build/build.py components/tcp_core/sources.txt components/tcp_core/Kconfig \
    main/sources.txt main/app/tc_app.c main/app/tc_dashboard.c components/tcp_core/port/backends.txt \
    components/tcp_core/port/linux/tc_sock_linux.c components/tcp_core/port/lwip/tc_sock_lwip.c LICENSE; do
    grep -q "/$f\$" "$tmp/sdist.txt" || { echo "packaging: FAIL: $f is not in the sdist" >&2; exit 1; }
done
# the bindings' generator and its glue: the wheel's build generates the declarations from the headers (cdefgen.py)
grep -q "/python/tcp_core_build/cdefgen.py\$" "$tmp/sdist.txt" && grep -q "/python/tcp_core_build/glue.h\$" "$tmp/sdist.txt" ||
    { echo "packaging: FAIL: the bindings' generator (tcp_core_build/cdefgen.py, glue.h) is not in the sdist" >&2; exit 1; }

# Nothing of the checkout may be seen from here on: with python/ on PYTHONPATH, pip would take the tcp_core.egg-info
# that the build leaves there for an installed tcp_core and skip the wheel.
unset PYTHONPATH
$PY -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "$wheel"
cd "$tmp" # away from the checkout: the import must come from the venv
"$tmp/venv/bin/python" -c 'import tcp_core, sys; print("packaging: import tcp_core", tcp_core.__version__, "from", tcp_core.__file__); sys.exit("site-packages" not in tcp_core.__file__)'

"$tmp/venv/bin/python" -m tcp_core serve --host 127.0.0.1 --echo-port 0 --http-port 0 >"$tmp/serve.log" 2>&1 &
serve_pid=$!
url=""
for _ in $(seq 1 300); do # at most 30 s for the ready line
    url=$(sed -n 's#^http *\(http://[^ ]*/\) .*#\1#p' "$tmp/serve.log")
    [ -n "$url" ] && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$url" ] || { echo "packaging: FAIL: serve printed no HTTP address" >&2; cat "$tmp/serve.log" >&2; exit 1; }
"$tmp/venv/bin/python" - "$url" <<'PYEOF'
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1] + "api/status", timeout=10))
assert doc["backend"] == "linux" and doc["count"] >= 2, doc
print(f"packaging: GET {sys.argv[1]}api/status: {doc['count']} sockets, tcp_core {doc['app']['version']}")
PYEOF
kill -INT "$serve_pid"
wait "$serve_pid"
serve_pid=""
grep -q '^stopped' "$tmp/serve.log" || { echo "packaging: FAIL: serve did not report its stop" >&2; cat "$tmp/serve.log" >&2; exit 1; }
# The abi3 wheel on the other CPython versions this machine has (pyenv's, when present): install, echo once.
for other in "$HOME"/.pyenv/versions/3.1[0-9]*/bin/python; do
    [ -x "$other" ] || continue
    v=$("$other" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "$v" = "$("$tmp/venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ] && continue
    "$other" -m venv "$tmp/venv-$v"
    "$tmp/venv-$v/bin/pip" install -q --disable-pip-version-check "$wheel" 2>/dev/null
    "$tmp/venv-$v/bin/python" - <<'PYEOF'
import socket, sys, tcp_core
with tcp_core.Loop() as loop:
    srv = tcp_core.Server(loop, "127.0.0.1", 0)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"abi3")
        assert s.recv(4) == b"abi3"
    srv.stop(500)
print(f"packaging: the same wheel on Python {sys.version_info[0]}.{sys.version_info[1]}: echo ok")
PYEOF
done
echo "packaging: ok"
