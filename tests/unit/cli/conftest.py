from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The fake server is shared with the SDK tests; these directories are not packages (pytest's
# default import mode), so make its directory importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk"))

from fake_jobqd import FakeJobqd  # noqa: E402


@pytest.fixture
def jobqd() -> Iterator[FakeJobqd]:
    server = FakeJobqd()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_jobq_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own JOBQ_* settings must not leak into the CLI under test."""
    import os

    for name in list(os.environ):
        if name.startswith("JOBQ_"):
            monkeypatch.delenv(name)
