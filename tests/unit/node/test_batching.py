"""Attempt logs: lines go out in batches, progress coalesced, order kept. (In-memory, no I/O.)"""

from __future__ import annotations

import asyncio

from jobq.node.batching import AttemptLog, Flusher
from jobq.node.outbox import Outbox
from jobq.v1 import node_service_pb2 as pb


def sent(outbox: Outbox) -> list[pb.NodeMessage]:
    out = []
    while (item := outbox.take()) is not None:
        outbox.sent(item)
        out.append(item.message)
    return out


def make(max_lines: int = 3, max_bytes: int = 10_000) -> tuple[Outbox, Flusher, AttemptLog]:
    outbox = Outbox(log_budget_bytes=1_000_000, max_updates=100, hold_s=1)
    outbox.set_connected(True)
    flusher = Flusher(interval_s=0.01)
    log = AttemptLog(
        task_id="t", attempt=2, outbox=outbox, flusher=flusher, max_lines=max_lines, max_bytes=max_bytes
    )
    return outbox, flusher, log


async def test_full_batches_go_out_at_once_the_rest_on_flush() -> None:
    outbox, _, log = make(max_lines=3)
    await log.write(["a", "b"])
    assert sent(outbox) == []  # not full yet: waits for the flusher
    await log.write(["c", "d"])
    messages = sent(outbox)
    assert [list(m.log.lines) for m in messages] == [["a", "b", "c", "d"]]
    assert messages[0].log.task_id == "t"
    assert messages[0].log.attempt == 2


async def test_flusher_sends_partial_batches_after_the_interval() -> None:
    outbox, flusher, log = make(max_lines=100)
    runner = asyncio.create_task(flusher.run())
    try:
        await log.write(["only"])
        async with asyncio.timeout(5):
            while not len(outbox):
                await asyncio.sleep(0.005)
        assert [list(m.log.lines) for m in sent(outbox)] == [["only"]]
    finally:
        runner.cancel()


async def test_progress_is_coalesced_and_follows_its_lines() -> None:
    outbox, _, log = make(max_lines=100)
    await log.write(["PROGRESS: 10"])
    log.set_progress(10)
    await log.write(["PROGRESS: 20"])
    log.set_progress(20)
    await log.flush()
    await log.flush()  # nothing new: nothing sent
    messages = sent(outbox)
    assert [m.WhichOneof("msg") for m in messages] == ["log", "update"]
    assert messages[1].update.kind == pb.UPDATE_KIND_PROGRESS
    assert messages[1].update.progress == 20


async def test_dropped_lines_are_announced_in_the_next_batch() -> None:
    outbox = Outbox(log_budget_bytes=10, max_updates=100, hold_s=0)  # disconnected, no hold
    log = AttemptLog(
        task_id="t", attempt=1, outbox=outbox, flusher=Flusher(interval_s=1), max_lines=1, max_bytes=10**6
    )
    await log.write(["first"])  # queue empty: one chunk always fits
    await log.write(["lost"])  # no room, jobqd away: dropped
    assert outbox.dropped_lines == 1
    sent(outbox)
    await log.write(["back"])
    assert [list(m.log.lines) for m in sent(outbox)] == [
        ["[jobq-node] 1 log lines dropped: jobqd was unreachable", "back"]
    ]
