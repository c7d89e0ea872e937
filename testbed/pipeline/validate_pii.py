"""Validation's PII checks: every lake column that looks personal is masked or explicitly allowed.

A column looks personal by its name, or by a sample of its string values (testbed.core.pii_detect). The
refusal names the dataset and the column, never a value.
"""

from __future__ import annotations

from testbed.adapters.engines import Engine
from testbed.core.pii_detect import pii_by_name, pii_by_values
from testbed.core.slice_sql import quote, window_predicate
from testbed.errors import ManifestError
from testbed.manifest import Manifest

SAMPLE_ROWS = 1000
_ORDER_KEY = {"users": "user_id", "events": "event_id", "items": "item_id"}  # a deterministic sample


def check_unmasked_pii(engine: Engine, manifest: Manifest, columns: dict[str, dict[str, str]]) -> None:
    """Raise ManifestError naming the first lake column that looks personal and is in neither pii.mask nor
    pii.allow."""
    declared = {c.lower() for c in (*manifest.pii.mask, *manifest.pii.allow)}
    for dataset, found in columns.items():
        unchecked = [c for c in found if c.lower() not in declared]
        for column in unchecked:
            kind = pii_by_name(column, dataset)
            if kind:
                _refuse(dataset, column, f"its name suggests {kind}")
        strings = [c for c in unchecked if found[c].upper() == "VARCHAR"]
        if strings:
            sample = engine.query(_sample_sql(dataset, strings, manifest))
            for column in strings:
                kind = pii_by_values(str(v) for v in sample.column(column).to_pylist() if v is not None)
                if kind:
                    _refuse(dataset, column, f"its values look like {kind}")


def _sample_sql(dataset: str, strings: list[str], manifest: Manifest) -> str:
    selected = ", ".join(f"e.{quote(c)}" for c in strings)
    where = f" WHERE {window_predicate('e', manifest.time.start, manifest.time.end)}" if dataset == "events" else ""
    return f"SELECT {selected} FROM {dataset} e{where} ORDER BY e.{_ORDER_KEY[dataset]} LIMIT {SAMPLE_ROWS}"


def _refuse(dataset: str, column: str, why: str) -> None:
    raise ManifestError(f"manifest: pii: lake {dataset}/ column {column} looks like personal data ({why}); add it "
                        "to pii.mask, or to pii.allow if it holds none")
