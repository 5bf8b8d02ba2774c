"""Follow a Kubernetes resource for as long as jobqd runs, in three small layers (as kopf does):

1. `watch_forever` — relists forever with jittered exponential backoff; a failure is logged,
   never raised, so an unreachable API server cannot crash-loop the daemon.
2. `list_then_watch` — lists, hands the full list to the `Cache` (which diffs it against what it
   had, so nothing that changed while we were away is missed), then watches from the list's
   resourceVersion, resuming from the last event or bookmark each time a watch ends or breaks;
   410 Gone (compaction, an API server restart) means relist.
3. `stream` — one watch request with `timeout_seconds` and a socket read timeout, yielding decoded
   events; an ERROR event becomes an exception (`Gone` for 410).

The `Cache` keeps the last seen object per name and calls `on_event(type, new, old)` for each
change, and `on_synced()` after each (re)list. Callbacks run on the event loop, synchronously.

`jobq_watch_reconnects_total{resource}` (`metrics.WATCH_RECONNECTS`) counts each time a watch is
re-established: every relist after the first list (410 Gone, or a failed list/watch), and every
watch that the server accepted again after a broken one. A watch the server simply ended at its
timeout, resumed without trouble, is not counted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from jobqd.admission.kueue.kubeapi import Gone, KubeApi, KubeError, KubeUnavailable, Resource, status_error
from jobqd.admission.kueue.mapping import name_of, rv_of
from jobqd.metrics import WATCH_RECONNECTS

log = structlog.get_logger("jobqd.kueue.watch")

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

Obj = dict[str, Any]
OnEvent = Callable[[str, Obj, Obj | None], None]


@dataclass(frozen=True, slots=True)
class WatchTiming:
    #: The server ends each watch after about this many seconds (jittered ±20% so many watches do
    #: not renew at once); the watch resumes from its last resourceVersion without a relist.
    watch_timeout_s: int = 50
    #: Socket read timeout, seconds. Longer than the watch timeout: the server sends a bookmark at
    #: the end of every watch and about once a minute, so silence past this means a dead connection.
    read_timeout_s: float = 70.0
    #: First reconnect delay after a failure, seconds; doubles per failure up to `backoff_max_s`,
    #: with full jitter so restarted clients do not stampede a recovering API server.
    backoff_initial_s: float = 0.2
    #: Reconnect delay cap, seconds. Short: an outage should end without a long blind spot.
    backoff_max_s: float = 5.0


class Backoff:
    def __init__(self, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self._initial = initial
        self._cap = cap
        self._attempt = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        ceiling: float = min(self._cap, self._initial * 2.0**self._attempt)
        self._attempt = min(self._attempt + 1, 30)
        return ceiling / 2 + float(self._rng.uniform(0, ceiling / 2))


class Cache:
    """Last seen objects of one resource, by name; tells its owner what changed."""

    def __init__(
        self, kind: str, *, on_event: OnEvent | None = None, on_synced: Callable[[], None] | None = None
    ) -> None:
        self.kind = kind
        self.objects: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        #: relists so far (the first list included)
        self.lists = 0
        self._on_event = on_event
        self._on_synced = on_synced

    def get(self, name: str) -> Obj | None:
        return self.objects.get(name)

    def replace(self, items: list[Obj]) -> None:
        """A fresh list: report what appeared, changed and disappeared since the last one."""
        fresh = {name_of(o): o for o in items}
        gone = [(n, o) for n, o in self.objects.items() if n not in fresh]
        for name, gone_obj in gone:
            del self.objects[name]
            self._emit(DELETED, gone_obj, gone_obj)
        for name, obj in fresh.items():
            old = self.objects.get(name)
            if old is not None and rv_of(old) == rv_of(obj):
                continue
            self.objects[name] = obj
            self._emit(MODIFIED if old is not None else ADDED, obj, old)
        self.lists += 1
        self.synced.set()
        if self._on_synced is not None:
            self._on_synced()

    def apply(self, type_: str, obj: Obj) -> None:
        name = name_of(obj)
        old = self.objects.get(name)
        if type_ == DELETED:
            self.objects.pop(name, None)
        else:
            self.objects[name] = obj
        self._emit(type_, obj, old)

    def _emit(self, type_: str, obj: Obj, old: Obj | None) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(type_, obj, old)
        except Exception:  # one bad event must not stop the watch
            log.exception(
                "handling a watch event failed", kind=self.kind, watch_event=type_, name=name_of(obj)
            )


# -- layer 3: one stream ---------------------------------------------------------------------------


async def stream(
    api: KubeApi, res: Resource, *, resource_version: str, timing: WatchTiming, rng: random.Random
) -> AsyncIterator[tuple[str, Obj]]:
    """One watch request. Yields (type, object), BOOKMARK included; raises on an ERROR event."""
    timeout = max(1, round(timing.watch_timeout_s * rng.uniform(0.8, 1.2)))
    async for event in api.watch(
        res, resource_version=resource_version, timeout_s=timeout, read_timeout_s=timing.read_timeout_s
    ):
        type_ = str(event.get("type", ""))
        obj = event.get("object")
        if not isinstance(obj, dict):
            continue
        if type_ == "ERROR":
            raise status_error(obj)
        yield type_, obj


# -- layer 2: list, then watch ----------------------------------------------------------------------


async def list_then_watch(
    api: KubeApi,
    res: Resource,
    cache: Cache,
    *,
    timing: WatchTiming,
    rng: random.Random,
    backoff: Backoff,
    on_listed: Callable[[], None] = lambda: None,
) -> None:
    """List into `cache`, then watch from there for ever.

    A watch the server ends, or one that breaks (connection reset, API server restarting, 429/5xx),
    resumes from the last resourceVersion seen — after a backoff for a broken one — without a
    relist; only 410 Gone (that version is no longer kept: compaction, a restarted API server's
    fresh watch cache) forces a relist. A failing list is for the caller (`watch_forever`).
    """
    while True:
        items, rv = await api.list(res)
        if cache.lists:  # a relist: the watch is re-established from a fresh list
            WATCH_RECONNECTS.labels(resource=res.plural).inc()
        cache.replace(items)
        backoff.reset()
        on_listed()
        log.debug("listed", resource=str(res), count=len(items), resource_version=rv)
        broken = 0
        try:
            while True:
                try:
                    async for type_, obj in stream(api, res, resource_version=rv, timing=timing, rng=rng):
                        rv = rv_of(obj) or rv
                        if broken:
                            _resumed(res, broken)
                            broken = 0
                            backoff.reset()
                        if type_ in (ADDED, MODIFIED, DELETED):
                            cache.apply(type_, obj)
                    if broken:  # the server accepted the watch again and ended it without events
                        _resumed(res, broken)
                        broken = 0
                        backoff.reset()
                except Gone:
                    raise
                except (KubeUnavailable, KubeError) as err:
                    if isinstance(err, KubeError) and not err.transient:
                        raise
                    broken += 1
                    delay = backoff.next()
                    (log.warning if broken == 1 else log.debug)(
                        "watch broke; resuming", resource=str(res), error=str(err), retry_in_s=round(delay, 2)
                    )
                    await asyncio.sleep(delay)
        except Gone as err:
            log.info("watch expired (410 Gone); relisting", resource=str(res), error=err.message)


def _resumed(res: Resource, failures: int) -> None:
    log.info("watch resumed", resource=str(res), failures=failures)
    WATCH_RECONNECTS.labels(resource=res.plural).inc()


# -- layer 1: forever ------------------------------------------------------------------------------


async def watch_forever(
    api: KubeApi,
    res: Resource,
    cache: Cache,
    *,
    timing: WatchTiming,
    rng: random.Random | None = None,
) -> None:
    """Keep `cache` following `res` until cancelled, whatever the API server does."""
    rng = rng or random.Random()
    backoff = Backoff(timing.backoff_initial_s, timing.backoff_max_s, rng)
    failures = 0

    def listed() -> None:
        nonlocal failures
        if failures:
            log.info("watch reconnected", resource=str(res), failures=failures)
        failures = 0

    while True:
        try:
            await list_then_watch(api, res, cache, timing=timing, rng=rng, backoff=backoff, on_listed=listed)
        except asyncio.CancelledError:
            raise
        except (KubeError, KubeUnavailable) as err:
            failures += 1
            delay = backoff.next()
            # the first failure of an outage is worth a warning; the rest are noise until it ends
            (log.warning if failures == 1 else log.debug)(
                "list failed; retrying", resource=str(res), error=str(err), retry_in_s=round(delay, 2)
            )
        except Exception:  # a bug must not end the watch for good
            failures += 1
            delay = backoff.next()
            log.exception("watch crashed; relisting", resource=str(res), retry_in_s=round(delay, 2))
        await asyncio.sleep(delay)
