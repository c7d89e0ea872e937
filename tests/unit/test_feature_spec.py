"""An aggregation's population: lake by default when it reads nothing of the user, slice otherwise; `lake` on
one that reads the user is refused naming the feature; the default leaves the digest as it was."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from testbed.core.feature_spec import FeatureSet
from testbed.core.retail_default import DEFAULT_WINDOWS, retail_default

BUILT_IN_DIGEST = "16e431c2f44c7493b8f5bdcb1aabe390b4e6c40eb408c136c629f464612a6bec"


def _set(*aggregations: dict[str, Any]) -> FeatureSet:
    return FeatureSet.model_validate({"name": "s", "aggregations": list(aggregations)})


def _count(name: str, keys: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "keys": keys, "operation": "count", "window": "7d", **extra}


@pytest.mark.parametrize(("keys", "extra", "column"), [
    (["user_id"], {}, "user_id"),
    (["user_id", "item.category"], {}, "user_id"),
    (["item_id", "user.region"], {}, "user.region"),
    (["item_id"], {"where": [{"column": "user.region", "op": "eq", "value": "eu"}]}, "user.region"),
])
def test_population_lake_on_an_aggregation_that_reads_the_user_is_refused(keys: list[str], extra: dict[str, Any],
                                                                         column: str) -> None:
    with pytest.raises(ValidationError) as error:
        _set(_count("u_views_7d", keys, population="lake", **extra))
    message = str(error.value)
    assert "population: feature u_views_7d reads the user" in message
    assert f"({column})" in message and "computed over the slice's users" in message


def test_count_distinct_of_user_id_reads_the_user() -> None:
    with pytest.raises(ValidationError, match="feature i_viewers_7d reads the user"):
        _set({"name": "i_viewers_7d", "keys": ["item_id"], "operation": "count_distinct", "input": "user_id",
              "window": "7d", "population": "lake"})


def test_defaults_and_tables() -> None:
    spec = _set(_count("i_views_7d", ["item_id"]), _count("c_views_7d", ["item.category"]), _count("g_7d", []),
                _count("i_sampled_7d", ["item_id"], population="slice"), _count("u_7d", ["user_id"]),
                _count("g_eu_7d", [], where=[{"column": "user.region", "op": "eq", "value": "eu"}]))
    reads = {a.name: (a.reads, a.table) for a in spec.aggregations}
    assert reads == {"i_views_7d": ("lake", "item"), "c_views_7d": ("lake", "category"), "g_7d": ("lake", "global"),
                     "i_sampled_7d": ("slice", "item_slice"), "u_7d": ("slice", "user"),
                     "g_eu_7d": ("slice", "global_slice")}
    assert spec.lake_tables() == {"item", "category", "global"}
    assert spec.table_keys()["item_slice"] == ("item_id",)


def test_the_default_population_leaves_the_digest_unchanged() -> None:
    implicit = _set(_count("i_views_7d", ["item_id"]), _count("u_views_7d", ["user_id"]))
    explicit = _set(_count("i_views_7d", ["item_id"], population="lake"),
                    _count("u_views_7d", ["user_id"], population="slice"))
    assert explicit.digest() == implicit.digest()
    assert "population" not in implicit.canonical_json()
    assert _set(_count("i_views_7d", ["item_id"], population="slice"),
                _count("u_views_7d", ["user_id"])).digest() != implicit.digest()


def test_the_built_in_sets_digest_is_the_one_from_before_the_field() -> None:
    """The digest models trained before `population` existed record (computed at commit 79fc86c)."""
    assert retail_default(DEFAULT_WINDOWS).digest() == BUILT_IN_DIGEST


def test_a_table_name_two_key_sets_share_is_refused() -> None:
    with pytest.raises(ValidationError, match="name the feature table item_slice"):
        _set(_count("a", ["item_id"], population="slice"), _count("b", ["item_id", "item.slice"]))
