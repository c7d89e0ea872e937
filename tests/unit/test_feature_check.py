"""Feature set files: every malformed one is exit 2 with one line naming the feature and the field; the lake and
the model must fit the set."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import yaml

from testbed.core.feature_check import (
    check_against_lake,
    check_model_features,
    derived_trees,
    evaluation_order,
    load_feature_set,
    type_kind,
)
from testbed.core.feature_spec import FeatureSet
from testbed.core.model_text import ModelTextError, categorical_indices
from testbed.errors import FeatureSetError, ManifestError

BASE: dict[str, Any] = {
    "name": "shop",
    "aggregations": [
        {"name": "u_views_7d", "keys": ["user_id"], "operation": "count", "window": "7d", "events": ["view"]},
        {"name": "ub_views_14d", "keys": ["user_id", "item.brand"], "operation": "count", "window": "14d"},
        {"name": "u_spend_30d", "keys": ["user_id"], "operation": "sum", "input": "revenue", "window": "30d"},
    ],
    "attributes": [
        {"name": "i_brand", "entity": "item", "column": "brand", "type": "categorical", "categories": ["a", "b"]},
        {"name": "i_price", "entity": "item", "column": "price"},
    ],
    "external": [
        {"name": "emb", "uri": "emb.parquet", "sha256": "0" * 64, "keys": ["item_id"], "timestamp": "ts",
         "features": [{"name": "i_vec", "column": "vec", "type": "vector", "length": 4},
                      {"name": "i_clv", "column": "clv"}]},
        {"name": "uemb", "uri": "uemb.parquet", "sha256": "1" * 64, "keys": ["user_id"], "timestamp": "ts",
         "features": [{"name": "u_vec", "column": "vec", "type": "vector", "length": 4},
                      {"name": "u_vec8", "column": "vec8", "type": "vector", "length": 8}]},
    ],
    "derived": [{"name": "d_sim", "expr": "cosine(u_vec, i_vec)"},
                {"name": "d_ratio", "expr": "ub_views_14d / (u_views_7d + 1)"}],
    "context": [{"name": "src", "value": "candidate_source"}],
}
Edit = Callable[[dict[str, Any]], object]


def edited(edit: Edit) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    edit(data)
    return data


def agg(i: int, **changes: Any) -> Edit:
    return lambda d: d["aggregations"][i].update(changes)


def derived(i: int, expr: str) -> Edit:
    return lambda d: d["derived"][i].update(expr=expr)


MALFORMED: list[tuple[str, Edit, str]] = [
    ("unknown top-level key", lambda d: d.update(colour="red"), "colour: unknown key"),
    ("unknown key in a feature", agg(0, windw="7d"), "aggregations: feature u_views_7d: windw: unknown key"),
    ("unknown key (attribute)", agg(1, keys=["user_id", "brand"]),
     r"aggregations: feature ub_views_14d: keys.1: String should match pattern "
     r"'^(user_id|item_id|(item|user)\.[A-Za-z_][A-Za-z0-9_]{0,63})$'"),
    ("the same key column twice", agg(1, keys=["item.brand", "user.brand"]),
     "aggregations: feature ub_views_14d: keys: keys ['item.brand', 'user.brand'] name the same column twice"),
    ("unsupported operation", agg(0, operation="median"),
     "aggregations: feature u_views_7d: operation: Input should be 'count', 'sum', 'mean', 'min', 'max', "
     "'count_distinct', 'last', 'days_since_first' or 'days_since_last'"),
    ("input missing", lambda d: d["aggregations"][2].pop("input"),
     "aggregations: feature u_spend_30d: input: operation sum needs an input column"),
    ("input unexpected", agg(0, input="price"),
     "aggregations: feature u_views_7d: input: operation count takes no input"),
    ("input not a column", agg(2, input="price * 2"),
     "aggregations: feature u_spend_30d: input: 'price * 2' is not a column name"),
    ("bad window", agg(0, window="7w"),
     "aggregations: feature u_views_7d: window: String should match pattern '^([1-9][0-9]{0,4})([dh])$'"),
    ("window too long", agg(0, window="400d"), "aggregations: feature u_views_7d: window: window 400d is longer than "
                                               "366 days"),
    ("where value misfits its op", agg(0, where=[{"column": "price", "op": "between", "value": [1]}]),
     "aggregations: feature u_views_7d: where.0: op between needs a [low, high] list value"),
    ("bad feature name", agg(0, name="u views"),
     "aggregations: feature at index 0: name: String should match pattern '^[A-Za-z_][A-Za-z0-9_]{0,63}$'"),
    ("name clash", lambda d: d["derived"][1].update(name="u_views_7d"),
     "derived: feature u_views_7d: name also declared in aggregations"),
    ("categorical without categories", lambda d: d["attributes"][0].pop("categories"),
     "attributes: feature i_brand: categories: a categorical attribute lists its values (code = position)"),
    ("duplicate categories", lambda d: d["attributes"][0].update(categories=["a", "b", "a"]),
     "attributes: feature i_brand: categories: values must be unique"),
    ("categories on a numeric attribute", lambda d: d["attributes"][1].update(categories=["1"]),
     "attributes: feature i_price: categories: only a categorical attribute has categories, not a numeric one"),
    ("external vector without length", lambda d: d["external"][0]["features"][0].pop("length"),
     "external: table emb: features: feature i_vec: length: a vector column needs its length, a numeric column "
     "has none"),
    ("external key not an entity", lambda d: d["external"][0].update(keys=["sku"]),
     "external: table emb: keys.0: Input should be 'user_id' or 'item_id'"),
    ("external checksum", lambda d: d["external"][0].update(sha256="abc"),
     "external: table emb: sha256: String should match pattern '^[0-9a-f]{64}$'"),
    ("unknown context", lambda d: d["context"][0].update(value="position"),
     "context: feature src: value: Input should be 'candidate_source'"),
    ("unknown derived reference", derived(1, "ub_views_14d / u_views_28d"),
     "derived: feature d_ratio: expr: unknown feature u_views_28d"),
    ("bad expression syntax", derived(1, "ub_views_14d / (u_views_7d + 1"),
     "derived: feature d_ratio: expr: at position 31: expected ')', found end of expression"),
    ("unknown function", derived(1, "sqrt(u_views_7d)"),
     "derived: feature d_ratio: expr: at position 1: unknown function sqrt() (known: log1p, abs, min, max, "
     "coalesce, dot, cosine)"),
    ("cycle", lambda d: d["derived"].extend([{"name": "d_a", "expr": "d_b + 1"}, {"name": "d_b", "expr": "d_a * 2"}]),
     "derived: feature d_a: expr: cycle d_a -> d_b -> d_a"),
    ("self reference", derived(1, "d_ratio + 1"), "derived: feature d_ratio: expr: cycle d_ratio -> d_ratio"),
    ("vector as a scalar", derived(1, "i_vec + 1"),
     "derived: feature d_ratio: expr: i_vec is a vector: only dot() and cosine() take it"),
    ("dot on a scalar", derived(1, "dot(i_price, i_vec)"),
     "derived: feature d_ratio: expr: dot() takes vector features; i_price is not one"),
    ("vectors of unequal length", derived(0, "cosine(u_vec8, i_vec)"),
     "derived: feature d_sim: expr: cosine(u_vec8, i_vec) of vectors of length 8 and 4"),
]


@pytest.mark.parametrize(("edit", "message"), [pytest.param(e, m, id=i) for i, e, m in MALFORMED])
def test_a_malformed_feature_set_is_one_line_naming_the_feature_and_field(edit: Edit, message: str) -> None:
    with pytest.raises(FeatureSetError) as raised:
        load_feature_set(json.dumps(edited(edit)).encode(), "default.json")
    assert str(raised.value) == f"feature set default.json: {message}"
    assert raised.value.exit_code == 2 and isinstance(raised.value, ManifestError)


def test_the_base_loads_from_yaml_and_json_alike() -> None:
    from_json = load_feature_set(json.dumps(BASE).encode(), "shop.json")
    assert load_feature_set(yaml.safe_dump(BASE).encode(), "shop.yml") == from_json
    assert len(MALFORMED) >= 15


@pytest.mark.parametrize(("text", "source", "message"), [
    (b"- name: x\n", "a.yaml", "feature set a.yaml: a feature set must be an object"),
    (b"name: a\nname: b\n", "a.yaml", "feature set a.yaml: line 2: duplicate key 'name' (a second one would "
                                         "silently replace the first)"),
    (b'{"name": "a", "version": 2}', "a.json", "feature set a.json: version: Input should be 1"),
    (b'{"name": "a",', "a.json", "feature set a.json: not valid JSON: Expecting property name enclosed in double "
                                 "quotes: line 1 column 14 (char 13)"),
])
def test_documents_that_are_not_feature_sets(text: bytes, source: str, message: str) -> None:
    with pytest.raises(FeatureSetError) as raised:
        load_feature_set(text, source)
    assert str(raised.value) == message


def test_derived_features_evaluate_after_what_they_read() -> None:
    data = edited(lambda d: d["derived"].extend([{"name": "d_c", "expr": "d_b * 2"},
                                                 {"name": "d_b", "expr": "d_ratio + d_sim"}]))
    spec = FeatureSet.model_validate(data)
    trees = derived_trees(spec)
    order = evaluation_order(trees)
    assert order.index("d_ratio") < order.index("d_b") < order.index("d_c")
    assert evaluation_order(trees, {"d_b"}) == ["d_ratio", "d_sim", "d_b"]


SPEC = FeatureSet.model_validate(BASE)
LAKE = {"events": {"event_id": "VARCHAR", "user_id": "VARCHAR", "item_id": "VARCHAR", "event_type": "VARCHAR",
                   "event_time": "TIMESTAMP WITH TIME ZONE", "price": "DOUBLE", "quantity": "INTEGER",
                   "session_id": "VARCHAR"},
        "items": {"item_id": "VARCHAR", "category": "VARCHAR", "price": "DOUBLE", "brand": "VARCHAR"},
        "users": {"user_id": "VARCHAR", "region": "VARCHAR", "vip": "BOOLEAN"}}
EXTERNAL = {"emb": {"item_id": "string", "ts": "timestamp[us, tz=UTC]", "vec": "list<element: double>",
                    "clv": "double"},
            "uemb": {"user_id": "large_string", "ts": "date32[day]", "vec": "FLOAT[4]", "vec8": "DOUBLE[]"}}


def without(table: str, column: str) -> dict[str, dict[str, str]]:
    return {t: {c: k for c, k in cols.items() if (t, c) != (table, column)} for t, cols in LAKE.items()}


def retyped(table: str, column: str, type_name: str) -> dict[str, dict[str, str]]:
    return {t: {c: type_name if (t, c) == (table, column) else k for c, k in cols.items()} for t, cols in LAKE.items()}


@pytest.mark.parametrize(("edit", "lake", "external", "message"), [
    (None, without("items", "brand"), EXTERNAL,
     "aggregations: feature ub_views_14d: keys: unknown column item.brand (items/ has item_id, category, price)"),
    (agg(1, keys=["user_id", "item.price"]), LAKE, EXTERNAL,
     "aggregations: feature ub_views_14d: keys: item.price is DOUBLE: a key must be a string column"),
    (agg(2, input="session_id"), LAKE, EXTERNAL,
     "aggregations: feature u_spend_30d: input: session_id is VARCHAR: operation sum needs a numeric column"),
    (agg(2, input="user.score"), LAKE, EXTERNAL,
     "aggregations: feature u_spend_30d: input: unknown column user.score (users/ has user_id, region, vip)"),
    (agg(0, where=[{"column": "channel", "op": "eq", "value": "web"}]), LAKE, EXTERNAL,
     "aggregations: feature u_views_7d: where.0.column: unknown column channel (events/ has event_id, user_id, "
     "item_id, event_type, event_time, price, quantity, session_id)"),
    (None, retyped("items", "brand", "BIGINT"), EXTERNAL,
     "aggregations: feature ub_views_14d: keys: item.brand is BIGINT: a key must be a string column"),
    (lambda d: d["aggregations"].pop(1), retyped("items", "brand", "INTEGER"), EXTERNAL,
     "attributes: feature i_brand: column: brand is INTEGER: a categorical attribute needs a string column"),
    (None, retyped("items", "price", "VARCHAR"), EXTERNAL,
     "attributes: feature i_price: column: price is VARCHAR: a numeric attribute needs a numeric column"),
    (lambda d: d["attributes"].append({"name": "u_vip", "entity": "user", "column": "region", "type": "boolean"}),
     LAKE, EXTERNAL, "attributes: feature u_vip: column: region is VARCHAR: a boolean attribute needs a boolean "
                     "column"),
    (None, LAKE, {**EXTERNAL, "emb": {**EXTERNAL["emb"], "ts": "string"}},
     "external: table emb: timestamp: ts is string: the timestamp must be a timestamp or date column"),
    (None, LAKE, {**EXTERNAL, "emb": {**EXTERNAL["emb"], "vec": "double"}},
     "external: table emb: features: feature i_vec: column: vec is double: a vector feature needs a list column"),
    (None, LAKE, {**EXTERNAL, "uemb": {"ts": "date32[day]", "vec": "FLOAT[4]", "vec8": "DOUBLE[]"}},
     "external: table uemb: keys: unknown column user_id (uemb/ has ts, vec, vec8)"),
])
def test_the_set_must_fit_the_lake(edit: Edit | None, lake: dict[str, dict[str, str]],
                                   external: dict[str, dict[str, str]], message: str) -> None:
    spec = FeatureSet.model_validate(edited(edit)) if edit else SPEC
    with pytest.raises(FeatureSetError) as raised:
        check_against_lake(spec, lake, "shop.yaml", external)
    assert str(raised.value) == f"feature set shop.yaml: {message}"


def test_a_fitting_lake_passes_and_unread_external_tables_are_skipped() -> None:
    check_against_lake(SPEC, LAKE, "shop.yaml", EXTERNAL)
    check_against_lake(SPEC, LAKE, "shop.yaml")


@pytest.mark.parametrize(("type_name", "kind"), [
    ("VARCHAR", "string"), ("large_string", "string"), ("DECIMAL(10,2)", "numeric"), ("int32", "numeric"),
    ("BOOLEAN", "boolean"), ("bool", "boolean"), ("TIMESTAMP_MS", "time"), ("date32[day]", "time"),
    ("DOUBLE[]", "list"), ("FLOAT[8]", "list"), ("fixed_size_list<item: float>[8]", "list"), ("BLOB", "other"),
])
def test_type_kinds(type_name: str, kind: str) -> None:
    assert type_kind(type_name) == kind


@pytest.mark.parametrize(("names", "categorical", "message"), [
    (["i_price", "embedding_sim"], [], "model cand.txt needs feature embedding_sim, which feature set shop.yaml does "
                                       "not declare"),
    (["i_price", "u_vec"], [], "model cand.txt: feature u_vec of feature set shop.yaml is a vector, which only dot() "
                               "and cosine() can use"),
    (["i_price", "i_brand"], [0, 1], "model cand.txt treats feature i_price as categorical, but feature set shop.yaml "
                                     "does not declare it a categorical attribute"),
    (["i_price", "i_brand"], [], "feature set shop.yaml declares feature i_brand categorical, but model cand.txt "
                                 "does not list it in categorical_feature"),
    (["i_brand"], [3], "model cand.txt: categorical_feature index 3 is not one of its 1 features"),
])
def test_the_model_must_fit_the_set(names: list[str], categorical: list[int], message: str) -> None:
    with pytest.raises(FeatureSetError) as raised:
        check_model_features(SPEC, names, categorical, "cand.txt", "shop.yaml")
    assert str(raised.value) == message and raised.value.exit_code == 2


def test_a_fitting_model_passes() -> None:
    check_model_features(SPEC, ["d_sim", "i_brand", "src"], [1], "cand.txt", "shop.yaml")
    check_model_features(SPEC, ["d_sim", "src"], [], "cand.txt", "shop.yaml")


def test_categorical_indices_are_read_from_a_lightgbm_text_model() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, (200, 3)).astype(float), rng.random(200)
    data = lgb.Dataset(x, y, feature_name=["a", "b", "c"], categorical_feature=["c", "a"])
    text = lgb.train({"verbose": -1, "num_leaves": 4}, data, 2).model_to_string().encode()
    assert categorical_indices(text) == [0, 2]
    plain = lgb.train({"verbose": -1, "num_leaves": 4}, lgb.Dataset(x, y), 2).model_to_string().encode()
    assert categorical_indices(plain) == []
    by_name = text.replace(b"[categorical_feature: 0,2]", b"[categorical_feature: name:c,a]")
    assert categorical_indices(by_name) == [0, 2]
    with pytest.raises(ModelTextError, match="categorical_feature names 'z', which is not in feature_names"):
        categorical_indices(text.replace(b"[categorical_feature: 0,2]", b"[categorical_feature: name:z]"))
    with pytest.raises(ModelTextError, match="is not a list of feature indices"):
        categorical_indices(text.replace(b"[categorical_feature: 0,2]", b"[categorical_feature: 0;2]"))


INJECTED = 'brand"; DROP TABLE events; --'


@pytest.mark.parametrize(("edit", "field"), [
    (agg(1, keys=["user_id", f"item.{INJECTED}"]), "aggregations: feature ub_views_14d: keys.1"),
    (agg(2, input=INJECTED), "aggregations: feature u_spend_30d: input"),
    (agg(0, where=[{"column": INJECTED, "op": "eq", "value": 1}]), "aggregations: feature u_views_7d: where.0.column"),
    (lambda d: d["attributes"][1].update(column=INJECTED), "attributes: feature i_price: column"),
    (lambda d: d["external"][0].update(timestamp=INJECTED), "external: table emb: timestamp"),
    (lambda d: d["external"][0]["features"][1].update(column=INJECTED), "external: table emb: features"),
    (lambda d: d["aggregations"][0].update(name=INJECTED), "aggregations: feature at index 0: name"),
], ids=["key", "input", "where", "attribute", "timestamp", "external-column", "name"])
def test_a_column_or_name_that_is_not_an_identifier_never_reaches_sql(edit: Edit, field: str) -> None:
    """Every identifier the SQL names is a validated name: quotes and SQL in one are refused at load, exit 2."""
    with pytest.raises(FeatureSetError) as raised:
        load_feature_set(json.dumps(edited(edit)).encode(), "default.json")
    assert str(raised.value).startswith(f"feature set default.json: {field}")
    assert raised.value.exit_code == 2 and "\n" not in str(raised.value)
