"""The manifest model, its published JSON Schema and the shipped examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from testbed.errors import ManifestError
from testbed.manifest import json_schema, parse_manifest

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
EXAMPLES = sorted(p for p in MANIFESTS.glob("*.json") if p.name != "manifest.schema.json")


def test_published_schema_is_current() -> None:
    published = json.loads((MANIFESTS / "manifest.schema.json").read_text())
    regenerate = "testbed schema --out manifests/manifest.schema.json"
    assert published == json.loads(json.dumps(json_schema())), regenerate


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_schema_and_model(path: Path) -> None:
    data = json.loads(path.read_text())
    jsonschema.validate(data, json_schema())
    manifest = parse_manifest(data)
    assert manifest.name == path.stem


def test_schema_rejects_unknown_keys_like_the_model() -> None:
    data = json.loads(EXAMPLES[0].read_text())
    data["sampling"]["rte"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema())
    with pytest.raises(ManifestError, match=r"sampling\.rte: unknown key"):
        parse_manifest(data)


def test_canonical_form_and_digest_ignore_layout_and_fill_defaults() -> None:
    data = json.loads(EXAMPLES[0].read_text())
    shuffled = json.loads(json.dumps(data, sort_keys=True))
    shuffled["time"]["start"] = "2026-07-19T02:00:00+02:00"  # the same instant
    a, b = parse_manifest(data), parse_manifest(shuffled)
    assert a.canonical_json() == b.canonical_json()
    assert a.digest() == b.digest()
    assert '"candidates_per_user":100' in a.canonical_json()
