"""Bring-your-own rankings (issue 13, points 4 and 5): a candidate given as precomputed top-K lists, made by a
ranker that is not LightGBM (examples/rankings/popular_in_category.py, DuckDB), judged against the LightGBM
control on the small lake.

One whole run: the lists leave some slice users out (they must count as misses), the candidate's per-user metrics
must equal pytrec_eval's and ranx's on the same lists (ranx in CI, tests/ranx_reference.py), the ndcg gate decides
as usual, and latency gates are not measurable.
A few malformed files go through `testbed validate` (exit 2, one line naming the file); the rest of the table is
in tests/unit/test_rankings_lists.py.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import pytrec_eval

from examples.rankings.popular_in_category import write_lists
from testbed.cli import main
from tests.conftest import BASE_MANIFEST
from tests.ranx_reference import RANX, SKIP_REASON, ranx_scores
from tests.run_record_check import check_run_files

K = 10
CUTOFF = BASE_MANIFEST["time"]["cutoff"]
DROPPED_EVERY = 7  # every 7th listed user loses their list: those slice users must count as misses
TREC = {"ndcg@10": "ndcg_cut_10", "precision@10": "P_10", "recall@10": "recall_10", "map@10": "map_cut_10",
        "mrr@10": "recip_rank"}


def _pinned(path: Path) -> dict[str, str]:
    return {"kind": "rankings", "uri": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _manifest(small_models: dict[str, dict[str, str]], candidate: dict[str, str]) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = {"control": copy.deepcopy(small_models["control"]), "candidate": candidate}
    data["gates"] = [*data["gates"], {"name": "latency-ratio", "kind": "latency_ratio", "bound": 2.0,
                                        "role": "guardrail"}]
    data["whatif"] = {"scenarios": [{"name": "cold", "kind": "cold_start_items", "items": 5}], "max_users": 50}
    return data


@pytest.fixture(scope="module")
def lists(small_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example ranker's lists, with every DROPPED_EVERY-th user's list taken out."""
    root = tmp_path_factory.mktemp("rankings")
    full = root / "full.parquet"
    write_lists(small_lake, datetime.fromisoformat(CUTOFF), K, full)
    table = pq.read_table(full)
    dropped = pa.array(sorted(pc.unique(table.column("user_id")).to_pylist())[::DROPPED_EVERY], pa.string())
    kept = table.filter(pc.invert(pc.is_in(table.column("user_id"), value_set=dropped)))
    path = root / "lists.parquet"
    pq.write_table(kept, path)
    return path


@pytest.fixture(scope="module")
def run(lists: Path, small_models: dict[str, dict[str, str]], small_lake: Path,
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("rankings-run")
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(_manifest(small_models, _pinned(lists))))
    code, _ = _cli(["run", str(manifest), "--lake", str(small_lake), "--out", str(root / "out"), "--quiet"])
    runs = sorted((root / "out" / "runs").iterdir())
    assert len(runs) == 1
    return {"code": code, "dir": runs[0]}


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _json(run: dict[str, Any], name: str) -> Any:
    return json.loads((run["dir"] / name).read_text())


def test_the_run_decides_on_the_gates_and_latency_is_not_measurable(run: dict[str, Any]) -> None:
    check_run_files(run["dir"])
    record, gates = _json(run, "run.json"), _json(run, "gates.json")
    rows = {row["name"]: row for row in gates["gates"]}
    ndcg = rows["ndcg-not-worse"]
    assert ndcg["outcome"] in ("pass", "fail") and ndcg["p_value"] is not None  # tested as usual
    for name in ("latency-p95", "latency-ratio"):
        assert rows[name]["outcome"] == "inconclusive"
        assert rows[name]["reason"].startswith("not measurable: candidate is a rankings file")
    assert record["decision"] == gates["decision"] == {"pass": "PASS", "fail": "FAIL"}[ndcg["outcome"]]
    assert run["code"] == {"PASS": 0, "FAIL": 1}[record["decision"]]
    assert record["models"]["candidate"]["kind"] == "rankings"
    assert record["models"]["candidate"]["rankings"]["as_of"].startswith("2026-10-17T00:00:00")
    assert "kind" not in record["models"]["control"]
    assert not (run["dir"] / "whatif.json").exists() and not (run["dir"] / "attribution.json").exists()


def test_uncovered_slice_users_count_as_misses_and_are_reported(run: dict[str, Any], lists: Path) -> None:
    coverage = _json(run, "metrics.json")["rankings_coverage"]["candidate"]
    slice_users = set(pq.read_table(run["dir"] / "slice" / "users.parquet").column("user_id").to_pylist())
    listed = set(pq.read_table(lists).column("user_id").to_pylist())
    assert coverage == {"slice_users": len(slice_users), "covered_users": len(slice_users & listed),
                        "uncovered_users": len(slice_users - listed), "users_outside_slice": len(listed - slice_users)}
    assert coverage["uncovered_users"] > 0 and coverage["users_outside_slice"] > 0
    per_user = pq.read_table(run["dir"] / "evaluation" / "per_user.parquet").to_pylist()
    candidate = {row["user_id"]: row for row in per_user if row["model"] == "candidate"}
    control = {row["user_id"] for row in per_user if row["model"] == "control"}
    assert set(candidate) == control  # no user dropped on the candidate's side
    missed = [row for user, row in candidate.items() if user not in listed]
    assert missed and all(row["ndcg@10"] == 0.0 and row["recall@10"] == 0.0 for row in missed)
    warning = (f"models.candidate: the rankings file has no list for {coverage['uncovered_users']} of the "
               f"{coverage['slice_users']} slice users")
    assert any(w.startswith(warning) for w in _json(run, "run.json")["warnings"])
    for report in ("report.md", "report.html"):
        text = (run["dir"] / report).read_text()
        assert "rankings file" in text and f"{coverage['uncovered_users']} of {coverage['slice_users']}" in text


def test_a_rankings_file_has_no_candidate_stage_to_measure(run: dict[str, Any]) -> None:
    n = BASE_MANIFEST["evaluation"]["candidates_per_user"]
    everyone = {role: groups["all"] for role, groups in _json(run, "metrics.json")["models"].items()}
    assert 0.0 < everyone["control"][f"candidate_recall@{n}"] <= 1.0  # the control's built-in stage is measured
    assert f"candidate_recall@{n}" not in everyone["candidate"]  # not applicable: no number
    assert f"candidate_recall@{n}" not in _json(run, "metrics.json")["deltas"]["all"]
    for report in ("report.md", "report.html"):
        assert "candidate_recall not applicable (a rankings file has no candidate stage)" in \
            (run["dir"] / report).read_text()


def test_the_candidates_metrics_equal_pytrec_evals_on_the_same_lists(run: dict[str, Any], lists: Path) -> None:
    labels = pq.read_table(run["dir"] / "labels.parquet").to_pylist()
    per_user = [row for row in pq.read_table(run["dir"] / "evaluation" / "per_user.parquet").to_pylist()
                if row["model"] == "candidate"]
    qrels: dict[str, dict[str, int]] = {}
    for row in labels:
        qrels.setdefault(row["user_id"], {})[row["item_id"]] = int(row["relevance"])
    evaluated = {row["user_id"] for row in per_user}
    ranked: dict[str, dict[str, float]] = {}
    for row in pq.read_table(lists).to_pylist():
        if row["user_id"] in evaluated:  # strictly decreasing scores: trec_eval's own tie-breaking never applies
            ranked.setdefault(row["user_id"], {})[row["item_id"]] = 1000.0 - row["rank"]
    reference = pytrec_eval.RelevanceEvaluator({u: qrels[u] for u in evaluated}, {
        "ndcg_cut.10", "P.10", "recall.10", "map_cut.10", "recip_rank"}).evaluate(ranked)
    assert len(reference) > 100
    for row in per_user:
        expected = reference.get(row["user_id"], dict.fromkeys(TREC.values(), 0.0))
        for ours, theirs in TREC.items():
            assert row[ours] == pytest.approx(expected[theirs], abs=1e-9), (row["user_id"], ours)


@pytest.mark.skipif(RANX is None, reason=SKIP_REASON)
def test_the_candidates_metrics_equal_ranx_on_the_same_lists(run: dict[str, Any], lists: Path) -> None:
    """Per user and for the whole slice: ranx on the file's lists and the run's labels gives the run's numbers."""
    qrels: dict[str, dict[str, int]] = {}
    for row in pq.read_table(run["dir"] / "labels.parquet").to_pylist():
        qrels.setdefault(row["user_id"], {})[row["item_id"]] = int(row["relevance"])
    per_user = {row["user_id"]: row for row in pq.read_table(run["dir"] / "evaluation" / "per_user.parquet")
                .to_pylist() if row["model"] == "candidate"}
    qrels = {user: grades for user, grades in qrels.items() if user in per_user}
    ranked: dict[str, dict[str, float]] = {}
    for row in pq.read_table(lists).to_pylist():
        if row["user_id"] in per_user:
            ranked.setdefault(row["user_id"], {})[row["item_id"]] = 1000.0 - row["rank"]
    names = [f"{name}@{K}" for name in ("ndcg", "precision", "recall", "map", "mrr", "hit_rate")]
    reference = ranx_scores(qrels, ranked, names)
    assert set(qrels) == set(per_user) and len(per_user) > 100 and len(ranked) < len(per_user)  # misses included
    everyone = _json(run, "metrics.json")["models"]["candidate"]["all"]
    for name in names:
        for user, row in per_user.items():
            assert row[name] == pytest.approx(reference[name][user], abs=1e-9), (user, name)
        mean = sum(reference[name].values()) / len(reference[name])  # uniform sampling: equal weights
        assert everyone[name] == pytest.approx(mean, abs=1e-9), name


def _broken(lists: Path, tmp: Path, change: Any, name: str) -> Path:
    path = tmp / name
    pq.write_table(change(pq.read_table(lists)), path)
    return path


@pytest.mark.parametrize(("name", "change", "says"), [
    ("duplicate-rank.parquet", lambda t: t.set_column(1, "rank", pa.array([1] * t.num_rows, pa.int32())),
     "duplicate rank for a user (example row: user_id="),
    ("unknown-item.parquet", lambda t: t.set_column(2, "item_id", pc.utf8_lower(t.column("item_id"))),
     "item_id not in the lake's items/ (example row: user_id="),
    ("rank-beyond-k.parquet", lambda t: t.set_column(1, "rank", pc.add(t.column("rank"), 5)),
     "rank beyond evaluation.k=10 (example row: user_id="),
])
def test_a_malformed_rankings_file_is_exit_2_naming_it(
        lists: Path, small_models: dict[str, dict[str, str]], small_lake: Path, tmp_path: Path, name: str,
        change: Any, says: str) -> None:
    path = _broken(lists, tmp_path, change, name)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(_manifest(small_models, _pinned(path))))
    code, err = _cli(["validate", str(manifest), "--lake", str(small_lake)])
    first = err.strip().splitlines()[0]
    assert code == 2
    assert f"manifest: models.candidate.uri ({path}): {says}" in first
