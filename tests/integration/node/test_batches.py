"""Batches on the node stream: the node reads a ServerBatch, and writes NodeBatch only to a jobqd
whose Welcome offers it (an older jobqd gets one message per write)."""

from __future__ import annotations

from jobq.v1 import node_service_pb2 as pb

from tests.integration.node.peer import FakeJobqd, StartNode, command


def assign(task_id: str) -> pb.ServerMessage:
    return pb.ServerMessage(
        assign=pb.Assign(task_id=task_id, attempt=1, job_id="job1", commands=[command("noop")])
    )


async def test_batches_only_after_a_welcome_that_offers_them(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node(slots=32)
    session = await peer.session()
    assert session.hello.batches  # the node says it reads ServerBatch

    session.welcome()  # an older jobqd: no batches
    session.send(pb.ServerMessage(batch=pb.ServerBatch(messages=[assign(f"a{i}") for i in range(16)])))
    for i in range(16):
        assert (await session.final(f"a{i}")).kind == pb.UPDATE_KIND_COMPLETED
    assert session.batches == 0

    session.welcome(batches=True)
    stray = pb.ServerMessage(welcome=pb.Welcome())  # a Welcome inside a batch is ignored (logged)
    session.send(
        pb.ServerMessage(batch=pb.ServerBatch(messages=[*[assign(f"b{i}") for i in range(16)], stray]))
    )
    for i in range(16):
        assert (await session.final(f"b{i}")).kind == pb.UPDATE_KIND_COMPLETED
        assert session.kinds(f"b{i}") == ["STARTED", "COMPLETED"]  # in order within the batches
    assert session.batches >= 1  # the 16 STARTED updates queued by one ServerBatch went out together
