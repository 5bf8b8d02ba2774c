"""The Prometheus endpoint serves every documented metric with live values; the periodic
maintenance runs quick_check and truncates the WAL."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from collections.abc import Callable

from jobq.v1 import job_service_pb2 as js
from jobq.v1 import types_pb2 as pb

from tests.integration.dispatch.test_farm import sh, wait_status
from tests.support.procs import Jobqd, NodeProc, eventually

#: docs/operations.md#metrics lists these; the Kueue one has no series until a watch reconnects
METRICS = (
    "jobq_jobs",
    "jobq_tasks",
    "jobq_jobs_by_admission",
    "jobq_queue_depth",
    "jobq_queue_jobs",
    "jobq_nodes",
    "jobq_jobs_submitted_total",
    "jobq_task_transitions_total",
    "jobq_dispatch_latency_seconds",
    "jobq_store_commit_seconds",
    "jobq_store_batch_size",
    "jobq_store_rows_total",
    "jobq_store_commit_failures_total",
    "jobq_store_read_only",
    "jobq_watch_reconnects_total",
    "jobq_rpc_rejected_total",
    "jobq_event_watchers",
    "jobq_open_streams",
    "jobq_submits_in_flight",
    "jobq_api_tokens",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            samples.setdefault(f"TYPE {line.split()[2]}", 0)
        elif line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_endpoint_serves_the_listed_metrics(
    jobqd_factory: Callable[..., Jobqd], node_factory: Callable[..., NodeProc]
) -> None:
    port = free_port()
    d = jobqd_factory("--metrics-listen", f"127.0.0.1:{port}")
    node_factory(d.address, "n1")
    job = d.jobs.SubmitJob(
        js.SubmitJobRequest(spec=pb.JobSpec(name="m", tasks=[pb.TaskSpec(commands=[sh("true")])] * 3))
    ).job
    wait_status(d, job.id, pb.JOB_STATUS_COMPLETED)
    m = eventually(lambda: (s := scrape(port)).get('jobq_nodes{state="online"}') == 1 and s, what="a scrape")
    for name in METRICS:
        assert f"TYPE {name}" in m, f"{name} is not served"
    assert m['jobq_jobs{status="completed"}'] == 1
    assert m['jobq_tasks{status="completed"}'] == 3
    assert m['jobq_jobs_by_admission{phase="finished"}'] == 1
    assert m['jobq_queue_depth{queue="default"}'] == 0
    assert m["jobq_jobs_submitted_total"] >= 1
    assert m['jobq_task_transitions_total{status="completed"}'] == 3
    assert m["jobq_dispatch_latency_seconds_count"] == 1  # one job, dispatched once
    assert m["jobq_store_commit_seconds_count"] >= 1 and m["jobq_store_batch_size_sum"] >= 1
    assert m["jobq_store_read_only"] == 0
    assert m["jobq_open_streams"] == 1  # the node's Connect
    assert not any(re.match(r"jobq_store_commit_failures_total [1-9]", k) for k in m)


def test_maintenance_runs_quick_check_and_truncates_the_wal(jobqd_factory: Callable[..., Jobqd]) -> None:
    d = jobqd_factory("--maintenance-interval", "0.3")
    for i in range(20):
        d.jobs.SubmitJob(
            js.SubmitJobRequest(spec=pb.JobSpec(name=f"j{i}", tasks=[pb.TaskSpec(commands=[sh("true")])]))
        )

    def runs() -> list[dict[str, object]]:
        lines = [json.loads(x) for x in d.log_path.read_text().splitlines() if x.startswith("{")]
        return [x for x in lines if x["event"] == "store maintenance"]

    done = eventually(lambda: [r for r in runs() if r["checkpoint"] == "done"], what="a maintenance run")
    assert done[0]["quick_check"] == "ok"
    # nothing was written since: the WAL was checkpointed into jobq.db and truncated to nothing
    eventually(lambda: (d.data_dir / "jobq.db-wal").stat().st_size == 0, timeout=5, what="an empty WAL")
