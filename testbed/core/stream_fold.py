"""The stream path's features: fold replayed events into 7/30/90-day state as of the cutoff, in numpy.

This is deliberately a second implementation of `testbed.core.features` (which is SQL over the slice): the
parity check compares the two, so a serialization, typing or windowing bug on either side shows up as a
difference. The arithmetic follows the batch definitions exactly:
- a window w covers event times in [cutoff - w days, cutoff); nothing at or after the cutoff counts;
- revenue is summed in integer cents, round-half-away-from-zero of price × quantity × 100 (DuckDB's `round`),
  with a missing price as 0 and a missing quantity as 1, then divided by 100;
- recency is (cutoff - last event time) in microseconds divided by the microseconds in a day;
- an event's category comes from the catalogue (the slice's items), '' when the item is not in it.
Events are delivered to the fold in event-time order per user (ties by event_id) whatever order they arrived
in; the sums are order-free, but the order is the contract a stateful feature would rely on.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core.features import ENTITY_KEYS, EVENT_TYPES, PREFIX, US_PER_DAY, epoch_us, feature_columns


def revenue_cents(event_type: np.ndarray, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
    """Purchase revenue per event in integer cents; price NaN → 0, quantity missing (NaN) → 1."""
    amount = np.nan_to_num(price, nan=0.0) * np.where(np.isnan(quantity), 1.0, quantity) * 100.0
    cents = np.sign(amount) * np.floor(np.abs(amount) + 0.5)
    return np.where(event_type == "purchase", cents, 0.0).astype(np.int64)


def delivery_order(events: pa.Table) -> pa.Table:
    """Events sorted the way the fold consumes them: per user, by event time, ties by event_id."""
    return events.sort_by([("user_id", "ascending"), ("event_time", "ascending"), ("event_id", "ascending")])


def _float_array(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _entity_table(keys: dict[str, np.ndarray], prefix: str, codes: np.ndarray, n: int, *, t_us: np.ndarray,
                  event_type: np.ndarray, cents: np.ndarray, cutoff_us: int, windows: list[int]) -> pa.Table:
    columns: dict[str, pa.Array] = {name: pa.array(values, pa.string()) for name, values in keys.items()}
    for w in windows:
        inside = t_us >= cutoff_us - w * US_PER_DAY
        for event_type_name, label in EVENT_TYPES.items():
            mask = inside & (event_type == event_type_name)
            columns[f"{prefix}_{label}_{w}d"] = pa.array(np.bincount(codes[mask], minlength=n).astype(np.int64))
        revenue = np.bincount(codes[inside], weights=cents[inside], minlength=n)  # exact: cents < 2**53
        columns[f"{prefix}_revenue_{w}d"] = pa.array(np.round(revenue).astype(np.int64).astype(np.float64) / 100.0)
    last = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last, codes, t_us)
    columns[f"{prefix}_days_since_last_event"] = pa.array((cutoff_us - last).astype(np.float64) / float(US_PER_DAY))
    purchases = event_type == "purchase"
    last_purchase = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_purchase, codes[purchases], t_us[purchases])
    has = last_purchase != np.iinfo(np.int64).min
    days = (cutoff_us - last_purchase).astype(np.float64) / float(US_PER_DAY)
    columns[f"{prefix}_days_since_last_purchase"] = pa.array(days, mask=~has)
    return pa.table(columns)


def fold(events: pa.Table, items: pa.Table, cutoff: datetime, windows: list[int]) -> dict[str, pa.Table]:
    """Feature tables per entity (user, item, user_category) from stream events; columns as the batch path's."""
    cutoff_us = epoch_us(cutoff)
    t_all = pc.cast(events.column("event_time"), pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    keep = (t_all < cutoff_us) & (t_all >= cutoff_us - max(windows) * US_PER_DAY)
    ordered = delivery_order(events.filter(pa.array(keep)))
    t_us = pc.cast(ordered.column("event_time"), pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    event_type = np.asarray(ordered.column("event_type").to_pylist(), dtype=object)
    cents = revenue_cents(event_type, _float_array(ordered.column("price")), _float_array(ordered.column("quantity")))
    users = np.asarray(ordered.column("user_id").to_pylist(), dtype=object)
    item_ids = np.asarray(ordered.column("item_id").to_pylist(), dtype=object)
    catalogue = dict(zip(items.column("item_id").to_pylist(), items.column("category").to_pylist(), strict=True))
    categories = np.asarray([catalogue.get(i) or "" for i in item_ids], dtype=object)
    key_values = {"user": (users,), "item": (item_ids,), "user_category": (users, categories)}
    tables = {}
    for entity, names in ENTITY_KEYS.items():
        parts = key_values[entity]
        if len(parts) == 1:
            unique, codes = np.unique(parts[0].astype(str), return_inverse=True)
            keys = {names[0]: unique}
        else:  # a composite key: join on a byte that ids never contain, split again after sorting
            joined = np.char.add(np.char.add(parts[0].astype(str), "\x1f"), parts[1].astype(str))
            unique, codes = np.unique(joined, return_inverse=True)
            split = np.char.partition(unique, "\x1f")
            keys = {names[0]: split[:, 0], names[1]: split[:, 2]}
        table = _entity_table(keys, PREFIX[entity], codes, len(unique), t_us=t_us, event_type=event_type,
                              cents=cents, cutoff_us=cutoff_us, windows=windows)
        tables[entity] = table.select([*names, *feature_columns(entity, windows)])
    return tables
