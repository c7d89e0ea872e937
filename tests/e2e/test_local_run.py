"""Whole local runs on the small generated lake: determinism, idempotence, PII, record shapes, metrics, gates.

Runs are expensive (seconds each), so the runs several tests read are module-scoped fixtures; every test
only reads them. Tests that need their own out dir copy a run's out dir first.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from testbed.cli import main
from testbed.core.pii import mask_value
from testbed.local import run_local
from tests.conftest import BASE_MANIFEST, PII_SECRET
from tests.run_record_check import check_run_files

EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3, "ERROR": 4}
K = 10
MASKED = re.compile(r"^h_[0-9a-f]{32}$")


# --------------------------------------------------------------------------------------------------
# helpers and shared runs


@pytest.fixture(autouse=True)
def _library_logs_off_stderr() -> Iterator[None]:
    """Keep third-party log records (moto's Step Functions interpreter logs failed states at ERROR) off
    stderr whether or not pytest's logging plugin is active; stderr assertions here are about testbed's own
    output. tests/functional/test_input_errors.py checks a real process's stderr."""
    handler = logging.NullHandler()
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)


def make_manifest(models: dict[str, dict[str, str]], **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = copy.deepcopy(models)
    for key, value in changes.items():
        data[key] = value
    return data


def cli_run(manifest: dict[str, Any], lake: Path, out: Path) -> tuple[int, Path]:
    """`testbed run` through main(); returns the exit code and the single run directory under out."""
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}-manifest.json"
    path.write_text(json.dumps(manifest))
    code = main(["run", str(path), "--lake", str(lake), "--out", str(out), "--quiet"])
    runs = sorted((out / "runs").iterdir()) if (out / "runs").is_dir() else []
    assert len(runs) == 1, f"expected one run under {out}, found {runs}"
    return code, runs[0]


def fixture_run(manifest: dict[str, Any], lake: Path, factory: pytest.TempPathFactory, name: str) -> dict[str, Any]:
    """A module-scoped run: {code, dir, out} of `manifest` run into a fresh temporary folder."""
    root = factory.mktemp(name)
    code, run_dir = cli_run(manifest, lake, root / "out")
    return {"code": code, "dir": run_dir, "out": root / "out"}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def slice_users(run_dir: Path) -> list[str]:
    return pq.read_table(run_dir / "slice" / "users.parquet").column("user_id").to_pylist()


@pytest.fixture(scope="module")
def base_manifest(small_models: dict[str, dict[str, str]]) -> dict[str, Any]:
    return make_manifest(small_models)


@pytest.fixture(scope="module")
def run_a(base_manifest: dict[str, Any], small_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = fixture_run(base_manifest, small_lake, tmp_path_factory, "run-a")
    return {**run, "manifest": run["out"].parent / "out-manifest.json"}


@pytest.fixture(scope="module")
def run_b(base_manifest: dict[str, Any], small_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same manifest as run_a into a different out dir."""
    return fixture_run(base_manifest, small_lake, tmp_path_factory, "run-b")


@pytest.fixture(scope="module")
def run_other_seed(base_manifest: dict[str, Any], small_lake: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    manifest = copy.deepcopy(base_manifest)
    manifest["sampling"]["seed"] = 4
    return fixture_run(manifest, small_lake, tmp_path_factory, "run-seed")


@pytest.fixture(scope="module")
def run_threshold(small_models: dict[str, dict[str, str]], small_lake: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    manifest = make_manifest(small_models, name="threshold-gate", gates=[
        {"name": "ndcg-floor", "kind": "threshold", "metric": "ndcg@10", "bound": 0.99}])
    return fixture_run(manifest, small_lake, tmp_path_factory, "run-threshold")


@pytest.fixture(scope="module")
def run_stratified(small_models: dict[str, dict[str, str]], small_lake: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Stratified over loyalty_tier at rate 0.1, with two gates that cannot pass on such a slice."""
    manifest = make_manifest(
        small_models, name="stratified",
        sampling={"strategy": "stratified", "rate": 0.1, "seed": 3, "strata": ["loyalty_tier"],
                  "min_events_per_user": 1},
        gates=[
            {"name": "huge-gain", "kind": "superiority", "metric": "ndcg@10", "margin": 0.9},
            {"name": "needs-more-users", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.02,
             "min_users": 100_000, "scope": "per_stratum"},
        ])
    return fixture_run(manifest, small_lake, tmp_path_factory, "run-stratified")


# --------------------------------------------------------------------------------------------------
# determinism and idempotence


def test_base_run_passes(run_a: dict[str, Any]) -> None:
    record = read_json(run_a["dir"] / "run.json")
    assert record["decision"] == "PASS"
    assert run_a["code"] == 0
    assert record["reasons"] == []


DETERMINISTIC_FILES = ("rankings.parquet", "labels.parquet", "metrics.json", "manifest.json",
                       "evaluation/per_user.parquet", "slice/stats.json")


def test_same_manifest_twice_gives_identical_records(run_a: dict[str, Any], run_b: dict[str, Any]) -> None:
    assert run_a["dir"].name == run_b["dir"].name  # same run id
    assert run_a["dir"].name.startswith("small-test-")
    assert re.fullmatch(r"small-test-[0-9a-f]{12}", run_a["dir"].name)
    names = [*DETERMINISTIC_FILES,
             *(p.relative_to(run_a["dir"]).as_posix() for p in sorted((run_a["dir"] / "slice").glob("*.parquet"))),
             *(p.relative_to(run_a["dir"]).as_posix() for p in sorted((run_a["dir"] / "features").glob("*.parquet")))]
    assert {"slice/users.parquet", "slice/events.parquet", "slice/items.parquet", "features/batch_user.parquet",
            "features/batch_item.parquet", "features/batch_user_category.parquet"} <= set(names)
    differing = [n for n in names if (run_a["dir"] / n).read_bytes() != (run_b["dir"] / n).read_bytes()]
    assert differing == []
    assert read_json(run_a["dir"] / "run.json")["decision"] == read_json(run_b["dir"] / "run.json")["decision"]
    # gates.json holds measured latencies; every other gate is a pure function of the record
    gates_a, gates_b = (read_json(d / "gates.json")["gates"] for d in (run_a["dir"], run_b["dir"]))
    assert [g for g in gates_a if g["kind"] != "latency"] == [g for g in gates_b if g["kind"] != "latency"]


def test_rerun_into_same_out_dir_reports_existing_decision(run_a: dict[str, Any], small_lake: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    shutil.copytree(run_a["out"], out)
    record_path = out / "runs" / run_a["dir"].name / "run.json"
    before = record_path.read_bytes()
    original = read_json(record_path)["decision"]

    result = run_local(run_a["manifest"], str(small_lake), out)
    assert result.existing is True
    assert result.run_id == run_a["dir"].name
    assert result.decision == original
    assert record_path.read_bytes() == before

    capsys.readouterr()
    code = main(["run", str(run_a["manifest"]), "--lake", str(small_lake), "--out", str(out), "--quiet"])
    assert code == EXIT_CODES[original]
    assert "existing record" in capsys.readouterr().out
    assert record_path.read_bytes() == before
    assert sorted(p.name for p in (out / "runs").iterdir()) == [run_a["dir"].name]


def test_changed_seed_gives_new_run_id_and_other_users(run_a: dict[str, Any], run_other_seed: dict[str, Any]) -> None:
    assert run_other_seed["dir"].name != run_a["dir"].name
    users_a, users_c = set(slice_users(run_a["dir"])), set(slice_users(run_other_seed["dir"]))
    assert users_a != users_c
    assert users_a & users_c  # both are ~half of the same eligible users
    stats_a, stats_c = read_json(run_a["dir"] / "slice" / "stats.json"), read_json(run_other_seed["dir"] / "slice" /
                                                                                    "stats.json")
    assert stats_a["eligible_users"] == stats_c["eligible_users"]
    assert (stats_a["seed"], stats_c["seed"]) == (3, 4)


# --------------------------------------------------------------------------------------------------
# PII


def test_no_raw_email_anywhere_in_the_run_record(run_a: dict[str, Any], small_lake: Path) -> None:
    emails = set()
    for path in (small_lake / "users").rglob("*.parquet"):
        emails.update(pq.read_table(path, columns=["email"]).column("email").to_pylist())
    assert len(emails) == 1500
    encoded = [e.encode() for e in emails]
    files = [p for p in run_a["dir"].rglob("*") if p.is_file()]
    assert len(files) > 10
    leaks = []
    for path in files:
        data = path.read_bytes()
        leaks += [(path.name, e) for e in encoded if e in data]
        if path.suffix == ".parquet":  # compressed pages: look at the decoded values too
            table = pq.read_table(path)
            for name in table.column_names:
                if str(table.schema.field(name).type) in ("string", "large_string"):
                    leaks += [(f"{path.name}:{name}", v) for v in set(table.column(name).to_pylist()) & emails]
        assert PII_SECRET.encode() not in data, f"the masking secret leaked into {path}"
    assert leaks == []


def test_masked_emails_are_keyed_hashes_stable_across_runs(run_a: dict[str, Any], run_other_seed: dict[str, Any],
                                                           small_lake: Path) -> None:
    raw: dict[str, str] = {}
    for path in (small_lake / "users").rglob("*.parquet"):
        table = pq.read_table(path, columns=["user_id", "email"])
        raw.update(zip(table.column("user_id").to_pylist(), table.column("email").to_pylist(), strict=True))

    def masked(run_dir: Path) -> dict[str, str]:
        table = pq.read_table(run_dir / "slice" / "users.parquet", columns=["user_id", "email"])
        return dict(zip(table.column("user_id").to_pylist(), table.column("email").to_pylist(), strict=True))

    first, second = masked(run_a["dir"]), masked(run_other_seed["dir"])
    for values in (first, second):
        assert values and all(MASKED.fullmatch(v) for v in values.values())
        # distinct raw emails stay distinct, so joins on the masked value still work
        assert len(set(values.values())) == len({raw[u] for u in values})
    shared = first.keys() & second.keys()
    assert len(shared) > 50
    assert all(first[u] == second[u] for u in shared)  # equal input, equal output across runs
    assert read_json(run_a["dir"] / "slice" / "stats.json")["masked_columns"] == ["email"]


def test_each_out_folder_masks_with_its_own_key_within_one_process(
        small_models: dict[str, dict[str, str]], small_lake: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the first --out folder's key used to stay in the process environment, so a second run in the
    same process with another --out reused it and wrote no pii.key of its own."""
    monkeypatch.delenv("TESTBED_PII_SECRET")
    raw: dict[str, str] = {}
    for path in (small_lake / "users").rglob("*.parquet"):
        table = pq.read_table(path, columns=["user_id", "email"])
        raw.update(zip(table.column("user_id").to_pylist(), table.column("email").to_pylist(), strict=True))
    keys = []
    for name in ("first", "second"):
        code, run_dir = cli_run(make_manifest(small_models), small_lake, tmp_path / name)
        assert code in EXIT_CODES.values() and code != EXIT_CODES["ERROR"]
        assert "TESTBED_PII_SECRET" not in os.environ
        key = (tmp_path / name / ".testbed" / "pii.key").read_text().strip()
        users = pq.read_table(run_dir / "slice" / "users.parquet", columns=["user_id", "email"]).to_pylist()
        assert users and all(u["email"] == mask_value(key.encode(), raw[u["user_id"]]) for u in users)
        keys.append(key)
    assert keys[0] != keys[1]


# --------------------------------------------------------------------------------------------------
# record shapes


def test_rankings_are_ranked_top_k_lists(run_a: dict[str, Any]) -> None:
    table = pq.read_table(run_a["dir"] / "rankings.parquet")
    assert {"user_id", "model", "rank", "item_id", "score"} <= set(table.column_names)
    lists: dict[tuple[str, str], list[tuple[int, float, str]]] = defaultdict(list)
    for row in table.to_pylist():
        lists[(row["model"], row["user_id"])].append((row["rank"], row["score"], row["item_id"]))
    assert {model for model, _ in lists} == {"control", "candidate"}
    users = set(slice_users(run_a["dir"]))
    assert {user for _, user in lists} <= users
    for (model, user), rows in lists.items():
        rows.sort()
        ranks = [r for r, _, _ in rows]
        assert ranks == list(range(1, len(rows) + 1)), (model, user)
        assert 1 <= len(rows) <= K
        assert len({item for _, _, item in rows}) == len(rows)
        for (_, s1, i1), (_, s2, i2) in zip(rows, rows[1:], strict=False):
            assert s1 >= s2, (model, user)
            if s1 == s2:
                assert i1 < i2, f"tie between {i1} and {i2} for {model}/{user} not broken by item_id"
    # both models ranked the same users
    assert {u for m, u in lists if m == "control"} == {u for m, u in lists if m == "candidate"}


def test_labels_have_user_item_relevance(run_a: dict[str, Any]) -> None:
    table = pq.read_table(run_a["dir"] / "labels.parquet")
    assert {"user_id", "item_id", "relevance"} <= set(table.column_names)
    rows = table.to_pylist()
    assert rows
    assert len({(r["user_id"], r["item_id"]) for r in rows}) == len(rows)
    assert {r["relevance"] for r in rows} <= {0, 1, 2, 3}
    assert {r["user_id"] for r in rows} <= set(slice_users(run_a["dir"]))


def test_metrics_json_has_the_spec_shape(run_a: dict[str, Any]) -> None:
    metrics = read_json(run_a["dir"] / "metrics.json")
    assert metrics["k"] == K
    names = [f"{m}@{K}" for m in ("ndcg", "precision", "recall", "mrr", "hit_rate", "map", "revenue", "coverage")]
    for model in ("control", "candidate"):
        values = metrics["models"][model]["all"]
        assert set(names) <= set(values)
        assert all(isinstance(values[n], float) and math.isfinite(values[n]) for n in names)
        assert all(0.0 <= values[n] <= 1.0 for n in names if not n.startswith("revenue"))
    delta = metrics["deltas"]["all"]["ndcg@10"]
    assert {"delta", "relative", "interval", "n"} <= set(delta)
    lo, hi = delta["interval"]
    assert lo <= delta["delta"] <= hi
    assert delta["n"] == metrics["models"]["control"]["all"]["users"] > 0
    control = metrics["models"]["control"]["all"]["ndcg@10"]
    candidate = metrics["models"]["candidate"]["all"]["ndcg@10"]
    assert delta["delta"] == pytest.approx(candidate - control, abs=1e-12)
    assert delta["relative"] == pytest.approx((candidate - control) / control, rel=1e-9)


def test_gates_json_and_run_json_have_the_spec_shape(run_a: dict[str, Any]) -> None:
    gates = read_json(run_a["dir"] / "gates.json")
    # the run's own checks (sample ratio; feature parity when the run has it) come before the manifest's gates
    assert [g["name"] for g in gates["gates"] if g["kind"] not in ("parity", "sample_ratio")] == [
        "ndcg-not-worse", "latency-p95"]
    assert [g["outcome"] for g in gates["gates"] if g["kind"] == "sample_ratio"] == ["pass"]
    for gate in gates["gates"]:
        assert {"name", "metric", "kind", "stratum", "observed", "interval", "threshold", "p_value",
                "outcome"} <= set(gate)
        assert gate["outcome"] in ("pass", "fail", "inconclusive")
    ndcg = next(g for g in gates["gates"] if g["name"] == "ndcg-not-worse")
    assert (ndcg["kind"], ndcg["metric"], ndcg["stratum"], ndcg["threshold"]) == (
        "non_inferiority", "ndcg@10", "all", -0.02)
    assert ndcg["interval"][0] > -0.02 and ndcg["outcome"] == "pass"
    assert 0.0 <= ndcg["p_value"] < 0.05
    record = read_json(run_a["dir"] / "run.json")
    assert {"run_id", "decision", "reasons"} <= set(record)
    assert record["run_id"] == run_a["dir"].name
    assert (record["decision"], record["reasons"]) == (gates["decision"], gates["reasons"])


# --------------------------------------------------------------------------------------------------
# metric values


def ndcg_at_10(ranked: list[str], grades: dict[str, int]) -> float:
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:K]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    dcg = sum(grades.get(item, 0) / math.log2(i + 1) for i, item in enumerate(ranked[:K], start=1))
    return dcg / idcg


def test_every_file_of_the_record_is_a_published_document(run_a: dict[str, Any],
                                                          run_stratified: dict[str, Any]) -> None:
    """Each JSON file validates against its schema in schemas/run-record, loads into its testbed.record model,
    and the model dumps back to the file's bytes."""
    documents = {"manifest", "slice-stats", "parity", "stream-stats", "replay", "shard-result", "shard-latency",
                 "metrics", "shard-attribution", "attribution",
                 "latency", "drift", "gates", "run", "claim"}
    assert check_run_files(run_a["dir"]) == documents
    assert check_run_files(run_stratified["dir"]) == documents


def test_control_ndcg_recomputed_from_rankings_and_labels(run_a: dict[str, Any]) -> None:
    grades: dict[str, dict[str, int]] = defaultdict(dict)
    for row in pq.read_table(run_a["dir"] / "labels.parquet").to_pylist():
        grades[row["user_id"]][row["item_id"]] = row["relevance"]
    ranked: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in pq.read_table(run_a["dir"] / "rankings.parquet").to_pylist():
        if row["model"] == "control":
            ranked[row["user_id"]].append((row["rank"], row["item_id"]))
    judged = [u for u, g in grades.items() if any(v >= 1 for v in g.values())]
    assert len(judged) > 100
    values = [ndcg_at_10([item for _, item in sorted(ranked.get(u, []))], grades[u]) for u in judged]
    recomputed = sum(values) / len(values)
    metrics = read_json(run_a["dir"] / "metrics.json")
    assert metrics["models"]["control"]["all"]["users"] == len(judged)
    assert abs(metrics["models"]["control"]["all"]["ndcg@10"] - recomputed) <= 1e-9


def test_candidate_beats_control_on_ndcg(run_a: dict[str, Any]) -> None:
    delta = read_json(run_a["dir"] / "metrics.json")["deltas"]["all"]["ndcg@10"]
    assert delta["delta"] > 0
    assert delta["interval"][0] > 0


# --------------------------------------------------------------------------------------------------
# gates and decisions


def test_unreachable_threshold_gate_fails_the_run(run_threshold: dict[str, Any]) -> None:
    record = read_json(run_threshold["dir"] / "run.json")
    assert (record["decision"], run_threshold["code"]) == ("FAIL", 1)
    assert len(record["reasons"]) == 1
    assert "ndcg-floor" in record["reasons"][0]
    [gate] = [g for g in read_json(run_threshold["dir"] / "gates.json")["gates"] if g["name"] == "ndcg-floor"]
    candidate = read_json(run_threshold["dir"] / "metrics.json")["models"]["candidate"]["all"]["ndcg@10"]
    assert (gate["outcome"], gate["threshold"]) == ("fail", 0.99)
    assert gate["observed"] == pytest.approx(candidate)


def test_superiority_with_huge_margin_never_passes(run_stratified: dict[str, Any]) -> None:
    record = read_json(run_stratified["dir"] / "run.json")
    assert record["decision"] in ("INCONCLUSIVE", "FAIL")
    gate = next(g for g in read_json(run_stratified["dir"] / "gates.json")["gates"] if g["name"] == "huge-gain")
    assert gate["outcome"] in ("inconclusive", "fail")
    assert gate["threshold"] == 0.9
    assert gate["interval"][0] < 0.9
    assert any("huge-gain" in reason for reason in record["reasons"])


def test_min_users_above_slice_size_is_inconclusive(run_stratified: dict[str, Any]) -> None:
    record = read_json(run_stratified["dir"] / "run.json")
    assert (record["decision"], run_stratified["code"]) == ("INCONCLUSIVE", 3)
    rows = [g for g in read_json(run_stratified["dir"] / "gates.json")["gates"] if g["name"] == "needs-more-users"]
    strata = {g["stratum"] for g in rows}
    assert "all" in strata and len(strata) >= 3  # the whole slice and every stratum
    assert all(g["outcome"] == "inconclusive" for g in rows)
    reasons = [r for r in record["reasons"] if "needs-more-users" in r]
    assert len(reasons) == len(rows)
    assert all("min_users" in r for r in reasons)


def test_stratified_sampling_hits_every_stratum(run_stratified: dict[str, Any], small_lake: Path) -> None:
    tiers = set()
    for path in (small_lake / "users").rglob("*.parquet"):
        tiers.update(pq.read_table(path, columns=["loyalty_tier"]).column("loyalty_tier").to_pylist())
    stats = read_json(run_stratified["dir"] / "slice" / "stats.json")
    strata = stats["strata"]
    assert set(strata) == {f"loyalty_tier={t}" for t in tiers}
    for label, row in strata.items():
        assert row["users"] >= 1, label
        assert row["users"] == max(1, math.ceil(0.1 * row["eligible_users"])), label
    assert stats["users"] == sum(row["users"] for row in strata.values())
    users = pq.read_table(run_stratified["dir"] / "slice" / "users.parquet")
    assert set(users.column("stratum").to_pylist()) == set(strata)
    metrics = read_json(run_stratified["dir"] / "metrics.json")
    for model in ("control", "candidate"):
        per_stratum = set(metrics["models"][model]) - {"all"}
        assert per_stratum and per_stratum <= set(strata)
        evaluated = metrics["models"][model]["all"]["users"]
        assert sum(metrics["models"][model][s]["users"] for s in per_stratum) == evaluated
    assert set(metrics["deltas"]) - {"all"} == set(metrics["models"]["control"]) - {"all"}


# --------------------------------------------------------------------------------------------------
# failures


def test_unexpected_step_error_is_recorded_as_error(base_manifest: dict[str, Any], small_lake: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import testbed.core.metrics

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected failure in per_user_metrics")

    monkeypatch.setattr(testbed.core.metrics, "per_user_metrics", explode)
    manifest = copy.deepcopy(base_manifest)
    manifest["name"] = "injected-error"
    out = tmp_path / "out"
    capsys.readouterr()
    code, run_dir = cli_run(manifest, small_lake, out)
    err = capsys.readouterr().err
    assert code == 4
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("testbed: error:")
    assert "injected failure" in lines[0]
    assert "Traceback" not in err
    record = read_json(run_dir / "run.json")
    assert record["decision"] == "ERROR"
    assert record["failed_step"] == "evaluate"
    assert record["reasons"] and record["reasons"][0].startswith("evaluate")
    assert "injected failure" in record["reasons"][0]
    assert all(read_json(p)["decision"] != "PASS" for p in out.rglob("run.json"))
    assert not (run_dir / "gates.json").exists()
    assert {"run", "error"} <= check_run_files(run_dir)


# --------------------------------------------------------------------------------------------------
# reports


def test_report_puts_the_failed_gate_first_and_rerenders_identically(
        run_threshold: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    report = run_threshold["dir"] / "report.md"
    original = report.read_text()
    assert "**FAIL**" in original.splitlines()[0]
    lines = original.splitlines()
    first_gate = lines[lines.index("## Gates") + 4]  # after the blank line, the header and its separator
    assert first_gate.startswith("| ndcg-floor (ndcg@10) | goal | all |") and first_gate.endswith("| fail |")
    assert "0.9900" in first_gate  # the bound it missed, with its number
    report.unlink()
    assert main(["report", str(run_threshold["dir"])]) == 0
    assert report.read_text() == original
    assert capsys.readouterr().out.strip() == original.strip()


def test_attribution_sums_contributions_to_the_scores_on_real_rows(run_a: dict[str, Any]) -> None:
    """TreeSHAP's contributions plus its bias give each sampled row's raw score (LightGBM's property), on the
    run's own candidate rows; the candidate's own inputs (user, user×category, user×item) are among the features
    behind the difference."""
    doc = json.loads((run_a["dir"] / "attribution.json").read_text())
    assert doc["users"] == doc["users_requested"] == 20 and doc["attributed_rows"] > 0
    assert doc["additivity_error"] < 1e-9
    top = [d["feature"] for d in doc["difference"][:5] if d["direction"] == "candidate"]
    assert any(f.startswith(("u_", "uc_", "ui_")) for f in top), doc["difference"][:5]
