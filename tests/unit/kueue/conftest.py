"""Real Kueue object shapes for the pure mapping tests (see shapes/README.md)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SHAPES = Path(__file__).resolve().parent / "shapes"


@pytest.fixture
def shape() -> Callable[[str], dict[str, Any]]:
    """shape("admitted") -> a fresh copy of shapes/admitted.json."""
    cache: dict[str, dict[str, Any]] = {}

    def load(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = json.loads((SHAPES / f"{name}.json").read_text())
        return copy.deepcopy(cache[name])

    return load
