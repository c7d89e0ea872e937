"""A model's own candidate stage (manifest `models.<role>.candidates`): its table read once, checksum first.

Validate checks the table against the lake (every item in items/) and looks for signs that the retrieval stage
knew the label window (items first seen after time.cutoff, a Parquet `as_of` after it): warnings, as for a rankings
file (testbed.pipeline.rankings_file). The score step scores each shard's users on exactly their rows.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from testbed.adapters.engines import Engine
from testbed.adapters.storage import Storage
from testbed.core import candidates_table, rankings_lists
from testbed.errors import CandidatesTableError
from testbed.manifest import CandidatesRef, Manifest
from testbed.pipeline.checked_read import read_checked
from testbed.pipeline.rankings_file import future_signs, require_lake_items
from testbed.record.run import CandidatesTableSummary


def roles(manifest: Manifest) -> list[str]:
    """The roles whose model brings its own candidates table, control first."""
    return [role for role in manifest.models.roles_of("lightgbm") if _ref(manifest, role) is not None]


def _ref(manifest: Manifest, role: str) -> CandidatesRef | None:
    ref: CandidatesRef | None = getattr(manifest.models, role).candidates
    return ref


def source(manifest: Manifest, role: str) -> str:
    ref = _ref(manifest, role)
    return f"manifest: models.{role}.candidates.uri ({ref.uri if ref else None})"


def read(storage: Storage, manifest: Manifest, role: str) -> tuple[pa.Table, bytes, pq.FileMetaData]:
    """The role's checked candidates (testbed.core.candidates_table.checked_candidates), the bytes and footer."""
    ref = _ref(manifest, role)
    if ref is None:
        raise ValueError(f"models.{role} has no candidates table")
    data = read_checked(storage, ref.uri, ref.sha256, field=f"manifest: models.{role}.candidates",
                        what="candidates table", says="manifest says", error=CandidatesTableError)
    where = source(manifest, role)
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        table = parquet.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise CandidatesTableError(f"{where}: not a readable Parquet file ({str(exc).splitlines()[0][:80]})") from None
    checked = candidates_table.checked_candidates(table, manifest.evaluation.candidates_per_user, where)
    return checked, data, parquet.metadata


def check(engine: Engine, storage: Storage, manifest: Manifest, role: str) -> tuple[CandidatesTableSummary, list[str]]:
    """Validate's check of a candidates table: its contract, every item in the lake's items/, the leak signs;
    returns its summary for the record and the warnings."""
    candidates, data, metadata = read(storage, manifest, role)
    require_lake_items(engine, candidates, source(manifest, role), CandidatesTableError)
    ref = _ref(manifest, role)
    assert ref is not None  # read checked it
    declared = rankings_lists.declared_as_of(metadata.metadata)
    summary = CandidatesTableSummary(uri=ref.uri, sha256=ref.sha256, rows=candidates.num_rows,
                                     users=int(pc.count_distinct(candidates.column("user_id")).as_py()),
                                     as_of=declared[1].isoformat() if declared else None)
    where = f"models.{role}: candidates table {ref.uri}"
    return summary, future_signs(engine, manifest, where, candidates.column("item_id"), metadata,
                                 made="the candidates", verb="offers")
