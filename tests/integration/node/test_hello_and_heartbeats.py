"""What the node announces: Hello first, then heartbeats at jobqd's interval listing running work."""

from __future__ import annotations

from jobq.v1 import node_service_pb2 as pb

from tests.integration.node.peer import FakeJobqd, StartNode, command, eventually


async def test_hello_describes_the_node(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node(
        "--labels", "zone=eu-1,gpu-model=a100", "--cpu", "8", "--memory", "32Gi", "--gpu", "2", slots=3
    )
    session = await peer.session()
    assert session.received[0].WhichOneof("msg") == "hello"
    hello = session.hello
    assert hello.name == "node0"
    assert dict(hello.labels) == {"zone": "eu-1", "gpu-model": "a100"}
    assert dict(hello.capacity) == {"slots": "3", "cpu": "8", "memory": "32Gi", "gpu": "2"}
    assert list(hello.command_types) == ["exec", "sleep", "echo", "noop"]  # no shell by default
    assert list(hello.running) == []
    assert hello.version


async def test_flags_come_from_the_environment_too(peer: FakeJobqd, start_node: StartNode) -> None:
    await start_node(
        env={
            "JOBQ_NODE_LABELS": "rack=r7",
            "JOBQ_NODE_ALLOW_SHELL": "1",
            "JOBQ_NODE_TASK_TYPES": "shell,noop",
        }
    )
    hello = (await peer.session()).hello
    assert dict(hello.labels) == {"rack": "r7"}
    assert list(hello.command_types) == ["shell", "noop"]


async def test_heartbeats_follow_welcome_and_list_running_attempts(
    peer: FakeJobqd, start_node: StartNode
) -> None:
    await start_node()
    session = await peer.session()
    session.welcome(heartbeat_ms=100)
    session.assign("t1", command("sleep", seconds=30))
    await session.started("t1")

    def beats_with_t1() -> list[pb.Heartbeat]:
        return [b for b in session.heartbeats() if [(r.task_id, r.attempt) for r in b.running] == [("t1", 1)]]

    await eventually(lambda: len(beats_with_t1()) >= 3, what="three heartbeats listing t1")
