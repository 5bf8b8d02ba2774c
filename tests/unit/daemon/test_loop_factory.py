"""Which event loop jobqd's command line builds: uvloop's, or the standard one when asked for or
when uvloop cannot be imported (said in a log record, not a crash)."""

from __future__ import annotations

import json
import subprocess
import sys

MISSING = """
import sys
sys.modules["uvloop"] = None  # import fails as if it were not installed
from jobqd.log_config import configure_logging
configure_logging(level="info", fmt="json")
from jobqd.cli import _loop_factory
print(_loop_factory("uvloop"))
"""


def test_uvloop_is_the_factory_when_asked_for() -> None:
    import uvloop

    from jobqd.cli import _loop_factory

    assert _loop_factory("uvloop") is uvloop.new_event_loop
    assert _loop_factory("asyncio") is None


def test_a_missing_uvloop_falls_back_with_a_warning() -> None:
    out = subprocess.run([sys.executable, "-c", MISSING], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "None"
    [record] = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert record["level"] == "warning"
    assert record["event"] == "uvloop is not installed; using the standard asyncio event loop"
