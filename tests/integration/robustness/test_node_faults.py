"""Node faults: a node whose network is cut (its stream stalls without closing) is found by the
heartbeat timeout; its task is interrupted and runs on another, real node; when the cut-off node
comes back listing the attempt that was meanwhile given to the other node, it is told to abort it,
and the task completes exactly once.

jobqd runs with `--node-timeout 2 --heartbeat-interval 0.5`. The cut-off node is hand-written
(nodeclient.FakeNode): it stops heartbeating and reading but keeps its stream and TCP connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
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
from tests.integration.robustness.nodeclient import FakeNode
from tests.support.commands import sh
from tests.support.procs import Jobqd, NodeProc, eventually

K = ns
NODE_TIMEOUT_S = 2.0


def node_state(d: Jobqd, name: str) -> int:
    try:
        return d.nodes.GetNode(ns.GetNodeRequest(name=name), timeout=5).node.state
    except grpc.RpcError as err:
        if err.code() is grpc.StatusCode.NOT_FOUND:  # not connected yet
            return pb.NODE_STATE_UNSPECIFIED
        raise


def marker_job(marker: Path) -> pb.JobSpec:
    # the real node records every run of the command: "<task id> <attempt> <node>"
    return one_task_job(
        "cut-off",
        sh(f'sleep 1; echo "$JOBQ_TASK_ID $JOBQ_ATTEMPT $JOBQ_NODE" >> {marker}'),
        failure_policy=pb.FailurePolicy(max_interruptions=3),
    )


def test_stalled_stream_is_lost_by_heartbeat_timeout_and_its_attempt_is_aborted_when_it_returns(
    jobqd_factory: Callable[..., Jobqd], node_factory: Callable[..., NodeProc], tmp_path: Path
) -> None:
    d = jobqd_factory("--node-timeout", str(NODE_TIMEOUT_S), "--heartbeat-interval", "0.5")
    marker = tmp_path / "runs.txt"
    flaky = FakeNode(d.address, "flaky", command_types=["exec"])
    try:
        s1 = flaky.connect()
        job = submit(d, marker_job(marker))
        a = s1.assign()
        task_id = a.task_id
        assert (a.job_id, a.attempt) == (job.id, 1)
        s1.update(task_id, 1, K.UPDATE_KIND_STARTED)
        s1.update(task_id, 1, K.UPDATE_KIND_PROGRESS, progress=30)
        eventually(lambda: get_task(d, task_id).progress == 30, what="progress from flaky")
        # a real node joins; it has nothing to do while flaky holds the task
        real = node_factory(d.address, "real", slots=1)
        eventually(lambda: node_state(d, "real") == pb.NODE_STATE_ONLINE, what="real node online")

        # the network to flaky is cut: no heartbeats, nothing read, but the stream stays open
        cut = time.monotonic()
        s1.stall()
        eventually(lambda: node_state(d, "flaky") == pb.NODE_STATE_OFFLINE, timeout=15, what="flaky offline")
        detected = time.monotonic() - cut
        # (the last heartbeat went out up to 0.25 s before the cut; the reaper looks every 0.5 s)
        assert NODE_TIMEOUT_S - 0.5 <= detected <= NODE_TIMEOUT_S + 3, detected
        # jobqd also ended the stalled stream itself, cleanly, so it holds nothing for it
        s1.reading.set()
        assert s1.ended.wait(10) and s1.error is None, s1.error
        # its attempt was interrupted (not failed) and the task went to the real node
        t = eventually(
            lambda: (t := get_task(d, task_id)).attempt == 2 and t.status == pb.TASK_STATUS_ACTIVE and t,
            what="attempt 2 active",
        )
        assert (t.node, t.interruptions, list(t.failed_by)) == ("real", 1, [])

        # flaky comes back, still believing it runs attempt 1: it is told to abort it
        s2 = flaky.connect(running=[(task_id, 1)])
        abort = s2.abort_for(task_id, 1)
        assert abort.reason
        # whatever flaky reports for attempt 1 now changes nothing
        s2.update(task_id, 1, K.UPDATE_KIND_PROGRESS, progress=90)
        s2.update(task_id, 1, K.UPDATE_KIND_COMPLETED, exit_code=0, message="late result")
        s2.update(task_id, 1, K.UPDATE_KIND_ABORTED)
        assert not s2.assigns()  # and it is never given the task again while attempt 2 runs

        done = wait_job(d, job.id)
        assert done.status == pb.JOB_STATUS_COMPLETED, done
        t = get_task(d, task_id)
        assert (t.status, t.attempt, t.node, t.exit_code) == (pb.TASK_STATUS_COMPLETED, 2, "real", 0)
        assert marker.read_text().splitlines() == [f"{task_id} 2 real"]  # ran to the end once

        evs = task_events(events(d.address, job_ids=[job.id]), task_id)
        seen = [(e.task_status, e.attempt, e.node) for e in evs]
        assert seen == [
            (pb.TASK_STATUS_ACTIVE, 1, "flaky"),
            (pb.TASK_STATUS_QUEUED, 1, "flaky"),  # interrupted: lost by heartbeat timeout
            (pb.TASK_STATUS_ACTIVE, 2, "real"),
            (pb.TASK_STATUS_COMPLETED, 2, "real"),
        ], seen
        assert "lost" in evs[1].reason
        print(f"\nstalled node declared offline after {detected:.2f}s (node timeout {NODE_TIMEOUT_S}s)")
        real.stop()  # (a connected node holds jobqd's shutdown for its whole grace period)
    finally:
        flaky.close()
    stop_and_check(d)


def test_a_node_back_within_the_timeout_keeps_its_attempt(jobqd_factory: Callable[..., Jobqd]) -> None:
    """The counterpart: a short stall and a new stream listing the attempt re-adopts it."""
    d = jobqd_factory("--node-timeout", str(NODE_TIMEOUT_S), "--heartbeat-interval", "0.5")
    flaky = FakeNode(d.address, "flaky", command_types=["exec"])
    try:
        s1 = flaky.connect()
        job = submit(d, one_task_job("short-cut", sh("true")))
        a = s1.assign()
        s1.stall()
        time.sleep(NODE_TIMEOUT_S / 3)
        s2 = flaky.connect(running=[(a.task_id, a.attempt)])  # replaces the stalled stream
        assert s1.ended.wait(5)
        time.sleep(NODE_TIMEOUT_S * 1.5)  # past the timeout of the old stream: the new one counts
        assert node_state(d, "flaky") == pb.NODE_STATE_ONLINE
        assert not s2.aborts()
        s2.update(a.task_id, a.attempt, K.UPDATE_KIND_COMPLETED, exit_code=0)
        assert wait_job(d, job.id).status == pb.JOB_STATUS_COMPLETED
        t = get_task(d, a.task_id)
        assert (t.attempt, t.interruptions) == (1, 0)
    finally:
        flaky.close()
    stop_and_check(d)


def test_a_node_back_after_the_timeout_with_no_other_node_gets_the_task_again_only_after_aborting(
    jobqd_factory: Callable[..., Jobqd],
) -> None:
    """Never on two nodes, even the same one twice: the old attempt must be confirmed stopped first."""
    d = jobqd_factory("--node-timeout", str(NODE_TIMEOUT_S), "--heartbeat-interval", "0.5")
    flaky = FakeNode(d.address, "flaky", command_types=["exec"], slots=2)
    try:
        s1 = flaky.connect()
        job = submit(d, one_task_job("lonely", sh("true")))
        a = s1.assign()
        s1.stall()
        eventually(lambda: node_state(d, "flaky") == pb.NODE_STATE_OFFLINE, timeout=15, what="offline")
        eventually(lambda: get_task(d, a.task_id).status == pb.TASK_STATUS_QUEUED, what="interrupted")
        s2 = flaky.connect(running=[(a.task_id, 1)])
        s2.abort_for(a.task_id, 1)
        time.sleep(1.0)
        assert not s2.assigns(), "attempt 2 sent while attempt 1 may still run on the same node"
        s2.update(a.task_id, 1, K.UPDATE_KIND_ABORTED)
        a2 = s2.assign()
        assert (a2.task_id, a2.attempt) == (a.task_id, 2)
        s2.update(a.task_id, 2, K.UPDATE_KIND_COMPLETED, exit_code=0)
        assert wait_job(d, job.id).status == pb.JOB_STATUS_COMPLETED
    finally:
        flaky.close()
    stop_and_check(d)
