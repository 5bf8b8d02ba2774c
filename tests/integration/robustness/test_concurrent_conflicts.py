"""Conflicting commands from many clients at once: what jobqd answers from memory must be what it
stored. Several threads create/delete/hold queues and submit/pause/resume/cancel/requeue/delete
jobs and change priorities on a shared set of names while others load the writer; then the API's
view is compared with the view after a restart (state read back from disk). This is how the
group-commit reordering (jobqd.store.writer.merge) was found.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import grpc
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import queue_service_pb2 as qs
from jobq.v1 import queue_service_pb2_grpc as qs_grpc
from jobq.v1 import types_pb2 as pb

from tests.integration.robustness.common import stop_and_check
from tests.support.commands import cmd
from tests.support.procs import Jobqd

QUEUES = ["q1", "q2", "q3"]
RUN_S = 4.0
#: what a client may legitimately be told while racing others
EXPECTED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)


def view(d: Jobqd) -> tuple[dict[str, tuple[object, ...]], dict[str, tuple[object, ...]]]:
    queues = {
        q.name: (q.state, dict(q.quotas), q.strategy, q.preemption)
        for q in d.queues.ListQueues(qs.ListQueuesRequest(), timeout=10).queues
    }
    jobs: dict[str, tuple[object, ...]] = {}
    token = ""
    while True:
        r = d.jobs.ListJobs(js.ListJobsRequest(page_size=1000, page_token=token), timeout=10)
        for j in r.jobs:
            c = j.task_counts
            jobs[j.id] = (
                j.status,
                j.spec.queue,
                j.spec.priority,
                j.generation,
                (c.queued, c.active, c.completed, c.failed, c.canceled, c.paused),
            )
        token = r.next_page_token
        if not token:
            return queues, jobs


def test_memory_and_disk_agree_after_racing_conflicting_commands(
    jobqd_factory: Callable[..., Jobqd],
) -> None:
    d = jobqd_factory()
    stop = threading.Event()
    job_ids: list[str] = []
    unexpected: list[str] = []
    lock = threading.Lock()
    noop = cmd("noop")

    def call(fn: Callable[..., object], request: object) -> object:
        try:
            return fn(request, timeout=10)
        except grpc.RpcError as err:
            if err.code() not in EXPECTED:
                with lock:
                    unexpected.append(f"{err.code().name}: {err.details()}")
            return None

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with grpc.insecure_channel(d.address) as ch:
            jobs, queues = js_grpc.JobServiceStub(ch), qs_grpc.QueueServiceStub(ch)
            while not stop.is_set():
                q = rng.choice(QUEUES)
                ids = rng.sample(job_ids, min(len(job_ids), 2)) if job_ids else ["zzzzzzzzzzzzz"]
                action = rng.randrange(11)
                if action == 0:
                    call(queues.CreateQueue, qs.CreateQueueRequest(queue=pb.Queue(name=q)))
                elif action == 1:
                    call(queues.DeleteQueue, qs.DeleteQueueRequest(name=q))
                elif action == 2:
                    call(queues.HoldQueue, qs.HoldQueueRequest(name=q, drain=rng.random() < 0.5))
                elif action == 3:
                    call(queues.ReleaseQueue, qs.ReleaseQueueRequest(name=q))
                elif action == 4:
                    quota = {"cpu": rng.choice(["1", "2", "8"])}
                    call(queues.UpdateQueue, qs.UpdateQueueRequest(queue=pb.Queue(name=q, quotas=quota)))
                elif action in (5, 6):
                    spec = pb.JobSpec(
                        name="race",
                        queue=rng.choice([*QUEUES, "default"]),
                        tasks=[pb.TaskSpec(commands=[noop])] * rng.randint(1, 3),
                    )
                    r = call(jobs.SubmitJob, js.SubmitJobRequest(spec=spec))
                    if isinstance(r, js.SubmitJobResponse):
                        with lock:
                            job_ids.append(r.job.id)
                elif action == 7:
                    act = rng.choice([jobs.CancelJobs, jobs.PauseJobs, jobs.ResumeJobs, jobs.RequeueJobs])
                    call(act, js.JobActionRequest(job_ids=ids))
                elif action == 8:
                    call(jobs.DeleteJob, js.DeleteJobRequest(job_id=ids[0]))
                elif action == 9:
                    call(
                        jobs.SetJobPriority,
                        js.SetJobPriorityRequest(job_id=ids[0], priority=rng.randint(-3, 3)),
                    )
                else:
                    call(jobs.CancelTasks, js.TaskActionRequest(task_ids=[f"{ids[0]}.0"]))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(RUN_S)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not unexpected, unexpected[:10]
    before = view(d)
    stop_and_check(d)
    d.start()
    after = view(d)
    assert after[0] == before[0], "queues differ after a restart"
    diff = {k: (before[1].get(k), after[1].get(k)) for k in before[1].keys() | after[1].keys()}
    diff = {k: v for k, v in diff.items() if v[0] != v[1]}
    assert not diff, f"jobs differ after a restart (before, after): {list(diff.items())[:10]}"
    print(f"\n{len(before[1])} jobs, queues {sorted(before[0])}: same after a restart")
    stop_and_check(d)
