"""Step 5 (batch path): feature tables as of the cutoff, from the slice's events."""

from __future__ import annotations

from typing import Any

from testbed.adapters import storage
from testbed.core import features
from testbed.manifest import Manifest
from testbed.pipeline import slice_data
from testbed.pipeline.context import RunContext


def run_features(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    con = slice_data.connect(ctx, ("events", "items"))
    try:
        tables = features.compute_all(con, manifest.time.cutoff, manifest.features.windows_days)
    finally:
        con.close()
    for entity, table in tables.items():
        storage.write_parquet(ctx.uri("features", f"batch_{entity}.parquet"), table.combine_chunks())
    return {f"{entity}_rows": table.num_rows for entity, table in tables.items()}
