"""The proof that a declared feature set is computed alike by the batch SQL and the stream fold.

Hypothesis draws random feature sets (keys among user_id / item_id / item.category / item.brand / user.region
or none, every operation and input, windows in hours and days, event-type and `where` filters of every op)
and random event logs built to hit the edges: times exactly at the cutoff, at cutoff - window and 1 µs
either side, shared timestamps, exact duplicate rows, shuffled arrival, null prices / quantities /
attributes / ids, unicode and empty ids, items missing from the catalogue, users missing from users/.
Each draw also has a population log, as the slice step's extract holds it: the slice's events and those of
users outside the slice, without user_id; the lake-population tables (aggregations that read nothing of the
user, unless they say `population: slice`) are computed from it on both sides.
For every draw: the fold's tables equal the batch tables (same schema, same keys in the same order, values
through `parity.compare`: 0 mismatches), and replacing every event at or after the cutoff by other ones
(in the slice's log and in the population's) changes no value on either side. The mutation tests show the
property has teeth: a fold with min and max swapped, with a window bound moved by one microsecond, or folding
the slice instead of the population, is caught.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from testbed.core import feature_fold, feature_sql, parity
from testbed.core.feature_spec import FeatureSet, key_column, window_us
from tests.unit.feature_sets import C, Row, event_table

WINDOWS = ["1h", "2h", "12h", "1d", "2d", "7d"]
USER_IDS = ["u1", "u2", "é", "😀", "", "Z", "a\x00b", None]  # "" and None both key as ''
ITEM_IDS = ["i1", "i2", "ß", "🛒", "gone"]  # "gone" is never in the catalogue
CATEGORIES = ["c1", "c2", "Ω", None]
BRANDS = ["b1", "b2", "ü", None]
REGIONS = ["eu", "us", "Ω", None]
PRICES = [None, 0.0, 0.005, 0.015, 1.5, 2.675, 9.99, 100.0, 1e6 + 0.125]  # half-cent rounding edges among them
QUANTITIES = [None, 0, 1, 2, 3]
SCORES = [None, -1.5, 0.0, 1e-3, 2.25, 7.0, 0.1]  # a float event column: sums of these are order-sensitive
TYPES = ["view", "add_to_cart", "purchase", "refund"]
NUMERIC_INPUTS = ["price", "quantity", "revenue", "item.price", "user.age", "score"]
ANY_INPUTS = ["item_id", "user_id", "event_type", "item.brand", "price", "user.region", "score"]
KEYS = ["user_id", "item_id", "item.category", "item.brand", "user.region"]
OTHER_USERS: list[str | None] = ["p1", "p2", "ü2"]  # outside the slice: only the population log has their events
STRING_COLUMNS = {"event_type": TYPES, "item.category": CATEGORIES[:-1], "item.brand": BRANDS[:-1],
                  "user.region": REGIONS[:-1], "user_id": USER_IDS[:-1]}
NUMBER_COLUMNS = {"price": [0, 1.5, 9.99, 100], "quantity": [0, 1, 2, 2.5], "item.price": [1, 9.99, 20.0],
                  "user.age": [18, 30, 40.5], "score": [0, 0.1, 2.25, -1]}
SPAN_US = window_us("8d")

# spec, events, items, users, events', population, population'
Case = tuple[FeatureSet, pa.Table, pa.Table, pa.Table, pa.Table, pa.Table, pa.Table]


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    column = draw(st.sampled_from([*STRING_COLUMNS, *NUMBER_COLUMNS]))
    values = draw(st.just(STRING_COLUMNS[column]) if column in STRING_COLUMNS else st.just(NUMBER_COLUMNS[column]))
    op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null",
                               "not_null"]))
    if op in ("is_null", "not_null"):
        return {"column": column, "op": op}
    if op in ("in", "not_in"):
        return {"column": column, "op": op, "value": draw(st.lists(st.sampled_from(values), min_size=1,
                                                                   max_size=3))}
    if op == "between":
        return {"column": column, "op": op, "value": sorted(draw(st.lists(st.sampled_from(values), min_size=2,
                                                                          max_size=2)))}
    return {"column": column, "op": op, "value": draw(st.sampled_from(values))}


@st.composite
def aggregations(draw: st.DrawFn, name: str) -> dict[str, Any]:
    operation = draw(st.sampled_from(["count", "sum", "mean", "min", "max", "count_distinct", "last",
                                      "days_since_first", "days_since_last"]))
    agg: dict[str, Any] = {
        "name": name, "operation": operation, "window": draw(st.sampled_from(WINDOWS)),
        "keys": draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True)),
        # half the features unfiltered, so that most draws keep events to aggregate
        "events": draw(st.one_of(st.just([]), st.lists(st.sampled_from(TYPES), min_size=1, max_size=3,
                                                       unique=True))),
        "where": draw(st.one_of(st.just([]), st.lists(filters(), min_size=1, max_size=2))),
    }
    if operation == "count_distinct":
        agg["input"] = draw(st.sampled_from(ANY_INPUTS))
    elif operation in ("sum", "mean", "min", "max", "last"):
        agg["input"] = draw(st.sampled_from(NUMERIC_INPUTS))
    named = [*agg["keys"], agg.get("input", ""), *(f["column"] for f in agg["where"])]
    if not any(n == "user_id" or n.startswith("user.") for n in named):  # lake by default; slice when it says so
        population = draw(st.sampled_from([None, "lake", "slice"]))
        if population:
            agg["population"] = population
    return agg


@st.composite
def feature_sets(draw: st.DrawFn) -> FeatureSet:
    n = draw(st.integers(1, 5))
    return FeatureSet.model_validate({"name": "random", "aggregations": [draw(aggregations(f"f{i}"))
                                                                         for i in range(n)]})


def offsets(spec: FeatureSet, future: bool) -> st.SearchStrategy[int]:
    """µs from the cutoff. Before it: 1 µs before, the first instant of one of the spec's windows or 1 µs
    either side of it, the last 2 hours (inside every window), or anywhere in 8 days. At or after it: the
    cutoff itself, 1 µs after, or anywhere in the 8 days after."""
    if future:
        return st.one_of(st.sampled_from([0, 1]), st.integers(0, SPAN_US))
    edges = sorted({-1, *(-a.window_us + d for a in spec.aggregations for d in (-1, 0, 1))})
    return st.one_of(st.sampled_from(edges), st.integers(-window_us("2h"), -1), st.integers(-SPAN_US, -1))


@st.composite
def rows(draw: st.DrawFn, spec: FeatureSet, future: bool, count: int,
         users: list[str | None] = USER_IDS) -> list[tuple[Row, float | None]]:
    """`count` events of `users` (and their `score`), ids unique and unrelated to time order."""
    times = draw(st.lists(offsets(spec, future), min_size=count, max_size=count))
    out = []
    for i, offset in enumerate(times):
        event_id = f"{draw(st.sampled_from(['e', 'é', 'E']))}{i:03d}{'f' if future else ''}"
        row: Row = (event_id + ("" if users is USER_IDS else "p"),
                    draw(st.sampled_from(users)), draw(st.sampled_from(ITEM_IDS)),  # type: ignore[arg-type]
                    draw(st.sampled_from(TYPES)), C + timedelta(microseconds=offset),
                    draw(st.sampled_from(PRICES)), draw(st.sampled_from(QUANTITIES)))
        out.append((row, draw(st.sampled_from(SCORES))))
    return out


def log_table(events: list[tuple[Row, float | None]]) -> pa.Table:
    table = event_table([row for row, _ in events])
    return table.append_column("score", pa.array([score for _, score in events], pa.float64()))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    spec = draw(feature_sets())
    past = draw(rows(spec, False, draw(st.integers(0, 40))))
    past += [past[i] for i in draw(st.lists(st.integers(0, max(len(past) - 1, 0)), max_size=3))] if past else []
    before, after = (draw(rows(spec, True, draw(st.integers(0, 6)))) for _ in range(2))
    order = draw(st.permutations(range(len(past) + len(before))))
    log = [(past + before)[i] for i in order]
    # the same past events in the same order, the at-or-after-cutoff ones replaced by others
    altered = [e for e in log if e in past] + after
    catalogue = [i for i in ITEM_IDS[:-1] if draw(st.booleans())]
    items = pa.table({"item_id": pa.array(catalogue, pa.string()),
                      "category": pa.array([draw(st.sampled_from(CATEGORIES)) for _ in catalogue], pa.string()),
                      "price": pa.array([draw(st.sampled_from(PRICES)) for _ in catalogue], pa.float64()),
                      "brand": pa.array([draw(st.sampled_from(BRANDS)) for _ in catalogue], pa.string())})
    known = [u for u in USER_IDS[:-1] if draw(st.booleans())]
    users = pa.table({"user_id": pa.array(known, pa.string()),
                      "region": pa.array([draw(st.sampled_from(REGIONS)) for _ in known], pa.string()),
                      "age": pa.array([draw(st.sampled_from([None, 18, 30, 41])) for _ in known], pa.int64())})
    others = draw(rows(spec, False, draw(st.integers(0, 30)), OTHER_USERS))
    others_before, others_after = (draw(rows(spec, True, draw(st.integers(0, 4)), OTHER_USERS))
                                   for _ in range(2))
    mixed = draw(st.permutations(log + others + others_before))
    return (spec, log_table(log), items, users, log_table(altered), population_table(mixed),
            population_table([e for e in mixed if e in past or e in others] + after + others_after))


def population_table(events: list[tuple[Row, float | None]]) -> pa.Table:
    """The events as the slice's population extract holds them: no user_id."""
    return log_table(events).drop_columns(["user_id"])


def disagreement(case: Case, *, future: bool = True) -> str | None:
    """Why the fold and the batch tables of `case` differ, or (`future`) how events at/after the cutoff
    changed a value; None when they agree."""
    spec, events, items, users, altered, population, altered_population = case
    batch = feature_sql.batch_tables(events, items, users, spec, C, population=population)
    stream = feature_fold.fold(events, items, users, spec, C, population=population)
    for name, aggs in spec.groups().items():
        keys = [key_column(k) for k in aggs[0].group_keys]
        if stream[name].schema != batch[name].schema:
            return f"{name}: schema {stream[name].schema} vs {batch[name].schema}"
        if not stream[name].select(keys).equals(batch[name].select(keys)):
            return f"{name}: keys or their order differ: {stream[name].select(keys)} vs {batch[name].select(keys)}"
        key_rows = [tuple(str(v).encode() for v in row.values()) for row in batch[name].select(keys).to_pylist()]
        if key_rows != sorted(set(key_rows)) or (not keys and batch[name].num_rows != 1):
            return f"{name}: rows are not one per key in UTF-8 byte order: {key_rows}"
    report = parity.compare(stream, batch, spec.table_keys())
    if report.mismatches:
        return f"fold vs batch: {report.examples}"
    if not future:
        return None
    # DuckDB may add float sums up in another order when the table holds more rows (its parallel plan), so the
    # batch side is compared with parity's tolerance (1e-9 + 1e-12 × |value|; counts, min, max, last and keys
    # exactly): a future event that counted would move a value far more. The fold keeps the past events' order,
    # so its sums are added up alike: exact equality.
    moved = parity.compare(feature_sql.batch_tables(altered, items, users, spec, C, population=altered_population),
                           batch, spec.table_keys())
    if moved.mismatches:
        return f"events at/after the cutoff changed the batch: {moved.examples[:3]}"
    if feature_fold.fold(altered, items, users, spec, C, population=altered_population) != stream:
        return "events at/after the cutoff changed the fold"
    return None


def check(case: Case) -> None:
    problem = disagreement(case)
    assert problem is None, problem


SETTINGS: dict[str, Any] = {"derandomize": True, "deadline": None, "database": None,
                            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@settings(max_examples=60, **SETTINGS)
@given(cases())
def test_fold_equals_batch_and_ignores_events_at_or_after_the_cutoff(case: Case) -> None:
    check(case)


@pytest.mark.slow
@settings(max_examples=3000, **SETTINGS)
@given(cases())
def test_fold_equals_batch_many_examples(case: Case) -> None:
    check(case)


def _bound(t_us: np.ndarray, cutoff_us: int, window: int) -> np.ndarray:
    return (t_us >= cutoff_us - window) & (t_us <= cutoff_us)  # the mutant: the cutoff itself counts


def _start(t_us: np.ndarray, cutoff_us: int, window: int) -> np.ndarray:
    return (t_us > cutoff_us - window) & (t_us < cutoff_us)  # the mutant: cutoff - window itself is out


FOLD = feature_fold.fold


def _slice_only(events: pa.Table, items: pa.Table, users: pa.Table, spec: FeatureSet, cutoff: Any, *,
                population: pa.Table | None = None) -> dict[str, pa.Table]:
    return FOLD(events, items, users, spec, cutoff)  # the mutant: lake tables counted over the slice's users


Mutation = Callable[[pytest.MonkeyPatch], None]
MUTATIONS: dict[str, Mutation] = {
    "min and max swapped": lambda mp: mp.setitem(feature_fold.EXTREMES, "min", feature_fold.EXTREMES["max"]),
    "cutoff included (< became <=)": lambda mp: mp.setattr(feature_fold, "in_window", _bound),
    "window start excluded (>= became >)": lambda mp: mp.setattr(feature_fold, "in_window", _start),
    "population ignored (lake tables from the slice)": lambda mp: mp.setattr(feature_fold, "fold", _slice_only),
}


# A check of the property test itself (each mutant is found within 500 examples): ~20 CPU-s, so it runs under -m slow
# beside the 3,000-example property; the 60-example property above stays in the default suite.
@pytest.mark.slow
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_the_property_catches_a_mutated_fold(mutation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    MUTATIONS[mutation](monkeypatch)
    found = find(cases(), lambda case: disagreement(case, future=False) is not None,
                 settings=settings(max_examples=500, phases=[Phase.generate], **SETTINGS))
    assert disagreement(found, future=False) is not None
