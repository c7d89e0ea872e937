"""A hand-made lake that only honours the SPEC §2 contract, not the generator's habits.

Ids are arbitrary strings (slashes, dots, spaces, unicode, a quote), event_time is stored as naive
timestamp[ms] in some partitions and timestamp[us, UTC] in others, quantity/price/session_id have nulls,
and there are extra columns. Models are trained on it with `testbed train`, then a manifest is run over it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testbed.cli import main

SEED = 20260611
N_USERS = 60
N_ITEMS = 40
FIRST_DAY = date(2026, 6, 1)
DAYS = 120  # events on 2026-06-01 .. 2026-09-28
TRAIN_CUTOFF = "2026-08-31"
RUN_TIME = {"start": "2026-07-01T00:00:00Z", "cutoff": "2026-09-14T00:00:00Z", "end": "2026-09-29T00:00:00Z"}
CATEGORIES = ("home & garden", "Ünterwäsche", "toys/games", "food")
SEGMENT_CODES = ("A-1", "B'2", "ß 3")  # one code holds a quote: filter values are data, never SQL
EVENT_TYPES = ("view", "add_to_cart", "purchase")


def _user_ids() -> list[str]:
    ids = [f"CUST-{100 + 7 * i:06d}/{i % 10}" for i in range(N_USERS - 4)]
    return [*ids, "Zoë 42", "O'Brien, Seán", "user with  two spaces", "客户-七"]


def _item_ids() -> list[str]:
    ids = [f"SKU_{chr(97 + i % 26)}{chr(98 + i % 23)}-{i:02d}.x" for i in range(N_ITEMS - 3)]
    return [*ids, "Crème brûlée 250g", "item/with/slashes", "50% off: \"deal\""]


def _timestamp_ms(day: date, ms_of_day: int) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000 + ms_of_day


def build_foreign_lake(root: Path) -> dict[str, Any]:
    """Write the lake under `root`; return the ids used, for assertions."""
    rng = np.random.Generator(np.random.PCG64(SEED))
    users, items = _user_ids(), _item_ids()
    item_category = [CATEGORIES[i % len(CATEGORIES)] for i in range(N_ITEMS)]
    item_price = np.round(rng.uniform(1.0, 80.0, N_ITEMS), 2)
    popularity = rng.zipf(1.6, N_ITEMS).astype(float)
    favourite = rng.integers(0, len(CATEGORIES), N_USERS)
    segment = [SEGMENT_CODES[i % len(SEGMENT_CODES)] for i in range(N_USERS)]

    rows: dict[str, list[Any]] = {c: [] for c in ("event_id", "t_ms", "user_id", "item_id", "event_type",
                                                  "session_id", "quantity", "price", "channel")}
    session_no = 0
    for u, user in enumerate(users):
        n_sessions = int(rng.integers(12, 24))
        for _ in range(n_sessions):
            session_no += 1
            day = FIRST_DAY + timedelta(days=int(rng.integers(0, DAYS)))
            t = int(rng.integers(0, 20 * 3_600_000))
            in_favourite = np.array([item_category[i] == CATEGORIES[favourite[u]] for i in range(N_ITEMS)])
            weights = popularity * np.where(in_favourite, 6.0, 1.0)
            for item in rng.choice(N_ITEMS, size=int(rng.integers(1, 5)), replace=False, p=weights / weights.sum()):
                steps = ["view"]
                if rng.random() < 0.35:
                    steps.append("add_to_cart")
                    if rng.random() < 0.5:
                        steps.append("purchase")
                for event_type in steps:
                    t += int(rng.integers(1_000, 120_000))
                    rows["event_id"].append(f"evt#{len(rows['event_id']):05d}:{user[:4]}")
                    rows["t_ms"].append(_timestamp_ms(day, min(t, 86_399_999)))
                    rows["user_id"].append(user)
                    rows["item_id"].append(items[item])
                    rows["event_type"].append(event_type)
                    rows["session_id"].append(None if rng.random() < 0.1 else f"s {session_no}/{user}")
                    rows["quantity"].append(None if rng.random() < 0.2 else int(rng.integers(1, 4)))
                    rows["price"].append(None if rng.random() < 0.1 else float(item_price[item]))
                    rows["channel"].append(["web", "app", "store"][int(rng.integers(0, 3))])

    t_ms = np.array(rows.pop("t_ms"), dtype=np.int64)
    day_of = (t_ms // 86_400_000).astype("datetime64[D]")
    for n, day in enumerate(sorted(set(day_of.tolist()))):
        where = np.flatnonzero(day_of == np.datetime64(day))
        where = where[np.argsort(t_ms[where], kind="stable")]
        if n % 2 == 0:  # naive milliseconds (UTC wall time), as many exporters write it
            event_time = pa.array(t_ms[where], pa.timestamp("ms"))
        else:  # timezone-aware microseconds
            event_time = pa.array(t_ms[where] * 1000, pa.timestamp("us", tz="UTC"))
        table = pa.table({
            "event_id": pa.array([rows["event_id"][i] for i in where], pa.string()),
            "event_time": event_time,
            "user_id": pa.array([rows["user_id"][i] for i in where], pa.string()),
            "item_id": pa.array([rows["item_id"][i] for i in where], pa.string()),
            "event_type": pa.array([rows["event_type"][i] for i in where], pa.string()),
            "session_id": pa.array([rows["session_id"][i] for i in where], pa.string()),
            "quantity": pa.array([rows["quantity"][i] for i in where], pa.int64()),
            "price": pa.array([rows["price"][i] for i in where], pa.float64()),
            "channel": pa.array([rows["channel"][i] for i in where], pa.string()),
        })
        folder = root / "events" / f"event_date={day.isoformat()}"
        folder.mkdir(parents=True)
        pq.write_table(table, folder / "data.parquet")

    (root / "users").mkdir()
    pq.write_table(pa.table({
        "user_id": pa.array(users, pa.string()),
        "email": pa.array([f"person{i}@foreign.example" for i in range(N_USERS)], pa.string()),
        "segment_code": pa.array(segment, pa.string()),
    }), root / "users" / "users-0001.parquet")
    (root / "items").mkdir()
    pq.write_table(pa.table({
        "item_id": pa.array(items, pa.string()),
        "category": pa.array(item_category, pa.string()),
        "price": pa.array(item_price, pa.float64()),
        "colour": pa.array([["red", "blue", None][i % 3] for i in range(N_ITEMS)], pa.string()),
    }), root / "items" / "catalogue.parquet")
    return {"users": users, "items": items, "segment": dict(zip(users, segment, strict=True)),
            "events": len(rows["event_id"])}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The lake plus a control and a candidate model trained on it through the CLI."""
    root = tmp_path_factory.mktemp("foreign")
    lake = root / "lake"
    info = build_foreign_lake(lake)
    models = {}
    for role, feature_set in (("control", "control"), ("candidate", "full")):
        path = root / "models" / f"{role}.txt"
        code = main(["train", "--lake", str(lake), "--out", str(path), "--feature-set", feature_set,
                     "--cutoff", TRAIN_CUTOFF])
        assert code == 0, f"training the {role} model on the foreign lake failed"
        models[role] = {"uri": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {"root": root, "lake": lake, "models": models, **info}


def _manifest(foreign: dict[str, Any], name: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "segment": {"name": "foreign", "filters": filters},
        "time": RUN_TIME,
        "sampling": {"strategy": "uniform", "rate": 1.0, "seed": 5, "min_events_per_user": 1},
        "evaluation": {"k": 10, "candidates_per_user": 30, "latency_sample_users": 5, "attribution_users": 0},
        "gates": [{"name": "ndcg-not-worse", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.05,
                   "min_users": 5}],
        "models": foreign["models"],
        "pii": {"mask": ["email"]},
    }


def _run(foreign: dict[str, Any], manifest: dict[str, Any], out: Path) -> tuple[int, Path]:
    path = out.parent / f"{manifest['name']}.json"
    path.write_text(json.dumps(manifest, ensure_ascii=False))
    code = main(["run", str(path), "--lake", str(foreign["lake"]), "--out", str(out), "--quiet"])
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 1
    return code, runs[0]


@pytest.fixture(scope="module")
def whole_run(foreign: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("foreign-run") / "out"
    code, run_dir = _run(foreign, _manifest(foreign, "foreign-all", []), out)
    return {"code": code, "dir": run_dir}


@pytest.fixture(scope="module")
def segment_run(foreign: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("foreign-segment") / "out"
    wanted = ["B'2", "ß 3"]
    filters = [{"column": "segment_code", "op": "in", "value": wanted}]
    code, run_dir = _run(foreign, _manifest(foreign, "foreign-segment", filters), out)
    return {"code": code, "dir": run_dir, "wanted": wanted}


def test_foreign_lake_passes_validation(foreign: dict[str, Any], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_manifest(foreign, "foreign-all", [])))
    assert main(["validate", str(path), "--lake", str(foreign["lake"])]) == 0
    assert capsys.readouterr().out.startswith("ok: manifest and lake are valid; run id would be foreign-all-")


def test_foreign_lake_run_ends_with_a_decision(whole_run: dict[str, Any]) -> None:
    record = json.loads((whole_run["dir"] / "run.json").read_text())
    assert whole_run["code"] in (0, 1, 3)
    assert record["decision"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert whole_run["code"] == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[record["decision"]]


def test_rankings_use_only_the_lakes_own_ids(foreign: dict[str, Any], whole_run: dict[str, Any]) -> None:
    rankings = pq.read_table(whole_run["dir"] / "rankings.parquet")
    users = set(rankings.column("user_id").to_pylist())
    items = set(rankings.column("item_id").to_pylist())
    assert users and items
    assert users <= set(foreign["users"])
    assert items <= set(foreign["items"])
    # the awkward ids made it through untouched (they are active users, sampled at rate 1.0)
    assert {"Zoë 42", "O'Brien, Seán", "user with  two spaces", "客户-七"} <= users
    assert set(rankings.column("model").to_pylist()) == {"control", "candidate"}


def test_labels_and_slice_keep_ids_and_normalise_event_time(foreign: dict[str, Any],
                                                            whole_run: dict[str, Any]) -> None:
    events = pq.read_table(whole_run["dir"] / "slice" / "events.parquet")
    assert events.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert set(events.column("user_id").to_pylist()) <= set(foreign["users"])
    times = events.column("event_time").to_pylist()
    start, end = (datetime.fromisoformat(RUN_TIME[k].replace("Z", "+00:00")) for k in ("start", "end"))
    assert all(start <= t < end for t in times)
    # both partition flavours (naive ms and UTC us) are represented in the slice
    days = sorted({t.date() for t in times})
    assert len(days) > 60
    labels = pq.read_table(whole_run["dir"] / "labels.parquet")
    assert set(labels.column("item_id").to_pylist()) <= set(foreign["items"])
    assert set(labels.column("user_id").to_pylist()) <= set(foreign["users"])


def test_naive_and_utc_partitions_give_the_same_instants(foreign: dict[str, Any], whole_run: dict[str, Any]) -> None:
    """A naive timestamp[ms] is read as UTC wall time; no partition is shifted by a time zone."""
    lake_ms: dict[str, int] = {}
    flavours = set()
    for path in (foreign["lake"] / "events").rglob("*.parquet"):
        table = pq.read_table(path)
        flavours.add(str(table.schema.field("event_time").type))
        stamps = table.column("event_time").cast(pa.int64()).to_pylist()
        unit = 1 if table.schema.field("event_time").type.unit == "ms" else 1000
        lake_ms.update(zip(table.column("event_id").to_pylist(), (s // unit for s in stamps), strict=True))
    assert flavours == {"timestamp[ms]", "timestamp[us, tz=UTC]"}
    events = pq.read_table(whole_run["dir"] / "slice" / "events.parquet")
    slice_ms = [s // 1000 for s in events.column("event_time").cast(pa.int64()).to_pylist()]
    ids = events.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) > 1000
    assert all(lake_ms[i] == ms for i, ms in zip(ids, slice_ms, strict=True))


def test_extra_event_column_channel_is_carried_through(whole_run: dict[str, Any]) -> None:
    events = pq.read_table(whole_run["dir"] / "slice" / "events.parquet")
    assert "channel" in events.column_names
    assert set(events.column("channel").to_pylist()) == {"web", "app", "store"}
    # nullable columns keep their nulls in the slice (quantity null means 1, it is not rewritten)
    assert events.column("session_id").null_count > 0
    assert events.column("quantity").null_count > 0
    assert events.column("price").null_count > 0


def test_email_is_masked_in_the_foreign_slice(foreign: dict[str, Any], whole_run: dict[str, Any]) -> None:
    users = pq.read_table(whole_run["dir"] / "slice" / "users.parquet")
    emails = users.column("email").to_pylist()
    assert all(e.startswith("h_") and len(e) == 34 for e in emails)
    assert not any("@foreign.example" in e for e in emails)
    assert "segment_code" in users.column_names


def test_segment_filter_in_selects_only_those_users(foreign: dict[str, Any], segment_run: dict[str, Any]) -> None:
    assert segment_run["code"] in (0, 1, 3)
    wanted = set(segment_run["wanted"])
    expected_users = {u for u, code in foreign["segment"].items() if code in wanted}
    users = pq.read_table(segment_run["dir"] / "slice" / "users.parquet")
    selected = users.column("user_id").to_pylist()
    assert set(users.column("segment_code").to_pylist()) == wanted  # the quoted code "B'2" matched as data
    assert set(selected) <= expected_users
    # rate 1.0 and every user is active before the cutoff: the whole segment is selected
    assert set(selected) == expected_users
    events = pq.read_table(segment_run["dir"] / "slice" / "events.parquet")
    assert set(events.column("user_id").to_pylist()) <= expected_users
    rankings = pq.read_table(segment_run["dir"] / "rankings.parquet")
    assert set(rankings.column("user_id").to_pylist()) <= expected_users
