"""kill -9 right after acknowledged writes loses nothing; events continue gap-free after restart."""

from __future__ import annotations

import threading

from google.protobuf import json_format
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import types_pb2 as pb

from tests.integration.api.test_api_submit import array_spec, three_task_spec
from tests.support.procs import Jobqd


def snapshot(d: Jobqd) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    token = ""
    while True:
        page = d.jobs.ListJobs(js.ListJobsRequest(page_size=1000, page_token=token))
        for j in page.jobs:
            out[j.id] = json_format.MessageToDict(j)
        token = page.next_page_token
        if not token:
            return out


def watch(d: Jobqd, after: int, count: int) -> list[pb.Event]:
    stream = d.jobs.WatchEvents(js.WatchEventsRequest(after_sequence=after), timeout=20)
    events = []
    for resp in stream:
        events.append(resp.event)
        if len(events) == count:
            stream.cancel()
            break
    return events


def test_kill_9_after_acknowledged_submits_loses_nothing(jobqd: Jobqd) -> None:
    acked: list[str] = []
    lock = threading.Lock()

    def submitter(k: int) -> None:
        for i in range(25):
            spec = three_task_spec(name=f"s{k}-{i}") if i % 5 else array_spec(100, name=f"a{k}-{i}")
            r = jobqd.jobs.SubmitJob(js.SubmitJobRequest(request_id=f"r{k}-{i}", spec=spec))
            with lock:
                acked.append(r.job.id)

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=acked[:10]))
    jobqd.jobs.PauseJobs(js.JobActionRequest(job_ids=acked[10:20]))
    before = snapshot(jobqd)
    jobqd.kill()
    jobqd.start()
    after = snapshot(jobqd)
    assert set(acked) <= set(after)
    assert after == before
    # a retry of an acknowledged request after the crash is still recognised
    again = jobqd.jobs.SubmitJob(js.SubmitJobRequest(request_id="r0-1", spec=three_task_spec(name="s0-1")))
    assert not again.created and again.job.id in acked


def test_watch_events_continue_with_the_next_sequence_after_restart(jobqd: Jobqd) -> None:
    for i in range(5):
        jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec(name=f"j{i}")))
    history = watch(jobqd, 0, 1 + 5 * 3)  # the default queue, then submitted+pending+admitted per job
    seqs = [e.sequence for e in history]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    n = seqs[-1]
    jobqd.kill()
    jobqd.start()
    got: list[pb.Event] = []
    ready = threading.Event()

    def watcher() -> None:
        stream = jobqd.jobs.WatchEvents(js.WatchEventsRequest(after_sequence=n), timeout=20)
        ready.set()
        for resp in stream:
            got.append(resp.event)
            if (
                sum(e.type == pb.EVENT_TYPE_JOB_SUBMITTED for e in got) == 3
                and got[-1].type == pb.EVENT_TYPE_JOB_ADMISSION_CHANGED
                and got[-1].admission == pb.ADMISSION_PHASE_ADMITTED
            ):
                stream.cancel()
                return

    t = threading.Thread(target=watcher)
    t.start()
    ready.wait(5)
    for i in range(3):
        jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec(name=f"k{i}")))
    t.join(20)
    assert [e.sequence for e in got] == list(range(n + 1, n + 1 + len(got)))
    assert got[0].type == pb.EVENT_TYPE_JOB_SUBMITTED
    assert [e.job_id for e in got if e.type == pb.EVENT_TYPE_JOB_SUBMITTED] == [
        e.job_id for e in got if e.type == pb.EVENT_TYPE_JOB_SUBMITTED
    ][:3]


def test_watch_replay_then_live_has_no_gap_or_duplicate(jobqd: Jobqd) -> None:
    for i in range(20):
        jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec(name=f"j{i}")))
    got: list[int] = []

    def watcher() -> None:
        stream = jobqd.jobs.WatchEvents(js.WatchEventsRequest(after_sequence=0), timeout=30)
        for resp in stream:
            got.append(resp.event.sequence)
            if len(got) == 121:
                stream.cancel()
                return

    t = threading.Thread(target=watcher)
    t.start()
    for i in range(20):  # submitted while the watcher replays
        jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec(name=f"k{i}")))
    t.join(30)
    # each submit is 3 events (submitted, pending, admitted) after the default queue's one
    assert got == list(range(1, 122))
