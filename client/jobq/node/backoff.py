"""How long the node waits before reconnecting to jobqd.

A node reconnects forever, but a farm of hundreds of nodes must not hammer a jobqd that is coming
back up all in the same millisecond: the delay grows exponentially to a small cap and is jittered so
that nodes spread out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential backoff; pure, so the policy can be tested as a table."""

    initial_s: float = 0.1
    """First delay, seconds. Short: the usual cause is a jobqd restart that is over quickly."""
    cap_s: float = 5.0
    """Largest delay, seconds. Running tasks keep running while the node is away, but their results
    wait for the stream, so the node should not stay away much longer than jobqd does."""
    factor: float = 2.0
    """Growth per consecutive failure."""
    jitter: float = 0.5
    """Fraction of each delay that is randomised (0 = none, 1 = "full jitter")."""

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.cap_s):
            raise ValueError("backoff needs 0 < initial_s <= cap_s")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be within [0, 1]")

    def delay(self, failures: int, *, rand: float) -> float:
        """Seconds to wait after ``failures`` consecutive failed connections.

        ``rand`` is a uniform random number in [0, 1) (injected, so tests need no seeding). No
        failures means no wait.
        """
        if failures <= 0:
            return 0.0
        exponent = min(failures - 1, 64)  # beyond this the cap has long been reached
        ceiling = min(self.cap_s, self.initial_s * self.factor**exponent)
        return ceiling * (1.0 - self.jitter) + ceiling * self.jitter * rand
