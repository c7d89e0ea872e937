"""The manifest model, its published JSON Schema and the shipped examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from testbed.errors import ManifestError
from testbed.manifest import json_schema, parse_manifest, read_manifest_file

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


def test_digest_comes_from_content_not_from_where_the_files_are(tmp_path: Path) -> None:
    data = json.loads(EXAMPLES[0].read_text())
    data["models"]["candidate"]["features"] = {"uri": "/a/features.yaml", "sha256": "c" * 64}
    moved = json.loads(json.dumps(data))
    for role in ("control", "candidate"):
        moved["models"][role]["uri"] = f"/somewhere/else/{role}.txt"
    moved["models"]["candidate"]["features"]["uri"] = "s3://bucket/features.yaml"
    a, b = parse_manifest(data), parse_manifest(moved)
    assert a.digest() == b.digest()
    assert "/somewhere/else" not in b.content_json() and "/somewhere/else" in b.canonical_json()
    other = json.loads(json.dumps(data))
    other["models"]["control"]["sha256"] = "d" * 64
    assert parse_manifest(other).digest() != a.digest()


def test_manifest_file_paths_resolve_against_its_folder_not_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(EXAMPLES[0].read_text())
    data["models"]["control"]["uri"] = "models/control.txt"
    data["models"]["candidate"]["features"] = {"uri": "features/set.yaml", "sha256": "c" * 64}
    (tmp_path / "runs").mkdir()
    path = tmp_path / "runs" / "manifest.json"
    path.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    raw = read_manifest_file(Path("runs/manifest.json"))
    assert raw["models"]["control"]["uri"] == str(tmp_path.resolve() / "runs" / "models" / "control.txt")
    assert raw["models"]["candidate"]["features"]["uri"] == str(tmp_path.resolve() / "runs" / "features" / "set.yaml")


@pytest.mark.parametrize(("metric", "instead"), [("arp@10", "novelty@10"), ("exposure_gini@5", "exposure_entropy@5")])
def test_a_gate_on_a_metric_that_is_better_when_lower_is_refused_naming_what_to_gate(metric: str, instead: str) -> None:
    data = json.loads((MANIFESTS / "loyalty-members-90d.json").read_text())
    data["gates"] = [{"name": "bias", "kind": "non_inferiority", "metric": metric, "margin": 0.01}]
    with pytest.raises(ManifestError, match=rf"gate bias: {metric} is better when lower .* gate {instead} instead"):
        parse_manifest(data)
