"""jobq benchmarks: real processes on loopback, each figure printed beside a baseline from the same run.

    make bench                      # everything (~3 minutes on 2 cores)
    make bench BENCH_ARGS="--only submit,array --json"

Benchmarks (DESIGN §10; targets in the issues):
  submit    durable SubmitJob, 32 concurrent clients: first from bench/loadgen (a Go client built
            on the fly with the machine's Go, cached in ~/.cache/jobq-bench), then from Python
            (4 processes × 8, which take ~60 % of the 2 cores themselves); baseline: the same jobqd
            with group commit off (one commit per request); beside it the transport's ceiling
            (empty Health/Check calls from the same clients) and SubmitJobs in batches of 100
  array     one 100,000-task array SubmitJob; baseline: per-row commits of task rows into SQLite
            with the same pragmas (what storing every task as its own durable write would cost)
  noop      10,000 `noop` tasks end to end on 8 nodes × 4 slots; baseline: empty gRPC round trips
            per second to the same jobqd (the transport ceiling of one client)
  exec      2,000 `exec true` tasks end to end on 8 nodes × 4 slots; baseline: the same machine
            spawning `true` 8 at a time from one Python process with no queue at all
  memory    RSS of jobqd holding a 1,000,000-task array; baseline: the idle daemon
  restart   start→serving with 100,000 jobs in the store, and ListJobs with a label filter over
            them; baselines: an empty store's start, a GetJob round trip
  latency   submit→dispatch and submit→done of single noop tasks on idle nodes (p50/p99);
            baseline: a SubmitJob round trip alone
  kueue     jobqd in kueue mode on the real kube-apiserver + Kueue (tools/kube-testenv; skipped
            when not built; bench/kueue_bench.py): Admitted→first task assigned p50/p99 over 200
            jobs, baseline Kueue's own create→Admitted; 500 one-task jobs through jobqd + Kueue,
            baseline Kueue alone with a trivial owner script of plain Workloads
Nothing here asserts: it reports. Timing assertions do not belong in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import node_service_pb2 as ns
from jobq.v1 import node_service_pb2_grpc as ns_grpc
from jobq.v1 import types_pb2 as pb

sys.path.insert(0, str(Path(__file__).parent))
from harness import jobqd, loadgen_binary, native_rate, nodes, run_python
from kueue_bench import bench_kueue

Row = dict[str, Any]


def cmd(type_: str, **params: object) -> pb.Command:
    s = struct_pb2.Struct()
    s.update(params)
    return pb.Command(type=type_, params=s)


# -- submit --------------------------------------------------------------------------------------

_CLIENT = r"""
import asyncio, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobq.v1 import job_service_pb2 as js, job_service_pb2_grpc as g
address, conc, seconds, what = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
submit = js.SubmitJobRequest.FromString(bytes.fromhex(sys.argv[5]))
BATCH = 100
async def main():
    async with grpc.aio.insecure_channel(address) as ch:
        if what == "submit":
            call, req = g.JobServiceStub(ch).SubmitJob, submit
        elif what == "batch":  # SubmitJobs of BATCH jobs: counted as jobs
            call = g.JobServiceStub(ch).SubmitJobs
            req = js.SubmitJobsRequest(jobs=[submit] * BATCH)
        else:  # the same clients' empty calls: the transport's ceiling
            call, req = health_pb2_grpc.HealthStub(ch).Check, health_pb2.HealthCheckRequest()
        await call(req)
        start = time.perf_counter(); end = start + seconds; n = 0
        async def worker():
            nonlocal n
            while time.perf_counter() < end:
                await call(req); n += BATCH if what == "batch" else 1
        await asyncio.gather(*(worker() for _ in range(conc)))
        print(n, time.perf_counter() - start)
asyncio.run(main())
"""


def _submit_request() -> bytes:
    """The benchmark's submit: one job of three `exec true` tasks, encoded once for every client."""
    params = struct_pb2.Struct()
    params.update({"argv": ["true"]})
    task = pb.TaskSpec(commands=[pb.Command(type="exec", params=params)])
    return js.SubmitJobRequest(spec=pb.JobSpec(name="bench", tasks=[task] * 3)).SerializeToString()


def _submit_rate(
    address: str, *, procs: int = 4, conc: int = 8, seconds: float = 5.0, what: str = "submit"
) -> float:
    args = [address, str(conc), str(seconds), what, _submit_request().hex()]
    ps = [run_python(_CLIENT, args) for _ in range(procs)]
    total, longest = 0, 0.0
    for p in ps:
        out, _ = p.communicate(timeout=120)
        n, dt = out.split()
        total += int(n)
        longest = max(longest, float(dt))
    return total / longest


SUBMIT = "/jobq.v1.JobService/SubmitJob"
HEALTH = "/grpc.health.v1.Health/Check"


def bench_submit_native(quick: bool) -> list[Row]:
    """The same 32 concurrent SubmitJob callers from bench/loadgen (Go): on 2 cores, Python clients
    take ~60 % of the CPU themselves, so this is the figure that shows what jobqd can take."""
    binary = loadgen_binary()
    if binary is None:
        return []
    secs = 2.0 if quick else 5.0
    req = _submit_request()
    health = health_pb2.HealthCheckRequest().SerializeToString()
    grouped, single, ceiling = [], [], []
    for _ in range(1 if quick else 2):  # alternated: the machine's speed drifts by a third
        with jobqd() as addr:
            grouped.append(native_rate(binary, addr, SUBMIT, req, seconds=secs))
            ceiling.append(native_rate(binary, addr, HEALTH, health, seconds=secs))
        with jobqd("--group-commit-max-batch", "1") as addr:
            single.append(native_rate(binary, addr, SUBMIT, req, seconds=secs))
    g, s, c = max(grouped), max(single), max(ceiling)
    return [
        {
            "benchmark": "submit (32 native clients, durable)",
            "value": g,
            "unit": "jobs/s",
            "baseline": s,
            "baseline_name": "one commit per request",
            "target": 2000,
            "detail": (
                f"best of {len(grouped)} (runs: {', '.join(f'{x:,.0f}' for x in grouped)}); clients: "
                f"bench/loadgen (Go), 32 callers on 4 connections; transport ceiling: {c:,.0f} empty "
                f"Health/Check calls/s to the same jobqd; submits reach {g / c:.0%} of it"
            ),
        }
    ]


def bench_submit(quick: bool) -> list[Row]:
    secs = 2.0 if quick else 5.0
    with jobqd() as addr:
        grouped = _submit_rate(addr, seconds=secs)
        ceiling = _submit_rate(addr, seconds=secs, what="health")
    with jobqd() as addr:
        batched = _submit_rate(addr, procs=2, conc=2, seconds=secs, what="batch")
    with jobqd("--group-commit-max-batch", "1") as addr:
        single = _submit_rate(addr, seconds=secs)
    return [
        *bench_submit_native(quick),
        {
            "benchmark": "submit (32 Python clients, durable)",
            "value": grouped,
            "unit": "jobs/s",
            "baseline": single,
            "baseline_name": "one commit per request",
            "target": 2000,
            "detail": (
                f"transport ceiling: {ceiling:,.0f} empty Health/Check calls/s from the same clients "
                f"to the same jobqd; submits reach {grouped / ceiling:.0%} of it"
            ),
        },
        {
            "benchmark": "submit in batches of 100 (SubmitJobs, 4 clients)",
            "value": batched,
            "unit": "jobs/s",
            "baseline": grouped,
            "baseline_name": "single-job submits, 32 clients (above)",
            "target": 0,
        },
    ]


# -- array ---------------------------------------------------------------------------------------


def bench_array(quick: bool) -> list[Row]:
    n = 100_000
    spec = pb.JobSpec(
        name="array",
        array=pb.ArraySpec(
            template=pb.TaskSpec(commands=[cmd("exec", argv=["echo", "{index}"])]), start=1, end=n
        ),
    )
    with jobqd() as addr, grpc.insecure_channel(addr) as ch:
        stub = js_grpc.JobServiceStub(ch)
        stub.SubmitJob(
            js.SubmitJobRequest(spec=pb.JobSpec(name="warm", tasks=[pb.TaskSpec(commands=[cmd("noop")])]))
        )
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            job = stub.SubmitJob(js.SubmitJobRequest(spec=spec)).job
            times.append(time.perf_counter() - t0)
            assert job.total_tasks == n
        best = min(times)
    rows = 1000 if quick else 3000
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "b.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (job TEXT, pos INTEGER, spec TEXT, PRIMARY KEY (job, pos))")
        t0 = time.perf_counter()
        for i in range(rows):
            db.execute("BEGIN")
            db.execute("INSERT INTO t VALUES (?,?,?)", ("j", i, f'["exec",["echo","{i}"]]'))
            db.execute("COMMIT")
        per_row = rows / (time.perf_counter() - t0)
        db.close()
    return [
        {
            "benchmark": "array submit (100,000 tasks)",
            "value": n / best,
            "unit": "tasks/s",
            "baseline": per_row,
            "baseline_name": "per-row commits",
            "target": 100_000,
            "detail": f"{best * 1000:.1f} ms per 100k-task submit",
        }
    ]


# -- dispatch ------------------------------------------------------------------------------------


def _wait_online(addr: str, count: int) -> None:
    with grpc.insecure_channel(addr) as ch:
        stub = ns_grpc.NodeAdminServiceStub(ch)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (
                sum(n.state == pb.NODE_STATE_ONLINE for n in stub.ListNodes(ns.ListNodesRequest()).nodes)
                >= count
            ):
                return
            time.sleep(0.05)
    raise RuntimeError("nodes did not come online")


def _run_to_completion(addr: str, spec: pb.JobSpec, timeout: float = 300) -> float:
    with grpc.insecure_channel(addr) as ch:
        stub = js_grpc.JobServiceStub(ch)
        t0 = time.perf_counter()
        job = stub.SubmitJob(js.SubmitJobRequest(spec=spec)).job
        stream = stub.WatchEvents(
            js.WatchEventsRequest(
                after_sequence=-1, job_ids=[job.id], types=[pb.EVENT_TYPE_JOB_STATUS_CHANGED]
            ),
            timeout=timeout,
        )
        for resp in stream:
            if resp.event.job_status in (
                pb.JOB_STATUS_COMPLETED,
                pb.JOB_STATUS_FAILED,
                pb.JOB_STATUS_CANCELED,
            ):
                stream.cancel()
                break
        dt = time.perf_counter() - t0
        final = stub.GetJob(js.GetJobRequest(job_id=job.id)).job
        if final.status != pb.JOB_STATUS_COMPLETED:
            raise RuntimeError(
                f"benchmark job ended {pb.JobStatus.Name(final.status)}: {final.status_reason}"
            )
        return dt


def _ping_rate(addr: str, seconds: float = 2.0) -> float:
    async def main() -> float:
        async with grpc.aio.insecure_channel(addr) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            n = 0
            end = time.perf_counter() + seconds
            t0 = time.perf_counter()
            while time.perf_counter() < end:
                await stub.Check(health_pb2.HealthCheckRequest())
                n += 1
            return n / (time.perf_counter() - t0)

    return asyncio.run(main())


def bench_noop(quick: bool) -> list[Row]:
    n = 2000 if quick else 10_000
    spec = pb.JobSpec(
        name="noop", array=pb.ArraySpec(template=pb.TaskSpec(commands=[cmd("noop")]), start=1, end=n)
    )
    with jobqd() as addr, nodes(addr, 8, 4):
        _wait_online(addr, 8)
        dt = _run_to_completion(addr, spec)
        ping = _ping_rate(addr)
    return [
        {
            "benchmark": f"end to end, {n:,} noop tasks, 8 nodes × 4 slots",
            "value": n / dt,
            "unit": "tasks/s",
            "baseline": ping,
            "baseline_name": "empty gRPC round trips/s (one client)",
            "target": 2000,
        }
    ]


_SPAWN = r"""
import asyncio, sys, time
n, conc = int(sys.argv[1]), int(sys.argv[2])
async def main():
    sem = asyncio.Semaphore(conc)
    async def one():
        async with sem:
            p = await asyncio.create_subprocess_exec("true"); await p.wait()
    t0 = time.perf_counter(); await asyncio.gather(*(one() for _ in range(n))); print(n / (time.perf_counter() - t0))
asyncio.run(main())
"""


def bench_exec(quick: bool) -> list[Row]:
    n = 500 if quick else 2000
    spec = pb.JobSpec(
        name="exec",
        array=pb.ArraySpec(template=pb.TaskSpec(commands=[cmd("exec", argv=["true"])]), start=1, end=n),
    )
    with jobqd() as addr, nodes(addr, 8, 4):
        _wait_online(addr, 8)
        dt = _run_to_completion(addr, spec)
    p = run_python(_SPAWN, [str(n), "8"])
    out, _ = p.communicate(timeout=300)
    return [
        {
            "benchmark": f"end to end, {n:,} exec true, 8 nodes × 4 slots",
            "value": n / dt,
            "unit": "tasks/s",
            "baseline": float(out),
            "baseline_name": "bare spawn of `true`, 8 at a time, no queue",
            "target": 400,
        }
    ]


# -- latency -------------------------------------------------------------------------------------


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench_latency(quick: bool) -> list[Row]:
    samples = 50 if quick else 200
    spec = pb.JobSpec(name="lat", tasks=[pb.TaskSpec(commands=[cmd("noop")])])
    dispatch: list[float] = []
    done: list[float] = []
    rtt: list[float] = []
    with jobqd() as addr, nodes(addr, 2, 4):
        _wait_online(addr, 2)
        with grpc.insecure_channel(addr) as ch:
            stub = js_grpc.JobServiceStub(ch)
            stream = stub.WatchEvents(
                js.WatchEventsRequest(after_sequence=-1, types=[pb.EVENT_TYPE_TASK_STATUS_CHANGED])
            )
            it = iter(stream)
            for i in range(samples + 5):
                t0 = time.perf_counter()
                job = stub.SubmitJob(js.SubmitJobRequest(spec=spec)).job
                t_ack = time.perf_counter()
                t_active = t_done = 0.0
                while not t_done:
                    ev = next(it).event
                    if ev.job_id != job.id:
                        continue
                    if ev.task_status == pb.TASK_STATUS_ACTIVE:
                        t_active = time.perf_counter()
                    elif ev.task_status == pb.TASK_STATUS_COMPLETED:
                        t_done = time.perf_counter()
                if i >= 5:  # warm-up
                    rtt.append(t_ack - t0)
                    dispatch.append((t_active or t_done) - t0)
                    done.append(t_done - t0)
                time.sleep(0.01)  # idle nodes between samples
            stream.cancel()
    ms = 1000.0
    return [
        {
            "benchmark": "submit→dispatch p50 / p99 (idle nodes)",
            "value": _pct(dispatch, 0.5) * ms,
            "value2": _pct(dispatch, 0.99) * ms,
            "unit": "ms",
            "baseline": _pct(rtt, 0.5) * ms,
            "baseline2": _pct(rtt, 0.99) * ms,
            "baseline_name": "SubmitJob round trip alone",
            "target": 20,
        },
        {
            "benchmark": "submit→task done p50 / p99 (noop, idle nodes)",
            "value": _pct(done, 0.5) * ms,
            "value2": _pct(done, 0.99) * ms,
            "unit": "ms",
            "baseline": statistics.mean(rtt) * ms,
            "baseline_name": "mean SubmitJob round trip",
            "target": 20,
        },
    ]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _jobqd_pid(addr: str) -> int:
    import subprocess

    return int(subprocess.check_output(["pgrep", "-f", f"jobqd --listen {addr}"]).split()[0])


def bench_memory(quick: bool) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    spec = pb.JobSpec(
        name="mem",
        array=pb.ArraySpec(
            template=pb.TaskSpec(commands=[cmd("exec", argv=["echo", "{index}"])]), start=1, end=n
        ),
    )
    with jobqd() as addr, grpc.insecure_channel(addr) as ch:
        stub = js_grpc.JobServiceStub(ch)
        pid = _jobqd_pid(addr)
        stub.SubmitJob(
            js.SubmitJobRequest(spec=pb.JobSpec(name="warm", tasks=[pb.TaskSpec(commands=[cmd("noop")])]))
        )
        idle = _rss_kb(pid)
        t0 = time.perf_counter()
        stub.SubmitJob(js.SubmitJobRequest(spec=spec))
        dt = time.perf_counter() - t0
        held = _rss_kb(pid)
    return [
        {
            "benchmark": f"memory holding {n:,} queued tasks (RSS)",
            "value": held / 1024,
            "unit": "MiB",
            "baseline": idle / 1024,
            "baseline_name": "idle jobqd",
            "target": 1024,
            "detail": f"acknowledged durably in {dt * 1000:.0f} ms",
        }
    ]


def bench_restart(quick: bool) -> list[Row]:
    import subprocess

    jobs = 10_000 if quick else 100_000
    spec = pb.JobSpec(
        name="r", tasks=[pb.TaskSpec(commands=[cmd("exec", argv=["true"])])], labels={"team": "a"}
    )
    other = pb.JobSpec(
        name="r", tasks=[pb.TaskSpec(commands=[cmd("exec", argv=["true"])])], labels={"team": "b"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "d"
        with jobqd(data_dir=data) as addr, grpc.insecure_channel(addr) as ch:
            stub = js_grpc.JobServiceStub(ch)
            for i in range(jobs // 1000):
                batch = [
                    js.SubmitJobRequest(spec=spec if (i * 1000 + k) % 100 else other) for k in range(1000)
                ]
                stub.SubmitJobs(js.SubmitJobsRequest(jobs=batch))
            lat: list[float] = []
            get: list[float] = []
            some = stub.ListJobs(js.ListJobsRequest(page_size=1)).jobs[0].id
            for _ in range(20):
                t0 = time.perf_counter()
                stub.ListJobs(js.ListJobsRequest(page_size=100, filter=pb.JobFilter(labels={"team": "b"})))
                lat.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                stub.GetJob(js.GetJobRequest(job_id=some))
                get.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with jobqd(data_dir=data):
            loaded = time.perf_counter() - t0
        _ = subprocess
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with jobqd(data_dir=Path(tmp) / "empty"):
            empty = time.perf_counter() - t0
    return [
        {
            "benchmark": f"restart with {jobs:,} jobs (start → serving)",
            "value": loaded,
            "unit": "s",
            "baseline": empty,
            "baseline_name": "start with an empty store",
            "target": 0,
        },
        {
            "benchmark": f"ListJobs, label filter, {jobs:,} jobs p50",
            "value": statistics.median(lat) * 1000,
            "unit": "ms",
            "baseline": statistics.median(get) * 1000,
            "baseline_name": "GetJob p50",
            "target": 0,
        },
    ]


BENCHES: dict[str, Callable[[bool], list[Row]]] = {
    "submit": bench_submit,
    "array": bench_array,
    "noop": bench_noop,
    "exec": bench_exec,
    "latency": bench_latency,
    "memory": bench_memory,
    "restart": bench_restart,
    "kueue": bench_kueue,
}


def _fmt(row: Row, key: str, key2: str) -> str:
    v = row[key]
    if key2 in row:
        return f"{v:,.1f} / {row[key2]:,.1f}"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(BENCHES))
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the harness)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    chosen = [b for b in (args.only.split(",") if args.only else BENCHES) if b]
    rows: list[Row] = []
    for name in chosen:
        if name not in BENCHES:
            parser.error(f"unknown benchmark {name!r}")
        print(f"running {name} …", file=sys.stderr, flush=True)
        rows.extend(BENCHES[name](args.quick))
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "quick": args.quick}
    if args.json:
        print(json.dumps({"meta": meta, "results": rows}, indent=2))
        return 0
    if not rows:
        print("\nno results")
        return 0
    w = max(len(r["benchmark"]) for r in rows)
    print(f"\n{'benchmark':<{w}}  {'jobq':>18}  {'baseline':>18}  {'ratio':>7}  {'target':>8}  baseline is")
    for r in rows:
        ratio = r["value"] / r["baseline"] if r["baseline"] else float("nan")
        print(
            f"{r['benchmark']:<{w}}  {_fmt(r, 'value', 'value2'):>14} {r['unit']:<4}"
            f"  {_fmt(r, 'baseline', 'baseline2'):>14} {r['unit']:<4}  {ratio:>6.2f}x  {(format(r['target'], ',') if r['target'] else '-'):>8}  {r['baseline_name']}"
        )
        if r.get("detail"):
            print(f"{'':<{w}}  ({r['detail']})")
    print(f"\n{meta['cpus']} CPUs, Python {meta['python']}{' (quick)' if args.quick else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
