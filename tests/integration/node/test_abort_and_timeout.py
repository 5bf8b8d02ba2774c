"""Stopping commands: Abort and timeouts reach the whole process group, with SIGKILL after grace."""

from __future__ import annotations

from jobq.v1 import node_service_pb2 as pb

from tests.integration.node.peer import (
    FakeJobqd,
    PeerSession,
    StartNode,
    command,
    eventually,
    exec_,
    pid_alive,
)

# The shell and its background child both ignore SIGTERM (an ignored signal stays ignored across
# exec), so only the SIGKILL after the grace period can end them.
STUBBORN = "trap '' TERM; sleep 60 & echo child=$!; echo shell=$$; wait"


async def group_pids(session: PeerSession, task_id: str) -> list[int]:
    lines = await eventually(
        lambda: (lines := session.log_lines(task_id)) and len(lines) >= 2 and lines, what="pids in the log"
    )
    return [int(line.split("=", 1)[1]) for line in lines[:2]]


async def test_abort_kills_the_process_group(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", STUBBORN))
    pids = await group_pids(session, "t1")
    assert all(pid_alive(pid) for pid in pids)
    session.abort("t1", grace_ms=300, reason="canceled by alice")
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_ABORTED
    assert final.message == "aborted: canceled by alice"
    await eventually(lambda: not any(pid_alive(pid) for pid in pids), what="process group gone")


async def test_abort_with_cooperative_child_is_quick(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", "sleep 60 & echo child=$!; echo shell=$$; wait"))
    pids = await group_pids(session, "t1")
    session.abort("t1", grace_ms=30_000)  # SIGTERM suffices: no need to wait out the grace
    assert (await session.final("t1", timeout=10)).kind == pb.UPDATE_KIND_ABORTED
    await eventually(lambda: not any(pid_alive(pid) for pid in pids), what="process group gone")


async def test_abort_of_in_process_sleep(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", command("sleep", seconds=60), command("echo", message="never"))
    await session.started("t1")
    session.abort("t1")
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_ABORTED
    assert session.log_lines("t1") == []


async def test_abort_of_unknown_attempt_is_answered_aborted(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.abort("ghost", attempt=4)
    final = await session.final("ghost", attempt=4)
    assert final.kind == pb.UPDATE_KIND_ABORTED
    assert final.message == "not running on this node"


async def test_abort_is_idempotent(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", command("sleep", seconds=60))
    await session.started("t1")
    session.abort("t1")
    await session.final("t1")
    session.abort("t1")  # again, after it ended: answered again, nothing else happens
    await eventually(lambda: session.kinds("t1").count("ABORTED") == 2, what="second abort answered")
    assert session.kinds("t1") == ["STARTED", "ABORTED", "ABORTED"]


async def test_timeout_terminates_the_group_and_fails(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node("--grace-period", "0.3")
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", STUBBORN, timeout_s=1))
    pids = await group_pids(session, "t1")
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_FAILED
    assert final.message == "command 1/1 (exec /bin/sh): timed out after 1s"
    await eventually(lambda: not any(pid_alive(pid) for pid in pids), what="process group gone")


async def test_leftover_background_processes_are_killed_when_the_command_exits(
    peer: FakeJobqd, start_node: StartNode
) -> None:
    await start_node()
    session = await peer.session()
    session.assign("t1", exec_("/bin/sh", "-c", "sleep 60 >/dev/null 2>&1 & echo child=$!; echo shell=$$"))
    final = await session.final("t1")
    assert final.kind == pb.UPDATE_KIND_COMPLETED
    pids = await group_pids(session, "t1")
    await eventually(lambda: not any(pid_alive(pid) for pid in pids), what="leftover child gone")
