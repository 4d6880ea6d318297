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
