"""Worst cohorts (testbed.core.cohorts): hand-computed families, and the test on planted effects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.core import cohorts, stats

CUTOFF = datetime(2024, 3, 1, tzinfo=UTC)


def test_activity_deciles_put_equal_counts_together() -> None:
    labels = cohorts._activity_labels({"a": 0, "b": 0, "c": 0, "d": 5, "e": 5, "f": 9}, list("abcdef"))
    # decile = 1 + floor(10 * users with strictly fewer events / 6): 0 -> 1, 5 -> 1 + 30 // 6 = 6, 9 -> 1 + 50 // 6 = 9
    assert labels == {"a": "decile 1 (0 events)", "b": "decile 1 (0 events)", "c": "decile 1 (0 events)",
                      "d": "decile 6 (5 events)", "e": "decile 6 (5 events)", "f": "decile 9 (9 events)"}
    ten = cohorts._activity_labels({str(i): i for i in range(10)}, [str(i) for i in range(10)])
    assert [ten[str(i)] for i in (0, 1, 9)] == ["decile 1 (0 events)", "decile 2 (1 event)", "decile 10 (9 events)"]


def _events(rows: list[tuple[str, str, int]]) -> pa.Table:
    """(user, item, days from the cutoff; negative = before it)."""
    return pa.table({"user_id": pa.array([r[0] for r in rows], pa.string()),
                     "item_id": pa.array([r[1] for r in rows], pa.string()),
                     "event_time": pa.array([CUTOFF + timedelta(days=r[2]) for r in rows], pa.timestamp("us", "UTC"))})


def test_families_read_only_pre_cutoff_history() -> None:
    events = _events([("u1", "shoe", -3), ("u1", "shoe", -2), ("u1", "tent", -1), ("u1", "tent", 0),
                      ("u1", "tent", 2),  # at and after the cutoff: label window, not history
                      ("u2", "tent", -5), ("u2", "shoe", -4),  # one each: the tie goes to the smaller name
                      ("u2", "ghost", -4),  # an item missing from the catalogue has no category
                      ("u3", "tent", 1)])  # only label-window events: a new user
    items = pa.table({"item_id": ["shoe", "tent"], "category": ["footwear", "outdoor"]})
    history = cohorts.user_history(events, items, CUTOFF)
    assert history.to_pylist() == [{"user_id": "u1", "events": 3, "top_category": "footwear"},
                                   {"user_id": "u2", "events": 3, "top_category": "footwear"}]
    found = {f.name: dict(f.labels) for f in cohorts.families(history, ["u1", "u2", "u3"],
                                                              {"u1": "tier=gold", "u2": "tier=gold", "u3": "tier=x"})}
    assert list(found) == ["stratum", "activity", "tenure", "top_category"]
    assert found["tenure"] == {"u1": "returning", "u2": "returning", "u3": "new"}
    assert found["top_category"] == {"u1": "footwear", "u2": "footwear", "u3": "(no history)"}
    assert found["stratum"] == {"u1": "tier=gold", "u2": "tier=gold", "u3": "tier=x"}
    assert found["activity"]["u3"] == "decile 1 (0 events)"
    assert found["activity"]["u1"] == found["activity"]["u2"] == "decile 4 (3 events)"
    without = cohorts.families(history, ["u1"], None)
    assert [f.name for f in without] == ["activity", "tenure", "top_category"]


# the same history in SQL, as the evaluate step computed it before the slice step wrote it: the reference
_HISTORY_SQL = """
WITH history AS (
    SELECT e.user_id, i.category FROM events e LEFT JOIN items i USING (item_id) WHERE e.event_time < $cutoff
), per_category AS (
    SELECT user_id, category, count(*) AS n FROM history WHERE category IS NOT NULL GROUP BY user_id, category
)
SELECT h.user_id, h.events, t.category AS top_category
FROM (SELECT user_id, count(*) AS events FROM history GROUP BY user_id) h
LEFT JOIN (SELECT user_id, arg_min(category, (-n, category)) AS category FROM per_category GROUP BY user_id) t
USING (user_id) ORDER BY user_id"""


@settings(max_examples=60, deadline=None, derandomize=True)
@given(rows=st.lists(st.tuples(st.sampled_from(["u1", "u2", "U3", "ü4", "u10"]),
                               st.sampled_from(["shoe", "tent", "mug", "ghost", "x-1"]),
                               st.integers(-6, 3)), max_size=40),
       categories=st.lists(st.sampled_from(["outdoor", "Home", "footwear", None]), min_size=4, max_size=4))
def test_user_history_matches_sql(rows: list[tuple[str, str, int]], categories: list[str | None]) -> None:
    """Odd ids, items missing from the catalogue, items without a category, a catalogue without any category."""
    events = _events(rows)
    items = pa.table({"item_id": ["shoe", "tent", "mug", "x-1"], "category": pa.array(categories, pa.string())})
    con = duckdb.connect()
    try:
        con.register("events", events)
        con.register("items", items)
        expected = con.sql(_HISTORY_SQL, params={"cutoff": CUTOFF}).to_arrow_table().to_pylist()
    finally:
        con.close()
    assert cohorts.user_history(events, items, CUTOFF).to_pylist() == expected


def _planted(seed: int = 3) -> tuple[stats.PairedSample, list[cohorts.Family]]:
    """400 users; cohort "hurt" (100 users) loses 0.2 of the metric, the others differ by noise only."""
    rng = np.random.default_rng(seed)
    n = 400
    users = np.array([f"u{i:03d}" for i in range(n)], dtype=object)
    control = rng.uniform(0.2, 0.8, n)
    candidate = control + rng.normal(0.0, 0.05, n)
    candidate[:100] -= 0.2
    sample = stats.PairedSample(("ndcg@10",), users, np.array(["all"] * n, dtype=object), np.ones(n),
                                control[:, None], candidate[:, None])
    group = {u: ("hurt" if i < 100 else "fine-a" if i < 250 else "fine-b" if i < 390 else "tiny")
             for i, u in enumerate(users.tolist())}
    tenure = {u: ("new" if i % 2 else "returning") for i, u in enumerate(users.tolist())}
    return sample, [cohorts.Family("top_category", group), cohorts.Family("tenure", tenure)]


def _worst(sample: stats.PairedSample, found: list[cohorts.Family]) -> cohorts.CohortReport:
    domains = cohorts.cohort_domains(sample.users.tolist(), found, 30)
    strata, deltas = stats.compare_strata_and_domains(sample, 2000, 7, False, domain_metrics=("ndcg@10",),
                                                      domains=domains.rows)
    alone = stats.compare_strata(sample, 2000, 7, False)  # the cohorts draw nothing: metrics.json is unchanged
    assert np.array_equal(strata["all"].delta.boot, alone["all"].delta.boot)
    return cohorts.worst_cohorts(deltas, "ndcg@10", domains, confidence=0.95, correction="holm")


def test_the_planted_harm_is_the_worst_cohort_and_survives_correction() -> None:
    sample, found = _planted()
    report = _worst(sample, found)
    assert (report.tested, report.too_small) == (5, 1)  # "tiny" has 10 users < 30
    first = report.worst[0]
    assert (first.family, first.cohort, first.n) == ("top_category", "hurt", 100)
    assert first.delta == pytest.approx(float(np.mean(sample.candidate[:100] - sample.control[:100])))
    assert first.delta == pytest.approx(-0.2, abs=0.02)
    assert not first.exploratory and first.p_adjusted <= 0.05
    assert first.interval[1] < 0 and first.interval_adjusted[1] < 0
    assert first.interval_adjusted[0] <= first.interval[0] and first.interval_adjusted[1] >= first.interval[1]
    fine = [f for f in report.worst if f.cohort.startswith("fine")]
    assert fine and all(f.exploratory for f in fine)
    assert [f.delta for f in report.worst] == sorted(f.delta for f in report.worst)


def test_corrected_p_values_and_adjusted_intervals_agree() -> None:
    sample, found = _planted(seed=11)
    report = _worst(sample, found)
    ps = [f.p_value for f in report.worst]
    assert [f.p_adjusted for f in report.worst] == pytest.approx(stats.adjust_p_values(ps, "holm"))
    for f in report.worst:
        lo, hi = f.interval_adjusted
        assert f.exploratory == (lo <= 0.0 <= hi), f


def test_the_same_seed_gives_the_same_cohorts() -> None:
    sample, found = _planted()
    assert _worst(sample, found) == _worst(sample, found)


def test_primary_metric_is_the_first_non_advisory_comparison() -> None:
    def gate(kind: str, role: str, metric: str | None) -> SimpleNamespace:
        return SimpleNamespace(kind=kind, role=role, metric=metric)

    gates = [gate("latency", "goal", None), gate("superiority", "advisory", "recall@10"),
             gate("threshold", "goal", "mrr@10"), gate("non_inferiority", "guardrail", "revenue@10"),
             gate("superiority", "goal", "ndcg@10")]
    assert cohorts.primary_metric(gates, 10) == "revenue@10"
    assert cohorts.primary_metric(gates[:3], 5) == "ndcg@5"


def _report_data() -> SimpleNamespace:
    from testbed.record.evaluation import CohortFinding, WorstCohorts

    def finding(cohort: str, n: int, delta: float, adjusted: tuple[float, float], exploratory: bool) -> CohortFinding:
        return CohortFinding(family="tenure" if cohort == "new" else "top_category", cohort=cohort, n=n, control=0.3,
                             candidate=0.3 + delta, delta=delta, interval=[adjusted[0] / 2, adjusted[1] / 2],
                             interval_adjusted=list(adjusted), p_value=0.001, p_adjusted=0.004, exploratory=exploratory)

    worst = [finding("new", 120, -0.031, (-0.05, -0.012), False), finding("outdoor", 65, -0.01, (-0.04, 0.02), True),
             finding("gaming", 145, 0.02, (0.004, 0.036), False), finding("home", 40, 0.03, (-0.01, 0.07), True)]
    block = WorstCohorts(metric="ndcg@10", min_users=30, tested=12, too_small=2, correction="holm", confidence=0.95,
                         worst=worst)
    return SimpleNamespace(metrics=SimpleNamespace(cohorts=block))


def test_the_reports_name_the_worst_cohorts_with_their_corrected_interval() -> None:
    from testbed.report import cohorts as shown
    from testbed.report.html import cohorts_section

    data = _report_data()
    assert shown.summary(data) == (  # type: ignore[arg-type]
        "ndcg@10 falls most for tenure new (120 users): -0.0310, 95% corrected CI [-0.0500, -0.0120], proven harm; "
        "then top category outdoor (65 users) -0.0100, top category gaming (145 users) +0.0200 "
        "(12 cohorts of ≥ 30 users tested, holm-corrected)")
    assert [shown.verdict(f) for f in data.metrics.cohorts.worst] == [
        "proven harm", "exploratory", "proven gain", "exploratory"]
    json_block = shown.as_json(data)  # type: ignore[arg-type]
    assert json_block is not None and [w["cohort"] for w in json_block["worst"]] == ["new", "outdoor", "gaming"]
    html = cohorts_section(data)  # type: ignore[arg-type]
    assert html.count("<tr>") == 5 and "tenure: new (n=120)" in html and 'data-scale="absolute"' in html
    assert "2 of them" in html and "<svg" in html
    data.metrics.cohorts.worst[:] = data.metrics.cohorts.worst[2:]
    assert shown.summary(data).startswith(  # type: ignore[arg-type, union-attr]
        "no tested cohort loses ndcg@10; the smallest change: top category gaming (145 users) +0.0200")
