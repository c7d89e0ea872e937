"""A model given as precomputed top-K lists (manifest `kind: rankings`): its file read once, checksum first.

Validate checks the file against the lake (every item in items/) and looks for signs that the lists know the
label window (items first seen after time.cutoff, a Parquet `as_of` after it): those are warnings, since the
testbed cannot prove when the lists were made. The score step takes each shard's users' lists as they are.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from testbed.adapters.engines import Engine
from testbed.adapters.storage import Storage
from testbed.core import rankings_lists
from testbed.core.slice_sql import ts_literal, window_predicate
from testbed.errors import InputError, RankingsFileError
from testbed.manifest import Manifest
from testbed.pipeline.checked_read import read_checked
from testbed.record.run import ModelProvenance, RankingsFileSummary


def source(manifest: Manifest, role: str) -> str:
    return f"manifest: models.{role}.uri ({getattr(manifest.models, role).uri})"


def _parquet(data: bytes, where: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise RankingsFileError(f"{where}: not a Parquet file ({str(exc).splitlines()[0][:80]})") from None


def read(storage: Storage, manifest: Manifest, role: str) -> tuple[pa.Table, bytes, pq.FileMetaData]:
    """The role's checked lists (testbed.core.rankings_lists.checked_lists), the file's bytes and its footer."""
    ref = getattr(manifest.models, role)
    data = read_checked(storage, ref.uri, ref.sha256, field=f"manifest: models.{role}", what="rankings file",
                        says="manifest says", error=RankingsFileError)
    where = source(manifest, role)
    parquet = _parquet(data, where)
    try:
        table = parquet.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise RankingsFileError(f"{where}: unreadable Parquet ({str(exc).splitlines()[0][:80]})") from None
    return rankings_lists.checked_lists(table, manifest.evaluation.k, where), data, parquet.metadata


def leak_warnings(engine: Engine, manifest: Manifest, role: str, lists: pa.Table,
                  metadata: pq.FileMetaData) -> list[str]:
    """Signs the lists were made with the label window in view (never proof either way: README)."""
    where = f"models.{role}: rankings file {getattr(manifest.models, role).uri}"
    return future_signs(engine, manifest, where, lists.column("item_id"), metadata, made="the lists", verb="ranks")


def future_signs(engine: Engine, manifest: Manifest, where: str, item_ids: pa.ChunkedArray,
                 metadata: pq.FileMetaData, *, made: str, verb: str) -> list[str]:
    """A file's signs of knowing the label window: a Parquet date after time.cutoff, items first seen after it."""
    cutoff, out = manifest.time.cutoff, []
    declared = rankings_lists.declared_as_of(metadata.metadata)
    if declared is not None and declared[1] > cutoff:
        out.append(f"{where} says {declared[0]} {declared[1].isoformat()} in its Parquet metadata, after "
                   f"time.cutoff {cutoff.isoformat()}: {made} may have been made knowing the label window")
    window = window_predicate("e", manifest.time.start, manifest.time.end)
    late = engine.query(f"SELECT e.item_id AS item_id FROM events e WHERE {window} GROUP BY e.item_id "
                        f"HAVING MIN(e.event_time) >= {ts_literal(cutoff)}").column("item_id").combine_chunks()
    listed = pc.unique(item_ids)
    leaked = pc.filter(listed, pc.is_in(listed, value_set=late.cast(pa.string())))
    if len(leaked):
        first = sorted(leaked.to_pylist())[0]
        out.append(f"{where} {verb} {len(leaked)} items whose first event in [time.start, time.end) is after "
                   f"time.cutoff {cutoff.isoformat()} (e.g. {first!r}): {made.removeprefix('the ')} made as of the "
                   "cutoff could not have known them")
    return out


def require_lake_items(engine: Engine, table: pa.Table, where: str, error: type[InputError]) -> None:
    """`error` naming `where` and an example row unless every `item_id` of `table` is in the lake's items/."""
    known = engine.query("SELECT item_id FROM items").column("item_id").combine_chunks().cast(pa.string())
    row = rankings_lists.unknown_item(table, known)
    if row is not None:
        raise error(f"{where}: item_id not in the lake's items/ (example row: {rankings_lists.example(row)})")


def check(engine: Engine, storage: Storage, manifest: Manifest, role: str) -> tuple[ModelProvenance, list[str]]:
    """Validate's check of a rankings file: the lists' contract, every item in the lake's items/, the leak
    signs; returns its provenance and the warnings."""
    lists, data, metadata = read(storage, manifest, role)
    require_lake_items(engine, lists, source(manifest, role), RankingsFileError)
    ref = getattr(manifest.models, role)
    declared = rankings_lists.declared_as_of(metadata.metadata)
    summary = RankingsFileSummary(
        rows=lists.num_rows, users=int(pc.count_distinct(lists.column("user_id")).as_py()),
        longest_list=int(pc.max(lists.column("rank")).as_py()),
        as_of=declared[1].isoformat() if declared else None)
    provenance = ModelProvenance(uri=ref.uri, sha256=ref.sha256, bytes=len(data), features=0, kind="rankings",
                                 rankings=summary)
    return provenance, leak_warnings(engine, manifest, role, lists, metadata)
