from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.sdk.fake_jobqd import FakeJobqd


@pytest.fixture
def jobqd() -> Iterator[FakeJobqd]:
    server = FakeJobqd()
    server.start()
    yield server
    server.stop()
