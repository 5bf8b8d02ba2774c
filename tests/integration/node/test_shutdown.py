"""SIGTERM: the node stops taking work, aborts what runs (with grace), reports, and exits 0."""

from __future__ import annotations

import signal

from jobq.v1 import node_service_pb2 as pb

from tests.integration.node.peer import FakeJobqd, StartNode, command, eventually, exec_, pid_alive


async def test_sigterm_aborts_running_tasks_reports_and_exits(peer: FakeJobqd, start_node: StartNode) -> None:
    node = await start_node("--grace-period", "0.5")
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", "trap '' TERM; echo pid=$$; sleep 60"))
    session.assign("t2", command("sleep", seconds=60))
    lines = await eventually(lambda: session.log_lines("t1"), what="pid line")
    pid = int(lines[0].split("=")[1])
    await session.started("t2")
    assert await node.stop() == 0
    for task in ("t1", "t2"):
        final = await session.final(task, timeout=1)
        assert final.kind == pb.UPDATE_KIND_ABORTED
        assert final.message == "aborted: node shutting down"
    assert not pid_alive(pid)
    assert session.ended


async def test_second_signal_kills_at_once(peer: FakeJobqd, start_node: StartNode) -> None:
    node = await start_node("--grace-period", "60")
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", "trap '' TERM; echo pid=$$; sleep 60"))
    lines = await eventually(lambda: session.log_lines("t1"), what="pid line")
    pid = int(lines[0].split("=")[1])
    node.proc.send_signal(signal.SIGINT)
    await node.wait_log("aborting running attempts")
    node.proc.send_signal(signal.SIGINT)
    assert await node.stop(timeout=15) == 0
    assert (await session.final("t1", timeout=1)).kind == pb.UPDATE_KIND_ABORTED
    assert not pid_alive(pid)


async def test_bad_usage_exits_2(start_node: StartNode) -> None:
    node = await start_node("--labels", "not-a-label")
    assert await node.exited() == 2
    assert "expected key=value" in node.log_path.read_text()
