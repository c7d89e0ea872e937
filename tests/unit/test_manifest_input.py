"""Manifest text that must never reach a run (issue 11): each case is exit 2 with one line naming the place.

Duplicate keys, non-finite numbers, oversized integers, deep nesting, invalid UTF-8, YAML-only types,
vacuous gates and non-canonical metric names. All go through `testbed validate MANIFEST` in-process.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from testbed.cli import main
from testbed.manifest import read_manifest_file

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "first-time-buyers.json"
BASE: dict[str, Any] = json.loads(EXAMPLE.read_text())


def validate_text(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes,
                  suffix: str = ".json") -> tuple[int, str]:
    path = tmp_path / f"manifest{suffix}"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, captured.err


def assert_rejected(result: tuple[int, str], *needles: str) -> None:
    code, err = result
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, lines
    assert lines[0].startswith("testbed: error: ")
    assert "internal error" not in err and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def with_gates(*gates: dict[str, Any], k: int | None = None) -> str:
    data = copy.deepcopy(BASE)
    data["gates"] = list(gates)
    if k is not None:
        data["evaluation"]["k"] = k
    return json.dumps(data)


def test_the_example_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The baseline the cases below break in one place."""
    assert validate_text(tmp_path, capsys, json.dumps(BASE)) == (0, "")


# --------------------------------------------------------------------------------------------------
# item 3: duplicate keys


def test_a_second_gates_key_is_refused_not_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The second "gates" would silently replace the first: a candidate 0.30 nDCG worse would pass."""
    text = json.dumps(BASE)[:-1] + ', "gates": [{"name": "latency", "kind": "latency", "bound": 100000}]}'
    assert_rejected(validate_text(tmp_path, capsys, text), "duplicate key", "gates")


def test_duplicate_keys_are_refused_at_any_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE).replace('"margin": 0.02', '"margin": 0.02, "margin": 0.9')
    assert_rejected(validate_text(tmp_path, capsys, text), "duplicate key", "gates.0.margin")


def test_duplicate_yaml_keys_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "name: a\nsampling:\n  rate: 0.5\n  rate: 1.0\n"
    assert_rejected(validate_text(tmp_path, capsys, text, ".yaml"), "duplicate key", "rate", "line 4")


# --------------------------------------------------------------------------------------------------
# item 5: vacuous gates


def test_a_relative_margin_of_10_needs_an_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gate = {"name": "rev", "kind": "non_inferiority", "metric": "revenue@10", "margin": 10, "margin_type": "relative"}
    assert_rejected(validate_text(tmp_path, capsys, with_gates(gate)), "gates.0", "rev", "allow_large_margin")
    assert validate_text(tmp_path, capsys, with_gates({**gate, "allow_large_margin": True}))[0] == 0


def test_an_absolute_margin_as_wide_as_the_metric_needs_an_override(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gate = {"name": "ndcg", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 1.0}
    assert_rejected(validate_text(tmp_path, capsys, with_gates(gate)), "gates.0", "ndcg", "allow_large_margin")
    assert validate_text(tmp_path, capsys, with_gates({**gate, "allow_large_margin": True}))[0] == 0


@pytest.mark.parametrize(("gate", "needle"), [
    ({"name": "errors", "kind": "error_rate", "bound": 2}, "[0, 1)"),
    ({"name": "errors", "kind": "error_rate", "bound": 1}, "[0, 1)"),
    ({"name": "errors", "kind": "error_rate", "bound": -0.1}, "[0, 1)"),
    ({"name": "slow", "kind": "latency", "bound": 0}, "positive"),
    ({"name": "floor", "kind": "threshold", "metric": "ndcg@10", "bound": 1.5}, "ndcg@10"),
    ({"name": "floor", "kind": "threshold", "metric": "ndcg@10", "bound": 0}, "ndcg@10"),
    ({"name": "floor", "kind": "threshold", "metric": "revenue@10", "bound": -5}, "revenue@10"),
], ids=["error-rate-2", "error-rate-1", "error-rate-negative", "latency-0", "ndcg-floor-1.5", "ndcg-floor-0",
        "revenue-floor-negative"])
def test_bounds_outside_what_can_be_measured_are_refused(gate: dict[str, Any], needle: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert_rejected(validate_text(tmp_path, capsys, with_gates(gate)), "gates.0", gate["name"], needle)


def test_sensible_bounds_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gates = [{"name": "errors", "kind": "error_rate", "bound": 0},
             {"name": "floor", "kind": "threshold", "metric": "ndcg@10", "bound": 1},
             {"name": "rev", "kind": "non_inferiority", "metric": "revenue@10", "margin": 0.5,
              "margin_type": "relative"}]
    assert validate_text(tmp_path, capsys, with_gates(*gates)) == (0, "")


# --------------------------------------------------------------------------------------------------
# item 17: metric names, numbers, nesting, encodings, shapes


@pytest.mark.parametrize("metric", ["ndcg@010", "ndcg@+10", "ndcg@\u0661\u0660", "ndcg@10 ", "ndcg@0", "NDCG@10"])
def test_metric_names_must_be_canonical(metric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gate = {"name": "floor", "kind": "threshold", "metric": metric, "bound": 0.1}
    assert_rejected(validate_text(tmp_path, capsys, with_gates(gate)), "gates.0", "floor")


def test_a_gate_at_another_k_than_evaluated_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Metrics are computed at evaluation.k only: a gate on ndcg@5 would find nothing to test."""
    gate = {"name": "floor", "kind": "threshold", "metric": "ndcg@5", "bound": 0.1}
    assert_rejected(validate_text(tmp_path, capsys, with_gates(gate, k=10)), "floor", "ndcg@5", "k=10")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(literal: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE).replace('"bound": 100', f'"bound": {literal}')
    assert_rejected(validate_text(tmp_path, capsys, text), "gates.3.bound")


@pytest.mark.parametrize("text", ["bound: .nan\n", "bound: .inf\n", "bound: -.Inf\n"])
def test_non_finite_yaml_numbers_are_refused(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_rejected(validate_text(tmp_path, capsys, text, ".yaml"), "line 1", "finite")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_5000_digit_integer_is_refused(suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE).replace('"seed": 7', '"seed": ' + "9" * 5000)
    assert_rejected(validate_text(tmp_path, capsys, text, suffix), "sampling.seed" if suffix == ".json" else "line")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_deep_nesting_is_refused(suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE)[:-1] + ', "notes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert_rejected(validate_text(tmp_path, capsys, text, suffix), "nested")


def test_moderately_deep_nesting_is_refused_with_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE)[:-1] + ', "notes": ' + "[" * 200 + "]" * 200 + "}"
    assert_rejected(validate_text(tmp_path, capsys, text), "nested", "notes.0.0")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_invalid_utf8_is_refused(suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE).encode().replace(b"Customers", b"Cust\xff\xfeomers")
    assert_rejected(validate_text(tmp_path, capsys, text, suffix), "UTF-8")


def test_a_lone_surrogate_escape_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE).replace("Customers", "Cust\\ud800omers")
    assert_rejected(validate_text(tmp_path, capsys, text), "description")


@pytest.mark.parametrize("models", [[1, 2], "control.txt", 3, {"control": ["a"], "candidate": None}])
def test_models_of_the_wrong_shape_are_refused(models: Any, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = {**BASE, "models": models}
    assert_rejected(validate_text(tmp_path, capsys, json.dumps(data)), "models")


def test_yaml_timestamps_stay_text_so_the_manifest_stays_json(tmp_path: Path) -> None:
    """Unquoted YAML dates must not become datetime objects: the run passes the manifest on as JSON."""
    path = tmp_path / "m.yaml"
    path.write_text("time:\n  start: 2026-07-19T00:00:00Z\n  cutoff: 2026-10-17\n")
    data = read_manifest_file(path)
    assert data["time"] == {"start": "2026-07-19T00:00:00Z", "cutoff": "2026-10-17"}
    json.dumps(data)


@pytest.mark.parametrize("text", ["description: !!binary aGVsbG8=\n", "description: !!set {a: null}\n",
                                  "description: !!timestamp 2026-01-01\n", "1: one\n"],
                         ids=["binary", "set", "explicit-timestamp", "integer-key"])
def test_yaml_values_json_cannot_hold_are_refused(text: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert_rejected(validate_text(tmp_path, capsys, text, ".yaml"))


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    assert_rejected(validate_text(tmp_path, capsys, "\n".join(lines) + "\n", ".yaml"), "too many values")
