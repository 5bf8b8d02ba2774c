"""Running one attempt: its commands in order, then exactly one terminal update.

``noop``, ``echo`` and ``sleep`` run in-process (no process, no work dir, no thread), so a node can
turn over thousands of trivial tasks a second. ``exec`` and ``shell`` spawn a process group in the
attempt's working directory, created on first use and removed at the end.

Outcomes: the first failing command fails the attempt (FAILED, with exit code and a message naming
the command); an Abort stops the current command (ABORTED); otherwise COMPLETED.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from jobq.node.allowlist import Allowlist, CommandRefused
from jobq.node.batching import AttemptLog, Flusher
from jobq.node.commands import (
    CommandSpec,
    EchoSpec,
    ExecSpec,
    NoopSpec,
    PluginSpec,
    ShellSpec,
    SleepSpec,
)
from jobq.node.identity import RunAs
from jobq.node.limits import LimitSettings, limits_for, wrap
from jobq.node.outbox import Outbox
from jobq.node.output import last_progress, text_lines, truncate_line
from jobq.node.plugins import CommandPlugin
from jobq.node.processes import Ending, RunningProcess, run_process
from jobq.v1 import node_service_pb2 as pb

log = structlog.get_logger(__name__)

_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_PLUGIN_LINES_PER_WRITE = 1024


@dataclass(frozen=True)
class AttemptContext:
    """Everything attempts share: what the node was configured with, and where output goes."""

    node_name: str
    work_root: Path
    keep_work_dirs: bool
    grace_s: float
    allowlist: Allowlist
    base_env: Mapping[str, str]
    plugins: Mapping[str, CommandPlugin]
    outbox: Outbox
    flusher: Flusher
    max_line_bytes: int
    batch_lines: int
    batch_bytes: int
    run_as: RunAs | None = None
    """The user commands run as (None: the node's own)."""
    limits: LimitSettings = field(default_factory=lambda: LimitSettings(memory="off"))
    prlimit: str | None = None
    """util-linux prlimit, needed (and found at start) when ``limits`` may limit anything."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt (or a command that ends it) reports."""

    kind: pb.UpdateKind.ValueType
    exit_code: int | None = None
    message: str = ""


def work_dir_name(task_id: str, attempt: int) -> str:
    """A file-system-safe, unique directory name for an attempt."""
    return f"{_UNSAFE_PATH_CHARS.sub('_', task_id)}.{attempt}"


def describe(index: int, total: int, spec: CommandSpec) -> str:
    """How messages name a command: ``command 2/3 (exec /bin/false)``."""
    if isinstance(spec, ExecSpec):
        what = f"exec {spec.argv[0]}"
    elif isinstance(spec, PluginSpec):
        what = spec.type
    else:
        what = type(spec).__name__.removesuffix("Spec").lower()
    return f"command {index}/{total} ({what})"


def exit_outcome(label: str, returncode: int) -> Outcome | None:
    """None for success; FAILED for a non-zero exit or a signal (exit code 128+N, as shells do)."""
    if returncode == 0:
        return None
    if returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return Outcome(pb.UPDATE_KIND_FAILED, 128 + signum, f"{label}: killed by {name}")
    return Outcome(pb.UPDATE_KIND_FAILED, returncode, f"{label}: exited with code {returncode}")


class Attempt:
    """One assigned (task, attempt) from start to its terminal update."""

    def __init__(
        self,
        *,
        task_id: str,
        attempt: int,
        job_id: str,
        specs: Sequence[CommandSpec],
        ctx: AttemptContext,
        on_done: Callable[[Attempt], None],
        resources: Mapping[str, str] | None = None,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.job_id = job_id
        self._specs = specs
        self._ctx = ctx
        self._rlimits = limits_for(resources or {}, ctx.limits) if ctx.prlimit else {}
        self._on_done = on_done
        self._abort: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._abort_reason = ""
        self._process: RunningProcess | None = None
        self._plugin_task: asyncio.Task[int] | None = None
        self._log: AttemptLog | None = None
        self._work_dir: Path | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def key(self) -> tuple[str, int]:
        """(task_id, attempt)."""
        return (self.task_id, self.attempt)

    # -- control from the node -----------------------------------------------------------------

    def abort(self, *, grace_s: float, reason: str) -> None:
        """Stop the running command: SIGTERM, SIGKILL after ``grace_s``. Idempotent."""
        if not self._abort.done():
            self._abort_reason = reason
            self._abort.set_result(grace_s)

    def kill_now(self) -> None:
        """Skip what is left of the grace period (the operator insisted)."""
        self.abort(grace_s=0, reason="node shutting down")
        if self._process is not None:
            self._process.kill()
        if self._plugin_task is not None:
            self._plugin_task.cancel()

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the commands and report; never raises (except when cancelled)."""
        ctx = self._ctx
        outcome = Outcome(pb.UPDATE_KIND_COMPLETED, 0)
        ctx.outbox.put_update(task_id=self.task_id, attempt=self.attempt, kind=pb.UPDATE_KIND_STARTED)
        try:
            total = len(self._specs)
            for index, spec in enumerate(self._specs, 1):
                if self._abort.done():
                    outcome = self._aborted()
                    break
                failed = await self._run_command(index, total, spec)
                if failed is not None:
                    outcome = failed
                    break
            if self._log is not None:
                await self._log.flush()
        except Exception as err:
            log.exception("attempt crashed", task_id=self.task_id, attempt=self.attempt)
            outcome = Outcome(pb.UPDATE_KIND_FAILED, None, f"jobq-node internal error: {err!r}")
        finally:
            await self._remove_work_dir()
        self._report(outcome)

    def _report(self, outcome: Outcome) -> None:
        self._on_done(self)
        self._ctx.outbox.put_update(
            task_id=self.task_id,
            attempt=self.attempt,
            kind=outcome.kind,
            message=outcome.message,
            exit_code=outcome.exit_code,
            progress=100 if outcome.kind == pb.UPDATE_KIND_COMPLETED else 0,
        )
        if outcome.kind != pb.UPDATE_KIND_COMPLETED:
            log.info(
                "attempt ended",
                task_id=self.task_id,
                attempt=self.attempt,
                kind=pb.UpdateKind.Name(outcome.kind),
                exit_code=outcome.exit_code,
                message=outcome.message,
            )
        else:
            log.debug("attempt completed", task_id=self.task_id, attempt=self.attempt)

    def _aborted(self) -> Outcome:
        reason = self._abort_reason
        return Outcome(pb.UPDATE_KIND_ABORTED, None, f"aborted: {reason}" if reason else "aborted")

    async def _run_command(self, index: int, total: int, spec: CommandSpec) -> Outcome | None:
        if isinstance(spec, NoopSpec):
            return None
        if isinstance(spec, EchoSpec):
            await self._write_lines(text_lines(spec.message, self._ctx.max_line_bytes))
            return None
        if isinstance(spec, SleepSpec):
            if spec.seconds > 0:
                await asyncio.wait((self._abort,), timeout=spec.seconds)
            return self._aborted() if self._abort.done() else None
        label = describe(index, total, spec)
        if isinstance(spec, ExecSpec):
            return await self._run_process(label, spec.argv, spec.env, spec.cwd, spec.timeout_s, check=True)
        if isinstance(spec, ShellSpec):
            argv = ("/bin/sh", "-c", spec.script)
            return await self._run_process(label, argv, {}, None, spec.timeout_s, check=False)
        return await self._run_plugin(label, spec)

    # -- in-process output ---------------------------------------------------------------------

    def _attempt_log(self) -> AttemptLog:
        if self._log is None:
            ctx = self._ctx
            self._log = AttemptLog(
                task_id=self.task_id,
                attempt=self.attempt,
                outbox=ctx.outbox,
                flusher=ctx.flusher,
                max_lines=ctx.batch_lines,
                max_bytes=ctx.batch_bytes,
            )
        return self._log

    async def _write_lines(self, lines: list[str]) -> None:
        sink = self._attempt_log()
        progress = last_progress(lines)
        if progress is not None:
            sink.set_progress(progress)
        await sink.write(lines)

    async def _plugin_sink(self, *lines: str) -> None:
        limit = self._ctx.max_line_bytes
        for start in range(0, len(lines), _PLUGIN_LINES_PER_WRITE):
            batch: list[str] = []
            for line in lines[start : start + _PLUGIN_LINES_PER_WRITE]:
                batch.extend(truncate_line(part, limit) for part in str(line).split("\n"))
            await self._write_lines(batch)

    # -- processes -----------------------------------------------------------------------------

    def _ensure_work_dir(self) -> Path:
        if self._work_dir is None:
            path = self._ctx.work_root / work_dir_name(self.task_id, self.attempt)
            if path.exists():  # left over by a node that crashed while running this attempt
                shutil.rmtree(path, ignore_errors=True)
            path.mkdir(mode=0o700, parents=True)
            if (user := self._ctx.run_as) is not None:
                os.chown(path, user.uid, user.gid)
            self._work_dir = path
        return self._work_dir

    async def _remove_work_dir(self) -> None:
        path, self._work_dir = self._work_dir, None
        if path is None or self._ctx.keep_work_dirs:
            return
        try:
            path.rmdir()  # the common case, and cheap: the command left nothing behind
        except OSError:
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)

    def _child_env(self, extra: Mapping[str, str], work_dir: Path) -> dict[str, str]:
        env = dict(self._ctx.base_env)
        if (user := self._ctx.run_as) is not None:
            env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        env.update(extra)
        env["JOBQ_TASK_ID"] = self.task_id
        env["JOBQ_JOB_ID"] = self.job_id
        env["JOBQ_ATTEMPT"] = str(self.attempt)
        env["JOBQ_NODE"] = self._ctx.node_name
        env["JOBQ_WORK_DIR"] = str(work_dir)
        return env

    async def _run_process(
        self,
        label: str,
        argv: Sequence[str],
        extra_env: Mapping[str, str],
        cwd: str | None,
        timeout_s: float | None,
        *,
        check: bool,
    ) -> Outcome | None:
        work_dir = self._ensure_work_dir()
        run_dir = str(work_dir if cwd is None else work_dir / cwd)  # an absolute cwd replaces it
        env = self._child_env(extra_env, work_dir)
        executable = argv[0]
        if check:
            try:
                executable = self._ctx.allowlist.check(argv[0], search_path=env.get("PATH"), cwd=run_dir)
            except CommandRefused as refused:
                return Outcome(pb.UPDATE_KIND_FAILED, refused.exit_code, refused.message)
        if self._rlimits and self._ctx.prlimit is not None:
            # exec'd through prlimit: the command keeps its pid and process group
            argv = wrap(self._ctx.prlimit, self._rlimits, executable, argv)
            executable = self._ctx.prlimit
        try:
            result = await run_process(
                argv=argv,
                executable=executable,
                env=env,
                cwd=run_dir,
                timeout_s=timeout_s,
                grace_s=self._ctx.grace_s,
                abort=self._abort,
                sink=self._attempt_log(),
                max_line_bytes=self._ctx.max_line_bytes,
                on_start=self._set_process,
                run_as=self._ctx.run_as,
            )
        except OSError as err:
            code = 127 if isinstance(err, FileNotFoundError) else 126
            reason = err.strerror or repr(err)
            where = f" (in {run_dir})" if isinstance(err, FileNotFoundError) and cwd else ""
            return Outcome(pb.UPDATE_KIND_FAILED, code, f"{label}: cannot start: {reason}{where}")
        finally:
            self._process = None
        if result.ending is Ending.ABORTED:
            return self._aborted()
        if result.ending is Ending.TIMED_OUT:
            return Outcome(pb.UPDATE_KIND_FAILED, None, f"{label}: timed out after {timeout_s:g}s")
        return exit_outcome(label, result.returncode if result.returncode is not None else -9)

    def _set_process(self, process: RunningProcess) -> None:
        self._process = process

    # -- plugins -------------------------------------------------------------------------------

    async def _run_plugin(self, label: str, spec: PluginSpec) -> Outcome | None:
        plugin = self._ctx.plugins[spec.type]
        task: asyncio.Task[int] = asyncio.ensure_future(plugin(spec.params, self._plugin_sink))
        self._plugin_task = task
        try:
            await asyncio.wait((task, self._abort), return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                task.cancel()
                await asyncio.wait((task,), timeout=self._abort.result())
                return self._aborted()
        finally:
            self._plugin_task = None
        if task.cancelled():
            return Outcome(pb.UPDATE_KIND_FAILED, None, f"{label}: cancelled")
        err = task.exception()
        if err is not None:
            return Outcome(pb.UPDATE_KIND_FAILED, None, f"{label}: raised {type(err).__name__}: {err}")
        code = task.result()
        if isinstance(code, bool) or not isinstance(code, int):
            return Outcome(pb.UPDATE_KIND_FAILED, None, f"{label}: returned {code!r}, not an exit code")
        return exit_outcome(label, code)


def scrubbed_environment(source: Mapping[str, str], passthrough: Sequence[str]) -> dict[str, str]:
    """The variables of ``source`` a child may inherit: only the names in ``passthrough``
    (a trailing ``*`` matches a prefix, e.g. ``LC_*``)."""
    out: dict[str, str] = {}
    for name in passthrough:
        if name.endswith("*"):
            prefix = name[:-1]
            out.update((k, v) for k, v in source.items() if k.startswith(prefix))
        elif name in source:
            out[name] = source[name]
    return out
