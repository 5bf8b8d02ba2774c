"""Job ids: short, lowercase, time-sortable (a ULID cousin).

9 base32 characters of milliseconds since the epoch, then 4 of a per-millisecond counter seeded
randomly, so ids sort by submission time, never collide within one daemon, and are valid in
Kubernetes object names (Workloads are named `jobq-<job id>-<generation>`).
"""

from __future__ import annotations

import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
# uniqueness comes from the time + counter; the random start only spreads ids, so a fast
# non-cryptographic generator is right here (SystemRandom costs a syscall per id)
_rng = random.Random()


def _b32(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


#: every 2-character base32 string by value: the counter part of an id in two lookups
_PAIRS = tuple(_b32(v, 2) for v in range(1024))


class IdGenerator:
    def __init__(self) -> None:
        self._last_ms = 0
        self._counter = 0
        self._ms_text = _b32(0, 9)  # always the text of _last_ms: it changes once a millisecond

    def new(self) -> str:
        ms = int(time.time() * 1000)
        if ms <= self._last_ms:
            ms = self._last_ms
            self._counter += 1
            if self._counter >= 32**4:
                ms += 1
                self._counter = _rng.getrandbits(15)
        else:
            self._counter = _rng.getrandbits(15)
        if ms != self._last_ms:
            self._ms_text = _b32(ms, 9)
            self._last_ms = ms
        c = self._counter
        return self._ms_text + _PAIRS[c >> 10] + _PAIRS[c & 1023]
