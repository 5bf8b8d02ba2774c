"""Fixtures: ``peer``, a scripted jobqd stand-in on a free loopback port, and ``start_node``, which
runs the real ``jobq-node`` against it (see peer.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from tests.integration.node.peer import NODE_BIN, FakeJobqd, NodeProcess, StartNode


@pytest.fixture
async def peer() -> AsyncIterator[FakeJobqd]:
    peer = FakeJobqd()
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest.fixture
async def start_node(peer: FakeJobqd, tmp_path: Path) -> AsyncIterator[StartNode]:
    started: list[NodeProcess] = []

    async def start(*args: str, env: dict[str, str] | None = None, slots: int = 4) -> NodeProcess:
        index = len(started)
        work_dir = tmp_path / f"work{index}"
        log_path = tmp_path / f"node{index}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_NODE_")}
        full_env.update(env or {})
        argv: Iterable[str] = [
            str(NODE_BIN),
            "--server",
            peer.address,
            "--name",
            f"node{index}",
            "--slots",
            str(slots),
            "--work-dir",
            str(work_dir),
            "--log-level",
            "debug",
            *args,
        ]
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=full_env
            )
        node = NodeProcess(proc, log_path, work_dir)
        started.append(node)
        return node

    yield start
    for node in started:
        if node.proc.returncode is None:
            node.proc.kill()
            await node.proc.wait()
