"""Seeded fuzz of malformed manifests (issue 11): never a traceback, never exit 0 or 4, never a PASS.

Every generated manifest is invalid by construction (one mutation of a valid manifest that no correct
reading accepts), written as JSON or YAML. Each goes through `testbed validate MANIFEST` in-process and must
be exit 2 with exactly one `testbed: error:` line; a sample also goes through `testbed run` on the small
lake and must leave no PASS behind. The default budget runs in the default suite; the slow one is larger.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.functional.test_input_errors import assert_no_pass_record, assert_one_line_error, call, call_run

SEED = 1111
DEFAULT_CASES = 320
SLOW_CASES = 5000
RUN_SAMPLE = 6

Text = tuple[bytes, str]  # (file content, suffix)
Path_ = list[str | int]


def leaves(data: Any, path: Path_ | None = None) -> Iterator[tuple[Path_, Any]]:
    """Every (path, value) below `data`, containers included."""
    path = path or []
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, [*path, key])
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from leaves(value, [*path, i])


def objects(data: Any) -> list[Path_]:
    return [p for p, v in leaves(data) if isinstance(v, dict)]


def scalars(data: Any) -> list[Path_]:
    return [p for p, v in leaves(data) if not isinstance(v, dict | list)]


def at(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data


def put(data: Any, path: Path_, value: Any) -> None:
    at(data, path[:-1])[path[-1]] = value


def as_json(data: Any) -> Text:
    return json.dumps(data, indent=2).encode(), ".json"


def as_text(data: Any, rng: random.Random) -> Text:
    if rng.random() < 0.25:
        return yaml.safe_dump(data, sort_keys=False).encode(), ".yaml"
    return json.dumps(data, indent=rng.choice([None, 2])).encode(), ".json"


MARK = "__FUZZ_MARK__"


def with_literal(data: dict[str, Any], rng: random.Random, literal: str) -> Text:
    """JSON text with one random scalar replaced by `literal` (a token json.dumps would never write)."""
    data = copy.deepcopy(data)
    put(data, rng.choice(scalars(data)), MARK)
    return json.dumps(data).replace(json.dumps(MARK), literal).encode(), ".json"


# --------------------------------------------------------------------------------------------------
# mutations: each returns a manifest text that must be refused


def duplicate_key(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    target = at(data, rng.choice([p for p in objects(data) if at(data, p)]))
    key = rng.choice(list(target))
    target[key] = {MARK: key}
    text = json.dumps(data)
    marker = json.dumps({MARK: key})
    twin = json.dumps(rng.choice([data["name"], 0.5, [], {}, None, -0.3]))
    return text.replace(marker, f"{twin}, {json.dumps(key)}: {twin}", 1).encode(), ".json"


def yaml_duplicate_key(data: dict[str, Any], rng: random.Random) -> Text:
    key = rng.choice(list(data))
    return yaml.safe_dump(data, sort_keys=False).encode() + f"{key}: {json.dumps(data[key])}\n".encode(), ".yaml"


def non_finite(data: dict[str, Any], rng: random.Random) -> Text:
    return with_literal(data, rng, rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]))


def yaml_non_finite(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    put(data, rng.choice(scalars(data)), MARK)
    text = yaml.safe_dump(data, sort_keys=False)
    return text.replace(MARK, rng.choice([".nan", ".inf", "-.inf", ".NaN"])).encode(), ".yaml"


def huge_integer(data: dict[str, Any], rng: random.Random) -> Text:
    return with_literal(data, rng, rng.choice(["", "-"]) + "9" * rng.choice([101, 4301, 5000, 20000]))


def deep_nesting(data: dict[str, Any], rng: random.Random) -> Text:
    depth = rng.choice([70, 200, 999, 5000, 100_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return with_literal(data, rng, opener * depth + "1" + closer * depth)


def invalid_utf8(data: dict[str, Any], rng: random.Random) -> Text:
    text, suffix = as_text(data, rng)
    i = rng.randrange(len(text))
    bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
    return text[:i] + bad + text[i:], suffix


def lone_surrogate(data: dict[str, Any], rng: random.Random) -> Text:
    return with_literal(data, rng, rng.choice(['"\\ud800"', '"ok\\udfff"', '"\\udc00x"']))


def truncated(data: dict[str, Any], rng: random.Random) -> Text:
    text = json.dumps(data, indent=rng.choice([None, 2])).encode()
    return text[:rng.randrange(len(text) - 1)], ".json"


def not_an_object(data: dict[str, Any], rng: random.Random) -> Text:
    return as_text(rng.choice([[data], "manifest", 3, None, [], True]), rng)


def unknown_key(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    at(data, rng.choice(objects(data)))[rng.choice(["colour", "gate", "Name", "margin_typ", "thresold", ""])] = 1
    return as_text(data, rng)


def wrong_shape(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    put(data, rng.choice([p for p in scalars(data) if p]), rng.choice([{"x": 1}, {}]))
    return as_text(data, rng)


REQUIRED = [["name"], ["segment"], ["time"], ["models"], ["models", "control"], ["models", "candidate"],
            ["models", "control", "uri"], ["models", "candidate", "sha256"], ["time", "start"], ["time", "cutoff"],
            ["time", "end"], ["segment", "name"], ["gates", 0, "kind"], ["gates", 0, "name"], ["gates", 0, "metric"],
            ["gates", 0, "margin"], ["gates", 1, "bound"]]


def missing_required(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    path = rng.choice(REQUIRED)
    del at(data, path[:-1])[path[-1]]
    return as_text(data, rng)


def bad_metric(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    data["gates"][0]["metric"] = rng.choice(["ndcg@010", "ndcg@5", "ndcg@11", "NDCG@10", "ndcg@10x", "ndcg", "@10",
                                             "ndcg@", "ndcg@0", "ndcg@+10", "ndcg@ 10", "ndcg@1e1", "ndcg@\u0661\u0660",
                                             "ndcg@10\n", "auc@10", "ndcg@-10", "recall@10.0"])
    return as_text(data, rng)


def vacuous_gate(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    metric = rng.choice(["ndcg@10", "precision@10", "recall@10", "mrr@10", "hit_rate@10", "map@10", "coverage@10"])
    data["gates"].append(rng.choice([
        {"name": "vacuous", "kind": "non_inferiority", "metric": metric, "margin_type": "relative",
         "margin": rng.choice([0.51, 1, 2, 10, 50, 1e6])},
        {"name": "vacuous", "kind": "non_inferiority", "metric": metric, "margin": rng.choice([1, 1.5, 10])},
        {"name": "vacuous", "kind": "error_rate", "bound": rng.choice([1, 1.0001, 2, 100, -0.5])},
        {"name": "vacuous", "kind": "latency", "bound": rng.choice([0, -1, -1e-9])},
        {"name": "vacuous", "kind": "threshold", "metric": metric, "bound": rng.choice([0, -0.1, 1.01, 2, -5])},
        {"name": "vacuous", "kind": "threshold", "metric": "revenue@10", "bound": rng.choice([0, -1, -1e9])},
    ]))
    return as_text(data, rng)


def bad_models(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    control = data["models"]["control"]
    data["models"] = rng.choice([[control, data["models"]["candidate"]], "control.txt", 7, None, [], {},
                                 {"control": [control]}, {"control": control, "candidate": "x"},
                                 {"control": control, "candidate": {"uri": "", "sha256": control["sha256"]}},
                                 {"control": control, "candidate": {**control, "sha256": control["sha256"][:-1]}},
                                 {"control": control, "candidate": {**control, "sha256": control["sha256"].upper()}}])
    return as_text(data, rng)


def out_of_range(data: dict[str, Any], rng: random.Random) -> Text:
    data = copy.deepcopy(data)
    path, value = rng.choice([
        (["sampling", "rate"], rng.choice([0, -0.5, 1.5])), (["evaluation", "k"], rng.choice([0, 101, -10, 1.5])),
        (["gates", 0, "alpha"], rng.choice([0, 0.5, 1, -0.1])), (["sampling", "seed"], rng.choice([-1, 2**63])),
        (["time", "cutoff"], "2026-07-01T00:00:00Z"), (["time", "end"], "2026-08-01T00:00:00Z"),
        (["time", "start"], "2026-02-30T00:00:00Z"), (["name"], rng.choice(["Has Space", "-lead", "", "x" * 49])),
        (["gates", 0, "margin"], rng.choice([-0.01, "a lot"])), (["statistics", "resamples"], 10),
        (["evaluation", "candidates_per_user"], 0), (["gates", 0, "percentile"], 90),
    ])
    *parents, leaf = path
    node = data
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[leaf] = value
    return as_text(data, rng)


def yaml_only_types(data: dict[str, Any], rng: random.Random) -> Text:
    text = yaml.safe_dump(data, sort_keys=False)
    extra = rng.choice(["description: !!binary aGVsbG8=\n", "description: !!set {a: null}\n",
                        "description: !!timestamp 2026-01-01\n", "1: one\n", "description: [&a [*a]]\n",
                        "---\nname: second-document\n", "description: !!python/object:os.system ls\n"])
    return (text.replace("description:", "notes:") + extra).encode(), ".yaml"


MUTATIONS: list[Callable[[dict[str, Any], random.Random], Text]] = [
    duplicate_key, yaml_duplicate_key, non_finite, yaml_non_finite, huge_integer, deep_nesting, invalid_utf8,
    lone_surrogate, truncated, not_an_object, unknown_key, wrong_shape, missing_required, bad_metric, vacuous_gate,
    bad_models, out_of_range, yaml_only_types,
]


def malformed_manifests(base: dict[str, Any], seed: int, count: int) -> Iterator[tuple[str, Text]]:
    rng = random.Random(seed)
    for case in range(count):
        mutation = MUTATIONS[case % len(MUTATIONS)]  # every mutation gets an equal share
        yield f"{case}-{mutation.__name__}", mutation(base, rng)


@pytest.fixture
def base(manifest_data: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(manifest_data)
    data["description"] = "a valid manifest the fuzz breaks in one place"
    return data


def write(tmp_path: Path, name: str, text: Text) -> Path:
    path = tmp_path / f"{name}{text[1]}"
    path.write_bytes(text[0])
    return path


def check_validate(cases: Iterator[tuple[str, Text]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> int:
    seen = 0
    for name, text in cases:
        code, out, err = call(["validate", str(write(tmp_path, name, text))], capsys)
        assert code == 2, f"{name}: exit {code}, stdout {out!r}, stderr {err!r}, input {text[0][:300]!r}"
        assert out == "", name
        assert_one_line_error(err)
        seen += 1
    return seen


def test_the_base_manifest_is_valid(base: dict[str, Any], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    for suffix, text in ((".json", json.dumps(base)), (".yaml", yaml.safe_dump(base))):
        path = tmp_path / f"base{suffix}"
        path.write_text(text)
        assert call(["validate", str(path)], capsys)[0] == 0


def test_malformed_manifests_are_exit_2_at_validate(base: dict[str, Any], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert check_validate(malformed_manifests(base, SEED, DEFAULT_CASES), tmp_path, capsys) >= 300


@pytest.mark.slow
def test_malformed_manifests_are_exit_2_at_validate_large_budget(base: dict[str, Any], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    check_validate(malformed_manifests(base, SEED + 1, SLOW_CASES), tmp_path, capsys)


def test_a_sample_of_malformed_manifests_is_exit_2_at_run(base: dict[str, Any], small_lake: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """One case of each of the first mutations, each through a whole `testbed run` (embedded AWS)."""
    sample = list(malformed_manifests(base, SEED, len(MUTATIONS)))[:: len(MUTATIONS) // RUN_SAMPLE][:RUN_SAMPLE]
    for name, text in sample:
        out = tmp_path / f"out-{name}"
        code, err = call_run(write(tmp_path, name, text), small_lake, out, capsys)
        assert code == 2, f"{name}: exit {code}, {err!r}"
        assert_one_line_error(err)
        assert_no_pass_record(out)
