"""The published JSON Schemas of the run record's documents, generated from the models:
schemas/run-record/<name>.schema.json (`testbed schema --record DIR` writes them; a test keeps them in sync)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testbed.record.documents import ALL, DocumentKind

BASE_ID = "https://testbed.local/run-record"
SCHEMA_DIR = Path("schemas") / "run-record"


def json_schema(kind: DocumentKind[Any]) -> dict[str, Any]:
    schema = kind.adapter.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{BASE_ID}/{kind.name}.schema.json"
    schema["title"] = kind.path
    schema["description"] = kind.description
    return schema


def schema_files() -> dict[str, str]:
    """File name -> content of every published schema."""
    return {f"{kind.name}.schema.json": json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n"
            for kind in ALL}


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_files().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
