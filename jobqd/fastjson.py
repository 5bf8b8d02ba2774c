"""JSON text to Python with orjson — three to four times faster than json on the documents jobqd
reads by the hundred thousand (job definitions at start-up, Kubernetes watch events) — and json
for whatever orjson refuses (an infinity, a lone surrogate), so no document becomes unreadable."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(text: str | bytes) -> Any:
    """Parse ``text``; raises ValueError when neither parser can."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
