"""Admission phases, every ordered pair, against a table written out here (DESIGN §4.3).

Seed edges are the state diagram of shared/seeds/jobq-job-lifecycle.md (Succeeded/Failed are
`finished` here); the extensions are DESIGN §4.3's, each with its reason.
"""

from __future__ import annotations

import itertools

import pytest

from jobqd.domain.states import ADMISSION_SEED, AdmissionPhase, admission_can

A = AdmissionPhase

SEED: dict[AdmissionPhase, set[AdmissionPhase]] = {
    A.SUBMITTED: {A.PENDING, A.INADMISSIBLE},  # quotaReserved; queue missing or stopped
    A.INADMISSIBLE: {A.SUBMITTED},  # condition resolved
    A.PENDING: {A.ADMITTED},  # admission checks passed
    A.ADMITTED: {A.FINISHED, A.SUBMITTED, A.PENDING},  # success/error; evicted; requeued
    A.FINISHED: set(),  # terminal in the seed
}

EXTENSIONS: dict[AdmissionPhase, set[AdmissionPhase]] = {
    A.SUBMITTED: {A.FINISHED},  # the job ends (cancel, failed dependency) before it is admitted
    A.INADMISSIBLE: {A.FINISHED},  # the job ends while its queue is stopped or missing
    A.PENDING: {
        A.SUBMITTED,  # the reservation is lost before admission (DESIGN table)
        A.FINISHED,  # the job ends while its quota is reserved
    },
    A.ADMITTED: set(),
    A.FINISHED: {A.SUBMITTED},  # a requeued job starts a new cycle (generation + 1)
}

EXPECTED = {p: SEED[p] | EXTENSIONS[p] for p in A}
PAIRS = [
    pytest.param(cur, new, new in EXPECTED[cur], id=f"{cur.value}->{new.value}")
    for cur, new in itertools.product(A, A)
]


def test_the_table_names_every_phase() -> None:
    assert set(SEED) == set(A) == set(EXTENSIONS)


def test_seed_edges_are_the_seed_diagram() -> None:
    assert {p: set(n) for p, n in ADMISSION_SEED.items()} == SEED


@pytest.mark.parametrize(("current", "new", "legal"), PAIRS)
def test_admission_transition(current: AdmissionPhase, new: AdmissionPhase, legal: bool) -> None:
    assert admission_can(current, new) is legal
