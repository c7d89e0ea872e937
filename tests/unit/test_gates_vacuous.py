"""Vacuous PASS (issue 11, case 6): a run that evaluates no user, or whose gates test nothing, is INCONCLUSIVE.

Before: with only safety gates and an empty label window, the latency gate passed on the scored users and
the run was PASS with 0 evaluated users.
"""

from __future__ import annotations

from testbed.core import gates

LATENCY = gates.GateResult("latency-p95", "latency", "p95 latency ms", "all", 12.0, [10.0, 14.0], 1000.0, None,
                           "pass", 40, "candidate p95 latency ms 12 vs maximum 1000")


def test_safety_gates_alone_with_nobody_evaluated_are_inconclusive() -> None:
    assert gates.decide([LATENCY], evaluated_users=40) == ("PASS", [])
    decision, reasons = gates.decide([LATENCY], evaluated_users=0)
    assert decision == "INCONCLUSIVE"
    assert reasons == ["no user was evaluated: no sampled user has a label in [time.cutoff, time.end)"]


def test_gates_that_all_saw_nothing_are_inconclusive() -> None:
    empty = gates.GateResult("g", "threshold", "revenue@10", "all", 0.0, None, 0.0, None, "pass", 0, "no users")
    decision, reasons = gates.decide([empty])
    assert decision == "INCONCLUSIVE"
    assert reasons == ["the gates tested nothing: every gate row has n = 0"]
    assert gates.decide([empty, LATENCY]) == ("PASS", [])


def test_a_failure_stays_a_failure_with_nobody_evaluated() -> None:
    slow = gates.GateResult("latency-p95", "latency", "p95", "all", 2000.0, None, 1000.0, None, "fail", 40, "slow")
    assert gates.decide([slow], evaluated_users=0)[0] == "FAIL"
