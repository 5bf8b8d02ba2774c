"""jobq: the SDK, the jobqctl CLI and the jobq-node service.

SDK entry points: :class:`AsyncClient` (grpc.aio) and :class:`Client` (blocking), the job-spec
builders in :mod:`jobq.spec`, the exceptions in :mod:`jobq.errors`.
"""

from jobq.sdk.aio import AsyncClient
from jobq.sdk.messages import job_filter, task_id
from jobq.sdk.sync import Client

__all__ = ["AsyncClient", "Client", "job_filter", "task_id"]
