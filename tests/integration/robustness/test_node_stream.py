"""Malformed node-stream messages against a real jobqd, from a hand-written node.

A stream that does not start with a valid Hello is refused; updates for unknown tasks or wrong
attempts change nothing and the node is told to abort them; oversized log chunks are bounded;
updates out of order or repeated after the end are ignored. After each test jobqd stops cleanly,
logged no error, and its store is consistent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import node_service_pb2 as ns
from jobq.v1 import types_pb2 as pb

from tests.integration.robustness.common import (
    events,
    get_task,
    one_task_job,
    stop_and_check,
    submit,
    task_events,
    wait_job,
)
from tests.integration.robustness.nodeclient import FakeNode, NodeStream, complete_everything
from tests.support.commands import cmd
from tests.support.procs import Jobqd, eventually

S = grpc.StatusCode
K = ns


@pytest.fixture
def d(jobqd_factory: Callable[..., Jobqd]) -> Jobqd:
    return jobqd_factory("--heartbeat-interval", "0.5")


@pytest.fixture
def fake(d: Jobqd) -> Iterator[FakeNode]:
    node = FakeNode(d.address, "fake", slots=1)
    yield node
    node.close()


def assigned(d: Jobqd, stream: NodeStream, name: str = "j") -> tuple[str, str, int]:
    """Submit a one-task job; return (job id, task id, attempt) of its Assign on `stream`."""
    before = len(stream.assigns())
    job = submit(d, one_task_job(name, cmd("noop")))
    a = stream.wait_for(
        lambda m: m.HasField("assign") and m.assign.job_id == job.id, what=f"Assign of {job.id}"
    ).assign
    assert len(stream.assigns()) == before + 1
    return job.id, a.task_id, a.attempt


def node_names(d: Jobqd) -> set[str]:
    return {n.name for n in d.nodes.ListNodes(ns.ListNodesRequest(), timeout=5).nodes}


def snapshot(t: pb.Task) -> tuple[object, ...]:
    return (t.status, t.attempt, t.node, t.progress, tuple(t.failed_by), t.message, t.exit_code)


# -- the first message ------------------------------------------------------------------------------

BAD_FIRST = [
    ("heartbeat", ns.NodeMessage(heartbeat=ns.Heartbeat())),
    ("update", ns.NodeMessage(update=ns.TaskUpdate(task_id="x.0", attempt=1, kind=K.UPDATE_KIND_STARTED))),
    ("log", ns.NodeMessage(log=ns.LogChunk(task_id="x.0", attempt=1, lines=["hi"]))),
    ("empty message", ns.NodeMessage()),
    ("hello without a name", ns.NodeMessage(hello=ns.Hello(capacity={"slots": "1"}))),
    ("hello with a 300-char name", ns.NodeMessage(hello=ns.Hello(name="n" * 300))),
    ("hello with a newline in the name", ns.NodeMessage(hello=ns.Hello(name="bad\nname"))),
    ("hello with bad capacity", ns.NodeMessage(hello=ns.Hello(name="badcap", capacity={"slots": "lots"}))),
]


def _identity(b: bytes) -> bytes:
    return b


def test_a_stream_must_start_with_a_valid_hello(d: Jobqd) -> None:
    fake = FakeNode(d.address, "unused")
    try:
        for what, first in BAD_FIRST:
            s = fake.raw_stream(first)
            assert s.ended.wait(15), what
            assert s.error is not None and s.error.code() is S.INVALID_ARGUMENT, (what, s.error)
            assert s.error.details(), what
            assert not s.received, (what, s.received)
        # a stream closed before any message
        s = fake.raw_stream(None)
        s.close()
        assert s.error is not None and s.error.code() is S.INVALID_ARGUMENT, s.error
        # bytes that are not a NodeMessage at all, first or after a valid Hello
        connect = fake.channel.stream_stream(
            "/jobq.v1.NodeService/Connect", request_serializer=_identity, response_deserializer=_identity
        )
        with pytest.raises(grpc.RpcError) as err:
            list(connect(iter([b"\xff\xff\xff"]), timeout=10))
        assert err.value.code() is S.INVALID_ARGUMENT, err.value

        hello = ns.NodeMessage(hello=FakeNode(d.address, "garbler").hello()).SerializeToString()
        release = threading.Event()

        def requests() -> Iterator[bytes]:
            yield hello
            time.sleep(0.3)
            yield b"\x0a\x03\xff\xfe\xfd"
            release.wait(10)

        replies: list[bytes] = []

        def read_all() -> None:
            replies.extend(connect(requests(), timeout=10))

        with pytest.raises(grpc.RpcError) as err:
            read_all()
        release.set()
        assert err.value.code() is S.INVALID_ARGUMENT, err.value
        assert ns.ServerMessage.FromString(replies[0]).HasField("welcome")
    finally:
        fake.close()
    assert node_names(d) == {"garbler"}  # none of the refused ones registered
    stop_and_check(d)


# -- unknown tasks ----------------------------------------------------------------------------------

UNKNOWN_TASKS = ["zzzzzzzzzzzzz.0", "", "x", "a.b.c", "zzzzzzzzzzzzz.-1", "0000000000000.99", "t" * 100_000]


def test_updates_for_unknown_tasks_get_abort_and_change_nothing(d: Jobqd, fake: FakeNode) -> None:
    s = fake.connect()
    for i, task_id in enumerate(UNKNOWN_TASKS):
        s.update(task_id, i + 1, K.UPDATE_KIND_STARTED)
        s.update(task_id, i + 1, K.UPDATE_KIND_PROGRESS, progress=50)
        s.log(task_id, i + 1, ["nobody asked"])
        s.update(task_id, i + 1, K.UPDATE_KIND_COMPLETED, exit_code=0)
        s.update(task_id, i + 1, K.UPDATE_KIND_FAILED, exit_code=1)
    for i, task_id in enumerate(UNKNOWN_TASKS):
        abort = s.abort_for(task_id, i + 1)
        assert abort.reason
    # the node is still fine: it gets and finishes real work
    job_id, task_id, attempt = assigned(d, s)
    s.update(task_id, attempt, K.UPDATE_KIND_COMPLETED, exit_code=0)
    assert wait_job(d, job_id).status == pb.JOB_STATUS_COMPLETED
    assert not s.ended.is_set()
    fake.close()
    stop_and_check(d)


# -- wrong attempts ---------------------------------------------------------------------------------


def test_wrong_attempt_gets_abort_and_leaves_the_task_unchanged(d: Jobqd, fake: FakeNode) -> None:
    s = fake.connect()
    job_id, task_id, attempt = assigned(d, s)
    assert attempt == 1
    s.update(task_id, attempt, K.UPDATE_KIND_PROGRESS, progress=10, message="working")
    eventually(lambda: get_task(d, task_id).progress == 10, what="progress 10")
    before = snapshot(get_task(d, task_id))

    wrong = [2, 0, -1, 2**31 - 1]
    for a in wrong:
        s.update(task_id, a, K.UPDATE_KIND_STARTED)
        s.update(task_id, a, K.UPDATE_KIND_PROGRESS, progress=99, message="wrong attempt")
        s.log(task_id, a, [f"from attempt {a}"])
        s.update(task_id, a, K.UPDATE_KIND_COMPLETED, exit_code=0)
        s.update(task_id, a, K.UPDATE_KIND_FAILED, exit_code=3)
        s.update(task_id, a, K.UPDATE_KIND_ABORTED)
    for a in wrong:
        s.abort_for(task_id, a)
    # the wrong-attempt messages were all handled (their aborts came back): nothing changed
    assert snapshot(get_task(d, task_id)) == before
    assert all(ab.attempt != attempt for ab in s.aborts()), "the current attempt must not be aborted"
    lines = [
        line
        for r in d.jobs.TailTaskLog(js.TailTaskLogRequest(task_id=task_id, attempt=1), timeout=5)
        for line in r.lines
    ]
    assert not any("from attempt" in line for line in lines)

    s.update(task_id, attempt, K.UPDATE_KIND_COMPLETED, exit_code=0)
    assert wait_job(d, job_id).status == pb.JOB_STATUS_COMPLETED
    t = get_task(d, task_id)
    assert (t.status, t.attempt, t.exit_code, list(t.failed_by)) == (pb.TASK_STATUS_COMPLETED, 1, 0, [])
    fake.close()
    stop_and_check(d)


# -- oversized log chunks ---------------------------------------------------------------------------


def test_oversized_log_chunks_are_bounded_and_an_over_limit_message_only_ends_that_stream(
    d: Jobqd, fake: FakeNode
) -> None:
    s = fake.connect()
    job_id, task_id, attempt = assigned(d, s)
    s.update(task_id, attempt, K.UPDATE_KIND_STARTED)
    s.log(task_id, attempt, [f"line {i}" for i in range(20_000)])  # more lines than one chunk may carry
    s.log(task_id, attempt, ["x" * 1_000_000])  # a 1 MB line
    s.log(task_id, attempt, ["after"])

    def tail() -> list[str]:
        return [
            line
            for r in d.jobs.TailTaskLog(js.TailTaskLogRequest(task_id=task_id, lines=50_000), timeout=10)
            for line in r.lines
        ]

    lines = eventually(lambda: (t := tail()) and t[-1] == "after" and t, what="the log's last line")
    numbered = [line for line in lines if line.startswith("line ")]
    assert numbered == [f"line {i}" for i in range(10_000)], len(numbered)  # bounded per chunk
    long = [line for line in lines if line.startswith("x")]
    assert len(long) == 1 and len(long[0]) == 65_536  # bounded per line

    # a message over jobqd's 64 MiB limit: refused by grpc, which ends this stream only
    s.log(task_id, attempt, ["y" * (1 << 20)] * 65)
    assert s.ended.wait(30)
    assert s.error is not None and s.error.code() is S.RESOURCE_EXHAUSTED, s.error
    t = get_task(d, task_id)
    assert (t.status, t.attempt) == (pb.TASK_STATUS_ACTIVE, 1)
    # the node comes back listing its attempt: re-adopted (no abort), and its result counts
    s2 = fake.connect(running=[(task_id, attempt)])
    s2.update(task_id, attempt, K.UPDATE_KIND_COMPLETED, exit_code=0)
    assert wait_job(d, job_id).status == pb.JOB_STATUS_COMPLETED
    assert not s2.aborts()
    fake.close()
    stop_and_check(d)


# -- out of order, duplicates -----------------------------------------------------------------------


def test_out_of_order_and_repeated_updates(d: Jobqd, fake: FakeNode) -> None:
    s = fake.connect()
    # COMPLETED before STARTED: it is the current attempt, so it counts
    job_id, task_id, attempt = assigned(d, s, "early-completion")
    s.update(task_id, attempt, K.UPDATE_KIND_COMPLETED, exit_code=0, message="done")
    assert wait_job(d, job_id).status == pb.JOB_STATUS_COMPLETED
    done = snapshot(get_task(d, task_id))
    # STARTED / PROGRESS after the end: stale, told to abort; repeated or contradicting ends: ignored
    s.update(task_id, attempt, K.UPDATE_KIND_STARTED)
    s.update(task_id, attempt, K.UPDATE_KIND_PROGRESS, progress=5)
    s.update(task_id, attempt, K.UPDATE_KIND_COMPLETED, exit_code=0)
    s.update(task_id, attempt, K.UPDATE_KIND_FAILED, exit_code=3, message="late failure")
    s.update(task_id, attempt, K.UPDATE_KIND_ABORTED)
    s.wait_for(
        lambda m: m.HasField("abort") and m.abort.task_id == task_id and m.abort.attempt == attempt,
        what="abort of the finished attempt",
    )

    # progress out of range, unknown kinds, then a failure reported twice
    job2, task2, attempt2 = assigned(d, s, "clamped")
    s.update(task2, attempt2, K.UPDATE_KIND_PROGRESS, progress=1000)
    eventually(lambda: get_task(d, task2).progress == 100, what="progress clamped to 100")
    s.update(task2, attempt2, K.UPDATE_KIND_PROGRESS, progress=-5)
    eventually(lambda: get_task(d, task2).progress == 0, what="progress clamped to 0")
    s.update(task2, attempt2, K.UPDATE_KIND_UNSPECIFIED)
    s.update(task2, attempt2, 99)
    s.update(task2, attempt2, K.UPDATE_KIND_FAILED, exit_code=3, message="boom")
    s.update(task2, attempt2, K.UPDATE_KIND_FAILED, exit_code=4, message="boom again")
    s.update(task2, attempt2, K.UPDATE_KIND_COMPLETED, exit_code=0)
    # the only node failed it: no eligible node is left, so the job fails (and does not hang)
    assert wait_job(d, job2).status == pb.JOB_STATUS_FAILED
    time.sleep(0.5)  # let the repeated updates arrive
    t2 = get_task(d, task2)
    assert (t2.status, list(t2.failed_by), t2.exit_code) == (pb.TASK_STATUS_FAILED, ["fake"], 3)
    assert snapshot(get_task(d, task_id)) == done

    evs = events(d.address)
    ends1 = [e.task_status for e in task_events(evs, task_id) if e.task_status != pb.TASK_STATUS_ACTIVE]
    ends2 = [e.task_status for e in task_events(evs, task2) if e.task_status != pb.TASK_STATUS_ACTIVE]
    assert ends1 == [pb.TASK_STATUS_COMPLETED]
    assert ends2 == [pb.TASK_STATUS_FAILED]
    fake.close()
    stop_and_check(d)


# -- Hello listing attempts jobqd does not know; a second Hello ---------------------------------------


def test_hello_listing_unknown_attempts_aborts_them_and_holds_their_slots_until_confirmed(
    d: Jobqd, fake: FakeNode
) -> None:
    bogus = [("zzzzzzzzzzzzz.0", 3), ("0000000000000.1", 1)]
    s = fake.connect(running=bogus)
    for task_id, attempt in bogus:
        s.abort_for(task_id, attempt)
    # the node's one slot is held by attempts it may still be running: nothing new is sent yet
    job = submit(d, one_task_job("waits", cmd("noop")))
    time.sleep(1.0)
    assert not s.assigns()
    # a second Hello on the same stream is ignored (the stream stays up)
    s.send(ns.NodeMessage(hello=fake.hello()))
    for task_id, attempt in bogus:
        s.update(task_id, attempt, K.UPDATE_KIND_ABORTED)
    a = s.assign()
    assert a.job_id == job.id
    s.update(a.task_id, a.attempt, K.UPDATE_KIND_COMPLETED, exit_code=0)
    assert wait_job(d, job.id).status == pb.JOB_STATUS_COMPLETED
    assert not s.ended.is_set()
    fake.close()
    stop_and_check(d)


# -- batches ----------------------------------------------------------------------------------------


def noop_array(name: str, n: int) -> pb.JobSpec:
    return pb.JobSpec(
        name=name, array=pb.ArraySpec(template=pb.TaskSpec(commands=[cmd("noop")]), start=1, end=n)
    )


def test_a_node_that_does_not_ask_for_batches_gets_none(d: Jobqd) -> None:
    node = FakeNode(d.address, "plain", slots=8)
    s = node.connect(on_message=complete_everything)
    assert s.welcome().batches  # jobqd reads NodeBatch either way
    job = submit(d, noop_array("p", 8))
    assert wait_job(d, job.id).status == pb.JOB_STATUS_COMPLETED
    assert len(s.assigns()) == 8 and s.batches == 0
    node.close()
    stop_and_check(d)


def test_batches_both_ways_and_what_does_not_belong_in_one_is_ignored(d: Jobqd) -> None:
    node = FakeNode(d.address, "batcher", slots=40, batches=True)
    b = node.connect()
    n = 40
    job = submit(d, noop_array("b", n))
    eventually(lambda: len(b.assigns()) == n, what=f"{n} assigns")
    assert b.batches >= 1  # a dispatch pass of 40 tasks goes out in fewer writes
    parts = [
        ns.NodeMessage(hello=node.hello()),  # does not belong in a batch: ignored
        ns.NodeMessage(batch=ns.NodeBatch(messages=[ns.NodeMessage(heartbeat=ns.Heartbeat())])),  # nor this
        ns.NodeMessage(heartbeat=ns.Heartbeat()),
    ]
    for a in b.assigns():
        done = ns.TaskUpdate(task_id=a.task_id, attempt=a.attempt, kind=K.UPDATE_KIND_COMPLETED, exit_code=0)
        parts += [
            ns.NodeMessage(
                update=ns.TaskUpdate(task_id=a.task_id, attempt=a.attempt, kind=K.UPDATE_KIND_STARTED)
            ),
            ns.NodeMessage(log=ns.LogChunk(task_id=a.task_id, attempt=a.attempt, lines=[f"ran {a.task_id}"])),
            ns.NodeMessage(update=done),
        ]
    b.send(ns.NodeMessage(batch=ns.NodeBatch(messages=parts)))
    assert wait_job(d, job.id).status == pb.JOB_STATUS_COMPLETED
    first = b.assigns()[0]
    lines = [
        line
        for r in d.jobs.TailTaskLog(js.TailTaskLogRequest(task_id=first.task_id, attempt=1), timeout=5)
        for line in r.lines
    ]
    assert lines == [f"ran {first.task_id}"]
    assert not b.ended.is_set()  # the stray parts ended nothing
    node.close()
    stop_and_check(d)
