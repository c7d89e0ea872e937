"""Likely-PII columns by name and by value, and the manifest rules that keep masked values out of the record."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from testbed.core.generate import LakeSpec, generate_lake
from testbed.core.pii_detect import looks_like_email, looks_like_phone, pii_by_name, pii_by_values
from testbed.errors import ManifestError
from testbed.manifest import parse_manifest
from tests.conftest import BASE_MANIFEST

MODELS = {"control": {"uri": "c.txt", "sha256": "0" * 64}, "candidate": {"uri": "d.txt", "sha256": "1" * 64}}


@pytest.mark.parametrize(("column", "dataset"), [
    ("email", "users"), ("email_address", "users"), ("e_mail", "users"), ("EmailAddress", "users"),
    ("phone", "users"), ("mobile_number", "users"), ("tel", "users"), ("home_address", "users"),
    ("street", "users"), ("postcode", "users"), ("zip_code", "users"), ("dob", "users"),
    ("date_of_birth", "users"), ("ssn", "users"), ("iban", "users"), ("card_number", "users"),
    ("first_name", "users"), ("last_name", "users"), ("name", "users"), ("surname", "users"),
    ("contact_email", "events"), ("billing_address", "items"),
])
def test_personal_column_names_are_flagged(column: str, dataset: str) -> None:
    assert pii_by_name(column, dataset)


@pytest.mark.parametrize(("column", "dataset"), [
    ("user_id", "users"), ("loyalty_tier", "users"), ("signup_date", "users"), ("region", "users"),
    ("prior_orders", "users"), ("hotel", "users"), ("brand", "items"), ("name", "items"),
    ("campaign_name", "events"), ("event_type", "events"), ("promo_id", "events"), ("category", "items"),
])
def test_ordinary_column_names_are_not(column: str, dataset: str) -> None:
    assert pii_by_name(column, dataset) is None


def test_email_and_phone_values() -> None:
    assert all(map(looks_like_email, ["ada.lovelace1@example.com", "x+tag@mail.co.uk", " o'neil@ex.org "]))
    assert not any(map(looks_like_email, ["ada", "a@b", "@example.com", "C0000001"]))
    assert all(map(looks_like_phone, ["+44 20 7946 0958", "(555) 123-4567", "555-123-4567", "+15551234567"]))
    assert not any(map(looks_like_phone, ["2026-10-17", "12345678", "sess-000000001", "SKU-000123", "1.5",
                                          "2026-10-17 12:00:00", "+1 2"]))


def test_a_column_is_flagged_when_most_sampled_values_look_personal() -> None:
    assert pii_by_values(["a@x.com", "b@y.org", None, "n/a"]) == "email addresses"
    assert pii_by_values(["+44 20 7946 0958", "555-123-4567", "a@x.com"]) == "phone numbers"
    assert pii_by_values(["a@x.com", "gold", "silver", "bronze"]) is None
    assert pii_by_values([None, ""]) is None


def test_the_demo_lake_has_no_unmasked_personal_column_names(tmp_path: Any) -> None:
    import pyarrow.parquet as pq

    generate_lake(tmp_path, LakeSpec(users=50, days=10, seed=1))
    for dataset in ("users", "events", "items"):
        names = pq.read_schema(next((tmp_path / dataset).rglob("*.parquet"))).names
        assert [c for c in names if pii_by_name(c, dataset)] == (["email"] if dataset == "users" else [])


def _manifest(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST) | {"models": MODELS}
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = value
    return data


@pytest.mark.parametrize(("changes", "field"), [
    ({"sampling": {"strategy": "stratified", "strata": ["region", "email"]}}, "sampling.strata.1"),
    ({"segment__filters": [{"column": "email", "op": "eq", "value": 5}]}, "segment.filters.0"),
    ({"segment__filters": [{"column": "Email", "op": "in", "value": ["ada@example.com"]}]}, "segment.filters.0"),
    ({"pii": {"mask": ["email", "category"]},
      "whatif": {"scenarios": [{"name": "s", "kind": "price_shift", "category": "books", "fraction": 0.1}]}},
     "whatif.scenarios.0.category"),
    ({"pii": {"mask": ["email"], "allow": ["EMAIL"]}}, "pii.allow.0"),
])
def test_masked_columns_are_refused_where_their_values_would_be_written(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError, match=rf"^manifest: {field}: ") as caught:
        parse_manifest(_manifest(**changes))
    assert "@" not in str(caught.value) and "books" not in str(caught.value)


def test_null_filters_on_a_masked_column_are_allowed() -> None:
    manifest = parse_manifest(_manifest(segment__filters=[{"column": "email", "op": "not_null"}]))
    assert manifest.segment.filters[0].op == "not_null" and manifest.pii.allow == []
