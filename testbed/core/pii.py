"""PII masking with a keyed hash (HMAC-SHA256): equal inputs give equal outputs, so joins still work."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa


def mask_value(secret: bytes, value: str) -> str:
    return "h_" + hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:32]


def mask_column(table: pa.Table, column: str, secret: bytes) -> pa.Table:
    """Replace a column by the masked string form of its values; nulls stay null."""
    index = table.schema.get_field_index(column)
    values = table.column(index).cast(pa.string()) if table.column(index).type != pa.string() else table.column(index)
    unique = values.unique()
    masked = pa.array([None if v is None else mask_value(secret, v) for v in unique.to_pylist()], pa.string())
    positions = pa.compute.index_in(values, value_set=unique)
    return table.set_column(index, pa.field(column, pa.string()), masked.take(positions))
