"""Roles in the decision (testbed.core.gates decide / notes), timing provenance and the latency_ratio kind."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.cli_output import summary_lines
from testbed.core import gates
from testbed.core.latency import latency_summary
from testbed.errors import ManifestError
from testbed.manifest import parse_manifest
from testbed.settings import Settings
from tests.unit import report_run


def _row(outcome: str, role: str = "goal", name: str = "g") -> gates.GateResult:
    return gates.GateResult(name, "non_inferiority", "ndcg@10", "all", 0.0, None, -0.01, None, outcome, 100, "why",
                            role=role)


@pytest.mark.parametrize(("role", "outcome", "decision"), [
    ("goal", "fail", "FAIL"), ("goal", "inconclusive", "INCONCLUSIVE"),
    ("guardrail", "fail", "FAIL"), ("guardrail", "inconclusive", "PASS"),
    ("advisory", "fail", "PASS"), ("advisory", "inconclusive", "PASS")])
def test_what_each_role_does_to_the_decision(role: str, outcome: str, decision: str) -> None:
    rows = [_row("pass", name="goal"), _row(outcome, role)]
    assert gates.decide(rows, 100)[0] == decision
    assert len(gates.notes(rows)) == (decision == "PASS")


def test_advisory_gates_alone_decide_nothing() -> None:
    decision, reasons = gates.decide([_row("pass", "advisory")], 100)
    assert decision == "INCONCLUSIVE"
    assert reasons == ["no gates were evaluated but advisory ones, which never decide"]


def test_latency_summary_says_whether_timings_pair_and_where_they_ran() -> None:
    shard = {"users": 2, "control": {"ms": [1.0], "errors": 0}, "candidate": {"ms": [2.0], "errors": 0}}
    assert latency_summary([{**shard, "paired": True, "measured_in": "lambda"}])["measured_in"] == "lambda"
    mixed = latency_summary([{**shard, "paired": True, "measured_in": "lambda"}, {**shard, "paired": True}])
    assert (mixed["paired"], mixed["measured_in"]) == (True, "local")
    assert latency_summary([shard])["paired"] is False


def test_settings_know_the_lambda_runtime() -> None:
    assert Settings.from_environment({"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}).lambda_runtime
    assert not Settings.from_environment({}).lambda_runtime


def test_a_latency_ratio_gate_needs_a_positive_bound() -> None:
    raw = report_run.manifest_data()
    gate = {"name": "ratio", "kind": "latency_ratio", "percentile": 99, "bound": 1.5, "role": "guardrail"}
    assert parse_manifest({**raw, "gates": [gate]}).gates[0].role == "guardrail"
    with pytest.raises(ManifestError, match="positive ratio"):
        parse_manifest({**raw, "gates": [{**gate, "bound": 0}]})
    with pytest.raises(ManifestError, match="gates.0.role"):
        parse_manifest({**raw, "gates": [{**gate, "role": "blocker"}]})


def test_the_ratio_bootstrap_is_seeded_and_paired() -> None:
    control = np.random.default_rng(0).lognormal(1.0, 0.5, 300)
    first = gates.percentile_ratio_replicates(control, control * 1.2, 95, 600, np.random.default_rng(5))
    again = gates.percentile_ratio_replicates(control, control * 1.2, 95, 600, np.random.default_rng(5))
    assert np.array_equal(first, again) and first.size == 600
    assert np.allclose(first, 1.2)  # paired: each resample keeps candidate = 1.2 x control request by request


def test_the_console_summary_names_the_gates_that_did_not_count() -> None:
    gate = {"name": "ndcg-aspiration", "kind": "threshold", "role": "advisory", "metric": "ndcg@10",
            "stratum": "all", "outcome": "fail", "observed": 0.3, "threshold": 0.9, "interval": None, "p_value": None,
            "summary": "The candidate's ndcg@10 is 0.300 for all users, below the floor of 0.900."}
    lines = summary_lines({"decision": "PASS", "gate_counts": {"pass": 1, "fail": 1}, "gates": [gate]})
    assert ("not counted advisory (never changes the decision): FAIL ndcg-aspiration: The candidate's ndcg@10 is "
            "0.300 for all users, below the floor of 0.900.") in lines


def test_latency_summary_keeps_cpu_times_only_when_every_shard_has_them() -> None:
    shard = {"users": 2, "control": {"ms": [1.0, 3.0], "cpu_ms": [0.5, 0.7], "errors": 0},
             "candidate": {"ms": [2.0, 4.0], "cpu_ms": [0.6, 0.9], "errors": 0}, "paired": True}
    out = latency_summary([shard, shard])
    assert out["control"]["cpu_ms"] == [0.5, 0.7, 0.5, 0.7] and out["candidate"]["cpu_p95_ms"] == pytest.approx(0.9)
    older = {**shard, "control": {"ms": [1.0], "errors": 0}, "candidate": {"ms": [2.0], "errors": 0}}
    assert "cpu_ms" not in latency_summary([shard, older])["control"]  # one shard without: wall clock only


def test_each_timed_request_has_its_cpu_time_next_to_its_wall_time() -> None:
    import lightgbm as lgb

    from testbed.core.scoring import LoadedModel, per_request_latency_ms

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 5)), rng.integers(0, 2, 500)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, y), 20)
    models = [LoadedModel(role, booster, booster.feature_name()) for role in ("control", "candidate")]
    starts = np.arange(0, 501, 50)
    timings = per_request_latency_ms(models, {"control": x, "candidate": x}, starts, np.arange(10))
    for t in timings.values():
        assert t.wall_ms.shape == t.cpu_ms.shape == (10,) and (t.cpu_ms > 0).all()
        assert (t.cpu_ms <= t.wall_ms + 0.05).all()  # a thread's CPU time cannot exceed the wall time it took
