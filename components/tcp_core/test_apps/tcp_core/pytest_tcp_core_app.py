"""tcp_core's test app under pytest-embedded (ESP-IDF's test_apps layout).

From components/tcp_core/test_apps/tcp_core: `idf.py --preview set-target linux build`, then
`pytest pytest_tcp_core_app.py --embedded-services idf --target linux`; on a chip `idf.py set-target esp32c3 build
flash` and `--embedded-services esp,idf --target esp32c3`.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pytest_embedded_idf", reason="pytest-embedded is not installed")


@pytest.mark.linux
@pytest.mark.esp32c3
@pytest.mark.esp32
def test_echo_round_trips_then_everything_is_freed(dut: Any) -> None:
    """100 echoes through the device's own stack, both handles stopped, the loop freed, the heap back to its start."""
    line = dut.expect(r"tcp_core test app: (PASS|FAIL \(.*\))", timeout=60)
    assert line.group(1) == b"PASS", line.group(0)
