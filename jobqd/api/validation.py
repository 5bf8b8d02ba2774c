"""Request validation: proto messages in, validated domain objects out, or InvalidArgument naming
the exact field. Every limit lives in `Limits` and is documented in docs/limits.md.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import struct_pb2
from jobq.v1 import types_pb2 as pb

from jobqd.domain.errors import InvalidArgument
from jobqd.domain.graph import resolve_dependencies
from jobqd.domain.labels import label_key_problem, label_value_problem, queue_name_problem
from jobqd.domain.model import (
    ArrayDef,
    CommandDef,
    Dependency,
    DependencyCondition,
    FailurePolicy,
    JobDef,
    TaskDef,
)
from jobqd.domain.quantity import parse_milli


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits on requests. Each is a guard against a mistake or an attack, not a tuning knob."""

    #: Largest gRPC message either way (bytes). Big jobs use arrays or AddTasks chunks.
    max_message_bytes: int = 64 * 1024 * 1024
    #: Tasks in one job (explicit tasks or array elements).
    max_tasks_per_job: int = 10_000_000
    #: Explicit tasks in one SubmitJob / AddTasks message.
    max_tasks_per_request: int = 100_000
    #: Jobs in one SubmitJobs call.
    max_jobs_per_batch: int = 1_000
    max_name_chars: int = 253
    max_request_id_chars: int = 128
    max_labels: int = 64
    max_commands_per_task: int = 256
    #: Bytes of one command's argv + env + other string params together.
    max_command_bytes: int = 128 * 1024
    max_dependencies: int = 64
    max_reason_chars: int = 1024
    max_page_size: int = 1000
    default_page_size: int = 100


LIMITS = Limits()

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_CONDITIONS = {
    pb.DEPENDENCY_CONDITION_AFTEROK: DependencyCondition.AFTEROK,
    pb.DEPENDENCY_CONDITION_AFTERANY: DependencyCondition.AFTERANY,
    pb.DEPENDENCY_CONDITION_AFTERNOTOK: DependencyCondition.AFTERNOTOK,
}
_JOB_ID_RE = re.compile(r"^[0-9a-z]{13}$")


def request_digest(spec: pb.JobSpec, *, draft: bool = False) -> str:
    h = hashlib.sha256(spec.SerializeToString(deterministic=True))
    h.update(b"draft" if draft else b"job")
    return h.hexdigest()


def check_request_id(value: str, field: str = "request_id") -> str:
    if len(value) > LIMITS.max_request_id_chars:
        raise InvalidArgument(field, f"at most {LIMITS.max_request_id_chars} characters")
    if value and not value.isprintable():
        raise InvalidArgument(field, "must be printable text")
    return value


def check_job_id(value: str, field: str = "job_id") -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not _JOB_ID_RE.match(value):
        raise InvalidArgument(field, f"{value[:40]!r} is not a job id (13 lowercase letters and digits)")
    return value


def check_reason(value: str, field: str = "reason") -> str:
    if len(value) > LIMITS.max_reason_chars:
        raise InvalidArgument(field, f"at most {LIMITS.max_reason_chars} characters")
    return value


def _check_labels(labels: Mapping[str, str], field: str) -> dict[str, str]:
    if not labels:
        return {}
    if len(labels) > LIMITS.max_labels:
        raise InvalidArgument(field, f"at most {LIMITS.max_labels} labels")
    for k, v in labels.items():
        problem = label_key_problem(k) or label_value_problem(v)
        if problem:
            raise InvalidArgument(f"{field}[{k[:80]!r}]", problem)
    return dict(labels)


def _check_resources(res: Mapping[str, str], field: str) -> tuple[dict[str, int], dict[str, str]]:
    if not res:
        return {}, {}
    milli: dict[str, int] = {}
    for name, text in res.items():
        if problem := label_key_problem(name):
            raise InvalidArgument(f"{field}[{name[:80]!r}]", problem.replace("label key", "resource name"))
        try:
            milli[name] = parse_milli(text)
        except ValueError as err:
            raise InvalidArgument(f"{field}[{name!r}]", str(err)) from None
    return milli, dict(res)


def _json_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list):
        return sum(_json_size(v) + 1 for v in value)
    if isinstance(value, dict):
        return sum(len(k) + _json_size(v) + 2 for k, v in value.items())
    return 8


def _require_str_list(params: Mapping[str, Any], key: str, field: str, *, required: bool) -> None:
    v = params.get(key)
    if v is None:
        if required:
            raise InvalidArgument(f"{field}.{key}", "is required")
        return
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"{field}.{key}", "must be a list of strings")
    if required and (not v or not v[0]):
        raise InvalidArgument(f"{field}.{key}", "must not be empty (argv[0] is the program to run)")


def _require_number(
    params: Mapping[str, Any], key: str, field: str, *, minimum: float, required: bool = False
) -> None:
    v = params.get(key)
    if v is None:
        if required:
            raise InvalidArgument(f"{field}.{key}", "is required")
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < minimum:
        raise InvalidArgument(f"{field}.{key}", f"must be a number >= {minimum:g}")


def _require_str(params: Mapping[str, Any], key: str, field: str, *, required: bool = False) -> None:
    v = params.get(key)
    if v is None:
        if required:
            raise InvalidArgument(f"{field}.{key}", "is required")
        return
    if not isinstance(v, str):
        raise InvalidArgument(f"{field}.{key}", "must be a string")


def _value(v: struct_pb2.Value, parent: str, key: object) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        x = v.number_value
        if not math.isfinite(x):
            where = f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}"
            raise InvalidArgument(where, "numbers must be finite")
        # JSON has one number type: keep integral values integral, as json_format does
        return int(x) if x.is_integer() and abs(x) < 2**53 else x
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return _struct(v.struct_value, f"{parent}.{key}")
    if kind == "list_value":
        here = f"{parent}.{key}"
        return [_value(x, here, i) for i, x in enumerate(v.list_value.values)]
    return None


def _struct(st: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """Struct → plain dict; a direct walk, several times cheaper than json_format on the submit path."""
    return {k: _value(v, field, k) for k, v in st.fields.items()}


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Validated(Generic[K, V]):
    """Results of a pure validation by the wire bytes it read (plus whatever else the result
    depends on). Submits repeat the same few commands and tasks (a farm's job templates), so most
    are validated once. Bounded whatever clients send: at most 4096 results, and none kept for
    more than 8 KiB of bytes (a command may be 128 KiB, a task hundreds of commands)."""

    MAX_ENTRIES = 4096
    MAX_WIRE_BYTES = 8192

    def __init__(self) -> None:
        self._results: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._results)

    def get(self, key: K) -> V | None:
        return self._results.get(key)

    def keep(self, key: K, wire_bytes: int, result: V) -> V:
        if wire_bytes <= self.MAX_WIRE_BYTES:
            if len(self._results) >= self.MAX_ENTRIES:
                self._results.clear()
            self._results[key] = result
        return result


_COMMAND_CACHE: _Validated[bytes, CommandDef] = _Validated()
#: keyed also by the name a task without one gets
_TASK_CACHE: _Validated[tuple[bytes, str, bool], TaskDef] = _Validated()


_KNOWN_PARAMS = {
    "exec": {"argv", "env", "cwd", "timeout_s"},
    "shell": {"script", "timeout_s"},
    "sleep": {"seconds"},
    "echo": {"message"},
    "noop": set(),
}


def _command(cmd: pb.Command, task_field: str, i: int) -> CommandDef:
    key = cmd.SerializeToString(deterministic=True)
    hit = _COMMAND_CACHE.get(key)
    if hit is not None:
        return hit
    return _COMMAND_CACHE.keep(key, len(key), _command_uncached(cmd, f"{task_field}.commands[{i}]"))


def _command_uncached(cmd: pb.Command, field: str) -> CommandDef:
    typ = cmd.type
    if not typ:
        raise InvalidArgument(
            f"{field}.type", "is required (exec, shell, sleep, echo, noop or a plugin type)"
        )
    if not _TYPE_RE.match(typ):
        raise InvalidArgument(f"{field}.type", f"{typ[:80]!r} is not a command type name")
    pfield = f"{field}.params"
    params: dict[str, Any] = _struct(cmd.params, pfield) if cmd.HasField("params") else {}
    known = _KNOWN_PARAMS.get(typ)
    if known is not None:
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidArgument(
                f"{pfield}.{unknown[0]}",
                f"unknown parameter for {typ} (known: {', '.join(sorted(known)) or 'none'})",
            )
    if typ == "exec":
        _require_str_list(params, "argv", pfield, required=True)
        env = params.get("env")
        if env is not None and (
            not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values())
        ):
            raise InvalidArgument(f"{pfield}.env", "must be a map of strings")
        _require_str(params, "cwd", pfield)
        _require_number(params, "timeout_s", pfield, minimum=0)
    elif typ == "shell":
        _require_str(params, "script", pfield, required=True)
        _require_number(params, "timeout_s", pfield, minimum=0)
    elif typ == "sleep":
        _require_number(params, "seconds", pfield, minimum=0, required=True)
    elif typ == "echo":
        _require_str(params, "message", pfield)
    if _json_size(params) > LIMITS.max_command_bytes:
        raise InvalidArgument(pfield, f"larger than {LIMITS.max_command_bytes} bytes")
    return CommandDef(typ, params)


def task_def(t: pb.TaskSpec, field: str, *, default_name: str, template: bool = False) -> TaskDef:
    key = (t.SerializeToString(deterministic=True), default_name, template)
    hit = _TASK_CACHE.get(key)
    if hit is not None:
        return hit
    result = _task_def_uncached(t, field, default_name=default_name, template=template)
    return _TASK_CACHE.keep(key, len(key[0]), result)


def _task_def_uncached(t: pb.TaskSpec, field: str, *, default_name: str, template: bool) -> TaskDef:
    if not t.commands:
        raise InvalidArgument(f"{field}.commands", "a task needs at least one command")
    if len(t.commands) > LIMITS.max_commands_per_task:
        raise InvalidArgument(
            f"{field}.commands", f"at most {LIMITS.max_commands_per_task} commands per task"
        )
    if len(t.name) > LIMITS.max_name_chars:
        raise InvalidArgument(f"{field}.name", f"at most {LIMITS.max_name_chars} characters")
    commands = tuple([_command(c, field, i) for i, c in enumerate(t.commands)])
    if t.type and not _TYPE_RE.match(t.type):
        raise InvalidArgument(f"{field}.type", f"{t.type[:80]!r} is not a task type name")
    if template and t.depends_on:
        raise InvalidArgument(f"{field}.depends_on", "array tasks cannot depend on other tasks")
    if len(t.depends_on) > LIMITS.max_dependencies:
        raise InvalidArgument(f"{field}.depends_on", f"at most {LIMITS.max_dependencies} dependencies")
    return TaskDef(
        name=t.name or default_name,
        type=t.type or commands[0].type,
        commands=commands,
        depends_on=tuple(t.depends_on),
    )


def task_defs(tasks: Sequence[pb.TaskSpec], field: str, *, offset: int = 0) -> tuple[TaskDef, ...]:
    if len(tasks) > LIMITS.max_tasks_per_request:
        raise InvalidArgument(
            field,
            f"at most {LIMITS.max_tasks_per_request} tasks per message; use AddTasks chunks or an array",
        )
    return tuple([task_def(t, f"{field}[{i}]", default_name=str(offset + i)) for i, t in enumerate(tasks)])


_DEFAULT_POLICY = FailurePolicy()


def _policy(p: pb.FailurePolicy, field: str) -> FailurePolicy:
    d = _DEFAULT_POLICY

    def positive(name: str, default: int) -> int:
        if not p.HasField(name):  # type: ignore[arg-type]
            return default
        v = int(getattr(p, name))
        if v < 1:
            raise InvalidArgument(f"{field}.{name}", "must be at least 1")
        return v

    fail_fraction = d.fail_fraction
    if p.HasField("fail_fraction"):
        fail_fraction = p.fail_fraction
        if not (0 < fail_fraction <= 1) or not math.isfinite(fail_fraction):
            raise InvalidArgument(f"{field}.fail_fraction", "must be in (0, 1]")
    for name in ("retry_on_exit_codes", "fail_fast_exit_codes"):
        codes = getattr(p, name)
        if any(c < 0 or c > 255 for c in codes):
            raise InvalidArgument(f"{field}.{name}", "exit codes are 0-255")
    return FailurePolicy(
        max_attempts=positive("max_attempts", d.max_attempts),
        blocklist_threshold=positive("blocklist_threshold", d.blocklist_threshold),
        fail_fraction=fail_fraction,
        max_interruptions=positive("max_interruptions", d.max_interruptions),
        retry_on_exit_codes=tuple(p.retry_on_exit_codes),
        fail_fast_exit_codes=tuple(p.fail_fast_exit_codes),
    )


def job_def(spec: pb.JobSpec, *, field: str = "spec", draft: bool = False) -> JobDef:
    """Validate a JobSpec. A draft (CreateJob) must come without tasks; a job needs tasks or an array."""
    name = spec.name
    if not name:
        raise InvalidArgument(f"{field}.name", "is required")
    if len(name) > LIMITS.max_name_chars:
        raise InvalidArgument(
            f"{field}.name", f"at most {LIMITS.max_name_chars} characters (got {len(name)})"
        )
    if not name.isprintable():
        raise InvalidArgument(f"{field}.name", "must be printable text")
    queue = spec.queue or "default"
    if problem := queue_name_problem(queue):
        raise InvalidArgument(f"{field}.queue", problem)
    if spec.parallelism < 0:
        raise InvalidArgument(f"{field}.parallelism", f"must be >= 0 (0 = no limit), got {spec.parallelism}")
    labels = _check_labels(spec.labels, f"{field}.labels")
    selector = _check_labels(spec.node_selector, f"{field}.node_selector")
    resources, resources_text = _check_resources(spec.resources, f"{field}.resources")
    has_array = spec.HasField("array")
    tasks: tuple[TaskDef, ...] | None = None
    array: ArrayDef | None = None
    if draft:
        if spec.tasks or has_array:
            raise InvalidArgument(f"{field}.tasks", "CreateJob takes no tasks; send them with AddTasks")
        tasks = ()
    elif has_array and spec.tasks:
        raise InvalidArgument(f"{field}.array", "give either tasks or array, not both")
    elif has_array:
        a = spec.array
        step = a.step or 1
        if step < 1:
            raise InvalidArgument(f"{field}.array.step", "must be >= 1")
        if a.end < a.start:
            raise InvalidArgument(f"{field}.array.end", f"must be >= start ({a.start})")
        if a.start < 0:
            raise InvalidArgument(f"{field}.array.start", "must be >= 0")
        count = (a.end - a.start) // step + 1
        if count > LIMITS.max_tasks_per_job:
            raise InvalidArgument(
                f"{field}.array", f"{count} tasks; at most {LIMITS.max_tasks_per_job} per job"
            )
        if not a.HasField("template"):
            raise InvalidArgument(f"{field}.array.template", "is required")
        tmpl = task_def(a.template, f"{field}.array.template", default_name="", template=True)
        array = ArrayDef(template=tmpl, start=a.start, end=a.end, step=step)
    elif spec.tasks:
        tasks = task_defs(spec.tasks, f"{field}.tasks")
        if any(t.depends_on for t in tasks):
            resolve_dependencies(tasks, field=f"{field}.tasks")
        else:
            seen: set[str] = set()
            for i, t in enumerate(tasks):
                if t.name in seen:
                    raise InvalidArgument(f"{field}.tasks[{i}].name", f"duplicate task name {t.name!r}")
                seen.add(t.name)
    else:
        raise InvalidArgument(f"{field}.tasks", "a job needs at least one task (tasks or array)")
    if len(spec.depends_on) > LIMITS.max_dependencies:
        raise InvalidArgument(f"{field}.depends_on", f"at most {LIMITS.max_dependencies} dependencies")
    deps = []
    for i, d in enumerate(spec.depends_on):
        check_job_id(d.job_id, f"{field}.depends_on[{i}].job_id")
        cond = _CONDITIONS.get(d.condition)
        if cond is None:
            raise InvalidArgument(
                f"{field}.depends_on[{i}].condition", "must be afterok, afterany or afternotok"
            )
        deps.append(Dependency(d.job_id, cond))
    if spec.priority_class and (problem := queue_name_problem(spec.priority_class)):
        raise InvalidArgument(f"{field}.priority_class", problem.replace("queue name", "priority class name"))
    return JobDef(
        name=name,
        queue=queue,
        priority=spec.priority,
        labels=labels,
        tasks=tasks,
        array=array,
        resources=resources,
        resources_text=resources_text,
        node_selector=selector,
        parallelism=spec.parallelism,
        policy=(
            _policy(spec.failure_policy, f"{field}.failure_policy")
            if spec.HasField("failure_policy")
            else _DEFAULT_POLICY
        ),
        depends_on=tuple(deps),
        priority_class=spec.priority_class,
    )


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument(field, "must be >= 0")
    if value == 0:
        return LIMITS.default_page_size
    return min(value, LIMITS.max_page_size)


def decode_page_token(token: str, field: str = "page_token") -> int:
    """Page tokens are "p<seq>"; anything else is refused, never guessed at."""
    if not token:
        return 0
    if not token.startswith("p") or not token[1:].isdigit() or len(token) > 20:
        raise InvalidArgument(field, f"{token[:40]!r} is not a page token from a previous response")
    return int(token[1:])


def encode_page_token(seq: int) -> str:
    return f"p{seq}"
