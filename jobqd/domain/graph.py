"""Intra-job task dependencies: names resolved to positions, cycles refused."""

from __future__ import annotations

from collections.abc import Sequence

from jobqd.domain.errors import InvalidArgument
from jobqd.domain.model import TaskDef


def resolve_dependencies(
    tasks: Sequence[TaskDef], *, field: str = "spec.tasks"
) -> tuple[tuple[int, ...], ...]:
    """For each task, the positions it depends on. Raises InvalidArgument for duplicate names,
    unknown names, self-dependencies and cycles (naming one task on the cycle)."""
    by_name: dict[str, int] = {}
    for i, t in enumerate(tasks):
        if t.name in by_name:
            raise InvalidArgument(
                f"{field}[{i}].name", f"duplicate task name {t.name!r} (also tasks[{by_name[t.name]}])"
            )
        by_name[t.name] = i
    deps: list[tuple[int, ...]] = []
    for i, t in enumerate(tasks):
        resolved: list[int] = []
        for j, name in enumerate(t.depends_on):
            pos = by_name.get(name)
            if pos is None:
                raise InvalidArgument(f"{field}[{i}].depends_on[{j}]", f"no task named {name!r} in this job")
            if pos == i:
                raise InvalidArgument(f"{field}[{i}].depends_on[{j}]", f"task {name!r} depends on itself")
            resolved.append(pos)
        deps.append(tuple(resolved))
    # Kahn's algorithm; what is left over sits on (or behind) a cycle
    indegree = [len(d) for d in deps]
    children: list[list[int]] = [[] for _ in tasks]
    for i, d in enumerate(deps):
        for p in d:
            children[p].append(i)
    stack = [i for i, n in enumerate(indegree) if n == 0]
    seen = 0
    while stack:
        i = stack.pop()
        seen += 1
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                stack.append(c)
    if seen != len(tasks):
        stuck = next(i for i, n in enumerate(indegree) if n > 0)
        # the first leftover may only sit *behind* a cycle: follow its unfinished dependencies
        # until one repeats, so the message names a task that really is on the cycle
        walked: set[int] = set()
        while stuck not in walked:
            walked.add(stuck)
            stuck = next(p for p in deps[stuck] if indegree[p] > 0)
        raise InvalidArgument(
            f"{field}[{stuck}].depends_on",
            f"task dependencies form a cycle through task {tasks[stuck].name!r}",
        )
    return tuple(deps)
