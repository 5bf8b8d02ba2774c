"""The outbox's bounds: logs wait for room while connected, drop after the hold while not;
results are tracked until written. (In-memory, no I/O.)"""

from __future__ import annotations

import asyncio

from jobq.node.outbox import Outbox
from jobq.v1 import node_service_pb2 as pb


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def chunk(text: str = "x") -> pb.NodeMessage:
    return pb.NodeMessage(log=pb.LogChunk(task_id="t", attempt=1, lines=[text]))


def drain(outbox: Outbox) -> list[pb.NodeMessage]:
    out = []
    while (item := outbox.take()) is not None:
        outbox.sent(item)
        out.append(item.message)
    return out


async def test_log_producer_waits_for_room_while_connected() -> None:
    outbox = Outbox(log_budget_bytes=100, max_updates=10, hold_s=5)
    outbox.set_connected(True)
    assert await outbox.put_log(chunk("a"), 60)
    blocked = asyncio.create_task(outbox.put_log(chunk("b"), 60))
    await asyncio.sleep(0)
    assert not blocked.done()  # over budget: waits
    item = outbox.take()
    assert item is not None
    outbox.sent(item)
    assert await asyncio.wait_for(blocked, 5) is True
    assert outbox.log_bytes == 60


async def test_one_oversized_chunk_passes_when_queue_is_empty() -> None:
    outbox = Outbox(log_budget_bytes=10, max_updates=10, hold_s=5)
    outbox.set_connected(True)
    assert await asyncio.wait_for(outbox.put_log(chunk(), 1000), 5)


async def test_logs_drop_after_hold_while_disconnected() -> None:
    clock = FakeClock()
    outbox = Outbox(log_budget_bytes=100, max_updates=10, hold_s=5, clock=clock)
    assert await outbox.put_log(chunk("a"), 80)
    clock.now = 5.0  # disconnected for the whole hold
    assert await asyncio.wait_for(outbox.put_log(chunk("b"), 80), 5) is False
    assert [m.log.lines[0] for m in drain(outbox)] == ["a"]


async def test_disconnect_turns_a_waiting_producer_into_a_dropping_one() -> None:
    outbox = Outbox(log_budget_bytes=100, max_updates=10, hold_s=0.05)
    outbox.set_connected(True)
    await outbox.put_log(chunk("a"), 80)
    waiting = asyncio.create_task(outbox.put_log(chunk("b"), 80))
    await asyncio.sleep(0)
    assert not waiting.done()  # connected: it would wait for room forever
    outbox.set_connected(False)
    assert await asyncio.wait_for(waiting, 5) is False  # dropped once the hold ran out


async def test_results_are_tracked_until_written_and_order_is_kept() -> None:
    outbox = Outbox(log_budget_bytes=1000, max_updates=10, hold_s=5)
    outbox.set_connected(True)
    outbox.put_update(task_id="t", attempt=1, kind=pb.UPDATE_KIND_STARTED)
    await outbox.put_log(chunk("line"), 10)
    outbox.put_update(task_id="t", attempt=1, kind=pb.UPDATE_KIND_COMPLETED, exit_code=0)
    assert outbox.undelivered_results() == [("t", 1)]
    first = outbox.take()
    assert first is not None
    outbox.unsend(first)  # a failed write goes back to the front
    kinds = [m.WhichOneof("msg") for m in drain(outbox)]
    assert kinds == ["update", "log", "update"]
    assert outbox.undelivered_results() == []
    assert outbox.idle


async def test_update_cap_drops_oldest_non_final_never_results() -> None:
    outbox = Outbox(log_budget_bytes=1000, max_updates=2, hold_s=5)
    outbox.put_update(task_id="t", attempt=1, kind=pb.UPDATE_KIND_PROGRESS, progress=10)
    outbox.put_update(task_id="t", attempt=1, kind=pb.UPDATE_KIND_PROGRESS, progress=20)
    outbox.put_update(task_id="t", attempt=1, kind=pb.UPDATE_KIND_PROGRESS, progress=30)
    outbox.put_update(task_id="t", attempt=1, kind=pb.UPDATE_KIND_FAILED, exit_code=1)
    sent = drain(outbox)
    assert [(m.update.kind, m.update.progress) for m in sent] == [
        (pb.UPDATE_KIND_PROGRESS, 20),
        (pb.UPDATE_KIND_PROGRESS, 30),
        (pb.UPDATE_KIND_FAILED, 0),
    ]
    assert sent[2].update.exit_code == 1


def test_results_written_just_before_a_broken_stream_are_sent_again() -> None:
    clock = FakeClock()
    outbox = Outbox(log_budget_bytes=100, max_updates=10, hold_s=5, clock=clock)
    outbox.set_connected(True)
    outbox.put_update(task_id="old", attempt=1, kind=pb.UPDATE_KIND_COMPLETED)
    drain(outbox)
    clock.now = 60.0  # long ago: jobqd has surely stored it
    outbox.put_update(task_id="t", attempt=2, kind=pb.UPDATE_KIND_COMPLETED)
    outbox.put_update(task_id="u", attempt=1, kind=pb.UPDATE_KIND_PROGRESS, progress=5)
    outbox.put_update(task_id="u", attempt=1, kind=pb.UPDATE_KIND_FAILED, exit_code=1)
    drain(outbox)
    assert outbox.undelivered_results() == []
    outbox.set_connected(False)
    assert outbox.resend_recent() == 2
    assert sorted(outbox.undelivered_results()) == [("t", 2), ("u", 1)]  # listed in the next Hello
    again = drain(outbox)
    assert [(m.update.task_id, m.update.kind) for m in again] == [
        ("t", pb.UPDATE_KIND_COMPLETED),
        ("u", pb.UPDATE_KIND_FAILED),
    ]
    outbox.set_connected(True)
    assert outbox.undelivered_results() == []
