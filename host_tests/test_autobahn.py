"""WebSocket conformance: the Autobahn test suite (PyPI autobahntestsuite, Python 2.7) against /ws, cases 1-7, 9, 10.

tools/setup.sh installs wstest into pyenv's Python 2.7; TC_WSTEST may point at another wstest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tcp_core import Loop
from tcp_core.app import App

WSTEST_CANDIDATES = [os.environ.get("TC_WSTEST", ""), str(Path.home() / ".pyenv/versions/2.7.18/bin/wstest"), "wstest"]


def _wstest() -> str | None:
    for c in WSTEST_CANDIDATES:
        if c and (shutil.which(c) or Path(c).is_file()):
            return c
    return None


def test_autobahn_cases_1_to_7_9_10(loop: Loop, server_host: str, backend: str, tmp_path: Path) -> None:
    wstest = _wstest()
    if wstest is None:
        if os.environ.get("TC_REQUIRE_AUTOBAHN") == "1":
            pytest.fail("wstest (autobahntestsuite) is required but not installed")
        pytest.skip("wstest (autobahntestsuite on Python 2.7) is not installed; tools/setup.sh installs it")
    # Case 9 sends messages of up to 16 MiB: the limit is raised for this run only.
    app = App(loop, server_host, echo_port=None, http_port=0, http_max_conns=8, ws_max_message=17 * 1024 * 1024)
    spec = {
        "outdir": str(tmp_path / "reports"),
        "servers": [{"agent": f"tcp_core-{backend}", "url": f"ws://{server_host}:{app.http_port}/ws"}],
        "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"],
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = subprocess.run(
        [wstest, "-m", "fuzzingclient", "-s", str(tmp_path / "spec.json")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    app.stop(1000)
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    results = index[f"tcp_core-{backend}"]
    failed = {
        case: r["behavior"] for case, r in results.items() if r["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")
    }
    failed_close = {
        case: r["behaviorClose"] for case, r in results.items() if r["behaviorClose"] not in ("OK", "INFORMATIONAL")
    }
    assert len(results) >= 300, f"only {len(results)} cases ran: {out.stdout[-2000:]} {out.stderr[-2000:]}"
    assert not failed, f"FAILED cases: {failed}"
    assert not failed_close, f"close behaviour FAILED: {failed_close}"
