"""A model's own candidate stage (issue 13, points 2 and 3): the candidate model scores a user-supplied candidates
table that omits every label item, the control a declared list of built-in generators with co-occurrence, on the
small lake. One whole run: both models' candidate_recall@N are reported, the candidate's is 0 and the reports say so,
the candidate ranked exactly the table's pairs, a gate reads the metric, and the table's future date is a leak
warning. The malformed tables are in tests/unit/test_candidates_table.py.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testbed.cli import main
from testbed.core.duck import fetch
from tests.conftest import BASE_MANIFEST
from tests.run_record_check import check_run_files

N = BASE_MANIFEST["evaluation"]["candidates_per_user"]
PER_USER = 20  # candidates per user in the table
# the control declares its built-in stage: its recent items, then items bought or viewed with them, then best-sellers
CONTROL_GENERATORS = [{"kind": "recent_items", "quota": 10}, {"kind": "co_occurrence", "quota": 20},
                      {"kind": "global_top"}]
CUTOFF, END = BASE_MANIFEST["time"]["cutoff"], BASE_MANIFEST["time"]["end"]


def _label_free_candidates(lake: Path, path: Path) -> None:
    """Per lake user, the PER_USER most viewed items before the cutoff that the user has no event of in the label
    window (so none is a label item), scored by their popularity; dated after the cutoff in its metadata."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        table = fetch(con, f"""
WITH events AS (SELECT * FROM read_parquet('{lake}/events/*/*.parquet', hive_partitioning = false)),
popular AS (SELECT item_id, COUNT(*) AS n FROM events WHERE event_time < TIMESTAMPTZ '{CUTOFF}' GROUP BY item_id),
users AS (SELECT DISTINCT user_id FROM read_parquet('{lake}/users/*.parquet')),
later AS (SELECT DISTINCT user_id, item_id FROM events
          WHERE event_time >= TIMESTAMPTZ '{CUTOFF}' AND event_time < TIMESTAMPTZ '{END}')
SELECT user_id, item_id, CAST(n AS DOUBLE) AS retrieval_score, 'popular' AS source FROM (
  SELECT u.user_id, p.item_id, p.n, ROW_NUMBER() OVER (PARTITION BY u.user_id ORDER BY p.n DESC, p.item_id) AS r
  FROM users u CROSS JOIN popular p
  WHERE NOT EXISTS (SELECT 1 FROM later l WHERE l.user_id = u.user_id AND l.item_id = p.item_id))
WHERE r <= {PER_USER} ORDER BY user_id, item_id""")
    pq.write_table(table.replace_schema_metadata({"as_of": "2026-11-01T00:00:00Z"}), path)


def _manifest(small_models: dict[str, dict[str, str]], table: Path) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = copy.deepcopy(small_models)
    data["models"]["candidate"]["candidates"] = {"uri": str(table),
                                                 "sha256": hashlib.sha256(table.read_bytes()).hexdigest()}
    return data


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def run(small_models: dict[str, dict[str, str]], small_lake: Path,
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("candidates-run")
    table = root / "candidates.parquet"
    _label_free_candidates(small_lake, table)
    data = _manifest(small_models, table)
    data["models"]["control"]["generators"] = CONTROL_GENERATORS
    data["gates"] = [*data["gates"], {"name": "reach", "kind": "threshold", "metric": f"candidate_recall@{N}",
                                      "bound": 0.05, "role": "advisory"}]
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(data))
    code, _ = _cli(["run", str(manifest), "--lake", str(small_lake), "--out", str(root / "out"), "--quiet"])
    runs = sorted((root / "out" / "runs").iterdir())
    assert len(runs) == 1
    return {"code": code, "dir": runs[0], "table": table}


def _json(run: dict[str, Any], name: str) -> Any:
    return json.loads((run["dir"] / name).read_text())


def test_both_models_candidate_recall_is_reported_and_the_label_free_table_has_none(run: dict[str, Any]) -> None:
    check_run_files(run["dir"])
    metrics = _json(run, "metrics.json")
    control, candidate = metrics["models"]["control"]["all"], metrics["models"]["candidate"]["all"]
    assert 0.0 < control[f"candidate_recall@{N}"] <= 1.0 and control[f"candidate_hit_rate@{N}"] > 0.0
    assert candidate[f"candidate_recall@{N}"] == 0.0 and candidate[f"candidate_hit_rate@{N}"] == 0.0
    assert candidate["recall@10"] == 0.0 and candidate["ndcg@10"] == 0.0  # nothing to reach
    delta = metrics["deltas"]["all"][f"candidate_recall@{N}"]
    assert delta["delta"] < 0.0 and delta["candidate"] == 0.0
    reach = next(g for g in _json(run, "gates.json")["gates"] if g["name"] == "reach")
    assert reach["observed"] == 0.0 and reach["outcome"] == "fail"
    for report in ("report.md", "report.html"):
        text = (run["dir"] / report).read_text()
        assert "candidate: the ranker can reach at most 0.0% of what users went on to buy" in text
        assert "100.0% of users have no label item among their candidates" in text


def test_the_candidate_ranked_exactly_the_tables_pairs(run: dict[str, Any]) -> None:
    table = pq.read_table(run["table"])
    given = set(zip(table.column("user_id").to_pylist(), table.column("item_id").to_pylist(), strict=True))
    shards = pa.concat_tables([pq.read_table(p) for p in sorted((run["dir"] / "candidates").glob("*.parquet"))])
    scored = {(r["user_id"], r["item_id"]) for r in shards.to_pylist() if r["model"] == "candidate"}
    slice_users = set(pq.read_table(run["dir"] / "slice" / "users.parquet").column("user_id").to_pylist())
    assert scored == {(u, i) for u, i in given if u in slice_users}
    ranked = pq.read_table(run["dir"] / "rankings.parquet").to_pylist()
    assert all((r["user_id"], r["item_id"]) in scored for r in ranked if r["model"] == "candidate")
    control = {(r["user_id"], r["item_id"]) for r in shards.to_pylist() if r["model"] == "control"}
    assert control != scored  # the control kept its declared built-in stage
    per_user = pa.table({"u": [u for u, _ in control]}).group_by("u").aggregate([([], "count_all")])
    assert max(per_user.column("count_all").to_pylist()) <= N
    assert _json(run, "manifest.json")["models"]["control"]["generators"][1] == {"kind": "co_occurrence",
                                                                                 "quota": 20}


def test_the_record_names_the_table_and_warns_of_its_date(run: dict[str, Any]) -> None:
    record = _json(run, "run.json")
    summary = record["models"]["candidate"]["candidates"]
    assert summary["uri"] == str(run["table"]) and summary["rows"] == pq.read_metadata(run["table"]).num_rows
    assert summary["as_of"].startswith("2026-11-01") and "candidates" not in record["models"]["control"]
    dated = f"models.candidate: candidates table {run['table']} says as_of"
    assert any(w.startswith(dated) for w in record["warnings"])
    for report in ("report.md", "report.html"):
        assert f"its own candidates table {run['table']}" in (run["dir"] / report).read_text()
    assert _json(run, "latency.json")["paired"] is False  # the two models scored different candidates
    assert run["code"] == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[record["decision"]]


def test_a_table_with_an_item_the_lake_lacks_is_exit_2_naming_it(
        run: dict[str, Any], small_models: dict[str, dict[str, str]], small_lake: Path, tmp_path: Path) -> None:
    table = pq.read_table(run["table"])
    path = tmp_path / "unknown-item.parquet"
    pq.write_table(table.set_column(1, "item_id", pa.array(["no-such-item"] + table.column("item_id").to_pylist()[1:])),
                   path)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(_manifest(small_models, path)))
    code, err = _cli(["validate", str(manifest), "--lake", str(small_lake)])
    assert code == 2
    assert (f"manifest: models.candidate.candidates.uri ({path}): item_id not in the lake's items/ (example row: "
            "user_id=") in err.strip().splitlines()[0]
