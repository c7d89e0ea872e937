"""Digests of the built-in features as the old hand-written code computed them, frozen before it was deleted.

`fixtures/built_in_features.json` was written at commit 87268e8c (the last one with testbed.core.features,
testbed.core.stream_fold and RankingSession.matrix) by running, over the generated lakes the file names:
`compute_features(events, items, cutoff, windows)` through `table_digest` (key `batch_tables`);
`RankingSession.matrix()` and `matrix_values(names)` after `candidates(users, n)` through `matrix_digest`
(key `matrix.digest`); and `model_features(windows)`'s names (key `model_features`). The declared retail
feature sets must reproduce every digest: same rows, same columns, same bits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "built_in_features.json"


def values_digest(values: np.ndarray) -> str:
    """SHA-256 of float64 values, every NaN one bit pattern and -0.0 as 0.0 (equal values, equal digest)."""
    canonical = np.where(np.isnan(values), np.nan, np.asarray(values, dtype=np.float64) + 0.0)
    return hashlib.sha256(np.ascontiguousarray(canonical, dtype="<f8").tobytes()).hexdigest()


def column_digest(column: pa.ChunkedArray | pa.Array) -> str:
    """Strings: SHA-256 of their JSON list (nulls as null); numbers: `values_digest` of them as float64, null → NaN."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return hashlib.sha256(json.dumps(column.to_pylist(), ensure_ascii=False).encode()).hexdigest()
    return values_digest(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))


def table_digest(table: pa.Table) -> dict[str, Any]:
    """Row count and, in column order, each column's name, Arrow type and digest."""
    return {"rows": table.num_rows,
            "columns": [[f.name, str(f.type), column_digest(table.column(f.name))] for f in table.schema]}


def matrix_digest(keys: pa.Table, names: list[str], values: np.ndarray) -> dict[str, Any]:
    """A model-input matrix: its key columns' digests and each named column's `values_digest`."""
    return {"rows": keys.num_rows, "keys": table_digest(keys)["columns"],
            "columns": {name: values_digest(values[:, j]) for j, name in enumerate(names)}}


def load() -> dict[str, Any]:
    return dict(json.loads(FIXTURE.read_text()))
