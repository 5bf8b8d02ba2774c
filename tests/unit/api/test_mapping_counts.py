"""Every task status has its TaskCounts field: a status added to the domain without one would make
every response about a job with such a task fail."""

from __future__ import annotations

from jobq.v1 import types_pb2 as pb

from jobqd.api import mapping
from jobqd.domain.states import TaskStatus


def test_every_task_status_has_a_task_counts_field() -> None:
    assert set(mapping._COUNT_FIELD) == set(TaskStatus)
    fields = {f.name for f in pb.TaskCounts.DESCRIPTOR.fields}
    assert set(mapping._COUNT_FIELD.values()) <= fields
