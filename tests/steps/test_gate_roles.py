"""The gate step with goal / guardrail / advisory roles and the latency gates, on a MemoryStorage run."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from testbed.adapters.storage import MemoryStorage
from testbed.manifest import Manifest, parse_manifest
from testbed.pipeline.context import RunContext
from testbed.pipeline.gate import run_gate
from testbed.record import io
from testbed.record.evaluation import LatencyDocument, ModelLatency
from testbed.record.gates import GatesDocument
from testbed.report.html import render_html
from testbed.report.inputs import load_run
from testbed.report.markdown import render_markdown
from tests.unit import report_run

USERS = 300
GOAL = {"name": "ndcg-not-worse", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.01}
UNREACHABLE = {"name": "ndcg-aspiration", "kind": "threshold", "metric": "ndcg@10", "bound": 0.9}  # proven miss
TOO_FEW = {"name": "recall-watch", "kind": "non_inferiority", "metric": "recall@10", "margin": 0.01,
           "min_users": 1000}  # always inconclusive


def _latency(ratio: float, measured_in: str, cpu_ratio: float | None) -> LatencyDocument:
    control = np.random.default_rng(3).lognormal(1.5, 0.4, 200)
    def model(ms: np.ndarray, cpu: np.ndarray | None) -> ModelLatency:
        return ModelLatency(requests_timed=ms.size, p50_ms=float(np.percentile(ms, 50)),
                            p95_ms=float(np.percentile(ms, 95)), p99_ms=float(np.percentile(ms, 99)),
                            users=USERS, errors=0, error_rate=0.0, ms=ms.round(4).tolist(),
                            cpu_ms=[] if cpu is None else cpu.round(4).tolist())
    cpu = None if cpu_ratio is None else control * 0.5
    return LatencyDocument(control=model(control, cpu),
                           candidate=model(control * ratio, None if cpu is None else cpu * cpu_ratio),
                           paired=True, measured_in=measured_in)  # type: ignore[arg-type]


def _write_run(memory: MemoryStorage, ctx: RunContext, *, ratio: float = 1.1, measured_in: str = "local",
               cpu_ratio: float | None = None) -> None:
    rng = np.random.default_rng(7)
    users = [f"u{i:04d}" for i in range(USERS)]
    control = rng.uniform(0.2, 0.4, (USERS, 2))
    candidate = control + rng.normal(0.0, 0.002, (USERS, 2))  # the same quality
    per_user = pa.table({
        "user_id": users * 2, "model": ["control"] * USERS + ["candidate"] * USERS,
        "ndcg@10": np.concatenate([control[:, 0], candidate[:, 0]]),
        "recall@10": np.concatenate([control[:, 1], candidate[:, 1]])})
    layout = ctx.layout
    memory.write_parquet(layout.per_user, per_user)
    memory.write_parquet(layout.labels, pa.table({"user_id": users, "item_id": ["i1"] * USERS,
                                                  "relevance": [3] * USERS, "revenue": [9.5] * USERS}))
    memory.write_parquet(layout.slice_table("users"), pa.table({
        "user_id": users, "stratum": ["all"] * USERS, "inclusion_probability": [1.0] * USERS}))
    io.write(memory, layout.metrics, report_run.metrics_model())
    io.write(memory, layout.slice_stats, report_run.stats_model())
    io.write(memory, layout.latency, _latency(ratio, measured_in, cpu_ratio))


def _manifest(*gates: dict[str, Any]) -> Manifest:
    raw = {**report_run.manifest_data(), "gates": list(gates),
           "sampling": {"strategy": "uniform", "rate": 1.0, "seed": 42}}
    return parse_manifest(raw)


def _gate_step(memory: MemoryStorage, ctx: RunContext, *gates: dict[str, Any], **run: Any) -> GatesDocument:
    _write_run(memory, ctx, **run)
    run_gate(ctx, _manifest(*gates))
    document = io.read(memory, ctx.layout.gates)
    assert isinstance(document, GatesDocument)
    return document


def _row(document: GatesDocument, name: str) -> Any:
    [row] = [g for g in document.gates if g.name == name]
    return row


def test_a_failed_advisory_gate_leaves_the_decision_pass_and_every_view_says_it_did_not_count(
        memory: MemoryStorage, ctx: RunContext) -> None:
    document = _gate_step(memory, ctx, GOAL, {**UNREACHABLE, "role": "advisory"})
    assert document.decision == "PASS" and document.reasons == []
    advisory = _row(document, "ndcg-aspiration")
    assert (advisory.role, advisory.outcome) == ("advisory", "fail")
    assert _row(document, "ndcg-not-worse").role == "goal"
    [line] = document.non_blocking
    assert line.startswith("advisory ndcg-aspiration [all] fail (advisory: never changes the decision)")
    data = load_run(memory, ctx.run_uri)
    markdown = render_markdown(data)
    assert ("- **Did not count**, advisory (never changes the decision): FAIL ndcg-aspiration: The candidate's "
            "ndcg@10 is ") in markdown
    assert "| ndcg-aspiration (ndcg@10) | advisory (never changes the decision) | all |" in markdown
    html = render_html(data, strict=True)
    assert ("Did not count, advisory (never changes the decision): FAIL ndcg-aspiration: The candidate&#x27;s "
            "ndcg@10 is ") in html
    assert "<td>advisory (never changes the decision)</td>" in html


def test_an_inconclusive_guardrail_does_not_block(memory: MemoryStorage, ctx: RunContext) -> None:
    document = _gate_step(memory, ctx, GOAL, {**TOO_FEW, "role": "guardrail"})
    assert document.decision == "PASS"
    assert _row(document, "recall-watch").outcome == "inconclusive"
    assert document.non_blocking[0].startswith("guardrail recall-watch [all] inconclusive (guardrail: blocks only")


def test_a_guardrail_with_proven_harm_fails_the_run(memory: MemoryStorage, ctx: RunContext) -> None:
    document = _gate_step(memory, ctx, GOAL, {**UNREACHABLE, "role": "guardrail"})
    assert document.decision == "FAIL"
    assert document.reasons[0].startswith("FAIL ndcg-aspiration [all]: ")
    assert document.non_blocking == []


@pytest.mark.parametrize(("gate", "decision"), [(UNREACHABLE, "FAIL"), (TOO_FEW, "INCONCLUSIVE")])
def test_without_roles_every_gate_is_a_goal_as_before(memory: MemoryStorage, ctx: RunContext,
                                                      gate: dict[str, Any], decision: str) -> None:
    document = _gate_step(memory, ctx, GOAL, gate)
    assert document.decision == decision
    assert {g.role for g in document.gates} == {"goal"} and document.non_blocking == []


def test_a_manifest_without_roles_keeps_its_canonical_form() -> None:
    manifest = _manifest(GOAL, UNREACHABLE)
    assert all("role" not in g for g in json.loads(manifest.canonical_json())["gates"])
    assert _manifest({**GOAL, "role": "goal"}).digest() == _manifest(GOAL).digest()
    assert _manifest({**GOAL, "role": "advisory"}).digest() != _manifest(GOAL).digest()


def test_an_absolute_latency_bound_is_not_gated_outside_lambda(memory: MemoryStorage, ctx: RunContext) -> None:
    slow = {"name": "latency-p95", "kind": "latency", "percentile": 95, "bound": 1.0}  # every request is slower
    document = _gate_step(memory, ctx, GOAL, slow)
    row = _row(document, "latency-p95")
    assert (row.outcome, row.role, document.decision) == ("fail", "advisory", "PASS")
    assert row.reason.startswith("not gated: request timings are trusted only from a deployed (Lambda) run")
    assert document.non_blocking[0].startswith("advisory latency-p95 [all] fail")


def test_an_absolute_latency_bound_is_gated_on_lambda_timings(memory: MemoryStorage, ctx: RunContext) -> None:
    slow = {"name": "latency-p95", "kind": "latency", "percentile": 95, "bound": 1.0}
    document = _gate_step(memory, ctx, GOAL, slow, measured_in="lambda")
    assert (_row(document, "latency-p95").role, document.decision) == ("goal", "FAIL")


@pytest.mark.parametrize(("ratio", "outcome", "decision"), [(1.1, "pass", "PASS"), (2.0, "fail", "FAIL")])
def test_the_latency_ratio_gate_compares_paired_percentiles(memory: MemoryStorage, ctx: RunContext, ratio: float,
                                                            outcome: str, decision: str) -> None:
    gate = {"name": "latency-ratio", "kind": "latency_ratio", "percentile": 95, "bound": 1.5}
    document = _gate_step(memory, ctx, GOAL, gate, ratio=ratio)
    row = _row(document, "latency-ratio")
    assert (row.outcome, document.decision) == (outcome, decision)
    assert row.observed == pytest.approx(ratio, rel=1e-4)  # ms are recorded to 4 decimals
    assert row.interval[0] <= ratio <= row.interval[1] and row.n == 200
    assert row.reason.startswith(f"candidate/control p95 latency ratio {ratio:.4g}, 90% CI [")


def test_the_latency_ratio_gate_uses_cpu_times_where_recorded(memory: MemoryStorage, ctx: RunContext) -> None:
    """Wall clocks 3x apart (another process took the core during the candidate's requests), CPU times 1.1x:
    the gate judges the cost, and says which clock it used."""
    gate = {"name": "latency-ratio", "kind": "latency_ratio", "percentile": 95, "bound": 1.5}
    document = _gate_step(memory, ctx, GOAL, gate, ratio=3.0, cpu_ratio=1.1)
    row = _row(document, "latency-ratio")
    assert (row.outcome, row.metric, document.decision) == ("pass", "p95 CPU time candidate/control", "PASS")
    assert row.observed == pytest.approx(1.1, rel=1e-3) and "scoring-thread CPU time" in row.method
    assert row.reason.startswith("candidate/control p95 CPU time ratio 1.1, 90% CI [")


def test_validation_warnings_lead_gates_json_and_reach_the_reports(memory: MemoryStorage, ctx: RunContext) -> None:
    """The validate step's training-overlap warning (the run payload's `warnings`) is a warning of the decision."""
    line = ("models.candidate (m.txt) was trained on events of the run's label window: its training labels "
            "[2026-10-10T00:00:00+00:00, 2026-10-24T00:00:00+00:00) overlap [time.cutoff, time.end) = "
            "[2026-10-17T00:00:00+00:00, 2026-10-31T00:00:00+00:00); its offline metrics flatter it")
    _write_run(memory, ctx)
    run_gate(ctx, _manifest(GOAL), [line])
    document = io.read(memory, ctx.layout.gates)
    assert isinstance(document, GatesDocument)
    assert document.decision == "PASS" and document.warnings == [line]
    data = load_run(memory, ctx.run_uri)
    assert f"- **Warning:** {line}" in render_markdown(data)
    assert "Warning: models.candidate (m.txt) was trained on events of the run&#x27;s label window" in render_html(
        data, strict=True)
