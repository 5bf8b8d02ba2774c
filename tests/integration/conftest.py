"""Fixtures: a real jobqd on a free loopback port with its own data dir, and real jobq-node processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import Jobqd, NodeProc


@pytest.fixture
def jobqd_factory(tmp_path: Path) -> Iterator[Callable[..., Jobqd]]:
    started: list[Jobqd] = []

    def make(*extra: str, name: str = "d") -> Jobqd:
        d = Jobqd(tmp_path / name, extra=extra).start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def jobqd(jobqd_factory: Callable[..., Jobqd]) -> Jobqd:
    return jobqd_factory()


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., NodeProc]]:
    nodes: list[NodeProc] = []

    def make(server: str, name: str, *extra: str, slots: int = 2) -> NodeProc:
        n = NodeProc(
            name=name, server=server, work_dir=tmp_path / f"work-{name}", slots=slots, extra=extra
        ).start()
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        n.stop()
