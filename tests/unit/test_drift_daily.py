"""The size-aware daily (or weekly) drift series on generated event rows: a stationary lake with thousands of
categories and a few hundred events a day flags nothing and suggests no retraining; a stationary lake whose
volume falls does not either; a one-week category or price shift is found on its dates; the series is
deterministic."""

from __future__ import annotations

import numpy as np

from testbed.core.drift import DriftConfig
from testbed.core.drift_report import DailyConfig, EventRows, daily_series

START = np.datetime64("2026-03-02")
CATEGORIES = np.array([f"cat-{i:04d}" for i in range(2000)])
EVENTS_PER_USER = 3


def popularity(seed: int = 1) -> np.ndarray:
    shares = np.random.default_rng(seed).gamma(0.5, size=len(CATEGORIES))
    return shares / shares.sum()


def events(day_counts: list[int], seed: int, *, category_shift: tuple[int, int, float] | None = None,
           price_shift: tuple[int, int, float] | None = None, pre_cutoff: bool = False) -> EventRows:
    """Event rows over consecutive days from START (`day_counts` events each), categories drawn from one fixed
    popularity and prices from one log-normal; a shift (first day, last day, fraction) moves that share of
    the days' events to five rare categories, or multiplies their prices."""
    g = np.random.default_rng(seed)
    day = np.repeat(np.arange(len(day_counts)), day_counts)
    n = len(day)
    category = g.choice(CATEGORIES, size=n, p=popularity())
    price = g.lognormal(3.0, 0.5, size=n)
    if category_shift is not None:
        first, last, fraction = category_shift
        moved = (day >= first) & (day <= last) & (g.random(n) < fraction)
        category[moved] = g.choice(CATEGORIES[np.argsort(popularity())[:5]], size=int(moved.sum()))
    if price_shift is not None:
        first, last, fraction = price_shift
        price[(day >= first) & (day <= last)] *= 1 + fraction
    users = np.arange(n) // EVENTS_PER_USER
    event_type = np.full(n, "view")
    values = {"price": price, "price_index": np.ones(n), "quantity": np.full(n, np.nan),
              "revenue": np.full(n, np.nan), "event_type": event_type, "category": category}
    return EventRows(values, event_type == "purchase", category, (START + day).astype(str), np.full(n, pre_cutoff),
                     users, None, None)


def series(feature: str, base: EventRows, cur: EventRows, min_rows: int = 100) -> dict:
    ranked = [{"feature": feature, "psi": 1.0}]
    return daily_series(ranked, base, cur, DriftConfig(), DailyConfig(1, min_rows, 3))[feature]


def shifted_dates(s: dict) -> list[str]:
    return [d for d, flagged in zip(s["dates"], s["shifted"], strict=True) if flagged]


BASELINE = events([3000] * 20, seed=7, pre_cutoff=True)  # the population's 60,000 events
DAYS = 84


def test_a_stationary_lake_with_2000_categories_flags_no_period_and_suggests_no_retraining() -> None:
    s = series("category", BASELINE, events([300] * DAYS, seed=8))
    assert s["retrain_after"] is None
    assert shifted_dates(s) == []
    # the raw PSI is far above 0.2 everywhere (its bias at this size); the threshold moves with it
    assert min(v for v in s["psi"] if v is not None) > s["threshold"]
    assert all(p >= b + s["threshold"] - 1e-6 for p, b in zip(s["period_threshold"], s["bias"], strict=True)
               if p is not None and b is not None)
    assert s["period"] == "week" and len(s["dates"]) == DAYS // 7  # 300 events a day: 0.15 per category


def test_a_stationary_lake_whose_volume_falls_suggests_no_retraining() -> None:
    counts = [400] * 50 + [30] * 30  # a panel that thins out: small days read a larger PSI
    s = series("price", BASELINE, events(counts, seed=9), min_rows=20)
    assert s["retrain_after"] is None
    assert s["period"] == "day"
    assert shifted_dates(s) == []


def test_a_one_week_category_shift_is_found_on_its_week() -> None:
    s = series("category", BASELINE, events([300] * DAYS, seed=8, category_shift=(42, 48, 0.4)))
    week = str(START + 42)
    assert s["retrain_after"] == week
    assert s["period"] == "week" and shifted_dates(s) == [week]
    flagged = s["dates"].index(week)
    assert s["p_value"][flagged] < 0.01 and s["psi"][flagged] >= s["period_threshold"][flagged]


def test_a_one_week_price_shift_is_found_on_its_days() -> None:
    s = series("price", BASELINE, events([300] * 60, seed=10, price_shift=(30, 36, 0.4)))
    assert s["retrain_after"] == str(START + 30)
    assert s["period"] == "day"
    assert shifted_dates(s) == [str(START + d) for d in range(30, 37)]


def test_the_series_is_deterministic() -> None:
    current = events([300] * DAYS, seed=8, category_shift=(42, 48, 0.4))
    first = series("category", BASELINE, current)
    np.random.seed(123)  # the null draws its own seeded generator, not the global one
    again = series("category", events([3000] * 20, seed=7, pre_cutoff=True),
                   events([300] * DAYS, seed=8, category_shift=(42, 48, 0.4)))
    assert first == again
