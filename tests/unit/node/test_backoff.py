"""The reconnect backoff policy, as a table."""

from __future__ import annotations

import pytest
from jobq.node.backoff import Backoff

POLICY = Backoff(initial_s=0.1, cap_s=5.0, factor=2.0, jitter=0.5)


@pytest.mark.parametrize(
    ("failures", "low", "high"),
    [
        (0, 0.0, 0.0),
        (1, 0.05, 0.1),
        (2, 0.1, 0.2),
        (3, 0.2, 0.4),
        (6, 1.6, 3.2),
        (7, 2.5, 5.0),  # capped from here on
        (8, 2.5, 5.0),
        (1000, 2.5, 5.0),
    ],
)
def test_delay_grows_exponentially_to_the_cap(failures: int, low: float, high: float) -> None:
    assert POLICY.delay(failures, rand=0.0) == pytest.approx(low)
    assert POLICY.delay(failures, rand=0.999999) == pytest.approx(high, rel=1e-5)


def test_jitter_spreads_nodes_out() -> None:
    delays = {POLICY.delay(5, rand=r / 10) for r in range(10)}
    assert len(delays) == 10


def test_no_jitter_is_deterministic() -> None:
    policy = Backoff(initial_s=1, cap_s=8, jitter=0)
    assert [policy.delay(n, rand=0.7) for n in range(1, 6)] == [1, 2, 4, 8, 8]


@pytest.mark.parametrize(
    "kwargs",
    [{"initial_s": 0}, {"initial_s": 10, "cap_s": 5}, {"factor": 0.5}, {"jitter": 1.5}],
)
def test_nonsense_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)
