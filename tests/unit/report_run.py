"""A small, hand-made run record for the report tests: every input the reports read, with numbers chosen so the
expected figures can be worked out by hand. `write_run` writes it; keyword switches leave parts out.

Every document is built from its testbed.record model, so the fixture holds exactly the keys the producers
write (a misspelt or invented key fails here, not silently in a report). The `*_model` builders return the
models, which is what the report code reads; the `*_doc` ones their plain JSON data, as a producer writes it.

The gate step lists gates in manifest order; here the failed gate is the third one, so a report that shows it
first has reordered them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from testbed.manifest import parse_manifest
from testbed.record import io
from testbed.record.attribution import AttributionDocument, FeatureDifference, FeatureImportance
from testbed.record.drift import (
    Baseline,
    DailySeries,
    DriftDefaults,
    DriftDocument,
    DriftFeature,
    SideRows,
    StratumShift,
    StratumVerdict,
)
from testbed.record.evaluation import (
    LatencyDocument,
    ListChange,
    ListChangeStratum,
    MetricDelta,
    MetricsDocument,
    ModelLatency,
)
from testbed.record.features import ParityDocument, StreamStats
from testbed.record.gates import GateRow, GatesDocument, SampleRatioCheck, SampleRatioStratum
from testbed.record.layout import DocumentPath, RunLayout
from testbed.record.replay import ReplayDocument, ReplayShard
from testbed.record.run import (
    CostEstimate,
    ErrorRecord,
    FeatureSummary,
    ModelProvenance,
    ParitySummary,
    ReportStatus,
    RunRecord,
    Seeds,
    SliceSummary,
)
from testbed.record.slice import InclusionSummary, RowCounts, SliceStats, StratumStats, UnknownItemStats
from testbed.record.whatif import ColdStartParams, GracefulBy, Scenario, WhatIfDocument

RUN_ID = "fixture-run-0123456789ab"
ITEMS = [f"i{n:02d}" for n in range(10)]  # i00 is the most popular, i09 the least
EXAMPLE_MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "loyalty-members-90d.json"
NOT_MEASURED = {"relative": None, "statistic": None, "p_adjusted": None, "p_harm": None, "p_harm_adjusted": None,
                "alpha": None, "confidence": None, "scale": None, "mde": None, "required_n": None, "method": ""}


def _gate(**fields: Any) -> GateRow:
    return GateRow(**{**NOT_MEASURED, **fields})


def gates_model(failed: bool = True) -> GatesDocument:
    gates = [
        _gate(name="ndcg-not-worse", kind="non_inferiority", metric="ndcg@10", stratum="all", observed=0.012,
              relative=0.04, interval=[0.004, 0.02], threshold=-0.01, statistic=3.1, p_value=0.0001,
              p_adjusted=0.0003, alpha=0.05, outcome="pass", n=400, mde=0.006, required_n=150,
              method="bca-bootstrap", reason="delta 0.012 [0.004, 0.02] vs limit -0.01"),
        _gate(name="ndcg-not-worse", kind="non_inferiority", metric="ndcg@10", stratum="tier=gold", observed=-0.004,
              interval=[-0.015, 0.007], threshold=-0.01, p_value=0.21, outcome="inconclusive", n=80,
              reason="interval includes -0.01"),
        _gate(name="revenue-floor", kind="threshold", metric="revenue@10", stratum="all", observed=3.25,
              interval=None, threshold=4.5, p_value=None, outcome="fail" if failed else "pass", n=400,
              reason="candidate revenue@10 3.25 vs minimum 4.5"),
        _gate(name="latency-p95", kind="latency", metric="p95 latency ms", stratum="all", observed=12.5,
              interval=None, threshold=50.0, p_value=None, outcome="pass", n=200, reason="ok"),
    ]
    reasons = ["revenue-floor (all): candidate revenue@10 3.25 below 4.5"] if failed else []
    reasons.append("ndcg-not-worse (tier=gold): interval [-0.015, 0.007] includes -0.01")
    strata = {"tier=gold": SampleRatioStratum(observed=80, expected=80.0, eligible=100, contribution=0.0),
              "tier=silver": SampleRatioStratum(observed=320, expected=320.0, eligible=700, contribution=0.0)}
    ratio = SampleRatioCheck(statistic=0.4, dof=1, p_value=0.53, alpha=0.001, method="pearson chi-squared",
                             observed=400, expected=400.0, outcome="pass", strata=strata)
    return GatesDocument(gates=gates, decision="FAIL" if failed else "INCONCLUSIVE", reasons=reasons,
                         correction="holm", power=0.9, resamples=1000, bootstrap_seed=7, sample_ratio=ratio)


def gates_doc(failed: bool = True) -> dict[str, Any]:
    return gates_model(failed).model_dump(mode="json")


def _delta(control: float, candidate: float, lo: float, hi: float, n: int) -> MetricDelta:
    delta = candidate - control
    return MetricDelta(n=n, control=control, candidate=candidate, delta=delta, relative=delta / control,
                       interval=[lo, hi], p_value=0.01, std_error=(hi - lo) / 4, method="bca-bootstrap",
                       resamples=1000, weighted=True, effective_n=float(n), df=float(n - 1), small_sample_factor=1.0,
                       relative_interval=[lo / control, hi / control], t_interval=[lo, hi])


def metrics_model() -> MetricsDocument:
    models = {
        "control": {"all": {"ndcg@10": 0.30, "recall@10": 0.20, "revenue@10": 4.0, "coverage@10": 0.10, "users": 400},
                    "tier=gold": {"ndcg@10": 0.40, "recall@10": 0.25, "revenue@10": 6.0, "coverage@10": 0.05,
                                  "users": 80},
                    "tier=silver": {"ndcg@10": 0.28, "recall@10": 0.18, "revenue@10": 3.5, "coverage@10": 0.08,
                                    "users": 320}},
        "candidate": {"all": {"ndcg@10": 0.312, "recall@10": 0.25, "revenue@10": 3.25, "coverage@10": 0.30,
                              "users": 400},
                      "tier=gold": {"ndcg@10": 0.396, "recall@10": 0.26, "revenue@10": 5.0, "coverage@10": 0.12,
                                    "users": 80},
                      "tier=silver": {"ndcg@10": 0.30, "recall@10": 0.24, "revenue@10": 2.9, "coverage@10": 0.20,
                                      "users": 320}},
    }
    deltas = {
        "all": {"ndcg@10": _delta(0.30, 0.312, 0.003, 0.021, 400), "recall@10": _delta(0.20, 0.25, 0.03, 0.07, 400),
                "revenue@10": _delta(4.0, 3.25, -1.2, -0.3, 400)},
        "tier=gold": {"ndcg@10": _delta(0.40, 0.396, -0.018, 0.010, 80),
                      "recall@10": _delta(0.25, 0.26, -0.01, 0.03, 80),
                      "revenue@10": _delta(6.0, 5.0, -2.0, 0.0, 80)},
        "tier=silver": {"ndcg@10": _delta(0.28, 0.30, 0.01, 0.03, 320),
                        "recall@10": _delta(0.18, 0.24, 0.04, 0.08, 320),
                        "revenue@10": _delta(3.5, 2.9, -1.0, -0.2, 320)},
    }
    excluded = {model: {"all": 0, "tier=gold": 0, "tier=silver": 0} for model in models}
    return MetricsDocument(k=10, models=models, excluded_users=excluded, deltas=deltas,
                           interval="bca-bootstrap, 95%", list_change=list_change_model())


def list_change_model() -> ListChange:
    def stratum(users: int, slots: float, new: float, counts: list[int]) -> ListChangeStratum:
        return ListChangeStratum(users=users, mean_jaccard=0.41, mean_rbo=0.37, changed_slot_share=slots,
                                 new_list_share=new, jaccard_counts=counts)

    return ListChange(k=10, rbo_persistence=0.9, jaccard_edges=[round(0.1 * i, 1) for i in range(11)],
                      strata={"all": stratum(400, 0.64, 0.12, [48, 60, 80, 70, 50, 40, 20, 15, 10, 7]),
                              "tier=gold": stratum(80, 0.5, 0.1, [8, 10, 20, 12, 10, 8, 4, 3, 3, 2])})


def metrics_doc() -> dict[str, Any]:
    return metrics_model().model_dump(mode="json")


def _stratum(stratum: str, statistic: float, psi: float, drifted: bool, rows: int) -> StratumVerdict:
    return StratumVerdict(stratum=stratum, statistic=statistic, psi=psi, drifted=drifted, method="wasserstein",
                          p_value=None, vs="stratum", rows=rows)


def _feature(feature: str, table: str, method: str, statistic: float, threshold: float, p_value: float | None,
             psi: float, drifted: bool, rank: int, strata: list[StratumVerdict]) -> DriftFeature:
    return DriftFeature(feature=feature, table=table, type="numeric", method=method, statistic=statistic,
                        threshold=threshold, p_value=p_value, psi=psi, psi_threshold=0.2, drifted=drifted,
                        psi_warning=psi >= 0.1, rows=SideRows(baseline=5000, slice=400), strata=strata, rank=rank)


def daily_series(field: str, psi: list[float], retrain_after: str) -> DailySeries:
    """A daily series from 2026-10-01 with these PSIs against a size-aware threshold of 0.25."""
    n = len(psi)
    return DailySeries(field=field, period="day", dates=[f"2026-10-{i + 1:02d}" for i in range(n)], rows=[300] * n,
                       effective_rows=[120] * n, psi=psi, bias=[0.05] * n, period_threshold=[0.25] * n,
                       p_value=[0.5 if v < 0.25 else 0.002 for v in psi], shifted=[v >= 0.25 for v in psi],
                       threshold=0.2, null_quantile=0.99, retrain_after=retrain_after)


def drift_model() -> DriftDocument:
    features = [
        _feature("i_revenue_30d", "item", "wasserstein", 0.31, 0.1, None, 0.42, True, 1,
                 [_stratum("tier=gold", 0.4, 0.5, True, 80), _stratum("tier=silver", 0.05, 0.04, False, 320)]),
        _feature("u_views_7d", "user", "ks", 0.08, 0.05, 0.2, 0.03, False, 3, []),
        _feature("i_price", "item", "wasserstein", 0.2, 0.1, None, 0.25, True, 2, []),
    ]
    daily = {"i_revenue_30d": daily_series("revenue", [0.02, 0.05, 0.31, 0.44], "2026-10-03"),
             "i_price": daily_series("price", [0.1, 0.3], "2026-10-02")}
    tables = {"user": 5000, "item": 10, "user_category": 12000}
    return DriftDocument(
        baseline=Baseline(kind="population", source="unsampled segment", rows=5000, tables=tables),
        slice_rows={"user": 400, "item": 10, "user_category": 1000}, features=features, skipped=[],
        top_strata=[StratumShift(stratum="tier=gold", drifted_features=1, max_psi=0.5, features=["i_revenue_30d"])],
        top_categories=[], daily=daily, drifted=2,
        defaults=DriftDefaults(ks_p_value=0.05, wasserstein=0.1, jensen_shannon=0.1, psi=0.2, psi_warning=0.1,
                               small_sample_rows=1000, bins=10))


def drift_doc() -> dict[str, Any]:
    return drift_model().model_dump(mode="json")


def whatif_model() -> WhatIfDocument:
    scenario = Scenario(name="cold-start-50", kind="cold_start_items", params=ColdStartParams(items=50),
                        models={"control": {"ndcg@10": 0.29}, "candidate": {"ndcg@10": 0.30}},
                        baseline={"control": {"ndcg@10": 0.30}, "candidate": {"ndcg@10": 0.312}},
                        deltas_vs_baseline={"control": {"ndcg@10": -0.01}, "candidate": {"ndcg@10": -0.012}})
    return WhatIfDocument(users=200, seed=0, k=10, scenarios=[scenario], more_graceful="control",
                          graceful_by=GracefulBy(metric="ndcg@10",
                                                 mean_relative_change={"control": -0.033, "candidate": -0.038}),
                          labels="unchanged: the run's label window for the same users")


def whatif_doc() -> dict[str, Any]:
    return whatif_model().model_dump(mode="json")


def replay_model() -> ReplayDocument:
    shard = ReplayShard(shard_id="shardId-000000000000", first_sequence="4960", last_sequence="4999", records=9000)
    return ReplayDocument(stream="testbed-fixture", stream_mode="on_demand", records=9000, published=9000,
                          put_calls=18, retried_entries=3, errors={"ProvisionedThroughputExceededException": 3},
                          shards=[shard], invocations=1, seconds=1.5, speedup=None, events_per_s=6000.0)


def stream_model() -> StreamStats:
    return StreamStats(events=9000, distinct_event_ids=9000, records_read=9000, duplicates_dropped=0,
                       arrived_out_of_order=0, rows={"user": 400, "item": 10, "user_category": 1000}, invocations=1,
                       seconds=1.0, events_per_s=9000.0)


def record_model(decision: str, reasons: list[str]) -> RunRecord:
    models = {"control": ModelProvenance(uri="models/control.txt", sha256="c" * 64, bytes=1000, features=11),
              "candidate": ModelProvenance(uri="models/candidate.txt", sha256="d" * 64, bytes=2000, features=29)}
    parity = ParitySummary(rows_stream=400, rows_batch=400, mismatches=0, float_tolerance=1e-9)
    return RunRecord.model_validate({
        "run_id": RUN_ID, "decision": decision, "reasons": reasons, "created_at": "2026-11-01T12:00:00+00:00",
        "manifest_digest": "a" * 64, "lake": "/lake", "lake_fingerprint": "b" * 64, "code_version": "0.1.0+abc",
        "seeds": Seeds(sampling=42), "models": models,
        "slice": SliceSummary(users=400, events=9000, content_sha256="e" * 64), "replay": replay_model(),
        "features": FeatureSummary(parity=parity, stream=stream_model()),
        "step_seconds": {"validate": 0.5, "slice": 1.25, "score": 3.0},
        "cost_estimate": CostEstimate(lambda_gb_seconds=14.25, athena_bytes_scanned=0, usd=0.0003),
        "artifacts": [], "report": ReportStatus(written=True, files=["report.html", "report.md"], seconds=0.1,
                                                errors=[])})


def record_doc(decision: str, reasons: list[str]) -> dict[str, Any]:
    return record_model(decision, reasons).model_dump(mode="json")


def error_record(run_id: str, step: str, reason: str) -> str:
    """run.json of a run that failed in `step`, as the record_error step writes it."""
    record = ErrorRecord(run_id=run_id, decision="ERROR", reasons=[reason], failed_step=step, error="StepError",
                         created_at="2026-11-01T12:00:00+00:00")
    return record.model_dump_json()


def stats_model() -> SliceStats:
    strata = {"tier=gold": StratumStats(users=80, events=3000, eligible_users=100, expected_users=80.0),
              "tier=silver": StratumStats(users=320, events=6000, eligible_users=700, expected_users=320.0)}
    return SliceStats(users=400, rows=RowCounts(events=9000, users=400, items=10), strategy="stratified", seed=42,
                      eligible_users=800, catalogue_size=10, content_sha256="e" * 64, strata=strata,
                      unknown_items=UnknownItemStats(events=0, events_share=0.0, items=0, label_items=0,
                                                     label_items_share=0.0),
                      inclusion_probability=InclusionSummary(min=0.3, mean=0.52, max=0.8), masked_columns=["email"])


def stats_doc() -> dict[str, Any]:
    return stats_model().model_dump(mode="json")


def parity_model() -> ParityDocument:
    return ParityDocument(rows_stream=400, rows_batch=400, mismatches=0, float_tolerance=1e-9,
                          features_mismatched={}, examples=[], entities={})


def latency_model() -> LatencyDocument:
    return LatencyDocument(
        control=ModelLatency(p50_ms=5.0, p95_ms=11.0, p99_ms=20.0, requests_timed=200, users=400, errors=0,
                             error_rate=0.0, ms=[]),
        candidate=ModelLatency(p50_ms=6.0, p95_ms=12.5, p99_ms=22.0, requests_timed=200, users=400, errors=1,
                               error_rate=0.005, ms=[]))


def manifest_data() -> dict[str, Any]:
    """The example manifest, renamed, in the canonical form the validate step writes."""
    raw = {**json.loads(EXAMPLE_MANIFEST.read_text()), "name": "fixture-run"}
    return parse_manifest(raw).model_dump(mode="json")


def users_table() -> pa.Table:
    """Two gold users (p 0.8 and 0.6) and three silver users (p 0.5, 0.4, 0.3)."""
    return pa.table({"user_id": ["u1", "u2", "u3", "u4", "u5"],
                     "stratum": ["tier=gold", "tier=gold", "tier=silver", "tier=silver", "tier=silver"],
                     "inclusion_probability": [0.8, 0.6, 0.5, 0.4, 0.3]})


def rankings_table() -> pa.Table:
    """Control recommends only the two most popular items; candidate spreads over i00, i04 and i09.
    Scores: control 1.0 / 2.0 / 3.0 (repeated), candidate 0.5 (x2) and 3.0 (x4), one NaN."""
    rows = []
    for user in ("u1", "u2"):
        for rank, (item, score) in enumerate((("i00", 3.0), ("i01", 2.0), ("i00", 1.0)), start=1):
            rows.append((user, "control", rank, item, score))
    candidate = [("u1", "i00", 3.0), ("u1", "i04", 3.0), ("u1", "i09", 0.5),
                 ("u2", "i00", 3.0), ("u2", "i04", 3.0), ("u2", "i09", float("nan"))]
    for rank, (user, item, score) in enumerate(candidate):
        rows.append((user, "candidate", rank % 3 + 1, item, score))
    columns = list(zip(*rows, strict=True))
    return pa.table({"user_id": list(columns[0]), "model": list(columns[1]), "rank": list(columns[2]),
                     "item_id": list(columns[3]), "score": list(columns[4])})


def items_table() -> pa.Table:
    """i00 .. i09 with 90-day interactions 100, 90, ..., 10 (views only; carts and purchases 0)."""
    return pa.table({"item_id": ITEMS, "i_views_7d": [1] * 10, "i_views_90d": [100 - 10 * n for n in range(10)],
                     "i_carts_90d": [0] * 10, "i_purchases_90d": [0] * 10})


def attribution_model() -> AttributionDocument:
    """Two features behind the difference: the candidate's own (ui_events) and the control's (i_views_30d)."""
    def difference(feature: str, share: float, control: float, candidate: float) -> FeatureDifference:
        return FeatureDifference(feature=feature, mean_abs_delta=abs(candidate - control), share=share,
                                 control_reliance=control, candidate_reliance=candidate,
                                 direction="candidate" if candidate > control else "control")
    return AttributionDocument(
        method="TreeSHAP", seed=7, users_requested=300, users=300, candidate_rows=30000, attributed_rows=4100,
        difference_users=298, difference_rows=4000, k=10, additivity_error=1e-15,
        models={"control": [FeatureImportance(feature="i_views_30d", mean_abs=0.5, share=1.0)],
                "candidate": [FeatureImportance(feature="ui_events", mean_abs=0.3, share=0.75),
                              FeatureImportance(feature="i_views_30d", mean_abs=0.1, share=0.25)]},
        difference=[difference("ui_events", 0.6, 0.0, 0.6), difference("i_views_30d", 0.4, 0.9, 0.5)])


def write_run(root: Path, *, failed: bool = True, drift: bool = True, whatif: bool = True,
              parquet: bool = True, attribution: bool = False, skip: tuple[str, ...] = ()) -> Path:
    """The run record under root/runs/RUN_ID; `skip` names files (relative paths) to leave out."""
    layout = RunLayout.of(str(root), RUN_ID)
    gates = gates_model(failed)
    documents: list[tuple[DocumentPath[Any], Any]] = [
        (layout.record, record_model(gates.decision, gates.reasons)), (layout.gates, gates),
        (layout.metrics, metrics_model()), (layout.slice_stats, stats_model()), (layout.parity, parity_model()),
        (layout.latency, latency_model()), (layout.manifest, io.parse(layout.manifest, manifest_data())),
    ]
    if drift:
        documents.append((layout.drift, drift_model()))
    if whatif:
        documents.append((layout.whatif, whatif_model()))
    if attribution:
        documents.append((layout.attribution, attribution_model()))
    for path, document in documents:
        if path.uri.removeprefix(layout.root + "/") not in skip:  # plain files: tests may stub storage's writes
            Path(path.uri).parent.mkdir(parents=True, exist_ok=True)
            Path(path.uri).write_bytes(io.dumps(path, document))
    if parquet:
        for uri, table in ((layout.slice_table("users"), users_table()), (layout.rankings, rankings_table()),
                           (layout.batch_features("item"), items_table())):
            if uri.removeprefix(layout.root + "/") not in skip:
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(table, uri)
    return Path(layout.root)
