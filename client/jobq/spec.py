"""Build ``JobSpec`` messages from Python dicts, YAML files and small helper functions.

A job spec file is the proto's JSON form (``google.protobuf.json_format``, proto field names) written
in YAML, plus a little sugar that is desugared here before parsing, so the server only ever sees the
canonical form (docs/job-spec.md has the format and a complete example):

* a command may be written ``{exec: [argv…]}`` (with optional sibling ``env``/``cwd``/``timeout_s``),
  ``{shell: "script"}``, ``{sleep: 5}``, ``{echo: "hi"}`` or ``{noop: {}}`` as well as
  ``{type: exec, params: {argv: [...]}}``; numbers in an argv become strings;
* numbers in string maps (``resources: {cpu: 2}``, labels, node_selector, env) become strings;
* ``depends_on`` items may be ``"afterok:JOBID"`` (or a bare job id, meaning afterok), and a
  condition may be written ``afterok`` instead of ``DEPENDENCY_CONDITION_AFTEROK``;
* a document that is a whole Job (as printed by ``jobqctl job ID -o yaml``) is accepted: its
  ``spec`` is used.

Every mistake becomes :class:`~jobq.errors.InvalidArgument` naming where it is
(``tasks[2].commands[0]: unknown command type key 'exe' …``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from jobq.errors import InvalidArgument
from jobq.sdk.names import DEPENDENCY_CONDITION
from jobq.v1 import types_pb2

__all__ = [
    "JobSpecLike",
    "TaskSpecLike",
    "as_job_spec",
    "as_task_spec",
    "command",
    "echo_command",
    "exec_command",
    "job_spec_from_dict",
    "job_spec_from_yaml",
    "load_job_spec",
    "noop_command",
    "parse_dependency",
    "shell_command",
    "sleep_command",
    "task_spec",
    "task_spec_from_dict",
]

# Sugar key → the keys allowed beside it in the same mapping.
_COMMAND_SUGAR: Final[dict[str, frozenset[str]]] = {
    "exec": frozenset({"env", "cwd", "timeout_s"}),
    "shell": frozenset({"timeout_s"}),
    "sleep": frozenset(),
    "echo": frozenset(),
    "noop": frozenset(),
}
_STRING_MAPS_OF_JOB: Final = ("labels", "resources", "node_selector")

#: What the clients accept where a spec is expected: the message, or its (sugared) dict form.
JobSpecLike = types_pb2.JobSpec | Mapping[str, Any]
TaskSpecLike = types_pb2.TaskSpec | Mapping[str, Any]


# --- helpers for building specs in Python ------------------------------------------------------


def command(type: str, params: Mapping[str, Any] | None = None) -> types_pb2.Command:
    """A command of any type, including ones nodes add through the ``jobq.commands`` entry points."""
    cmd = types_pb2.Command(type=type)
    cmd.params.update(dict(params or {}))
    return cmd


def exec_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout_s: float | None = None,
) -> types_pb2.Command:
    """Run ``argv`` directly (no shell). ``timeout_s`` past which the node kills it (a failure)."""
    if isinstance(argv, str) or not argv:
        raise InvalidArgument("argv: must be a non-empty list of strings")
    params: dict[str, Any] = {"argv": list(argv)}
    if env:
        params["env"] = dict(env)
    if cwd:
        params["cwd"] = cwd
    if timeout_s is not None:
        params["timeout_s"] = timeout_s
    return command("exec", params)


def shell_command(script: str, *, timeout_s: float | None = None) -> types_pb2.Command:
    """Run ``script`` with the node's shell; nodes refuse it unless started with shell allowed."""
    params: dict[str, Any] = {"script": script}
    if timeout_s is not None:
        params["timeout_s"] = timeout_s
    return command("shell", params)


def sleep_command(seconds: float) -> types_pb2.Command:
    """Sleep on the node (handy for tests and demos)."""
    return command("sleep", {"seconds": seconds})


def echo_command(message: str) -> types_pb2.Command:
    """Write ``message`` to the task log."""
    return command("echo", {"message": message})


def noop_command() -> types_pb2.Command:
    """Do nothing and succeed."""
    return command("noop")


def task_spec(
    *commands: types_pb2.Command, name: str = "", type: str = "", depends_on: Sequence[str] = ()
) -> types_pb2.TaskSpec:
    """A task running ``commands`` in order; ``depends_on`` names tasks of the same job."""
    return types_pb2.TaskSpec(name=name, type=type, commands=commands, depends_on=depends_on)


def parse_dependency(text: str) -> types_pb2.JobDependency:
    """``"afterok:01J…"`` → JobDependency; a bare job id means ``afterok`` (as Slurm's default)."""
    condition, sep, job_id = text.strip().rpartition(":")
    if not sep:
        condition = "afterok"
    if not job_id:
        raise InvalidArgument(f"dependency {text!r}: expected CONDITION:JOBID, e.g. afterok:01J…")
    try:
        value = DEPENDENCY_CONDITION.value(condition)
    except InvalidArgument as err:
        raise InvalidArgument(f"dependency {text!r}: {err.message}") from err
    return types_pb2.JobDependency(job_id=job_id, condition=value)


# --- parsing dicts and YAML -------------------------------------------------------------------


def as_job_spec(spec: JobSpecLike) -> types_pb2.JobSpec:
    """Accept either a ready JobSpec or its dict form (see :func:`job_spec_from_dict`)."""
    if isinstance(spec, types_pb2.JobSpec):
        return spec
    return job_spec_from_dict(spec)


def job_spec_from_dict(data: Mapping[str, Any]) -> types_pb2.JobSpec:
    """Parse the (sugared) dict form of a JobSpec; see the module docstring for the sugar."""
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"job spec: expected a mapping, got {_kind(data)}")
    if isinstance(data.get("spec"), Mapping):  # a whole Job, e.g. from `jobqctl job ID -o yaml`
        data = data["spec"]
    canonical = _desugar_job(data)
    try:
        return json_format.ParseDict(canonical, types_pb2.JobSpec())
    except json_format.ParseError as err:
        raise InvalidArgument(f"job spec: {err}") from err


def task_spec_from_dict(data: Mapping[str, Any], *, path: str = "task") -> types_pb2.TaskSpec:
    """Parse the (sugared) dict form of one TaskSpec; ``path`` names it in error messages."""
    canonical = _desugar_task(data, path)
    try:
        return json_format.ParseDict(canonical, types_pb2.TaskSpec())
    except json_format.ParseError as err:
        raise InvalidArgument(f"{path}: {err}") from err


def as_task_spec(task: TaskSpecLike, *, path: str = "task") -> types_pb2.TaskSpec:
    """Accept either a ready TaskSpec or its dict form."""
    if isinstance(task, types_pb2.TaskSpec):
        return task
    return task_spec_from_dict(task, path=path)


def job_spec_from_yaml(text: str, *, source: str = "<string>") -> types_pb2.JobSpec:
    """Parse one YAML (or JSON) document; ``source`` names it in error messages."""
    stream = io.StringIO(text)
    stream.name = source  # PyYAML names the stream in its error marks
    try:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc is not None]
    except yaml.YAMLError as err:
        raise InvalidArgument(f"{source}: not valid YAML: {err}") from err
    if len(documents) != 1:
        raise InvalidArgument(f"{source}: expected one YAML document, found {len(documents)}")
    try:
        return job_spec_from_dict(documents[0])
    except InvalidArgument as err:
        raise InvalidArgument(f"{source}: {err.message}") from err


def load_job_spec(path: str | Path) -> types_pb2.JobSpec:
    """Read a job spec file (YAML or JSON)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"{path}: cannot read job spec: {err}") from err
    return job_spec_from_yaml(text, source=str(path))


def _desugar_job(data: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys(data, types_pb2.JobSpec.DESCRIPTOR, "")
    out = dict(data)
    for key in _STRING_MAPS_OF_JOB:
        if key in out:
            out[key] = _string_map(out[key], key)
    if "tasks" in out:
        tasks = out["tasks"]
        if not isinstance(tasks, list):
            raise InvalidArgument(f"tasks: expected a list of tasks, got {_kind(tasks)}")
        out["tasks"] = [_desugar_task(task, f"tasks[{i}]") for i, task in enumerate(tasks)]
    if "array" in out:
        array = out["array"]
        if not isinstance(array, Mapping):
            raise InvalidArgument(
                f"array: expected a mapping with template, start, end, step, got {_kind(array)}"
            )
        _check_keys(array, types_pb2.ArraySpec.DESCRIPTOR, "array")
        out["array"] = dict(array)
        if "template" in array:
            out["array"]["template"] = _desugar_task(array["template"], "array.template")
    if "depends_on" in out:
        deps = out["depends_on"]
        if not isinstance(deps, list):
            raise InvalidArgument(f"depends_on: expected a list, got {_kind(deps)}")
        out["depends_on"] = [_desugar_dependency(dep, f"depends_on[{i}]") for i, dep in enumerate(deps)]
    return out


def _desugar_task(task: Any, path: str) -> dict[str, Any]:
    if not isinstance(task, Mapping):
        raise InvalidArgument(f"{path}: expected a mapping with commands, got {_kind(task)}")
    _check_keys(task, types_pb2.TaskSpec.DESCRIPTOR, path)
    out = dict(task)
    commands = out.get("commands")
    if commands is not None:
        if not isinstance(commands, list):
            raise InvalidArgument(f"{path}.commands: expected a list of commands, got {_kind(commands)}")
        out["commands"] = [_desugar_command(cmd, f"{path}.commands[{i}]") for i, cmd in enumerate(commands)]
    return out


def _desugar_command(cmd: Any, path: str) -> dict[str, Any]:
    if not isinstance(cmd, Mapping):
        raise InvalidArgument(f"{path}: expected a mapping such as {{exec: [argv…]}}, got {_kind(cmd)}")
    if "type" in cmd:
        _check_keys(cmd, types_pb2.Command.DESCRIPTOR, path)
        return dict(cmd)
    sugar = [key for key in cmd if key in _COMMAND_SUGAR]
    if not sugar:
        first = next(iter(cmd), None)
        raise InvalidArgument(
            f"{path}: unknown command type key {first!r} "
            f"(expected one of {', '.join(_COMMAND_SUGAR)}, or type and params)"
        )
    if len(sugar) > 1:
        raise InvalidArgument(f"{path}: one command per item, found {' and '.join(sugar)}")
    kind = sugar[0]
    extra = set(cmd) - {kind} - _COMMAND_SUGAR[kind]
    if extra:
        allowed = ", ".join(sorted(_COMMAND_SUGAR[kind])) or "nothing"
        raise InvalidArgument(
            f"{path}: unexpected key(s) {', '.join(sorted(extra))} beside {kind} (allowed: {allowed})"
        )
    value = cmd[kind]
    params: dict[str, Any]
    if kind == "exec":
        params = {"argv": _argv(value, f"{path}.exec")}
        if "env" in cmd:
            params["env"] = _string_map(cmd["env"], f"{path}.env")
        if "cwd" in cmd:
            params["cwd"] = _string(cmd["cwd"], f"{path}.cwd")
        if "timeout_s" in cmd:
            params["timeout_s"] = _number(cmd["timeout_s"], f"{path}.timeout_s")
    elif kind == "shell":
        params = {"script": _string(value, f"{path}.shell")}
        if "timeout_s" in cmd:
            params["timeout_s"] = _number(cmd["timeout_s"], f"{path}.timeout_s")
    elif kind == "sleep":
        params = {"seconds": _number(value, f"{path}.sleep")}
    elif kind == "echo":
        params = {"message": _string(value, f"{path}.echo")}
    else:  # noop
        if value not in (None, {}):
            raise InvalidArgument(f"{path}.noop: takes no parameters, write noop: {{}}")
        params = {}
    return {"type": kind, "params": params}


def _desugar_dependency(dep: Any, path: str) -> dict[str, Any]:
    if isinstance(dep, str):
        try:
            parsed = parse_dependency(dep)
        except InvalidArgument as err:
            raise InvalidArgument(f"{path}: {err.message}") from err
        return json_format.MessageToDict(parsed, preserving_proto_field_name=True)
    if not isinstance(dep, Mapping):
        raise InvalidArgument(f"{path}: expected 'afterok:JOBID' or {{job_id, condition}}, got {_kind(dep)}")
    _check_keys(dep, types_pb2.JobDependency.DESCRIPTOR, path)
    out = dict(dep)
    condition = out.get("condition")
    if isinstance(condition, str):
        try:
            out["condition"] = types_pb2.DependencyCondition.Name(DEPENDENCY_CONDITION.value(condition))
        except InvalidArgument as err:
            raise InvalidArgument(f"{path}.condition: {err.message}") from err
    return out


def _check_keys(data: Mapping[str, Any], descriptor: Descriptor, path: str) -> None:
    known = {field.name for field in descriptor.fields} | {field.json_name for field in descriptor.fields}
    unknown = [key for key in data if key not in known]
    if unknown:
        where = f"{path}." if path else ""
        expected = ", ".join(field.name for field in descriptor.fields)
        raise InvalidArgument(f"{where}{unknown[0]}: unknown field (expected one of {expected})")


def _string_map(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{path}: expected a mapping of strings, got {_kind(value)}")
    return {str(key): _string(item, f"{path}.{key}") for key, item in value.items()}


def _argv(value: Any, path: str) -> list[str]:
    if isinstance(value, Mapping):
        raise InvalidArgument(f"{path}: expected a list of strings; env, cwd and timeout_s go beside exec")
    if not isinstance(value, list) or not value:
        hint = " (for a command line use shell:)" if isinstance(value, str) else ""
        raise InvalidArgument(f"{path}: expected a non-empty list of strings{hint}, got {_kind(value)}")
    return [_string(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _string(value: Any, path: str) -> str:
    """A string, or a number YAML read as one (``cpu: 2``); anything else is a mistake."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidArgument(f"{path}: expected a string, got {_kind(value)} (quote it)")


def _number(value: Any, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise InvalidArgument(f"{path}: expected a non-negative number of seconds, got {value!r}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )
