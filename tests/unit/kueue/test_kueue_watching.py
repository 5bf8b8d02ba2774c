"""The three watch layers against a scripted in-memory API: resume from the last resourceVersion
(bookmarks included), back off and resume when a stream breaks, relist (and diff) only on 410."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobqd.admission.kueue.kubeapi import KubeError, KubeUnavailable, Resource
from jobqd.admission.kueue.watching import Backoff, Cache, WatchTiming, watch_forever
from jobqd.metrics import REGISTRY

FAST = WatchTiming(watch_timeout_s=5, read_timeout_s=7.0, backoff_initial_s=0.001, backoff_max_s=0.002)


def obj(name: str, rv: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}, "status": status}


class ScriptedApi:
    """`list` answers come from `lists`; each `watch` call plays the next script: a list of events,
    or an exception to raise; when scripts run out the watch blocks until cancelled."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_calls = 0
        self.watch_rvs: list[str] = []
        self.idle = asyncio.Event()

    async def list(self, res: Resource) -> tuple[list[dict[str, Any]], str]:
        self.list_calls += 1
        answer = self.lists.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        items, rv = answer
        return items, rv

    async def watch(
        self, res: Resource, *, resource_version: str, timeout_s: int, read_timeout_s: float
    ) -> AsyncIterator[dict[str, Any]]:
        self.watch_rvs.append(resource_version)
        assert timeout_s > 0 and read_timeout_s > timeout_s
        if not self.watches:
            self.idle.set()
            await asyncio.Event().wait()
        script = self.watches.pop(0)
        if isinstance(script, BaseException):
            raise script
        for event in script:
            yield event


def reconnects(resource: str = "workloads") -> float:
    return REGISTRY.get_sample_value("jobq_watch_reconnects_total", {"resource": resource}) or 0.0


async def follow(api: ScriptedApi, cache: Cache) -> None:
    task = asyncio.create_task(
        watch_forever(api, Resource("workloads", "ns"), cache, timing=FAST, rng=random.Random(1))  # type: ignore[arg-type]
    )
    try:
        await asyncio.wait_for(api.idle.wait(), timeout=5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_resumes_from_bookmarks_and_after_a_broken_stream_and_relists_only_on_410() -> None:
    seen: list[tuple[str, str, str]] = []
    listed: list[int] = []
    cache = Cache(
        "workloads",
        on_event=lambda t, o, old: seen.append((t, o["metadata"]["name"], o["metadata"]["resourceVersion"])),
        on_synced=lambda: listed.append(len(seen)),
    )
    before = reconnects()
    api = ScriptedApi(
        lists=[([obj("a", "1"), obj("b", "2")], "10"), ([obj("b", "2"), obj("c", "21")], "30")],
        watches=[
            [
                {"type": "MODIFIED", "object": obj("a", "11")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
            ],  # the server ends the watch: resume from the bookmark
            KubeUnavailable("connection reset"),  # broken: back off, resume from the same version
            KubeError(503, "ServiceUnavailable", "apiserver is shutting down"),
            [{"type": "ADDED", "object": obj("x", "16")}],
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}],
        ],
    )
    await follow(api, cache)
    assert api.list_calls == 2
    assert api.watch_rvs == ["10", "15", "15", "15", "16", "30"]
    assert seen == [
        ("ADDED", "a", "1"),
        ("ADDED", "b", "2"),
        ("MODIFIED", "a", "11"),
        ("ADDED", "x", "16"),
        # the relist is diffed against what was known: gone ones are reported deleted, unchanged
        # ones (same resourceVersion) are not reported again
        ("DELETED", "a", "11"),
        ("DELETED", "x", "16"),
        ("ADDED", "c", "21"),
    ]
    assert listed == [2, 7] and cache.synced.is_set()
    assert sorted(cache.objects) == ["b", "c"]
    # re-established twice: the watch accepted again after two breaks, and the relist after 410
    # (the first list and the renewal after the server ended the watch are not reconnects)
    assert reconnects() - before == 2


async def test_a_failing_list_is_retried_for_ever() -> None:
    cache = Cache("workloads")
    before = reconnects()
    api = ScriptedApi(
        lists=[KubeUnavailable("refused"), KubeError(403, "Forbidden", "no"), ([obj("a", "1")], "5")],
        watches=[],
    )
    await follow(api, cache)
    assert api.list_calls == 3 and list(cache.objects) == ["a"]
    assert reconnects() == before  # never connected before: the first list is no reconnect


async def test_a_relist_after_a_failed_watch_counts_as_a_reconnect() -> None:
    cache = Cache("workloads")
    before = reconnects()
    api = ScriptedApi(
        lists=[([obj("a", "1")], "5"), ([obj("a", "1")], "6")],
        watches=[KubeError(403, "Forbidden", "rbac changed")],  # not transient: relist
    )
    await follow(api, cache)
    assert api.list_calls == 2 and reconnects() - before == 1


async def test_a_bad_event_handler_does_not_stop_the_watch() -> None:
    def boom(t: str, o: dict[str, Any], old: Any) -> None:
        if o["metadata"]["name"] == "bad":
            raise RuntimeError("bug")

    cache = Cache("workloads", on_event=boom)
    api = ScriptedApi(lists=[([], "1")], watches=[[{"type": "ADDED", "object": obj("bad", "2")},
                                                    {"type": "ADDED", "object": obj("good", "3")}]])  # fmt: skip
    await follow(api, cache)
    assert sorted(cache.objects) == ["bad", "good"] and api.watch_rvs == ["1", "3"]


def test_backoff_is_jittered_doubling_and_capped() -> None:
    b = Backoff(0.2, 5.0, random.Random(7))
    delays = [b.next() for _ in range(10)]
    for i, d in enumerate(delays):
        ceiling = min(5.0, 0.2 * 2**i)
        assert ceiling / 2 <= d <= ceiling
    b.reset()
    assert b.next() <= 0.2
