"""Losing jobqd: tasks keep running, the node reconnects, re-announces them, and delivers results."""

from __future__ import annotations

from jobq.v1 import node_service_pb2 as pb

from tests.integration.node.peer import FakeJobqd, StartNode, command, eventually, exec_


async def test_dropped_stream_reconnects_and_hello_lists_running_attempt(
    peer: FakeJobqd, start_node: StartNode
) -> None:
    await start_node()
    first = await peer.session(0)
    first.assign("t1", exec_("/bin/sh", "-c", "echo before; sleep 1; echo after"))
    await eventually(lambda: first.log_lines("t1") == ["before"], what="first line")
    first.drop()
    second = await peer.session(1)
    assert [(r.task_id, r.attempt) for r in second.hello.running] == [("t1", 1)]
    final = await second.final("t1")
    assert final.kind == pb.UPDATE_KIND_COMPLETED
    assert second.log_lines("t1") == ["after"]
    assert "COMPLETED" not in first.kinds("t1")


async def test_result_produced_while_jobqd_is_down_is_delivered_after_restart(
    peer: FakeJobqd, start_node: StartNode
) -> None:
    node = await start_node()
    first = await peer.session(0)
    first.assign("t1", exec_("/bin/sh", "-c", "sleep 0.5; echo done; exit 4"), command("noop"))
    await first.started("t1")
    await peer.stop()
    # the attempt ends while nobody listens
    await node.wait_log("attempt ended", task_id="t1", attempt=1)
    await peer.start()
    second = await peer.session(1)
    # jobqd has not seen the result yet, so the attempt is still announced as in flight ...
    assert [(r.task_id, r.attempt) for r in second.hello.running] == [("t1", 1)]
    # ... and the buffered log and result follow the Hello, in order
    final = await second.final("t1")
    assert (final.kind, final.exit_code) == (pb.UPDATE_KIND_FAILED, 4)
    assert second.log_lines("t1") == ["done"]
    kinds = [m.WhichOneof("msg") for m in second.received if m.WhichOneof("msg") != "heartbeat"]
    assert kinds == ["hello", "log", "update"]


async def test_node_keeps_trying_until_jobqd_appears(peer: FakeJobqd, start_node: StartNode) -> None:
    await peer.stop()
    await start_node()
    await peer.start()
    session = await peer.session(0)
    session.assign("t1", command("echo", message="late but fine"))
    assert (await session.final("t1")).kind == pb.UPDATE_KIND_COMPLETED
