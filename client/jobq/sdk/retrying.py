"""When and how fast a resumable event watch reconnects.

Only errors that a later attempt can cure are retried (the server is unreachable, overloaded, or
a stream was cut); a bad request or a missing permission is raised at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from jobq.errors import DeadlineExceeded, JobqError, ResourceExhausted, Unavailable

__all__ = ["RETRYABLE", "Backoff", "ReconnectHook", "is_retryable"]

RETRYABLE: Final = (Unavailable, ResourceExhausted, DeadlineExceeded)

#: Called before each reconnect of a resumable watch with the error that cut the stream (None when
#: the server ended it) and the delay in seconds before the next attempt.
ReconnectHook = Callable[[JobqError | None, float], None]


def is_retryable(error: JobqError) -> bool:
    return isinstance(error, RETRYABLE)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter between reconnect attempts."""

    #: First delay, seconds.
    initial: float = 0.5
    #: Upper bound of a delay, seconds: a restarted jobqd is found within this long of coming back.
    maximum: float = 30.0
    multiplier: float = 2.0
    #: Each delay is spread by ±jitter × delay so that many watchers do not reconnect in step.
    jitter: float = 0.2

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """An endless sequence of delays; ``rand`` returns a float in [0, 1) (injectable for tests)."""
        delay = self.initial
        while True:
            yield max(0.0, delay * (1 + self.jitter * (2 * rand() - 1)))
            delay = min(self.maximum, delay * self.multiplier)
