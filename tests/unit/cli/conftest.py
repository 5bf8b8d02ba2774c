from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.unit.sdk.fake_jobqd import FakeJobqd


@pytest.fixture
def jobqd() -> Iterator[FakeJobqd]:
    server = FakeJobqd()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_jobq_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own JOBQ_* settings must not leak into the CLI under test."""
    for name in list(os.environ):
        if name.startswith("JOBQ_"):
            monkeypatch.delenv(name)
