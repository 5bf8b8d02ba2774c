"""Job messages: every task status has its TaskCounts field (a status added to the domain without
one would make every response about a job with such a task fail), and the counts are there even
when all are zero."""

from __future__ import annotations

from jobq.v1 import types_pb2 as pb

from jobqd.api import mapping
from jobqd.domain.model import Job, JobDef
from jobqd.domain.states import JobStatus, TaskStatus


def test_every_task_status_has_a_task_counts_field() -> None:
    assert set(mapping._COUNT_FIELD) == set(TaskStatus)
    fields = {f.name for f in pb.TaskCounts.DESCRIPTOR.fields}
    assert set(mapping._COUNT_FIELD.values()) <= fields


def test_a_job_without_tasks_still_has_its_task_counts() -> None:
    draft = Job(job_id="d1", seq=1, defn=JobDef(name="d", tasks=()), owner="", submit_ts=1.5,
                status=JobStatus.UNDER_CONSTRUCTION)  # fmt: skip
    msg = mapping.job_pb(draft)
    assert msg.HasField("task_counts") and msg.task_counts == pb.TaskCounts()
    assert msg.submit_time.seconds == 1 and msg.submit_time.nanos == 500_000_000
