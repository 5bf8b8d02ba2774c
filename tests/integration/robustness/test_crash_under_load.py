"""Crash under load: concurrent submitters and a busy farm of real jobq-node processes while jobqd is
killed with SIGKILL at random moments and restarted on the same port and data directory.

Submitters retry a submit that failed in transport (UNAVAILABLE, DEADLINE_EXCEEDED) with the same
request_id until it is acknowledged. Every task appends "<task id> <attempt> start|done" to a
marker file from inside its command, so the test sees what really ran, independently of jobqd.

"No task completed twice", precisely:
  * an attempt number is never started twice (each (task, attempt) has at most one "start");
  * jobqd records exactly one completion per task (one TASK_STATUS_CHANGED → completed event), and
    the task's final attempt is one whose command ran to its end ("done" marker);
  * a task's command may have run to its end in an earlier attempt too only if jobqd had
    interrupted that attempt (a TASK_STATUS_CHANGED → queued event for it: the node was lost or
    restarted without reporting it before jobqd gave the task out again). Such reruns are counted.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import types_pb2 as pb

from tests.integration.robustness.common import TERMINAL_JOB, events, stop_and_check
from tests.support.commands import sh
from tests.support.procs import Jobqd, NodeProc, eventually

KILLS = 5
SUBMITTERS = 6
#: transport failures a submitter retries (same request_id); anything else fails the test
RETRY = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
]


@dataclass
class Acked:
    request_id: str
    job_id: str
    expect: int  # the job's correct terminal status
    tasks: int
    retries: int
    created: bool
    request: js.SubmitJobRequest


@dataclass
class Book:
    acked: dict[str, Acked] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    transport_codes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def job_spec(rng: random.Random, marker: Path, name: str) -> tuple[pb.JobSpec, int]:
    """A job that completes (1-3 short tasks) or, one in six, fails at once (exit 2, fail-fast)."""
    mark = f'echo "$JOBQ_TASK_ID $JOBQ_ATTEMPT {{}}" >> {marker}'
    if rng.random() < 1 / 6:
        spec = pb.JobSpec(
            name=name,
            tasks=[pb.TaskSpec(commands=[sh(f"{mark.format('start')}; exit 2")])],
            failure_policy=pb.FailurePolicy(fail_fast_exit_codes=[2]),
        )
        return spec, pb.JOB_STATUS_FAILED
    tasks = [
        pb.TaskSpec(
            name=f"t{i}",
            commands=[
                sh(f"{mark.format('start')}; sleep {rng.choice(['0', '0.1', '0.3'])}; {mark.format('done')}")
            ],
        )
        for i in range(rng.randint(1, 3))
    ]
    return pb.JobSpec(name=name, tasks=tasks, priority=rng.randint(0, 2)), pb.JOB_STATUS_COMPLETED


def submitter(k: int, address: str, marker: Path, book: Book, stop: threading.Event, batch: bool) -> None:
    rng = random.Random(1000 + k)
    n = 0
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
        stub = js_grpc.JobServiceStub(ch)
        while not stop.is_set():
            size = 2 if batch else 1
            reqs, expects = [], []
            for _ in range(size):
                n += 1
                spec, expect = job_spec(rng, marker, f"load-{k}-{n}")
                reqs.append(js.SubmitJobRequest(request_id=f"s{k}-{n}", spec=spec))
                expects.append(expect)
            retries = 0
            deadline = time.monotonic() + 60
            while True:
                try:
                    if batch:
                        results = list(stub.SubmitJobs(js.SubmitJobsRequest(jobs=reqs), timeout=5).results)
                    else:
                        results = [stub.SubmitJob(reqs[0], timeout=5)]
                    break
                except grpc.RpcError as err:
                    code = err.code()
                    with book.lock:
                        book.transport_codes[code.name] += 1
                    if code not in RETRY or time.monotonic() > deadline:
                        with book.lock:
                            book.errors.append(f"{reqs[0].request_id}: {code.name} {err.details()}")
                        return
                    retries += 1
                    time.sleep(0.1)
            with book.lock:
                for req, expect, res in zip(reqs, expects, results, strict=True):
                    book.acked[req.request_id] = Acked(
                        req.request_id, res.job.id, expect, len(req.spec.tasks), retries, res.created, req
                    )
            time.sleep(rng.uniform(0.05, 0.3))


def killer(d: Jobqd, rng: random.Random, log: list[str], errors: list[str]) -> None:
    try:
        time.sleep(2.0)
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.0, 3.5))
            d.kill()
            down = rng.uniform(0.05, 0.6)
            time.sleep(down)
            t0 = time.monotonic()
            d.start()
            log.append(f"killed, down {down:.2f}s, restarted in {time.monotonic() - t0:.2f}s")
    except Exception as err:  # surfaced by the test
        errors.append(f"killer: {err!r}")


def all_jobs(d: Jobqd) -> list[pb.Job]:
    out: list[pb.Job] = []
    token = ""
    while True:
        r = d.jobs.ListJobs(js.ListJobsRequest(page_size=1000, page_token=token), timeout=10)
        out.extend(r.jobs)
        token = r.next_page_token
        if not token:
            return out


def all_tasks(d: Jobqd, job_id: str) -> list[pb.Task]:
    return list(d.jobs.ListTasks(js.ListTasksRequest(job_id=job_id, page_size=1000), timeout=10).tasks)


def test_sigkill_under_load_loses_nothing_and_runs_nothing_twice(
    jobqd_factory: Callable[..., Jobqd], node_factory: Callable[..., NodeProc], tmp_path: Path
) -> None:
    t_start = time.monotonic()
    d = jobqd_factory("--node-timeout", "5", "--heartbeat-interval", "0.5")
    marker = tmp_path / "runs.log"
    marker.touch()
    nodes = [node_factory(d.address, f"n{i}", slots=4) for i in range(3)]
    rng = random.Random(7)
    book = Book()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=submitter, args=(k, d.address, marker, book, stop, k == SUBMITTERS - 1), daemon=True
        )
        for k in range(SUBMITTERS)
    ]
    kill_log: list[str] = []
    killer_errors: list[str] = []
    kthread = threading.Thread(target=killer, args=(d, rng, kill_log, killer_errors), daemon=True)
    for t in [*threads, kthread]:
        t.start()
    kthread.join(timeout=60)
    time.sleep(1.0)  # a little load after the last restart
    stop.set()
    for t in threads:
        t.join(timeout=70)
    assert not killer_errors, killer_errors
    assert len(kill_log) == KILLS, kill_log
    assert not book.errors, book.errors[:10]
    assert not any(t.is_alive() for t in threads)
    t_load = time.monotonic() - t_start

    # -- everything finishes --------------------------------------------------------------------
    acked = book.acked
    eventually(
        lambda: all(j.status in TERMINAL_JOB for j in all_jobs(d)),
        timeout=45,
        interval=0.5,
        what="every job terminal",
    )
    jobs = {j.id: j for j in all_jobs(d)}

    # every acknowledged submit exists, once; nothing exists that was not acknowledged
    by_job = {a.job_id: a for a in acked.values()}
    assert len(by_job) == len(acked), "two request ids were answered with the same job"
    lost = [a.request_id for a in acked.values() if a.job_id not in jobs]
    assert not lost, f"acknowledged but missing: {lost[:10]}"
    extra = sorted(set(jobs) - set(by_job))
    assert not extra, f"jobs nobody got an acknowledgement for: {extra[:10]}"
    # a retry of any acknowledged request id still answers with its job
    with grpc.insecure_channel(d.address) as ch:
        stub = js_grpc.JobServiceStub(ch)
        for a in list(acked.values())[:: max(1, len(acked) // 25)]:
            r = stub.SubmitJob(a.request, timeout=10)
            assert (r.job.id, r.created) == (a.job_id, False)

    # every job reached its correct terminal state, with every task accounted for
    tasks: dict[str, pb.Task] = {}
    for a in acked.values():
        j = jobs[a.job_id]
        assert j.status == a.expect, (a, pb.JobStatus.Name(j.status), j.status_reason)
        assert j.total_tasks == a.tasks
        for t in all_tasks(d, j.id):
            tasks[t.id] = t
            want = pb.TASK_STATUS_COMPLETED if a.expect == pb.JOB_STATUS_COMPLETED else pb.TASK_STATUS_FAILED
            assert t.status == want, (t.id, pb.TaskStatus.Name(t.status), t.message)
    assert len(tasks) == sum(a.tasks for a in acked.values())

    # -- WatchEvents from 0 replays a history consistent with the final state ---------------------
    evs = events(d.address, idle_s=1.5, limit_s=60)
    seqs = [e.sequence for e in evs]
    assert seqs == list(range(1, len(evs) + 1)), "event sequence has gaps or duplicates"
    submitted = Counter(e.job_id for e in evs if e.type == pb.EVENT_TYPE_JOB_SUBMITTED)
    assert set(submitted) == set(jobs) and set(submitted.values()) == {1}
    last_job_status: dict[str, int] = {}
    last_task_status: dict[str, int] = {}
    ends: dict[str, list[int]] = defaultdict(list)
    dispatched: Counter[tuple[str, int]] = Counter()
    interrupted: set[tuple[str, int]] = set()
    why_interrupted: Counter[str] = Counter()
    for e in evs:
        if e.type in (pb.EVENT_TYPE_JOB_SUBMITTED, pb.EVENT_TYPE_JOB_STATUS_CHANGED):
            last_job_status[e.job_id] = e.job_status
        elif e.type == pb.EVENT_TYPE_TASK_STATUS_CHANGED:
            last_task_status[e.task_id] = e.task_status
            if e.task_status == pb.TASK_STATUS_ACTIVE:
                dispatched[(e.task_id, e.attempt)] += 1
            elif e.task_status == pb.TASK_STATUS_QUEUED:
                interrupted.add((e.task_id, e.attempt))
                why_interrupted[e.reason.split(" (")[0].replace(e.node, "<node>")] += 1
            else:
                ends[e.task_id].append(e.task_status)
    assert last_job_status == {k: j.status for k, j in jobs.items()}
    assert last_task_status == {k: t.status for k, t in tasks.items()}
    assert all(n == 1 for n in dispatched.values()), "an attempt was dispatched twice"
    for task_id, t in tasks.items():
        assert ends[task_id] == [t.status], (task_id, ends[task_id])  # ended exactly once

    # -- what really ran -------------------------------------------------------------------------
    starts: Counter[tuple[str, int]] = Counter()
    done: dict[str, set[int]] = defaultdict(set)
    for line in marker.read_text().splitlines():
        task_id, attempt, what = line.split()
        if what == "start":
            starts[(task_id, int(attempt))] += 1
        else:
            done[task_id].add(int(attempt))
    twice = [k for k, n in starts.items() if n > 1]
    assert not twice, f"attempts started twice: {twice[:10]}"
    assert set(starts) <= set(dispatched), "a command ran for an attempt jobqd never dispatched"
    reruns = 0
    for task_id, t in tasks.items():
        if t.status != pb.TASK_STATUS_COMPLETED:
            continue
        assert t.attempt in done[task_id], (task_id, t.attempt, sorted(done[task_id]))
        for a in done[task_id] - {t.attempt}:
            assert (task_id, a) in interrupted, f"{task_id} attempt {a} also completed, never interrupted"
            reruns += 1

    recovered = [a for a in acked.values() if a.retries]
    from_record = [a for a in recovered if not a.created]
    interrupts = len({k for k in interrupted if k[0] in tasks})
    print(
        f"\ncrash under load: kills={len(kill_log)} acknowledged={len(acked)} "
        f"recovered={len(recovered)} (of which already stored before the crash: {len(from_record)}) "
        f"lost=0 | jobs completed={sum(j.status == pb.JOB_STATUS_COMPLETED for j in jobs.values())} "
        f"failed={sum(j.status == pb.JOB_STATUS_FAILED for j in jobs.values())} tasks={len(tasks)} "
        f"interrupted attempts={interrupts} reruns of completed commands={reruns} events={len(evs)} "
        f"| transport errors retried: {dict(book.transport_codes)} | load phase {t_load:.1f}s"
    )
    for line in kill_log:
        print("  " + line)
    if why_interrupted:
        print(f"  interruptions: {dict(why_interrupted)}")

    for n in nodes:
        n.stop()
    counts = stop_and_check(d)
    print(f"  store: {counts}; total {time.monotonic() - t_start:.1f}s")
