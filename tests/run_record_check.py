"""Check a real run folder against the run record: every JSON file is a document of testbed.record, valid
against its published schema, loads into its model, and dumps back to exactly its bytes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

from testbed.adapters.storage import UriStorage
from testbed.record import io
from testbed.record.layout import DocumentPath, RunLayout

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "run-record"
SHARD_FILE = re.compile(r"scores/shard-(\d{5})\.(result|latency|error)\.json")


def document_path(layout: RunLayout, relative: str) -> DocumentPath[Any]:
    """The layout's document at `relative` (a path inside the run root); KeyError for a file it does not know."""
    shard = SHARD_FILE.fullmatch(relative)
    if shard:
        index = int(shard.group(1))
        return {"result": layout.shard_result, "latency": layout.shard_latency,
                "error": layout.shard_error}[shard.group(2)](index)
    attribution = re.fullmatch(r"attribution/shard-(\d{5})\.json", relative)
    if attribution:
        return layout.shard_attribution(int(attribution.group(1)))
    if relative.startswith("errors/"):
        return layout.error(relative.removeprefix("errors/").removesuffix(".json"))
    by_path = {path.uri: path for path in (
        layout.manifest, layout.slice_stats, layout.parity, layout.stream_stats, layout.replay, layout.metrics,
        layout.latency, layout.attribution, layout.drift, layout.whatif, layout.gates, layout.record, layout.claim)}
    return by_path[layout.uri(relative)]


def check_run_files(run_dir: Path) -> set[str]:
    """Check every JSON file of the run; returns the document kinds seen."""
    layout = RunLayout.at(str(run_dir))
    seen = set()
    for file in sorted(run_dir.rglob("*.json")):
        relative = file.relative_to(run_dir).as_posix()
        path = document_path(layout, relative)
        raw = file.read_bytes()
        schema = json.loads((SCHEMAS / f"{path.kind.name}.schema.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(json.loads(raw))
        document = io.read(UriStorage(), path)
        assert io.dumps(path, document) == raw, f"{relative}: the model does not reproduce the file's bytes"
        seen.add(path.kind.name)
    return seen
