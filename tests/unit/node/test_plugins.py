"""Loading command plugins from entry points: broken ones are skipped, never fatal."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

from jobq.node import LogSink
from jobq.node.plugins import ENTRY_POINT_GROUP, load_plugins


async def render(params: dict[str, Any], log: LogSink) -> int:
    await log(f"frame {params['frame']}")
    return 0


class Bake:
    async def __call__(self, params: dict[str, Any], log: LogSink) -> int:
        return 0


NOT_CALLABLE = 42


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_plugins_load_by_name_and_bad_ones_are_skipped() -> None:
    here = __name__
    plugins = load_plugins(
        reserved=("exec", "noop"),
        found=[
            entry("render", f"{here}:render"),
            entry("bake", f"{here}:Bake"),  # a class is instantiated
            entry("exec", f"{here}:render"),  # built-in names cannot be taken
            entry("broken", "no_such_module_anywhere:thing"),
            entry("number", f"{here}:NOT_CALLABLE"),
            entry("render", f"{here}:Bake"),  # first one wins
        ],
    )
    assert set(plugins) == {"render", "bake"}
    assert plugins["render"] is render
    assert isinstance(plugins["bake"], Bake)
