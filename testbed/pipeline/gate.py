"""Step 8: apply the manifest's gates to the evaluation and decide (statistics in testbed.core.gates)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core import catalogue, gates
from testbed.core.metrics import CANDIDATE_STAGE
from testbed.core.roles import ROLES
from testbed.core.sample_ratio import sample_ratio_test
from testbed.manifest import Manifest
from testbed.pipeline import paired
from testbed.pipeline.context import RunContext
from testbed.record import io
from testbed.record.base import OUTCOMES, FinalDecision
from testbed.record.evaluation import LatencyDocument, MetricsDocument, ModelLatency
from testbed.record.gates import GateRow, GatesDocument, SampleRatioCheck
from testbed.record.slice import SliceStats
from testbed.record.steps import GateStepResult


def _by_role(latency: LatencyDocument) -> dict[str, ModelLatency]:
    """Each model's timings, in latency.json's key order, which the gate rows follow."""
    return {role: getattr(latency, role) for role in sorted(ROLES)}


def eligible_users(stats: SliceStats) -> dict[str, int]:
    """Users each stratum ("all": the whole population) has in the lake: the most a rerun can sample."""
    strata = {label: row.eligible_users for label, row in stats.strata.items() if row.eligible_users is not None}
    return {"all": stats.eligible_users, **strata}


def unestimable(labels: pa.Table, manifest: Manifest) -> dict[str, str]:
    """Metrics no gate row can estimate on this slice, with why: revenue when no label carries any (the lake's
    label-window conversions, purchases by default, have no price, or none has a quantity above 0; `testbed
    validate --lake` says which); conversion when no label is a conversion, click_through when none is a click
    (labels' `purchased` / `clicked` flags); the candidate-stage metrics when a model is a rankings file. A ratio
    metric (aov) is unestimable with its numerator or denominator (testbed.core.gates)."""
    end = f"[{manifest.time.cutoff.isoformat()}, {manifest.time.end.isoformat()})"
    conversion = "/".join(manifest.evaluation.vocabulary().conversions) or "conversion"  # purchase by default
    why = {}
    if not (pc.sum(labels.column("revenue")).as_py() if labels.num_rows else None):
        why["revenue"] = (f"revenue cannot be estimated: no label-window {conversion} {end} of the slice has a price "
                          "and a quantity above 0 (the lake has no prices, or no such purchases; see testbed validate "
                          "--lake)")
    flags = {"conversion": ("purchased", f"no label-window {conversion} line {{end}} of the slice has a quantity "
                                         "above 0"),
             "click_through": ("clicked", "no label-window event {end} of the slice is a click")}
    for metric, (flag, nobody) in flags.items():
        if flag in labels.column_names and not pc.any(labels.column(flag)).as_py():
            why[metric] = f"{metric} cannot be estimated: {nobody.format(end=end)} (see testbed validate --lake)"
    for role in manifest.models.roles_of("rankings"):
        for stage_metric in CANDIDATE_STAGE:
            why[stage_metric.name] = (f"{stage_metric.name} is not applicable: models.{role} is a rankings file, "
                                      "which has no candidate stage to measure")
    return why


def coverage_warnings(metrics: MetricsDocument) -> list[str]:
    """One line per rankings file that left slice users without a list (they count as misses)."""
    return [f"models.{role}: the rankings file has no list for {row.uncovered_users} of the {row.slice_users} slice "
            "users; they count as empty lists (a miss on every metric)"
            for role, row in (metrics.rankings_coverage or {}).items() if row.uncovered_users]


def gate_inputs(ctx: RunContext, manifest: Manifest) -> gates.GateInputs:
    layout, storage = ctx.layout, ctx.storage
    metrics = io.read(storage, layout.metrics)
    timing = io.read(storage, layout.latency)
    latency = _by_role(timing)
    per_user = storage.read_parquet(layout.per_user)
    stats = io.read(storage, layout.slice_stats)
    parity = io.read_if_present(storage, layout.parity)
    comparisons = paired.comparisons(ctx, manifest, per_user)
    return gates.GateInputs(
        comparisons=comparisons, aggregates=metrics.models,
        latency_ms={role: np.array(v.ms, dtype=np.float64) for role, v in latency.items()},
        latency_cpu_ms={role: np.array(v.cpu_ms, dtype=np.float64) for role, v in latency.items() if v.cpu_ms},
        error_rate={role: float(v.error_rate) for role, v in latency.items()},
        scored_users={role: int(v.users) for role, v in latency.items()},
        strata=[s for s in comparisons if s != "all"],
        sample_ratio=sample_ratio_test(io.to_json(layout.slice_stats, stats)["strata"],
                                       manifest.statistics.sample_ratio_alpha),
        parity=io.to_json(layout.parity, parity) if parity is not None else None,
        evaluated_users=int(pc.count_distinct(per_user.column("user_id")).as_py()),
        latency_trusted=timing.measured_in == "lambda",
        latency_paired=timing.paired,
        eligible_users=eligible_users(stats),
        unestimable=unestimable(storage.read_parquet(layout.labels), manifest),
        untimed=tuple(manifest.models.roles_of("rankings")),
    )


def run_gate(ctx: RunContext, manifest: Manifest, validation_warnings: Sequence[str] = ()) -> dict[str, Any]:
    """`validation_warnings` are the validate step's (the run payload's `warnings`): they lead gates.json's."""
    inputs = gate_inputs(ctx, manifest)
    settings = gates.GateSettings(correction=manifest.statistics.correction, power=manifest.statistics.power,
                                  resamples=manifest.statistics.resamples, seed=paired.bootstrap_seed(manifest))
    results = gates.evaluate(manifest.gates, inputs, settings)
    stats = io.read(ctx.storage, ctx.layout.slice_stats)
    blockers, warnings = catalogue.notes(catalogue.UnknownItems(**stats.unknown_items.model_dump()),
                                         manifest.evaluation.max_unknown_item_share)
    decided, reasons = gates.decide(results, inputs.evaluated_users, blockers)
    decision = cast(FinalDecision, decided)  # the models check it
    document = GatesDocument(
        gates=[GateRow.model_validate(r.as_dict()) for r in results],
        correction=settings.correction,
        power=settings.power,
        resamples=manifest.statistics.resamples,
        bootstrap_seed=paired.bootstrap_seed(manifest),
        sample_ratio=SampleRatioCheck.model_validate(inputs.sample_ratio.as_dict()) if inputs.sample_ratio else None,
        decision=decision,
        reasons=reasons,
        warnings=[*validation_warnings, *coverage_warnings(io.read(ctx.storage, ctx.layout.metrics)), *warnings],
        non_blocking=gates.notes(results),
    )
    io.write(ctx.storage, ctx.layout.gates, document)
    counts: dict[str, int] = {outcome: sum(r.outcome == outcome for r in results) for outcome in OUTCOMES}
    return GateStepResult(decision=decision, reasons=reasons, gates=counts).model_dump(mode="json")
