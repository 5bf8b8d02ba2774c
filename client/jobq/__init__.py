"""jobq: the SDK, the jobqctl CLI and the jobq-node service.

SDK entry points: :class:`AsyncClient` (grpc.aio) and :class:`Client` (blocking), the job-spec
builders in :mod:`jobq.spec`, the exceptions in :mod:`jobq.errors`.

The names below are imported on first use, not with the package: importing ``jobq.node`` must not
load gRPC before the node has configured it (see ``jobq/node/__init__.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobq.sdk.aio import AsyncClient
    from jobq.sdk.messages import job_filter, task_id
    from jobq.sdk.sync import Client

__all__ = ["AsyncClient", "Client", "job_filter", "task_id"]

_WHERE = {
    "AsyncClient": "jobq.sdk.aio",
    "Client": "jobq.sdk.sync",
    "job_filter": "jobq.sdk.messages",
    "task_id": "jobq.sdk.messages",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'jobq' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
