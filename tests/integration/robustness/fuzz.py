"""Hypothesis strategies for hostile requests to jobqd's API, built from the proto descriptors.

Three kinds of request bytes are produced for any RPC (see `request_bytes`):

* **random messages** — every field of the request type (recursively) randomly set or not, with
  values biased towards the edges (empty, huge, negative, unknown enum numbers, odd unicode) and
  towards ids that exist in the daemon (the `Pool`), so calls reach deep into the engine instead of
  stopping at "job not found";
* **mutated valid requests** — a hand-written valid request (a real job spec, queue, filter …) with
  a few fields replaced by random values, or its serialized bytes flipped, cut, spliced or extended;
* **random bytes**.

The pool grows as the test runs (ids of jobs the daemon created), so later examples act on real
jobs in all sorts of states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor as d
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message
from hypothesis import strategies as st
from jobq.v1 import job_service_pb2, node_service_pb2, queue_service_pb2
from jobq.v1 import types_pb2 as pb

FD = d.FieldDescriptor

SERVICES = (
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"],
    queue_service_pb2.DESCRIPTOR.services_by_name["QueueService"],
    node_service_pb2.DESCRIPTOR.services_by_name["NodeAdminService"],
)


@dataclass(frozen=True)
class Method:
    path: str
    name: str
    input: type[Message]
    output: type[Message]
    server_streaming: bool


METHODS: tuple[Method, ...] = tuple(
    Method(
        path=f"/{svc.full_name}/{m.name}",
        name=m.name,
        input=message_factory.GetMessageClass(m.input_type),
        output=message_factory.GetMessageClass(m.output_type),
        server_streaming=m.server_streaming,
    )
    for svc in SERVICES
    for m in svc.methods
)

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24)
_EDGE_STRINGS = [
    "",
    " ",
    "default",
    "x" * 254,
    "y" * 2000,
    "p0",
    "p1",
    "p99999999999999999999",
    "p-1",
    "-1",
    "0",
    "0000000000000",
    "zzzzzzzzzzzzz",
    "zzzzzzzzzzzzz.0",
    "ZZZZZZZZZZZZZ",
    ".",
    "..",
    "a.b.c",
    "../../etc/passwd",
    "\x00",
    "line\nbreak",
    "é漢字🙂",
    "cpu",
    "1Gi",
    "-5",
    "1e400",
    "NaN",
    "kubernetes.io/hostname",
]


@dataclass
class Pool:
    """Names the daemon knows, so random requests hit real objects (mutated while the test runs)."""

    job_ids: list[str] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=lambda: ["default"])
    nodes: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    page_tokens: list[str] = field(default_factory=lambda: ["p1"])

    def all_names(self) -> list[str]:
        return [
            *self.job_ids,
            *self.task_ids,
            *self.queues,
            *self.nodes,
            *self.request_ids,
            *self.page_tokens,
        ]

    def pick(self, attr: str) -> st.SearchStrategy[str]:
        """One entry of the list `attr` as it is at draw time (or a fallback when empty)."""

        def choose(i: int) -> str:
            items: list[str] = getattr(self, attr)
            return items[i % len(items)] if items else "zzzzzzzzzzzzz"

        return st.integers(0, 1 << 30).map(choose)

    def add_job(self, job: pb.Job) -> None:
        if job.id and job.id not in self.job_ids:
            self.job_ids.append(job.id)
            self.task_ids.extend(f"{job.id}.{i}" for i in (0, 1, max(0, job.total_tasks - 1)))


# -- random values by field type ------------------------------------------------------------------


def _strings(pool: Pool) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 1 << 30).map(lambda i: (pool.all_names() or ["x"])[i % max(1, len(pool.all_names()))]),
        pool.pick("job_ids"),
        pool.pick("task_ids"),
        st.sampled_from(_EDGE_STRINGS),
        _TEXT,
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=13, max_size=13),
    )


_INT32 = st.one_of(st.integers(-3, 12), st.sampled_from([2**31 - 1, -(2**31), 100, 1000, 10**6, 10_000_001]))
_INT64 = st.one_of(_INT32, st.sampled_from([2**63 - 1, -(2**63), 2**40, 10**7, 10**7 + 1]))
_UINT = st.one_of(st.integers(0, 12), st.sampled_from([2**32 - 1]))
_DOUBLE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.1, 0.5, 1.0, -1.0, 1.0000001, 1e308]),
)

_JSON_KEYS = ["argv", "env", "cwd", "timeout_s", "seconds", "message", "script", "bogus", ""]
_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(2**53), 2**53),
    _TEXT,
    st.sampled_from(["true", "/bin/true", "{index}", "x" * 5000]),
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_JSON_KEYS), _TEXT), inner, max_size=4),
    ),
    max_leaves=8,
)
_PARAMS = st.dictionaries(st.sampled_from(_JSON_KEYS), _JSON, max_size=4)


def _scalar(f: d.FieldDescriptor, pool: Pool) -> st.SearchStrategy[Any]:
    t = f.type
    if t == FD.TYPE_STRING:
        return _strings(pool)
    if t == FD.TYPE_BYTES:
        return st.binary(max_size=16)
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return _DOUBLE if t == FD.TYPE_DOUBLE else st.floats(width=32)
    if t == FD.TYPE_ENUM:
        numbers = [v.number for v in f.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-3, 40))
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return _INT32
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32, FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return _UINT
    return _INT64


MAX_DEPTH = 6


def fill(draw: Callable[..., Any], msg: Message, pool: Pool, depth: int = 0) -> None:
    """Set a random subset of `msg`'s fields (recursively) to random values."""
    desc = msg.DESCRIPTOR
    if desc.full_name == "google.protobuf.Struct":
        msg.update(draw(_PARAMS))  # type: ignore[attr-defined]
        return
    if desc.full_name == "google.protobuf.Timestamp":
        msg.seconds = draw(st.one_of(st.integers(0, 4_000_000_000), st.integers(-(2**40), 2**40)))  # type: ignore[attr-defined]
        msg.nanos = draw(st.one_of(st.just(0), st.integers(-5, 2 * 10**9)))  # type: ignore[attr-defined]
        return
    if depth >= MAX_DEPTH:
        return
    for f in desc.fields:
        if not draw(st.integers(0, 2)):  # about a third of the fields stay unset
            continue
        set_random(draw, msg, f, pool, depth)


def set_random(draw: Callable[..., Any], msg: Message, f: d.FieldDescriptor, pool: Pool, depth: int) -> None:
    msg.ClearField(f.name)
    target = getattr(msg, f.name)
    is_map = f.message_type is not None and f.message_type.GetOptions().map_entry
    if is_map:
        key_f = f.message_type.fields_by_name["key"]
        val_f = f.message_type.fields_by_name["value"]
        for _ in range(draw(st.integers(0, 3))):
            key = draw(_scalar(key_f, pool))
            if val_f.type == FD.TYPE_MESSAGE:
                fill(draw, target[key], pool, depth + 1)
            else:
                target[key] = draw(_scalar(val_f, pool))
    elif f.label == FD.LABEL_REPEATED:
        n = draw(st.integers(0, 3))
        if f.type == FD.TYPE_MESSAGE:
            for _ in range(n):
                fill(draw, target.add(), pool, depth + 1)
        else:
            target.extend(draw(_scalar(f, pool)) for _ in range(n))
    elif f.type == FD.TYPE_MESSAGE:
        target.SetInParent()
        fill(draw, target, pool, depth + 1)
    else:
        setattr(msg, f.name, draw(_scalar(f, pool)))


# -- valid requests, to be mutated ----------------------------------------------------------------


def _command(draw: Callable[..., Any]) -> pb.Command:
    kind = draw(st.sampled_from(["noop", "echo", "exec", "sleep"]))
    c = pb.Command(type=kind)
    if kind == "echo":
        c.params.update({"message": draw(_TEXT)})
    elif kind == "exec":
        c.params.update({"argv": ["true"]})
    elif kind == "sleep":
        c.params.update({"seconds": 0})
    else:
        c.params.SetInParent()
    return c


def _task(draw: Callable[..., Any], name: str = "") -> pb.TaskSpec:
    return pb.TaskSpec(name=name, commands=[_command(draw) for _ in range(draw(st.integers(1, 2)))])


def _spec(draw: Callable[..., Any], pool: Pool, *, draft: bool = False) -> pb.JobSpec:
    spec = pb.JobSpec(
        name=draw(st.sampled_from(["fuzz", "a", "render-frames", "j" * 253])),
        queue=draw(st.one_of(st.just(""), pool.pick("queues"))),
        priority=draw(st.integers(-5, 5)),
        labels=draw(
            st.dictionaries(st.sampled_from(["team", "app.kubernetes.io/name"]), st.just("x"), max_size=2)
        ),
        parallelism=draw(st.integers(0, 3)),
    )
    if not draft:
        if draw(st.booleans()):
            spec.array.template.CopyFrom(_task(draw))
            spec.array.start = draw(st.integers(0, 3))
            spec.array.end = spec.array.start + draw(st.integers(0, 20))
            spec.array.step = draw(st.integers(0, 3))
        else:
            n = draw(st.integers(1, 3))
            spec.tasks.extend(_task(draw, f"t{i}") for i in range(n))
            if n > 1 and draw(st.booleans()):
                spec.tasks[n - 1].depends_on.append("t0")
    if pool.job_ids and draw(st.integers(0, 3)) == 0:
        spec.depends_on.add(
            job_id=draw(pool.pick("job_ids")),
            condition=draw(st.sampled_from([1, 2, 3])),
        )
    if draw(st.booleans()):
        spec.failure_policy.max_attempts = draw(st.integers(1, 3))
    return spec


def _request_id(draw: Callable[..., Any], pool: Pool) -> str:
    return draw(st.one_of(st.just(""), pool.pick("request_ids"), st.uuids().map(str)))


def _filter(draw: Callable[..., Any], pool: Pool) -> pb.JobFilter:
    f = pb.JobFilter()
    choice = draw(st.integers(0, 3))
    if choice == 0:
        f.statuses.extend(draw(st.lists(st.integers(1, 10), min_size=1, max_size=2)))
    elif choice == 1:
        f.queues.append(draw(pool.pick("queues")))
    elif choice == 2:
        f.name_prefix = draw(st.sampled_from(["fuzz", "a", "render"]))
    else:
        f.labels["team"] = "x"
    return f


def valid_request(draw: Callable[..., Any], method: Method, pool: Pool) -> Message:
    """A request that is well-formed for `method` (it may still act on a job in the wrong state)."""
    n = method.name
    req = method.input()
    job_id = draw(pool.pick("job_ids"))
    task_id = draw(pool.pick("task_ids"))
    if n == "SubmitJob":
        req = job_service_pb2.SubmitJobRequest(request_id=_request_id(draw, pool), spec=_spec(draw, pool))
    elif n == "SubmitJobs":
        req = job_service_pb2.SubmitJobsRequest(
            jobs=[
                job_service_pb2.SubmitJobRequest(request_id=_request_id(draw, pool), spec=_spec(draw, pool))
                for _ in range(draw(st.integers(1, 3)))
            ]
        )
    elif n == "CreateJob":
        req = job_service_pb2.CreateJobRequest(
            request_id=_request_id(draw, pool), spec=_spec(draw, pool, draft=True)
        )
    elif n == "AddTasks":
        req = job_service_pb2.AddTasksRequest(
            job_id=job_id,
            offset=draw(st.integers(0, 4)),
            tasks=[_task(draw, f"d{draw(st.integers(0, 9))}") for _ in range(draw(st.integers(1, 3)))],
        )
    elif n in ("CommitJob", "GetJob", "DeleteJob"):
        req = method.input(job_id=job_id)
        if n == "GetJob":
            req.view = draw(st.sampled_from([0, 1, 2]))  # type: ignore[attr-defined]
    elif n == "SetJobPriority":
        req = job_service_pb2.SetJobPriorityRequest(job_id=job_id, priority=draw(st.integers(-10, 10)))
    elif n == "ListJobs":
        req = job_service_pb2.ListJobsRequest(
            page_size=draw(st.integers(0, 5)),
            page_token=draw(st.one_of(st.just(""), pool.pick("page_tokens"))),
            include_archived=draw(st.booleans()),
        )
        if draw(st.booleans()):
            req.filter.CopyFrom(_filter(draw, pool))
    elif method.input is job_service_pb2.JobActionRequest:
        req = job_service_pb2.JobActionRequest(reason=draw(st.sampled_from(["", "fuzz"])))
        if draw(st.booleans()):
            req.job_ids.extend(draw(st.lists(pool.pick("job_ids"), min_size=1, max_size=3)))
        else:
            req.filter.CopyFrom(_filter(draw, pool))
    elif n in ("GetTask",):
        req = job_service_pb2.GetTaskRequest(task_id=task_id)
    elif n == "ListTasks":
        req = job_service_pb2.ListTasksRequest(
            job_id=job_id,
            statuses=draw(st.lists(st.integers(1, 7), max_size=2)),
            page_size=draw(st.integers(0, 3)),
        )
    elif method.input is job_service_pb2.TaskActionRequest:
        prefix = task_id.rpartition(".")[0]
        req = job_service_pb2.TaskActionRequest(
            task_ids=[f"{prefix}.{i}" for i in draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))]
        )
    elif n == "TailTaskLog":
        req = job_service_pb2.TailTaskLogRequest(
            task_id=task_id, attempt=draw(st.integers(0, 2)), lines=draw(st.integers(0, 5)), follow=False
        )
    elif n == "WatchEvents":
        req = job_service_pb2.WatchEventsRequest(
            after_sequence=draw(st.integers(-1, 50)),
            job_ids=draw(st.lists(pool.pick("job_ids"), max_size=1)),
            types=draw(st.lists(st.integers(1, 9), max_size=2)),
        )
    elif n in ("CreateQueue", "UpdateQueue"):
        q = pb.Queue(
            name=draw(st.one_of(pool.pick("queues"), st.sampled_from(["q1", "q2", "gpu"]))),
            strategy=draw(st.sampled_from([0, 1, 2])),
            preemption=draw(st.sampled_from([0, 1, 2])),
        )
        if draw(st.booleans()):
            q.quotas["cpu"] = draw(st.sampled_from(["1", "4", "500m"]))
        req = method.input(queue=q)
    elif n in ("GetQueue", "DeleteQueue", "HoldQueue", "ReleaseQueue"):
        req = method.input(name=draw(st.one_of(pool.pick("queues"), st.sampled_from(["q1", "q2"]))))
        if n == "HoldQueue":
            req.drain = draw(st.booleans())  # type: ignore[attr-defined]
    elif n in ("GetNode", "DrainNode", "ResumeNode"):
        req = method.input(name=draw(pool.pick("nodes")))
        if n == "DrainNode":
            req.stop = draw(st.booleans())  # type: ignore[attr-defined]
    elif n == "ClearBlocklist":
        req = node_service_pb2.ClearBlocklistRequest(
            job_id=draw(st.one_of(st.just(""), pool.pick("job_ids")))
        )
    return req


def _fields_of(msg: Message, depth: int = 0) -> list[tuple[Message, d.FieldDescriptor]]:
    out = [(msg, f) for f in msg.DESCRIPTOR.fields]
    if depth >= 3:
        return out
    for f in msg.DESCRIPTOR.fields:
        if f.type != FD.TYPE_MESSAGE or f.message_type.GetOptions().map_entry:
            continue
        if f.message_type.full_name in ("google.protobuf.Struct", "google.protobuf.Timestamp"):
            continue
        if f.label == FD.LABEL_REPEATED:
            for sub in getattr(msg, f.name):
                out.extend(_fields_of(sub, depth + 1))
        elif msg.HasField(f.name):
            out.extend(_fields_of(getattr(msg, f.name), depth + 1))
    return out


def mutate_fields(draw: Callable[..., Any], msg: Message, pool: Pool) -> None:
    for _ in range(draw(st.integers(1, 3))):
        candidates = _fields_of(msg)
        if not candidates:  # a request without fields (ListQueues, ListNodes)
            return
        parent, f = candidates[draw(st.integers(0, len(candidates) - 1))]
        set_random(draw, parent, f, pool, depth=2)


def mutate_bytes(draw: Callable[..., Any], data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate", "set"]))
        i = draw(st.integers(0, max(0, len(buf))))
        if op == "flip" and buf:
            j = min(i, len(buf) - 1)
            buf[j] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete" and buf:
            del buf[i : i + draw(st.integers(1, 8))]
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "duplicate" and buf:
            buf[i:i] = buf[i : i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[i:]
        elif op == "set" and buf:
            j = min(i, len(buf) - 1)
            buf[j] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x08]))
    return bytes(buf)


@dataclass(frozen=True)
class Call:
    method: Method
    kind: str  # "random", "valid", "fields", "bytes", "garbage"
    payload: bytes

    def decodes(self) -> bool:
        """Whether the request type parses these bytes (what the server's deserializer will do)."""
        try:
            self.method.input.FromString(self.payload)
        except DecodeError:
            return False
        return True

    def describe(self) -> str:
        try:
            shown = repr(self.method.input.FromString(self.payload))[:600]
        except DecodeError:
            shown = repr(self.payload[:200])
        return f"{self.method.path} [{self.kind}] {shown}"


@st.composite
def calls(draw: Callable[..., Any], pool: Pool) -> Call:
    method = draw(st.sampled_from(METHODS))
    kind = draw(st.sampled_from(["random", "valid", "valid", "fields", "fields", "bytes", "garbage"]))
    if kind == "garbage":
        return Call(method, kind, draw(st.binary(max_size=64)))
    if kind == "random":
        msg = method.input()
        fill(draw, msg, pool)
        return Call(method, kind, msg.SerializeToString())
    msg = valid_request(draw, method, pool)
    if kind == "fields":
        mutate_fields(draw, msg, pool)
    data = msg.SerializeToString()
    if kind == "bytes":
        data = mutate_bytes(draw, data)
    return Call(method, kind, data)
