"""Kubernetes resource quantities ("2", "500m", "1Gi", "1.5") as integer milli-units.

Quotas and requests are compared and summed as integers so admission math is exact; the text form
is kept for display and for Kueue, which wants quantities, not numbers.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_RE = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
#: Far beyond any real machine; keeps sums in int64 for SQLite and protobuf.
MAX_MILLI = 2**62


def parse_milli(text: str) -> int:
    """Parse a quantity into milli-units (rounded up, as Kubernetes does). Raises ValueError."""
    m = _RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a quantity (examples: 2, 500m, 1.5, 4Gi)")
    try:
        value = Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""] * 1000
    except InvalidOperation as err:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError(f"{text!r} is not a quantity") from err
    milli = int(value.to_integral_value(rounding="ROUND_CEILING"))
    if milli > MAX_MILLI:
        raise ValueError(f"{text!r} is too large")
    return milli


def format_milli(milli: int) -> str:
    """The shortest exact text for a milli-unit amount: 2000 → "2", 500 → "500m"."""
    if milli % 1000 == 0:
        return str(milli // 1000)
    return f"{milli}m"
