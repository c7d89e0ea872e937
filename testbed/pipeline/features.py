"""Step 5b: batch features as of the cutoff from the slice, and the parity check against the stream's.

The run's feature set (both models' declared features, testbed.pipeline.feature_sets) has one table per key
set. The consume step wrote `features/stream_<table>.parquet`; this step writes `features/batch_<table>.parquet`
and `features/parity.json`. The lake-population tables (item, category and global keys) are computed from
the slice's population extract on both sides, the stream side by the independent fold of the same extract
(the replay carries only the sampled users' events). Any difference fails the run (ParityError → decision
ERROR) with the first differing feature and row in the message; up to 20 examples are in parity.json.
"""

from __future__ import annotations

from typing import Any

from testbed.core import feature_sql, parity
from testbed.errors import ParityError
from testbed.manifest import Manifest
from testbed.pipeline import feature_sets, slice_data
from testbed.pipeline.context import RunContext
from testbed.record import io
from testbed.record.features import ParityDocument
from testbed.record.steps import FeaturesResult


def _describe(example: dict[str, Any]) -> str:
    key = ", ".join(f"{k}={v}" for k, v in example["key"].items())
    return f"{example['feature']} for {example['entity']} {key}: stream {example['stream']}, batch {example['batch']}"


def run_features(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    spec = feature_sets.run_set(ctx.storage, manifest)
    batch = feature_sql.batch_tables(slice_data.read(ctx, "events"), slice_data.read(ctx, "items"),
                                     slice_data.read(ctx, "users"), spec, manifest.time.cutoff,
                                     population=slice_data.read(ctx, "population_events"))
    batch = {group: table.combine_chunks() for group, table in batch.items()}
    for group, table in batch.items():
        ctx.storage.write_parquet(ctx.layout.batch_features(group), table)
    stream = {group: ctx.storage.read_parquet(ctx.layout.stream_features(group)) for group in batch}
    report = parity.compare(stream, batch, spec.table_keys())
    io.write(ctx.storage, ctx.layout.parity, ParityDocument.model_validate(report.as_dict()))
    if report.mismatches:
        worst = max(report.features_mismatched.items(), key=lambda kv: kv[1])
        raise ParityError(f"feature parity failed: {report.mismatches} rows differ, most in {worst[0]} "
                          f"({worst[1]} rows); e.g. {_describe(report.examples[0])}; see features/parity.json")
    rows = {group: table.num_rows for group, table in batch.items()}
    return FeaturesResult(feature_rows=sum(rows.values()), tables=rows, parity_mismatches=0).model_dump(mode="json")
