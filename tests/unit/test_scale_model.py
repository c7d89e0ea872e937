"""benchmarks/scale.py: the fit, the projection and the Lambda flags on hand-computed numbers."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from benchmarks import scale


def test_least_squares_on_three_points() -> None:
    # x = 1, 2, 3; y = 2, 4, 5: mean_x 2, mean_y 11/3, sxx 2, sxy 3 -> b = 1.5, a = 11/3 - 3 = 2/3
    fit = scale.fit_linear([1.0, 2.0, 3.0], [2.0, 4.0, 5.0])
    assert fit.model == "least squares a + b*x"
    assert fit.slope == pytest.approx(1.5)
    assert fit.intercept == pytest.approx(2 / 3)
    assert fit.at(10.0) == pytest.approx(2 / 3 + 15.0)


def test_one_size_is_proportional() -> None:
    fit = scale.fit_linear([4.0], [10.0])
    assert (fit.model, fit.intercept, fit.slope) == ("proportional", 0.0, 2.5)
    assert fit.at(100.0) == pytest.approx(250.0)


def test_fit_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError, match="as many y as x"):
        scale.fit_linear([1.0, 2.0], [1.0])


def test_deployed_flags_a_non_looping_step_past_15_minutes_and_10_gb() -> None:
    limits = {"light": {"memory_mb": 1024, "timeout_s": 300}, "heavy": {"memory_mb": 3008, "timeout_s": 900}}
    slow = scale.deployed("slice", 1000.0, 1000.0, limits)
    assert slow["memory_needed_mb"] == 1250  # 1000 x 1.25
    assert slow["over_lambda_limits"] and slow["over_configured"]
    big = scale.deployed("evaluate", 10.0, 8200.0, limits)
    assert big["memory_needed_mb"] == 10250 and big["over_lambda_limits"]
    # replay loops: 2,000 s is three calls of at most 900 s, never a limit breach
    loop = scale.deployed("replay", 2000.0, 500.0, limits)
    assert (loop["invocations"], loop["over_lambda_limits"], loop["over_configured"]) == (3, False, False)
    light = scale.deployed("gate", 301.0, 100.0, limits)
    assert light["timeout_s"] == 300 and light["over_configured"] and not light["over_lambda_limits"]


def point(name: str, lake_events: int, slice_events: int, slice_users: int, mult: float) -> dict[str, Any]:
    def step(seconds: float, mb: float, **extra: Any) -> dict[str, Any]:
        return {"seconds": seconds, "peak_rss_mb": mb, "memory_method": scale.METHOD_IN_RUN, "counts": {},
                "shard_seconds": None, **extra}

    return {"scale": name, "lake_users": 1000 * int(mult), "lake_events": lake_events, "slice_events": slice_events,
            "slice_users": slice_users, "window_parquet_bytes": 40 * lake_events,
            "steps": {"slice": step(1.0 * mult, 500 + 100 * mult),
                      "features": step(0.5 * mult, 400 + 10 * mult),
                      "score": step(6.0, 900, shard_seconds=[5.0 * min(1.0, slice_users / 5000)]),
                      "replay": step(2.0 * mult, 300)}}


def test_projection_to_100m_events() -> None:
    # lake events 1M and 2M; slice is 15% of the lake events, slice users 20% of the lake users
    points = [point("a", 1_000_000, 150_000, 200, 1.0), point("b", 2_000_000, 300_000, 400, 2.0)]
    proj = scale.project(points)
    assert proj["target"]["slice_events"] == 15_000_000
    assert proj["target"]["slice_users"] == 2_000_000  # 10M x 400 / 2000
    assert proj["score_shards"] == 400  # 2M users / 5,000
    sl = proj["steps"]["slice"]  # reads the lake: 1 s per 1M lake events, 100 MB per 1M
    assert sl["x"] == "lake events"
    assert sl["local"] == {"seconds": 100.0, "peak_rss_mb": 10500}
    assert sl["deployed"]["memory_needed_mb"] == 13125 and sl["deployed"]["over_lambda_limits"]
    feats = proj["steps"]["features"]  # slice events: 0.5 s per 150k -> 50 s at 15M
    assert feats["local"]["seconds"] == pytest.approx(50.0)
    assert feats["local"]["peak_rss_mb"] == 1400  # 400 + 10 MB per 150k slice events x 100
    score = proj["steps"]["score"]  # per shard: 5 s per 5,000 users, measured at 200 and 400 users per shard
    assert score["x_target"] == 5000 and score["local"]["seconds"] == pytest.approx(5.0)
    assert proj["flagged_over_lambda_limits"] == ["slice"]
    assert proj["athena"]["window_bytes"] == 4_000_000_000  # 40 B per event
    assert proj["athena"]["bytes"] == 16 * 4_000_000_000  # validate 9 + slice 3 + drift 4 scans
    assert proj["athena"]["usd"] == pytest.approx(0.32)
    # replay: 2 s per 150k slice events -> 200 s for 15M, 75,000 events/s -> 75 shards by record count
    assert proj["kinesis"]["events_per_s"] == 75_000 and proj["kinesis"]["shards"] == 75


def test_window_bytes_counts_only_partitions_in_the_window(tmp_path: Path) -> None:
    for day, size in (("2026-01-01", 10), ("2026-01-02", 20), ("2026-01-03", 40)):
        part = tmp_path / "events" / f"event_date={day}"
        part.mkdir(parents=True)
        (part / "x.parquet").write_bytes(b"0" * size)
    assert scale.lake_window_bytes(tmp_path, date(2026, 1, 2), date(2026, 1, 3)) == 20
    assert scale.lake_window_bytes(tmp_path / "none", date(2026, 1, 1), date(2026, 1, 3)) is None


def test_one_size_above_a_base_and_fixed_cost_steps() -> None:
    # 400 MB at x = 100 over a 300 MB base: 1 MB per x, so 1,300 MB at x = 1,000
    fit = scale.fit_linear([100.0], [400.0], base=300.0)
    assert (fit.model, fit.at(1000.0)) == ("base + proportional", pytest.approx(1300.0))
    one = point("a", 1_000_000, 150_000, 200, 1.0)
    one["base_rss_mb"] = 450.0
    one["steps"]["gate"] = {**one["steps"]["features"], "seconds": 0.6}
    proj = scale.project([one])
    assert proj["steps"]["gate"]["seconds_fit"]["model"] == "constant"
    assert proj["steps"]["gate"]["local"]["seconds"] == 0.6
    # features: 410 MB measured is below the 450 MB base, so the base is capped at the measured value: flat
    assert proj["steps"]["features"]["local"]["peak_rss_mb"] == 410
    # slice: 600 MB over a 450 MB base at 1M lake events -> 450 + 150 x 100
    assert proj["steps"]["slice"]["local"]["peak_rss_mb"] == 15450
    assert proj["basis"]["sizes"] == 1
    assert "Note: one size measured" in scale.markdown([one], proj)


def test_projection_never_below_the_largest_measurement() -> None:
    # features' time falls from 0.5 s to 0.4 s between the sizes (noise): the fit goes negative at 100M
    a, b = point("a", 1_000_000, 150_000, 200, 1.0), point("b", 2_000_000, 300_000, 400, 2.0)
    b["steps"]["features"]["seconds"] = 0.4
    a["steps"]["gate"] = {**a["steps"]["features"], "seconds": 0.6, "peak_rss_mb": 700.0}
    b["steps"]["gate"] = {**b["steps"]["features"], "seconds": 0.5, "peak_rss_mb": 900.0}
    proj = scale.project([a, b])
    assert proj["steps"]["features"]["local"]["seconds"] == 0.4
    assert proj["steps"]["gate"]["local"] == {"seconds": 0.5, "peak_rss_mb": 900}
    assert proj["basis"] == {"sizes": 2, "note": None}
    assert "Note:" not in scale.markdown([a, b], proj)
