"""The guard in front of every RPC: who is calling, may they, and can we take it now.

A handler wrapper (`jobqd.api.server`): `Guard.wrap` is applied to each method once, when the server
is built, and decides there what depends only on the method. For each call, in this order:

1. health and reflection are not wrapped (no data in either; load balancers need them);
2. authentication, when on: `authorization: Bearer <token>` must name a live token, else
   UNAUTHENTICATED; the role must be allowed by `jobqd.auth.policy`, else PERMISSION_DENIED;
3. read-only mode (after a failed store write, see jobqd.daemon): state-changing RPCs get
   UNAVAILABLE before they can touch memory;
4. overload limits: a bound on submits in flight (count and bytes) and on open streams per
   identity, both RESOURCE_EXHAUSTED;
5. the handler runs with the caller bound to `jobqd.auth.identity`.

Open streams are tracked, so that a revoked token's streams (a node's Connect, a WatchEvents) end
with UNAUTHENTICATED at once, and node streams end with UNAVAILABLE when the store goes read-only.
Nothing here logs a token or any metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias

import grpc
import grpc.aio
import structlog

from jobqd.auth import identity, policy
from jobqd.auth.identity import Identity
from jobqd.auth.tokens import TokenBook

log = structlog.get_logger("jobqd.auth")

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SC = grpc.StatusCode


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """Overload bounds (docs/limits.md); the defaults come from jobqd.settings.LimitSettings."""

    max_inflight_submits: int = 1024
    max_inflight_submit_bytes: int = 256 * 1024 * 1024
    max_streams_per_identity: int = 128


class _Stream:
    __slots__ = ("context", "ended", "key", "method", "name", "task")

    def __init__(self, *, key: str, name: str, method: str, context: Ctx) -> None:
        self.key = key
        self.name = name
        self.method = method
        self.context = context
        self.task = asyncio.current_task()
        self.ended = False


def _bearer(metadata: Iterable[Any] | None) -> str:
    for item in metadata or ():
        key, value = item[0], item[1]
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def _short(method: str) -> str:
    service, _, name = method.strip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}.{name}"


class Guard:
    def __init__(
        self,
        *,
        tokens: TokenBook | None,
        auth_required: bool = False,
        limits: GuardLimits | None = None,
        on_reject: Callable[[grpc.StatusCode], None] | None = None,
    ) -> None:
        self._tokens = tokens
        self._auth_required = auth_required
        self.limits = limits or GuardLimits()
        self._on_reject = on_reject
        #: why state-changing RPCs are refused ("" = they are not)
        self.read_only = ""
        self._streams: dict[str, set[_Stream]] = {}
        self.submits_in_flight = 0
        self.submit_bytes_in_flight = 0
        if tokens is not None:
            tokens.on_revoked = self._revoked
            tokens.on_auth_on = self._auth_turned_on

    @property
    def auth_on(self) -> bool:
        return self._auth_required or (self._tokens is not None and self._tokens.ever_had_tokens)

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` of `method`, guarded (see the module's docstring)."""
        if policy.is_open(method):
            return handler
        rule = policy.rule_for(method)
        if handler.request_streaming or handler.response_streaming:
            return self._wrap_stream(handler, method, rule)
        return self._wrap_unary(handler, method, rule)

    async def _admit(self, method: str, rule: policy.Rule, context: Ctx) -> Identity | None:
        """The caller's identity (None without authentication), or the call is aborted."""
        ident: Identity | None = None
        if self.auth_on:
            token = _bearer(context.invocation_metadata())
            if not token:
                await self._deny(
                    context,
                    SC.UNAUTHENTICATED,
                    "this jobqd requires a token: send 'authorization: Bearer <token>' "
                    "(jobqctl --token or JOBQ_TOKEN; jobq-node --token-file)",
                )
            ident = await self._tokens.verify_fresh(token) if self._tokens is not None else None
            if ident is None:
                await self._deny(context, SC.UNAUTHENTICATED, "the token is not valid (unknown or revoked)")
            if ident.role not in rule.roles:
                needs = " or ".join(sorted(r.value for r in rule.roles))
                await self._deny(
                    context,
                    SC.PERMISSION_DENIED,
                    f"{_short(method)} needs a token with role {needs}; "
                    f"{ident.name!r} has role {ident.role.value}",
                )
        if rule.writes and self.read_only:
            await self._deny(context, SC.UNAVAILABLE, self.read_only)
        return ident

    # -- refusing --------------------------------------------------------------------------------

    async def _deny(self, context: Ctx, code: grpc.StatusCode, message: str) -> NoReturn:
        self._rejected(code)
        await context.abort(code, message)
        raise AssertionError("unreachable: abort raises")

    # -- unary -----------------------------------------------------------------------------------

    def _wrap_unary(self, handler: Handler, method: str, rule: policy.Rule) -> Handler:
        inner: Any = handler.unary_unary
        submit = rule.submit

        async def behavior(request: Any, context: Ctx) -> Any:
            ident = await self._admit(method, rule, context)
            if ident is None and not submit:
                return await inner(request, context)  # the common unauthenticated call: no more
            bound = identity.bind(ident)
            try:
                if not submit:
                    return await inner(request, context)
                # raw bytes when an inner wrapper parses the request itself (api.decoding)
                size = len(request) if isinstance(request, bytes) else request.ByteSize()
                if not self._take_submit(size):
                    await self._deny(
                        context,
                        SC.RESOURCE_EXHAUSTED,
                        f"jobqd has {self.submits_in_flight} submits "
                        f"({self.submit_bytes_in_flight >> 20} MiB) in flight; retry with backoff",
                    )
                try:
                    return await inner(request, context)
                finally:
                    self.submits_in_flight -= 1
                    self.submit_bytes_in_flight -= size
            finally:
                identity.unbind(bound)

        return handler._replace(unary_unary=behavior)  # type: ignore[attr-defined,no-any-return]

    def _take_submit(self, size: int) -> bool:
        lim = self.limits
        if self.submits_in_flight >= lim.max_inflight_submits:
            return False
        # one request larger than the byte bound alone is still let through when nothing else is
        # in flight; the message size limit bounds it
        if self.submits_in_flight and self.submit_bytes_in_flight + size > lim.max_inflight_submit_bytes:
            return False
        self.submits_in_flight += 1
        self.submit_bytes_in_flight += size
        return True

    # -- streams ---------------------------------------------------------------------------------

    def _wrap_stream(self, handler: Handler, method: str, rule: policy.Rule) -> Handler:
        inner: Any = handler.unary_stream or handler.stream_stream or handler.stream_unary

        if inspect.isasyncgenfunction(inner):

            async def gen_behavior(request: Any, context: Ctx) -> AsyncIterator[Any]:
                ident = await self._admit(method, rule, context)
                bound = identity.bind(ident)
                stream = await self._open(method, ident, context)
                try:
                    async for item in inner(request, context):
                        yield item
                finally:
                    self._close(stream)
                    with contextlib.suppress(ValueError):  # closed from another context
                        identity.unbind(bound)

            return _same_kind(handler, gen_behavior)

        async def behavior(request: Any, context: Ctx) -> Any:
            ident = await self._admit(method, rule, context)
            bound = identity.bind(ident)
            stream = await self._open(method, ident, context)
            try:
                return await inner(request, context)
            finally:
                self._close(stream)
                identity.unbind(bound)

        return _same_kind(handler, behavior)

    async def _open(self, method: str, ident: Identity | None, context: Ctx) -> _Stream:
        # without authentication every caller is local; one connection is one "identity"
        key = ident.name if ident is not None else context.peer()
        streams = self._streams.setdefault(key, set())
        if len(streams) >= self.limits.max_streams_per_identity:
            if not streams:
                del self._streams[key]
            self._rejected(SC.RESOURCE_EXHAUSTED)
            await context.abort(
                SC.RESOURCE_EXHAUSTED,
                f"{key!r} has {len(streams)} streams open, the most one identity may have",
            )
        stream = _Stream(key=key, name=ident.name if ident else "", method=method, context=context)
        streams.add(stream)
        return stream

    def _close(self, stream: _Stream) -> None:
        streams = self._streams.get(stream.key)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._streams[stream.key]

    def cut_streams(self, match: Callable[[str, str], bool], code: grpc.StatusCode, message: str) -> int:
        """End every open stream for which match(token name, method) holds: the client gets
        `code` at once, the handler is cancelled wherever it waits."""
        every = [s for group in self._streams.values() for s in group]
        hits = [s for s in every if not s.ended and match(s.name, s.method)]
        for s in hits:
            s.ended = True
            asyncio.get_running_loop().create_task(_end(s, code, message), name=f"cut-stream:{s.method}")
        return len(hits)

    def _revoked(self, names: set[str]) -> None:
        n = self.cut_streams(lambda name, _m: name in names, SC.UNAUTHENTICATED, "the token was revoked")
        if n:
            log.info("ended streams of revoked tokens", streams=n)

    def _auth_turned_on(self) -> None:
        # streams opened while authentication was off carry no token: like a revoked token's, they
        # may not outlive the change (a node or watcher reconnects, now with its token)
        n = self.cut_streams(
            lambda name, _m: not name,
            SC.UNAUTHENTICATED,
            "authentication is now on: reconnect with a token",
        )
        if n:
            log.info("ended streams opened without a token", streams=n)

    def _rejected(self, code: grpc.StatusCode) -> None:
        if self._on_reject is not None:
            self._on_reject(code)


async def _end(stream: _Stream, code: grpc.StatusCode, message: str) -> None:
    # abort from here sends the status now (the handler may be idle for hours); then the handler
    # is cancelled so its cleanup runs. Cancelling alone would leave the client waiting.
    with contextlib.suppress(Exception):
        await stream.context.abort(code, message)
    if stream.task is not None and stream.task is not asyncio.current_task():
        stream.task.cancel()


def _same_kind(handler: Handler, behavior: Callable[..., Any]) -> Handler:
    if handler.request_streaming and handler.response_streaming:
        return handler._replace(stream_stream=behavior)  # type: ignore[attr-defined,no-any-return]
    if handler.request_streaming:
        return handler._replace(stream_unary=behavior)  # type: ignore[attr-defined,no-any-return]
    if handler.response_streaming:
        return handler._replace(unary_stream=behavior)  # type: ignore[attr-defined,no-any-return]
    return handler._replace(unary_unary=behavior)  # type: ignore[attr-defined,no-any-return]
