"""The build itself: the extensions export the C API's prefix only, and the chip-compiler check (tools/cross_check.sh)
refuses a source that includes a header the device lacks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import tcp_core
from conftest import REQUIRE_LWIP

ROOT = Path(__file__).resolve().parent.parent
CROSS_CHECK = ROOT / "tools" / "cross_check.sh"
LWIP_SHIM = ROOT / "components" / "tcp_core" / "port" / "lwip" / "tc_lwip_esp.c"


def _exported(path: Path) -> list[str]:
    """The global symbols a shared object defines (nm -D)."""
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True)
    return [f[2] for f in (line.split() for line in out.stdout.splitlines()) if len(f) == 3 and f[1] in "TDBRW"]


@pytest.mark.parametrize("name", ["linux", "lwip"])
def test_extension_exports_tc_prefix_only(name: str) -> None:
    """Both builds of a backend (host and device limits) export tc_* and their module's init function, nothing else."""
    if name not in tcp_core.available_backends():
        if REQUIRE_LWIP:
            pytest.fail(f"the {name} extension is required (TC_REQUIRE_LWIP=1) but not built")
        pytest.skip(f"the {name} extension is not built")
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) is not installed")
    here = Path(tcp_core.__file__).parent
    found = [*here.glob(f"_tcp_core_{name}.*so"), *here.glob(f"_tcp_core_{name}_device.*so")]
    assert found
    for so in found:
        symbols = _exported(so)
        module = so.name.split(".")[0]
        others = [s for s in symbols if not s.startswith("tc_") and s != f"PyInit_{module}"]
        assert others == [], so.name
        assert "tc_loop_new" in symbols and "tc_sock_backend" in symbols, so.name


def test_cross_check_refuses_a_header_the_device_lacks(tmp_path: Path) -> None:
    """The ESP-IDF chip build once broke on <poll.h>: the same include in the lwIP shim must fail the check."""
    if shutil.which("riscv64-unknown-elf-gcc") is None and shutil.which("xtensa-lx106-elf-gcc") is None:
        if REQUIRE_LWIP:
            pytest.fail("the cross compilers are required (TC_REQUIRE_LWIP=1): run tools/setup.sh")
        pytest.skip("no cross compiler (gcc-riscv64-unknown-elf / gcc-xtensa-lx106) installed")
    # A copy of the tree's files the check reads, with one shim that includes <poll.h> (the shim, not the shared
    # source, so the copy compiles in every other respect and the failure can only be the header).
    tree = tmp_path / "tree"
    for rel in ["tools/cross_check.sh", "tools/cross_check", "components/tcp_core", "main"]:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, tree / rel)
        else:
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
    shim = tree / LWIP_SHIM.relative_to(ROOT)
    shim.write_text("#include <poll.h>\n" + LWIP_SHIM.read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TC_REQUIRE_LWIP")}
    res = subprocess.run(["bash", "tools/cross_check.sh"], cwd=tree, capture_output=True, text=True, env=env)
    assert res.returncode != 0, res.stdout + res.stderr
    assert "FAIL  components/tcp_core/port/lwip/tc_lwip_esp.c" in res.stdout
    assert "poll.h: No such file or directory" in res.stdout
    # and the unchanged tree passes the same check
    ok = subprocess.run(["bash", str(CROSS_CHECK)], cwd=ROOT, capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr


# ---- the bindings generated from the headers (python/tcp_core_build/cdefgen.py) ----


def _cdefgen():  # type: ignore[no-untyped-def]
    import sys

    sys.path.insert(0, str(ROOT / "python"))
    from tcp_core_build import cdefgen

    return cdefgen


def _preprocess(cdefgen, tmp_path: Path, text: str) -> str:  # type: ignore[no-untyped-def]
    header = tmp_path / "tc_probe.h"
    header.write_text(text)
    (tmp_path / "wrap.c").write_text('#include "tc_probe.h"\n')
    res = subprocess.run(
        ["cc", "-E", "-dD", "-std=c11", f"-I{tmp_path}", str(tmp_path / "wrap.c")],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout


def test_bindings_are_generated_from_every_bound_header() -> None:
    """No hand-kept cdefs: each bound header gives its own block, the extension's functions come from them, and the
    module built from them has what the Python classes call."""
    cdefgen = _cdefgen()
    assert not (ROOT / "python" / "tcp_core_build" / "cdefs.h").exists()
    blocks = cdefgen.generate(cdefgen.host_include_dirs(), [("_GNU_SOURCE", None)], [])
    names = [b.path.name for b in blocks]
    for header in cdefgen.BOUND_HEADERS:
        assert header in names, header
    text = {b.path.name: b.text for b in blocks}
    assert "int tc_server_start(" in text["tc_tcp.h"]
    assert "#define TC_CONSOLE_OTA_DEADLINE_MS ..." in text["tc_console.h"]
    assert "TC_CONSOLE_PROMPT " not in text["tc_console.h"]  # a string macro is not bindable as a constant
    assert names.index("tc_tcp.h") < names.index("tc_http.h")  # included first, declared first
    native = tcp_core._native.load("linux")
    assert callable(native.lib.tc_server_start) and int(native.lib.TC_ECLOSED) == -14


def test_generator_keeps_integer_macros_only(tmp_path: Path) -> None:
    cdefgen = _cdefgen()
    out = cdefgen.split(
        _preprocess(
            cdefgen,
            tmp_path,
            '#define A 5\n#define B (A + 1u)\n#define S "x"\n#define C S\n#define F(x) (x)\n#define I { 1 }\n'
            "#define D 1.5\ntypedef struct { int a; } tc_probe_t;\nint tc_probe(const tc_probe_t *p);\n",
        ),
        roots=(tmp_path,),
    )
    assert len(out) == 1
    lines = out[0].text.splitlines()
    assert lines[:2] == ["#define A ...", "#define B ..."]
    assert "int tc_probe(const tc_probe_t *p);" in lines
    assert not [line for line in lines if line.startswith("#define") and line[8] in "SCFID"]


@pytest.mark.parametrize(
    "code, what",
    [
        ("static inline int tc_probe(void) { return 1; }\n", "a static definition"),
        ("int tc_probe(void) { return 1; }\n", "a function body"),
        ("static const int tc_probe_table[] = {1, 2};\n", "a static definition"),
    ],
)
def test_generator_stops_with_the_header_and_line(tmp_path: Path, code: str, what: str) -> None:
    """What cannot be a declaration stops the build with the file, the line and the fix."""
    cdefgen = _cdefgen()
    with pytest.raises(cdefgen.CdefError) as err:
        cdefgen.split(_preprocess(cdefgen, tmp_path, "#include <stdint.h>\n\nint tc_ok(void);\n" + code), (tmp_path,))
    assert f"tc_probe.h:4: {what} in a header cannot be bound" in str(err.value)
    assert "move it to a .c file" in str(err.value)


def test_bound_header_is_found_where_it_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bound header may live in the component or in main/ (the demo's tc_app.h): the one list finds it anywhere
    under the searched directories, and a missing one names the list."""
    cdefgen = _cdefgen()
    (tmp_path / "include").mkdir()
    (tmp_path / "main" / "app").mkdir(parents=True)
    (tmp_path / "main" / "app" / "tc_demo.h").write_text("int tc_demo(void);\n")
    monkeypatch.setattr(cdefgen, "SEARCH_DIRS", (tmp_path / "include", tmp_path / "main"))
    assert cdefgen.find_header("tc_demo.h") == tmp_path / "main" / "app" / "tc_demo.h"
    with pytest.raises(cdefgen.CdefError, match="listed in BOUND_HEADERS"):
        cdefgen.find_header("tc_gone.h")
    monkeypatch.undo()
    assert cdefgen.find_header("tc_app.h").parent.name in ("include", "app", "main")


def test_generator_drops_harmless_attributes_and_stops_at_layout_ones(tmp_path: Path) -> None:
    cdefgen = _cdefgen()
    ok = cdefgen.split(
        _preprocess(cdefgen, tmp_path, "int tc_log(const char *f, ...) __attribute__((format(printf, 1, 2)));\n"),
        (tmp_path,),
    )
    assert ok[0].text.strip() == "int tc_log(const char *f, ...) ;"
    packed = "typedef struct __attribute__((packed)) { char a; int b; } tc_probe_t;\n"
    with pytest.raises(cdefgen.CdefError, match=r"tc_probe.h:1: __attribute__\(\(packed\)\) changes the declaration"):
        cdefgen.split(_preprocess(cdefgen, tmp_path, packed), (tmp_path,))
