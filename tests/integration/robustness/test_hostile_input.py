"""Hostile input against a real jobqd (DESIGN §9 "bad input never crashes anything and never
corrupts state").

One daemon serves the whole module, with a hand-written node that completes whatever it is given,
so jobs really move through their states while hypothesis throws random messages, mutated valid
requests and random bytes at every JobService, QueueService and NodeAdminService RPC. Every reply
must be OK or a precise client-side status — never INTERNAL or UNKNOWN, never a hang — the daemon
must stay up and log no error, and after a clean stop the store must pass `integrity_check` and
its invariants (tests/support/invariants.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import queue_service_pb2 as qs
from jobq.v1 import types_pb2 as pb

from tests.integration.robustness.common import stop_and_check
from tests.integration.robustness.fuzz import METHODS, Call, Method, Pool, calls
from tests.integration.robustness.nodeclient import FakeNode, complete_everything
from tests.support.procs import Jobqd

S = grpc.StatusCode
#: What a hostile request may get: success, or a status that blames the request.
ALLOWED = frozenset(
    {S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.FAILED_PRECONDITION, S.ALREADY_EXISTS, S.RESOURCE_EXHAUSTED}
)
#: Bytes the request type cannot even parse are refused before any servicer runs; without
#: jobqd.api.decoding grpc would answer UNKNOWN (and log a traceback) — found by this test.
UNARY_TIMEOUT_S = 10.0
#: Server streams (WatchEvents, TailTaskLog with follow) legitimately stay open: read for this long.
STREAM_TIMEOUT_S = 0.5
STREAM_MAX_MESSAGES = 200


def _identity(b: bytes) -> bytes:
    return b


@dataclass
class Env:
    daemon: Jobqd
    node: FakeNode
    pool: Pool
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    undecodable: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    d = Jobqd(tmp_path_factory.mktemp("hostile") / "d").start()
    node = FakeNode(d.address, "auto-node", slots=2)
    node.connect(on_message=complete_everything)
    pool = Pool(nodes=["auto-node", "no-such-node"])
    e = Env(d, node, pool)
    _seed(e)
    try:
        yield e
    finally:
        node.close()
        d.stop()


def _seed(e: Env) -> None:
    """A few jobs in different states for the fuzzer to act on."""
    jobs = e.daemon.jobs
    noop = pb.Command(type="noop")
    noop.params.SetInParent()
    for i, extra in enumerate(
        [
            {},
            {"parallelism": 1},
            {"node_selector": {"nowhere": "x"}},  # never runs: stays queued
            {"queue": "default", "priority": 5},
        ]
    ):
        r = jobs.SubmitJob(
            js.SubmitJobRequest(
                request_id=f"seed-{i}",
                spec=pb.JobSpec(name=f"seed{i}", tasks=[pb.TaskSpec(commands=[noop])] * 3, **extra),  # type: ignore[arg-type]
            )
        )
        e.pool.add_job(r.job)
        e.pool.request_ids.append(f"seed-{i}")
    draft = jobs.CreateJob(js.CreateJobRequest(spec=pb.JobSpec(name="draft"))).job
    e.pool.add_job(draft)
    e.daemon.queues.CreateQueue(qs.CreateQueueRequest(queue=pb.Queue(name="q1", quotas={"cpu": "4"})))
    e.pool.queues.append("q1")


def send(channel: grpc.Channel, call: Call) -> tuple[grpc.StatusCode, str, list[bytes]]:
    m = call.method
    if not m.server_streaming:
        fn = channel.unary_unary(m.path, request_serializer=_identity, response_deserializer=_identity)
        try:
            return S.OK, "", [fn(call.payload, timeout=UNARY_TIMEOUT_S)]
        except grpc.RpcError as err:
            return err.code(), err.details() or "", []
    sfn = channel.unary_stream(m.path, request_serializer=_identity, response_deserializer=_identity)
    it = sfn(call.payload, timeout=STREAM_TIMEOUT_S)
    out: list[bytes] = []
    try:
        for r in it:
            out.append(r)
            if len(out) >= STREAM_MAX_MESSAGES:
                it.cancel()
                break
    except grpc.RpcError as err:
        return err.code(), err.details() or "", out
    return S.OK, "", out


def _learn(pool: Pool, method: Method, responses: list[bytes]) -> None:
    """Remember what the daemon created, so later examples act on it."""
    for raw in responses:
        resp = method.output.FromString(raw)  # an OK reply must be a well-formed message
        if isinstance(resp, js.SubmitJobResponse | js.CreateJobResponse):
            pool.add_job(resp.job)
        elif isinstance(resp, js.SubmitJobsResponse):
            for r in resp.results:
                pool.add_job(r.job)
        elif isinstance(resp, js.ListJobsResponse) and resp.next_page_token:
            pool.page_tokens.append(resp.next_page_token)
        elif isinstance(resp, qs.CreateQueueResponse) and resp.queue.name not in pool.queues:
            pool.queues.append(resp.queue.name)


def check_call(e: Env, call: Call) -> None:
    code, details, responses = send(e.daemon.channel, call)
    e.codes[(call.method.name, code.name)] += 1
    e.kinds[call.kind] += 1
    decodes = call.decodes()
    allowed = ALLOWED
    if call.method.server_streaming:
        allowed = allowed | {S.DEADLINE_EXCEEDED}
    assert code in allowed, f"{call.describe()}\n  -> {code.name}: {details}"
    if not decodes:
        e.undecodable[code.name] += 1
    if code is not S.OK and code is not S.DEADLINE_EXCEEDED:
        assert details.strip(), f"{call.describe()}\n  -> {code.name} without a message"
    if code is S.OK:
        _learn(e.pool, call.method, responses)
        if call.method.name in ("SubmitJob", "CreateJob"):
            rid = call.method.input.FromString(call.payload).request_id  # type: ignore[attr-defined]
            if rid and rid not in e.pool.request_ids:
                e.pool.request_ids.append(rid)
    assert e.daemon.proc is not None and e.daemon.proc.poll() is None, (
        f"jobqd died after {call.describe()}\n{e.daemon.log_tail()}"
    )


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_and_mutated_requests_get_proper_statuses(env: Env, data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(1, 4), label="calls")):
        check_call(env, data.draw(calls(env.pool), label="call"))


UNDECODABLE = [
    b"\xff\xff\xff",  # a truncated varint tag
    b"\x0a\x03\xff\xfe\xfd",  # field 1 as a string that is not UTF-8 (fine where field 1 is not a string)
    b"\x0a\x10abc",  # a length past the end
    b"\x08",  # a tag without its value
]


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_undecodable_request_bytes_get_invalid_argument(env: Env, method: Method) -> None:
    """Found by the fuzzer: grpc answered UNKNOWN and logged a traceback (jobqd.api.decoding)."""
    tried = 0
    for payload in UNDECODABLE:
        call = Call(method, "garbage", payload)
        if call.decodes():  # proto3 skips unknown fields: not garbage for this request type
            continue
        tried += 1
        code, details, _ = send(env.daemon.channel, call)
        assert code is S.INVALID_ARGUMENT, f"{call.describe()} -> {code.name}: {details}"
        assert method.name in details
    assert tried >= 3


def test_daemon_survived_and_store_is_consistent(env: Env) -> None:
    d = env.daemon
    health = health_pb2_grpc.HealthStub(d.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    # still does real work
    noop = pb.Command(type="noop")
    noop.params.SetInParent()
    job = d.jobs.SubmitJob(
        js.SubmitJobRequest(spec=pb.JobSpec(name="after-fuzz", tasks=[pb.TaskSpec(commands=[noop])]))
    ).job
    assert d.jobs.GetJob(js.GetJobRequest(job_id=job.id)).job.id == job.id

    print(f"\ncalls by kind: {dict(env.kinds)}")
    print(f"undecodable payloads answered with: {dict(env.undecodable)}")
    by_code: Counter[str] = Counter()
    for (_, code), n in env.codes.items():
        by_code[code] += n
    methods = {name for name, _ in env.codes}
    print(f"replies: {dict(by_code)}; jobs created: {len(env.pool.job_ids)}")
    print(
        f"RPCs exercised: {len(methods)} of {len(METHODS)}: missing {sorted({m.name for m in METHODS} - methods)}"
    )

    env.node.close()
    counts = stop_and_check(d)
    print(f"store after the run: {counts}")
