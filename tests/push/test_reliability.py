"""Fault injection at every step of the push: crash before and after the Stripe call,
500 and 503, the answer lost after Stripe acted, 429 bursts, and outages longer than
the gateway's retries. Every trial resumes and must end with exactly one Stripe
invoice carrying the approved lines and totals, and one customer per organization.
"""

from __future__ import annotations

import os

import pytest

from tests.push.trials import FAULTS, STEP_PATHS, run_trials

TRIALS = int(os.environ.get("DESK_PUSH_TRIALS", "200"))


@pytest.mark.parametrize("seed", [int(os.environ.get("DESK_PUSH_SEED", "20261121"))])
def test_randomized_fault_trials_never_duplicate(stripe_desk, approver, ctx, seed):
    stats = run_trials(stripe_desk, approver.id, TRIALS, seed)
    assert stats.trials == TRIALS >= 200
    # The random choice covered every kind of fault at every step.
    assert set(stats.by_fault) == set(FAULTS)
    assert set(stats.by_step) == set(STEP_PATHS)
    assert stats.resumes > 0
