"""The CLI as a user types it, against a real jobqd and a real jobq-node."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import BIN, Jobqd, NodeProc


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Jobqd]:
    d = Jobqd(tmp_path / "data").start()
    node = NodeProc(name="e2e-node", server=d.address, work_dir=tmp_path / "work", slots=2).start()
    yield d
    node.stop()
    d.stop()


@pytest.fixture
def jobqctl(farm: Jobqd) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "JOBQ_SERVER": farm.address, "COLUMNS": "200"}
        return subprocess.run(
            [str(BIN / "jobqctl"), *args], env=env, capture_output=True, text=True, timeout=60, check=check
        )

    return run
