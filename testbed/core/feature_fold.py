"""The stream path's declared features: fold the replayed events into a feature set's tables, in numpy.

A deliberately separate implementation of `testbed.core.feature_sql` (no SQL, no DuckDB): parity compares the
two, so a windowing, typing, join or null-handling slip on either side shows up as a difference. It follows
`testbed.core.feature_spec`'s semantics and feature_sql's output contract exactly:
- windows are [cutoff - w, cutoff) in integer microseconds; events at or after the cutoff are dropped first;
- a key's `item.x` / `user.x` comes from the catalogue / users rows of the event's ids (null when missing),
  a key value that is null is '' ; tables are sorted by their key columns in UTF-8 byte order (Arrow's sort);
- `where` predicates follow SQL's three-valued logic: Arrow comparisons propagate nulls, and a null is false;
- revenue is round-half-away-from-zero(price × quantity × 100) in integer cents, missing price 0, quantity 1;
- floats are computed with the same IEEE operations as the SQL (cents / 100, then / count), sums of other
  inputs in event order (the SQL's order may differ: parity compares those within a relative tolerance).
A table over the lake's population (`Aggregation.reads == "lake"`) folds the slice's population extract, not
the replayed stream: the replay carries only the sampled users' events.
Everything is vectorised over the events: keys become integer codes, every aggregate is a bincount, an
`np.minimum.at`/`np.maximum.at`, or a lexsort, so the cost is a few passes over the arrays per feature.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core.feature_spec import (
    REVENUE,
    US_PER_DAY,
    Aggregation,
    EventFilter,
    FeatureSet,
    column_source,
    epoch_us,
    key_column,
)

Compare = Callable[[pa.Array, pa.Scalar], pa.Array]
BINARY: dict[str, Compare] = {"eq": pc.equal, "ne": pc.not_equal, "gt": pc.greater, "gte": pc.greater_equal,
                              "lt": pc.less, "lte": pc.less_equal}
Extreme = tuple[np.ufunc, float]
EXTREMES: dict[str, Extreme] = {"min": (np.minimum, np.inf), "max": (np.maximum, -np.inf)}
FIRST_LAST = {"days_since_first": "min", "days_since_last": "max"}


def in_window(t_us: np.ndarray, cutoff_us: int, window_us: int) -> np.ndarray:
    """Event times in [cutoff - window, cutoff): the one place the fold decides what a window holds."""
    return (t_us >= cutoff_us - window_us) & (t_us < cutoff_us)


def revenue_cents(price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
    """Revenue per event in integer cents; price NaN → 0, quantity NaN → 1; DuckDB's round (half away from 0)."""
    amount = np.nan_to_num(price, nan=0.0) * np.where(np.isnan(quantity), 1.0, quantity) * 100.0
    return (np.sign(amount) * np.floor(np.abs(amount) + 0.5)).astype(np.int64)


def floats(values: pa.Array) -> np.ndarray:
    """A numeric column as float64, null → NaN."""
    return np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def factorize(values: pa.Array, *, ordered: bool) -> tuple[np.ndarray, int]:
    """Integer codes of a column's values (-1 for null) and how many distinct values; `ordered` numbers them
    in the values' sort order (strings: byte order), so sorting codes sorts the values."""
    encoded = pc.dictionary_encode(values)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    size = len(encoded.dictionary)
    if ordered and size:
        rank = np.empty(size, dtype=np.int64)
        rank[pc.array_sort_indices(encoded.dictionary).to_numpy()] = np.arange(size)
        codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
    return codes, size


class Events:
    """The pre-cutoff events of the longest window, with their item and user columns looked up on demand
    (ids are unique in items/ and users/, as the lake contract says: a lookup is the SQL's LEFT JOIN)."""

    def __init__(self, events: pa.Table, items: pa.Table, users: pa.Table, cutoff_us: int, longest_us: int):
        t_us = pc.cast(events.column("event_time"), pa.timestamp("us", tz="UTC")).cast(pa.int64())
        t_all = t_us.to_numpy()
        keep = in_window(t_all, cutoff_us, longest_us)
        self.table = events.filter(pa.array(keep)).combine_chunks()
        self.t_us = t_all[keep]
        self._others = {"item": items, "user": users}
        self._rows: dict[str, pa.Array] = {}
        self._columns: dict[str, pa.Array] = {}
        self._codes: dict[tuple[str, bool], tuple[np.ndarray, int]] = {}

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> pa.Array:
        """An event column, or `item.x` / `user.x` of each event's item / user (null when it has none)."""
        if name not in self._columns:
            entity, column = column_source(name)
            if entity == "event":
                self._columns[name] = self.table.column(column).combine_chunks()
            else:
                if entity not in self._rows:  # the row of each event's item (user) in its table, null if absent
                    other = self._others[entity]
                    self._rows[entity] = pc.index_in(self.table.column(f"{entity}_id"),
                                                     value_set=other.column(f"{entity}_id"))
                self._columns[name] = self._others[entity].column(column).take(self._rows[entity]).combine_chunks()
        return self._columns[name]

    def codes(self, name: str, *, ordered: bool) -> tuple[np.ndarray, int]:
        if (name, ordered) not in self._codes:
            values = self.column(name)
            if ordered:  # a key: its string form, null as ''
                values = pc.fill_null(pc.cast(values, pa.string()), "")
            self._codes[name, ordered] = factorize(values, ordered=ordered)
        return self._codes[name, ordered]

    def predicate(self, flt: EventFilter) -> np.ndarray:
        """Where an event passes `flt`, with SQL's null semantics (only is_null is true for a null)."""
        values = self.column(flt.column)
        scalars = [pa.scalar(v) for v in (flt.value if isinstance(flt.value, list) else [flt.value])]
        if flt.op in ("is_null", "not_null"):
            result = values.is_null() if flt.op == "is_null" else values.is_valid()
        elif flt.op in BINARY:
            result = BINARY[flt.op](values, scalars[0])
        elif flt.op == "in":
            result = functools.reduce(pc.or_kleene, [pc.equal(values, s) for s in scalars])
        elif flt.op == "not_in":
            result = functools.reduce(pc.and_kleene, [pc.not_equal(values, s) for s in scalars])
        else:  # between, bounds included
            result = pc.and_kleene(pc.greater_equal(values, scalars[0]), pc.less_equal(values, scalars[1]))
        return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)


def _group_codes(ev: Events, keys: tuple[str, ...], rows: np.ndarray) -> tuple[np.ndarray, int, dict[str, pa.Array]]:
    """Per selected event its output row, the number of rows, and the key columns (rows in key byte order)."""
    if not keys:
        return np.zeros(len(rows), dtype=np.int64), 1, {}
    combined = np.zeros(len(rows), dtype=np.int64)
    for key in keys:  # compact after each key so the combined code stays below rows × distinct values
        codes, size = ev.codes(key, ordered=True)
        _, combined = np.unique(combined * size + codes[rows], return_inverse=True)
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    take = pa.array(rows[first])
    columns = {key_column(k): pc.fill_null(pc.cast(ev.column(k), pa.string()), "").take(take) for k in keys}
    return inverse.astype(np.int64), len(first), columns


def _extreme(op: str, codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per row the min or max of its values; ±inf where it has none."""
    ufunc, start = EXTREMES[op]
    out = np.full(n, start)
    ufunc.at(out, codes, values)
    return out


def _masked(values: np.ndarray, has: np.ndarray) -> pa.Array:
    return pa.array(np.where(has, values, 0.0), pa.float64(), mask=~has)


def _aggregate(ev: Events, agg: Aggregation, sel: np.ndarray, codes: np.ndarray, n: int, *,
               cutoff_us: int) -> pa.Array:
    """One feature's column over the events `sel` (a boolean mask of the group's events; codes are theirs)."""
    op = agg.operation
    if op == "count":
        return pa.array(np.bincount(codes[sel], minlength=n).astype(np.int64))
    if op in FIRST_LAST:
        moment = _extreme(FIRST_LAST[op], codes[sel], ev.t_us[sel].astype(np.float64), n)  # exact: µs < 2**53
        has = ~np.isinf(moment)
        return _masked((cutoff_us - np.where(has, moment, cutoff_us).astype(np.int64)).astype(np.float64)
                       / float(US_PER_DAY), has)
    name = str(agg.input)
    if op == "count_distinct":
        values, size = ev.codes(name, ordered=False)
        keep = sel & (values >= 0)
        pairs = np.unique(codes[keep] * max(size, 1) + values[keep])
        return pa.array(np.bincount(pairs // max(size, 1), minlength=n).astype(np.int64))
    revenue = name == REVENUE
    if revenue:
        x = revenue_cents(floats(ev.column("price")), floats(ev.column("quantity"))).astype(np.float64)
    else:
        x = floats(ev.column(name))
        sel = sel & ~np.isnan(x)
    c, v = codes[sel], x[sel]
    count = np.bincount(c, minlength=n)
    has = count > 0
    scale = 100.0 if revenue else 1.0  # cents → dollars by the same division as the SQL's
    if op in ("sum", "mean"):
        total = np.bincount(c, weights=v, minlength=n)
        if revenue:
            total = np.round(total)  # exact integer cents: every partial sum is below 2**53
        if op == "sum":
            return pa.array(total / scale)
        return _masked(total / scale / np.maximum(count, 1).astype(np.float64), has)
    if op in EXTREMES:
        return _masked(_extreme(op, c, v, n) / scale, has)
    # last: the latest event by (event_time, event_id) among those with an input
    ids, _ = ev.codes("event_id", ordered=True)
    order = np.lexsort((ids[sel], ev.t_us[sel], c))
    ends = order[np.r_[c[order][1:] != c[order][:-1], True]] if len(order) else order
    latest = np.zeros(n)
    latest[c[ends]] = v[ends]
    return _masked(latest / scale, has)


def _filter_mask(ev: Events, agg: Aggregation, cutoff_us: int) -> np.ndarray:
    mask = in_window(ev.t_us, cutoff_us, agg.window_us)
    if agg.events:
        mask &= np.asarray(pc.fill_null(pc.is_in(ev.column("event_type"), value_set=pa.array(agg.events)), False)
                           .to_numpy(zero_copy_only=False), dtype=bool)
    for flt in agg.where:
        mask &= ev.predicate(flt)
    return mask


def fold(events: pa.Table, items: pa.Table, users: pa.Table, spec: FeatureSet, cutoff: datetime, *,
         population: pa.Table | None = None) -> dict[str, pa.Table]:
    """The feature tables of `spec` as of `cutoff` from events in any order; the same tables as feature_sql's.
    The lake-population tables fold `population` (or `events` when those are the lake's own, as in training)."""
    cutoff_us = epoch_us(cutoff)
    longest = spec.longest_window_us()
    sources = {"slice": Events(events, items, users, cutoff_us, longest)}
    sources["lake"] = sources["slice"] if population is None else Events(population, items, users, cutoff_us,
                                                                          longest)
    out = {}
    for name, aggs in spec.groups().items():
        ev = sources[aggs[0].reads]
        in_group = in_window(ev.t_us, cutoff_us, max(a.window_us for a in aggs))
        rows = np.flatnonzero(in_group)
        codes_in_group, n, columns = _group_codes(ev, aggs[0].group_keys, rows)
        codes = np.full(len(ev), -1, dtype=np.int64)
        codes[rows] = codes_in_group
        for agg in aggs:
            columns[agg.name] = _aggregate(ev, agg, in_group & _filter_mask(ev, agg, cutoff_us), codes, n,
                                          cutoff_us=cutoff_us)
        out[name] = pa.table(columns)
    return out
