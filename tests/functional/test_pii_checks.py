"""`testbed validate` refuses lake columns that look personal unless masked or allowed, naming the column only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testbed.cli import main


def lake_with_users(small_lake: Path, target: Path, extra: dict[str, list[str]]) -> Path:
    """The small lake (events and items linked) whose users gain the `extra` columns."""
    for dataset in ("events", "items"):
        for path in (small_lake / dataset).rglob("*.parquet"):
            link = target / path.relative_to(small_lake)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    users = pq.read_table(next((small_lake / "users").rglob("*.parquet")))
    for name, values in extra.items():
        users = users.append_column(name, pa.array((values * users.num_rows)[:users.num_rows], pa.string()))
    (target / "users").mkdir()
    pq.write_table(users, target / "users" / "part-0.parquet")
    return target


def validate(manifest: dict[str, Any], lake: Path, tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    code = main(["validate", str(path), "--lake", str(lake)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("extra", "column", "why"), [
    ({"email_address": ["someone@example.org"]}, "email_address", "its name suggests an email address"),
    ({"first_name": ["Ada"]}, "first_name", "its name suggests a person's name"),
    ({"contact": ["+44 20 7946 0958", "(555) 123-4567"]}, "contact", "its values look like phone numbers"),
    ({"login": ["ada@example.org", "bob@example.net"]}, "login", "its values look like email addresses"),
])
def test_an_unmasked_personal_column_is_refused(extra: dict[str, list[str]], column: str, why: str,
                                                manifest_data: dict[str, Any], small_lake: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    lake = lake_with_users(small_lake, tmp_path / "lake", extra)
    code, err = validate(manifest_data, lake, tmp_path, capsys)
    assert code == 2
    assert f"lake users/ column {column} looks like personal data ({why})" in err and "pii.allow" in err
    assert not any(value in err for values in extra.values() for value in values)
    manifest_data["pii"] = {"mask": ["email", column]}
    assert validate(manifest_data, lake, tmp_path, capsys)[0] == 0
    manifest_data["pii"] = {"mask": ["email"], "allow": [column]}
    assert validate(manifest_data, lake, tmp_path, capsys)[0] == 0


def test_an_allowed_column_must_exist(manifest_data: dict[str, Any], small_lake: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    manifest_data["pii"] = {"mask": ["email"], "allow": ["nickname"]}
    code, err = validate(manifest_data, small_lake, tmp_path, capsys)
    assert code == 2 and "pii.allow.0: column 'nickname' is in no lake dataset" in err


def test_a_masked_example_is_withheld(manifest_data: dict[str, Any], small_lake: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    lake = lake_with_users(small_lake, tmp_path / "lake", {})
    users = pq.read_table(lake / "users" / "part-0.parquet")
    duplicate = users.slice(0, 1)
    pq.write_table(pa.concat_tables([users, duplicate]), lake / "users" / "part-0.parquet")
    raw_id = duplicate.column("user_id")[0].as_py()
    code, err = validate(manifest_data, lake, tmp_path, capsys)
    assert code == 2 and raw_id in err  # not masked: the example helps
    manifest_data["pii"] = {"mask": ["email", "user_id"]}
    code, err = validate(manifest_data, lake, tmp_path, capsys)
    assert code == 2 and "duplicate user_id (example withheld: user_id is masked)" in err and raw_id not in err
