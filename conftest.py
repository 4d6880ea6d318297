"""Which suite a bare `pytest` runs, from the project root.

Plain `pytest` / `python3 -m pytest` (CI, tools/test.sh): the host suite, `testpaths = ["host_tests"]`.
`pytest --target linux` (the ESP-IDF way of running an app's tests, pytest-embedded installed): the firmware tests of
pytest_tcp_core.py instead, with `--embedded-services` defaulting to `idf` (linux) or `esp,idf` (a board). Paths
given on the command line are always run as given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
FIRMWARE_TESTS = ROOT / "pytest_tcp_core.py"

try:
    import tcp_core  # noqa: F401
except ImportError:  # ESP-IDF's Python environment: the host suite's conftest still loads, from this checkout
    sys.path.insert(0, str(ROOT / "python"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    target = config.getoption("target", None)
    if not target:
        return
    if not config.getoption("embedded_services", None):
        config.option.embedded_services = "idf" if target == "linux" else "esp,idf"
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    # No path was named: pytest took testpaths, or the invocation directory when an absolute option value (such as
    # --build-dir /abs/path) moved its rootdir above this tree. It collects from config.args after every
    # pytest_configure, so the firmware file takes their place.
    config.args[:] = [str(FIRMWARE_TESTS)]
