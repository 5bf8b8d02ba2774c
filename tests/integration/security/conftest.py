"""A real jobqd with authentication on: tokens made with `jobqd token create` before it starts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.security.support import create_token
from tests.support.procs import Jobqd


@dataclass
class Secured:
    jobqd: Jobqd
    tokens: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return self.jobqd.data_dir


def start_secured(data_dir: Path, *extra: str) -> Secured:
    tokens = {
        "root": create_token(data_dir, role="admin", name="root"),
        "alice": create_token(data_dir, role="client", name="alice"),
        "bob": create_token(data_dir, role="client", name="bob"),
        "n1": create_token(data_dir, role="node", name="n1"),
    }
    return Secured(Jobqd(data_dir, extra=extra).start(), tokens)


@pytest.fixture(scope="module")
def secured_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """One daemon for a whole module of read-mostly checks."""
    s = start_secured(tmp_path_factory.mktemp("secured") / "d")
    yield s
    s.jobqd.stop()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    s = start_secured(tmp_path / "d")
    yield s
    s.jobqd.stop()
