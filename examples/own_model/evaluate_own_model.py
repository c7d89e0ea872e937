"""Evaluate your own LightGBM ranker against a control, on your own feature names.

The walk-through of the README's "Evaluate your own model", end to end on a synthetic lake:

1. a lake (`testbed generate`) and a control model (`testbed train --feature-set control`);
2. two external feature tables, as a team's offline jobs would publish them: a user profile (CLV and a taste
   vector) and item vectors, each row stamped with when it became known;
3. a feature set file naming the team's own features: windowed aggregations, a categorical attribute, the
   external values and derived features (a cosine of the two vectors among them);
4. a training table exported by `testbed features export`, and a LambdaRank model trained on it with plain
   `lightgbm` (not `testbed train`), saved as text the way `Booster.save_model` writes it;
5. a manifest naming that model and its feature set, run with `testbed run`: parity of every declared
   windowed feature, metrics, gates and the report, as for any run.

Run it from the repository root: `python examples/own_model/evaluate_own_model.py [--dir DIR]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

CUTOFF = datetime(2026, 10, 17, tzinfo=UTC)
START, END = CUTOFF - timedelta(days=90), CUTOFF + timedelta(days=14)
TRAIN_CUTOFF = CUTOFF - timedelta(days=28)  # training labels end two weeks before the evaluated window
VECTOR = 8  # the taste / item vector length


def testbed(*args: str) -> None:
    """Run one `testbed` command as a user would; its exit code is the example's."""
    command = [sys.executable, "-m", "testbed", *args]
    print("$ testbed " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(lake: Path, table: str) -> pa.Table:
    return ds.dataset(lake / table, format="parquet", partitioning="hive").to_table()


def snapshot(events: pa.Table, item_category: dict[str, str], top: list[str],
             as_of: datetime) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(users, CLV, taste vectors) from the events before `as_of`: what an offline job run then would publish."""
    before = events.filter(pc.less(events.column("event_time"), pa.scalar(as_of, pa.timestamp("ms", "UTC"))))
    users = sorted(set(before.column("user_id").to_pylist()))
    index = {u: i for i, u in enumerate(users)}
    taste, clv = np.zeros((len(users), VECTOR)), np.zeros(len(users))
    for user, item, kind, price, quantity in zip(*(before.column(c).to_pylist() for c in (
            "user_id", "item_id", "event_type", "price", "quantity")), strict=True):
        category = item_category.get(item)
        if category in top:
            taste[index[user], top.index(category)] += 1.0
        if kind == "purchase":
            clv[index[user]] += (price or 0.0) * (quantity or 1)
    return users, clv, taste / np.maximum(taste.sum(axis=1, keepdims=True), 1.0)


def external_tables(lake: Path, out: Path, cutoffs: list[datetime]) -> tuple[Path, Path, list[str]]:
    """A user profile (CLV, taste vector) and item vectors, published the day before each cutoff.

    The profile also holds a row stamped an hour after the last cutoff with absurd values: the testbed takes
    the latest row strictly before the cutoff, so those rows never reach a feature.
    """
    events, items = read(lake, "events"), read(lake, "items")
    categories = sorted(set(items.column("category").to_pylist()))
    top = categories[:VECTOR]
    item_category = dict(zip(items.column("item_id").to_pylist(), items.column("category").to_pylist(), strict=True))
    rows: dict[str, list[object]] = {"user_id": [], "as_of": [], "clv": [], "taste": []}
    for cutoff in cutoffs:
        users, clv, taste = snapshot(events, item_category, top, cutoff - timedelta(days=1))
        rows["user_id"] += users
        rows["as_of"] += [cutoff - timedelta(days=1)] * len(users)
        rows["clv"] += clv.tolist()
        rows["taste"] += taste.tolist()
    users = sorted(set(rows["user_id"]))  # type: ignore[arg-type]
    rows["user_id"] += users
    rows["as_of"] += [max(cutoffs) + timedelta(hours=1)] * len(users)
    rows["clv"] += [1e9] * len(users)
    rows["taste"] += [[1.0] * VECTOR] * len(users)
    profile = pa.table({"user_id": pa.array(rows["user_id"], pa.string()),
                        "as_of": pa.array(rows["as_of"], pa.timestamp("us", "UTC")),
                        "clv": pa.array(rows["clv"], pa.float64()),
                        "taste": pa.array(rows["taste"], pa.list_(pa.float64(), VECTOR))})
    rng = np.random.default_rng(7)
    ids = items.column("item_id").to_pylist()
    vectors = np.array([[1.0 if item_category[i] == c else 0.0 for c in top] for i in ids])
    vectors += rng.normal(0.0, 0.05, vectors.shape)
    item_vectors = pa.table({
        "item_id": pa.array(ids, pa.string()),
        "as_of": pa.array([min(cutoffs) - timedelta(days=30)] * len(ids), pa.timestamp("us", "UTC")),
        "vec": pa.array(vectors.tolist(), pa.list_(pa.float64(), VECTOR)),
    })
    profile_path, vectors_path = out / "user_profile.parquet", out / "item_vectors.parquet"
    pq.write_table(profile, profile_path)
    pq.write_table(item_vectors, vectors_path)
    return profile_path, vectors_path, categories


FEATURE_SET = """\
version: 1
name: my-ranker-features
description: the features of our own ranker, named as our training code names them
aggregations:
  - {{name: brand_views_14d, keys: [user_id, item.brand], operation: count, events: [view], window: 14d}}
  - {{name: category_purchases_60d, keys: [user_id, item.category], operation: count, events: [purchase],
     window: 60d}}
  - {{name: days_since_visit, keys: [user_id], operation: days_since_last, window: 90d}}
  - {{name: item_buyers_30d, keys: [item_id], operation: count_distinct, input: user_id, events: [purchase],
     window: 30d}}
  - {{name: item_views_7d, keys: [item_id], operation: count, events: [view], window: 7d}}
  - {{name: item_promo_views_7d, keys: [item_id], operation: count, events: [view],
     where: [{{column: promo_id, op: not_null}}], window: 7d}}
  - {{name: all_views_7d, keys: [], operation: count, events: [view], window: 7d}}
  - {{name: item_paid_price_30d, keys: [item_id], operation: mean, input: price, events: [purchase], window: 30d}}
  - {{name: user_item_events_90d, keys: [user_id, item_id], operation: count, window: 90d}}
attributes:
  - {{name: item_category, entity: item, column: category, type: categorical, categories: {categories}}}
  - {{name: list_price, entity: item, column: price}}
external:
  - name: user_profile
    uri: {profile}
    sha256: {profile_sha}
    keys: [user_id]
    timestamp: as_of
    features:
      - {{name: clv, column: clv}}
      - {{name: taste, column: taste, type: vector, length: {length}}}
  - name: item_vectors
    uri: {vectors}
    sha256: {vectors_sha}
    keys: [item_id]
    timestamp: as_of
    features:
      - {{name: item_vec, column: vec, type: vector, length: {length}}}
derived:
  - {{name: taste_match, expr: "cosine(taste, item_vec)"}}
  - {{name: item_view_share_7d, expr: "item_views_7d / all_views_7d"}}
  - {{name: log_clv, expr: "log1p(coalesce(clv, 0))"}}
  - {{name: discount, expr: "1 - item_paid_price_30d / list_price"}}
"""
FEATURES = ["brand_views_14d", "category_purchases_60d", "days_since_visit", "item_buyers_30d",
            "item_view_share_7d", "item_promo_views_7d", "user_item_events_90d", "item_category", "list_price",
            "log_clv", "taste_match", "discount"]


def train_outside(table_path: Path, model_path: Path, rounds: int) -> None:
    """A LambdaRank model with plain LightGBM on the exported table: our names, one categorical feature."""
    table = pq.read_table(table_path)
    user_ids = table.column("user_id").to_numpy(zero_copy_only=False)
    sizes = np.diff(np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1], True]))
    x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in FEATURES])
    y = table.column("relevance").to_numpy()
    dataset = lgb.Dataset(x, label=y, group=sizes, feature_name=FEATURES, categorical_feature=["item_category"])
    params = {"objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 40,
              "seed": 3, "deterministic": True, "force_row_wise": True, "num_threads": 2, "verbose": -1}
    booster = lgb.train(params, dataset, num_boost_round=rounds)
    booster.save_model(str(model_path))


def manifest(control: Path, candidate: Path, features: Path) -> dict[str, object]:
    return {
        "name": "own-model", "description": "our own LightGBM ranker against the testbed-trained control",
        "segment": {"name": "everyone", "filters": []},
        "time": {"start": START.isoformat(), "cutoff": CUTOFF.isoformat(), "end": END.isoformat()},
        "sampling": {"strategy": "uniform", "rate": 0.5, "seed": 11, "min_events_per_user": 3},
        "models": {
            "control": {"uri": str(control), "sha256": sha256(control)},
            "candidate": {"uri": str(candidate), "sha256": sha256(candidate),
                          "features": {"uri": str(features), "sha256": sha256(features)}},
        },
        "gates": [
            {"name": "ndcg-not-worse", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.01},
            {"name": "recall-not-worse", "kind": "non_inferiority", "metric": "recall@10", "margin": 0.05,
             "margin_type": "relative"},
            {"name": "latency-p95", "kind": "latency", "percentile": 95, "bound": 50},
        ],
        "pii": {"mask": ["email"]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="own-model-example", help="where the lake, models and runs go")
    parser.add_argument("--users", default="1500", help="users in the synthetic lake")
    parser.add_argument("--trees", type=int, help="boosting rounds of both models (default: 150 for the control, "
                                                  "120 for ours)")
    args = parser.parse_args()
    work = Path(args.dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    lake, control = work / "lake", work / "control.txt"
    if not (lake / "events").exists():
        testbed("generate", "--out", str(lake), "--users", args.users, "--days", "120")
    if not control.exists():
        testbed("train", "--lake", str(lake), "--out", str(control), "--feature-set", "control",
                "--cutoff", TRAIN_CUTOFF.date().isoformat(), "--trees", str(args.trees or 150))
    profile, vectors, categories = external_tables(lake, work, [TRAIN_CUTOFF, CUTOFF])
    features = work / "features.yaml"
    features.write_text(FEATURE_SET.format(categories=json.dumps(categories), profile=profile,
                                           profile_sha=sha256(profile), vectors=vectors,
                                           vectors_sha=sha256(vectors), length=VECTOR))
    testbed("features", "check", str(features), "--lake", str(lake))
    table = work / "training.parquet"
    testbed("features", "export", "--lake", str(lake), "--features", str(features), "--out", str(table),
            "--cutoff", TRAIN_CUTOFF.date().isoformat())
    candidate = work / "my_ranker.txt"
    train_outside(table, candidate, args.trees or 120)
    manifest_path = work / "manifest.json"
    manifest_path.write_text(json.dumps(manifest(control, candidate, features), indent=2) + "\n")
    result = subprocess.run([sys.executable, "-m", "testbed", "run", str(manifest_path), "--lake", str(lake),
                             "--out", str(work), "--quiet"], check=False)
    print(f"testbed run exited {result.returncode} (0 PASS, 1 FAIL, 3 INCONCLUSIVE)")
    return 0 if result.returncode in (0, 1, 3) else result.returncode


if __name__ == "__main__":
    sys.exit(main())
