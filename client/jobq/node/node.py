"""The node's attempts: what jobqd assigned, what is still running, and stopping them.

The stream hands every Assign and Abort to :class:`Node`; nothing here knows about gRPC. Hello and
heartbeats ask :meth:`Node.in_flight` what to list: attempts still running plus those whose result
has not reached jobqd yet (so jobqd keeps their lease until the result arrives after a reconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

import structlog

from jobq.node.attempts import Attempt, AttemptContext
from jobq.node.commands import CommandError, CommandSpec, NoopSpec, parse_command, struct_to_python
from jobq.v1 import node_service_pb2 as pb
from jobq.v1 import types_pb2

log = structlog.get_logger(__name__)

AttemptKey = tuple[str, int]


class Node:
    """Registry of running attempts; turns Assign/Abort into attempts and updates."""

    def __init__(
        self,
        *,
        ctx: AttemptContext,
        slots: int,
        command_types: Collection[str],
        shell_allowed: bool,
    ) -> None:
        self._ctx = ctx
        self._slots = slots
        self._command_types = frozenset(command_types)
        self._shell_allowed = shell_allowed
        self._attempts: dict[AttemptKey, Attempt] = {}
        self._stopping = False
        self._all_done = asyncio.Event()
        self._all_done.set()

    @property
    def running(self) -> Mapping[AttemptKey, Attempt]:
        """Attempts currently running, by (task_id, attempt)."""
        return self._attempts

    def in_flight(self) -> list[types_pb2.RunningAttempt]:
        """What Hello and Heartbeat list: running attempts and undelivered results."""
        keys = dict.fromkeys(self._attempts)
        keys.update(dict.fromkeys(self._ctx.outbox.undelivered_results()))
        return [types_pb2.RunningAttempt(task_id=task_id, attempt=attempt) for task_id, attempt in keys]

    # -- from jobqd ----------------------------------------------------------------------------

    def on_assign(self, assign: pb.Assign) -> None:
        """Start the assigned attempt, or refuse it with a terminal update saying why."""
        key = (assign.task_id, assign.attempt)
        if key in self._attempts:
            log.warning("duplicate assign ignored", task_id=assign.task_id, attempt=assign.attempt)
            return
        if self._stopping:
            self._refuse(assign, pb.UPDATE_KIND_ABORTED, "node is shutting down")
            return
        if len(self._attempts) >= self._slots:
            self._refuse(
                assign,
                pb.UPDATE_KIND_FAILED,
                f"node {self._ctx.node_name} is over capacity: all {self._slots} slots are busy "
                "(jobqd assigned more than the node advertised)",
            )
            return
        specs = self._parse(assign)
        if isinstance(specs, str):
            self._refuse(assign, pb.UPDATE_KIND_FAILED, specs)
            return
        if all(isinstance(spec, NoopSpec) for spec in specs):
            # Nothing to run: report at once, without a task (the hot path of a noop benchmark).
            outbox = self._ctx.outbox
            outbox.put_update(task_id=assign.task_id, attempt=assign.attempt, kind=pb.UPDATE_KIND_STARTED)
            outbox.put_update(
                task_id=assign.task_id,
                attempt=assign.attempt,
                kind=pb.UPDATE_KIND_COMPLETED,
                exit_code=0,
                progress=100,
            )
            return
        attempt = Attempt(
            task_id=assign.task_id,
            attempt=assign.attempt,
            job_id=assign.job_id,
            specs=specs,
            ctx=self._ctx,
            on_done=self._attempt_done,
            resources=assign.resources,
        )
        self._attempts[key] = attempt
        self._all_done.clear()
        attempt.task = asyncio.create_task(attempt.run(), name=f"attempt {assign.task_id}#{assign.attempt}")
        log.debug("attempt started", task_id=assign.task_id, attempt=assign.attempt, job_id=assign.job_id)

    def on_abort(self, abort: pb.Abort) -> None:
        """Abort a running attempt; an attempt not running here is answered ABORTED right away."""
        attempt = self._attempts.get((abort.task_id, abort.attempt))
        grace_s = abort.grace_ms / 1000 if abort.grace_ms > 0 else self._ctx.grace_s
        if attempt is None:
            log.info("abort of an attempt not running here", task_id=abort.task_id, attempt=abort.attempt)
            self._ctx.outbox.put_update(
                task_id=abort.task_id,
                attempt=abort.attempt,
                kind=pb.UPDATE_KIND_ABORTED,
                message="not running on this node",
            )
            return
        log.info(
            "aborting attempt",
            task_id=abort.task_id,
            attempt=abort.attempt,
            reason=abort.reason,
            grace_s=grace_s,
        )
        attempt.abort(grace_s=grace_s, reason=abort.reason)

    # -- stopping ------------------------------------------------------------------------------

    def stop_accepting(self) -> None:
        """From now on every Assign is answered ABORTED ("node is shutting down")."""
        self._stopping = True

    async def abort_all(self, *, grace_s: float, reason: str, timeout_s: float) -> bool:
        """Abort every running attempt and wait (at most ``timeout_s``) until all have reported."""
        for attempt in list(self._attempts.values()):
            attempt.abort(grace_s=grace_s, reason=reason)
        try:
            async with asyncio.timeout(timeout_s):
                await self._all_done.wait()
        except TimeoutError:
            return False
        return True

    def kill_all(self) -> None:
        """SIGKILL everything now, no more grace."""
        for attempt in list(self._attempts.values()):
            attempt.kill_now()

    async def cancel_all(self) -> None:
        """Last resort at exit: cancel attempts that did not finish."""
        tasks = [a.task for a in self._attempts.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # -- internals -----------------------------------------------------------------------------

    def _attempt_done(self, attempt: Attempt) -> None:
        self._attempts.pop(attempt.key, None)
        if not self._attempts:
            self._all_done.set()

    def _parse(self, assign: pb.Assign) -> list[CommandSpec] | str:
        total = len(assign.commands)
        if total == 0:
            return "assignment has no commands"
        specs: list[CommandSpec] = []
        for index, command in enumerate(assign.commands, 1):
            params = struct_to_python(command.params) if command.params.fields else {}
            try:
                specs.append(
                    parse_command(
                        command.type,
                        params,
                        supported=self._command_types,
                        shell_allowed=self._shell_allowed,
                    )
                )
            except CommandError as err:
                return f"command {index}/{total} ({command.type}): {err}"
        return specs

    def _refuse(self, assign: pb.Assign, kind: pb.UpdateKind.ValueType, message: str) -> None:
        log.warning("assignment refused", task_id=assign.task_id, attempt=assign.attempt, reason=message)
        self._ctx.outbox.put_update(
            task_id=assign.task_id, attempt=assign.attempt, kind=kind, message=message
        )
