"""Tests for the synthetic retail lake generator (testbed.core.generate)."""

from __future__ import annotations

import datetime
import pathlib
import re
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testbed.core.generate import LakeSpec, generate_lake

SMALL = LakeSpec(users=400, days=60)
MEDIUM = LakeSpec(users=2000, days=90, seed=11)

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", pa.timestamp("ms", tz="UTC")),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_type", pa.string()),
        ("session_id", pa.string()),
        ("quantity", pa.int32()),
        ("price", pa.float64()),
        ("promo_id", pa.string()),
    ]
)
USER_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("email", pa.string()),
        ("loyalty_tier", pa.string()),
        ("signup_date", pa.date32()),
        ("region", pa.string()),
        ("prior_orders", pa.int32()),
    ]
)
ITEM_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("category", pa.string()),
        ("price", pa.float64()),
        ("brand", pa.string()),
        ("launch_date", pa.date32()),
    ]
)
PARTITION_RE = re.compile(r"^event_date=(\d{4}-\d{2}-\d{2})$")


class Lake:
    """A generated lake loaded into memory (python lists; the test lakes are small)."""

    def __init__(self, root: pathlib.Path, spec: LakeSpec, result: dict[str, int]) -> None:
        self.root, self.spec, self.result = root, spec, result
        self.partitions = sorted((root / "events").iterdir())
        tables, dates = [], []
        for part in self.partitions:
            table = pq.read_table(part / "part-0.parquet")
            tables.append(table)
            match = PARTITION_RE.match(part.name)
            assert match is not None, part.name
            dates += [datetime.date.fromisoformat(match.group(1))] * table.num_rows
        self.tables = tables
        self.events: dict[str, list[Any]] = pa.concat_tables(tables).to_pydict()
        self.events["partition_date"] = dates
        self.users_table = pq.read_table(root / "users" / "part-0.parquet")
        self.items_table = pq.read_table(root / "items" / "part-0.parquet")
        self.users = self.users_table.to_pydict()
        self.items = self.items_table.to_pydict()
        self.item_category = dict(zip(self.items["item_id"], self.items["category"], strict=True))
        self.item_price = dict(zip(self.items["item_id"], self.items["price"], strict=True))

    def rows(self) -> list[dict[str, Any]]:
        keys = list(self.events)
        return [dict(zip(keys, values, strict=True)) for values in zip(*self.events.values(), strict=True)]


def make_lake(root: pathlib.Path, spec: LakeSpec) -> Lake:
    return Lake(root, spec, generate_lake(root, spec))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return make_lake(tmp_path_factory.mktemp("small") / "lake", SMALL)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return make_lake(tmp_path_factory.mktemp("medium") / "lake", MEDIUM)


def lake_bytes(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- determinism --------------------------------------------------------------------------------------


def test_same_spec_gives_byte_identical_files(tmp_path: pathlib.Path) -> None:
    first = generate_lake(tmp_path / "a", SMALL)
    second = generate_lake(tmp_path / "b", SMALL)
    assert first == second
    a, b = lake_bytes(tmp_path / "a"), lake_bytes(tmp_path / "b")
    assert len(a) == first["files"]
    assert a == b
    # Regenerating in place replaces the lake and is byte-identical as well.
    generate_lake(tmp_path / "a", SMALL)
    assert lake_bytes(tmp_path / "a") == b


def test_different_seed_differs(tmp_path: pathlib.Path) -> None:
    generate_lake(tmp_path / "a", SMALL)
    generate_lake(tmp_path / "b", LakeSpec(users=400, days=60, seed=8))
    a, b = lake_bytes(tmp_path / "a"), lake_bytes(tmp_path / "b")
    for name in ("users/part-0.parquet", "items/part-0.parquet"):
        assert a[name] != b[name]
    common = set(a) & set(b)
    assert sum(a[name] != b[name] for name in common) == len(common)


def test_regenerating_removes_stale_partitions(tmp_path: pathlib.Path) -> None:
    generate_lake(tmp_path / "lake", SMALL)
    result = generate_lake(tmp_path / "lake", LakeSpec(users=100, days=10))
    assert len(list((tmp_path / "lake" / "events").iterdir())) == result["files"] - 2 <= 10


# --- contract ---------------------------------------------------------------------------------------


def test_return_value(small: Lake) -> None:
    assert small.result == {
        "users": 400,
        "items": 500,
        "events": len(small.events["event_id"]),
        "days": 60,
        "files": len(small.partitions) + 2,
    }
    assert small.result["events"] > 0


def test_schemas_exact(small: Lake) -> None:
    for table in small.tables:
        assert table.schema.equals(EVENT_SCHEMA), table.schema
        assert "event_date" not in table.column_names
    assert small.users_table.schema.equals(USER_SCHEMA)
    assert small.items_table.schema.equals(ITEM_SCHEMA)
    for part in small.partitions:
        assert [p.name for p in part.iterdir()] == ["part-0.parquet"]


def test_event_values(small: Lake) -> None:
    ev = small.events
    assert set(ev["event_type"]) == {"view", "add_to_cart", "purchase"}
    assert set(ev["user_id"]) <= set(small.users["user_id"])
    assert set(ev["item_id"]) <= set(small.items["item_id"])
    for kind, qty, price in zip(ev["event_type"], ev["quantity"], ev["price"], strict=True):
        assert price > 0
        if kind == "view":
            assert qty == 1
        else:
            assert 1 <= qty <= 3
    assert Counter(q for k, q in zip(ev["event_type"], ev["quantity"], strict=True) if k != "view")[1] > 0
    promo_ids = {p for p in ev["promo_id"] if p is not None}
    assert promo_ids and all(re.fullmatch(r"PROMO-\d{4}", p) for p in promo_ids)
    assert any(p is None for p in ev["promo_id"])


def test_event_ids_unique_and_files_sorted(small: Lake) -> None:
    ids = small.events["event_id"]
    assert len(set(ids)) == len(ids)
    for table in small.tables:
        keys = list(zip(table["event_time"].to_pylist(), table["event_id"].to_pylist(), strict=True))
        assert keys == sorted(keys)


def test_partition_date_equals_event_date_and_window(small: Lake) -> None:
    start = SMALL.end_date - datetime.timedelta(days=SMALL.days)
    for when, part in zip(small.events["event_time"], small.events["partition_date"], strict=True):
        assert when.utcoffset() == datetime.timedelta(0)
        assert when.date() == part
        assert start <= part < SMALL.end_date
    # No empty partitions; most days have events at this scale.
    assert all(t.num_rows > 0 for t in small.tables)
    assert len(small.partitions) >= SMALL.days - 2


def test_users_table(small: Lake) -> None:
    users = small.users
    ids = users["user_id"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 400
    assert all(re.fullmatch(r"C\d{7}", u) for u in ids)
    numbers = sorted(int(u[1:]) for u in ids)
    assert numbers[-1] - numbers[0] > 100 * len(ids)  # arbitrary-looking, not a sequential range
    emails = users["email"]
    assert len(set(emails)) == len(emails)
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.(com|org|net)", e) for e in emails)
    tiers = Counter(users["loyalty_tier"])
    assert set(tiers) == {"none", "bronze", "silver", "gold"}
    assert (
        tiers["none"] > 0.45 * len(ids) and tiers["none"] > tiers["bronze"] > tiers["silver"] > tiers["gold"]
    )
    assert set(users["region"]) == {"north", "south", "east", "west", "central"}
    zero_share = sum(p == 0 for p in users["prior_orders"]) / len(ids)
    assert 0.1 < zero_share < 0.3
    assert all(p >= 0 for p in users["prior_orders"])
    assert max(users["signup_date"]) < SMALL.end_date


def test_items_table(small: Lake) -> None:
    items = small.items
    ids = items["item_id"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 500
    assert all(re.fullmatch(r"SKU-\d{6}", i) for i in ids)
    categories = set(items["category"])
    assert len(categories) == SMALL.categories
    assert {"apparel", "footwear", "home", "beauty"} <= categories
    assert all(p > 0 and round(p, 2) == p for p in items["price"])
    assert len(set(items["brand"])) > SMALL.categories
    start = SMALL.end_date - datetime.timedelta(days=SMALL.days)
    assert max(items["launch_date"]) < start
    # Log-normal prices with category-specific medians: medians differ a lot across categories.
    by_cat = defaultdict(list)
    for cat, price in zip(items["category"], items["price"], strict=True):
        by_cat[cat].append(price)
    medians = sorted(float(np.median(v)) for v in by_cat.values())
    assert medians[-1] > 5 * medians[0]


def test_many_categories_get_suffixed_names(tmp_path: pathlib.Path) -> None:
    result = generate_lake(tmp_path / "lake", LakeSpec(users=50, days=5, categories=30, items=300))
    items = pq.read_table(tmp_path / "lake" / "items" / "part-0.parquet").to_pydict()
    assert len(set(items["category"])) == 30 and "apparel-2" in items["category"]
    assert result["items"] == 300


def test_invalid_specs_rejected(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="price_shift"):
        generate_lake(
            tmp_path, LakeSpec(users=10, days=5, price_shift=("nope", 0.2, datetime.date(2026, 10, 1)))
        )
    with pytest.raises(ValueError):
        generate_lake(tmp_path, LakeSpec(users=10, days=5, items=10))
    with pytest.raises(ValueError):
        generate_lake(tmp_path, LakeSpec(users=0, days=5))


# --- sessions and funnel -------------------------------------------------------------------------------


def test_funnel_ordering_per_session(small: Lake) -> None:
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in small.rows():
        sessions[row["session_id"]].append(row)
    assert len(sessions) > 100
    for rows in sessions.values():
        rows.sort(key=lambda r: r["event_time"])
        assert len({r["user_id"] for r in rows}) == 1
        times = [r["event_time"] for r in rows]
        assert all(a < b for a, b in zip(times, times[1:], strict=False))  # strictly increasing
        assert times[-1] - times[0] < datetime.timedelta(hours=8)  # a few events minutes apart
        seen_views: Counter[str] = Counter()
        open_carts: Counter[str] = Counter()
        for r in rows:
            if r["event_type"] == "view":
                seen_views[r["item_id"]] += 1
            elif r["event_type"] == "add_to_cart":
                assert seen_views[r["item_id"]] > 0, "cart without an earlier view of the item"
                open_carts[r["item_id"]] += 1
            else:
                assert open_carts[r["item_id"]] > 0, "purchase without an earlier cart of the item"
                open_carts[r["item_id"]] -= 1
        assert rows[0]["event_type"] == "view"


def test_funnel_rates(medium: Lake) -> None:
    kinds = Counter(medium.events["event_type"])
    cart_rate = kinds["add_to_cart"] / kinds["view"]
    buy_rate = kinds["purchase"] / kinds["add_to_cart"]
    assert 0.08 < cart_rate < 0.22
    assert 0.3 < buy_rate < 0.6
    # Cheaper items convert better: purchased items are cheaper than viewed items on average.
    views = [
        p for k, p in zip(medium.events["event_type"], medium.events["price"], strict=True) if k == "view"
    ]
    buys = [
        p for k, p in zip(medium.events["event_type"], medium.events["price"], strict=True) if k == "purchase"
    ]
    assert np.mean(buys) < 0.95 * np.mean(views)
    # Purchases carry the price paid, i.e. the price of the cart event for the same session and item.
    cart_price = {
        (s, i): p
        for k, s, i, p in zip(
            medium.events["event_type"], medium.events["session_id"], medium.events["item_id"],
            medium.events["price"], strict=True,
        )
        if k == "add_to_cart"
    }  # fmt: skip
    for k, s, i, p in zip(
        medium.events["event_type"], medium.events["session_id"], medium.events["item_id"],
        medium.events["price"], strict=True,
    ):  # fmt: skip
        if k == "purchase":
            assert cart_price[(s, i)] == p


# --- retail realism ------------------------------------------------------------------------------------


def test_long_tail_popularity(medium: Lake) -> None:
    counts = Counter(medium.events["item_id"])
    per_item = sorted((counts.get(i, 0) for i in medium.items["item_id"]), reverse=True)
    total = sum(per_item)
    top10 = sum(per_item[: len(per_item) // 10])
    top1 = sum(per_item[: len(per_item) // 100])
    assert top10 > 0.4 * total
    assert top1 > 0.08 * total  # the top 1% of items: ~5x their fair share or more
    assert np.median(per_item) < 0.6 * total / len(per_item)  # most items get few events


def test_weekend_busier_than_weekdays(medium: Lake) -> None:
    per_day = Counter(medium.events["partition_date"])
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    assert np.mean(weekend) > 1.25 * np.mean(weekday)


def test_evening_busier_than_night(medium: Lake) -> None:
    hours = Counter(t.hour for t in medium.events["event_time"])
    assert sum(hours[h] for h in (18, 19, 20, 21)) > 4 * sum(hours[h] for h in (2, 3, 4, 5))


def test_promotions_lower_prices_and_raise_demand(small: Lake) -> None:
    ev = small.events
    promo_days: dict[str, set[datetime.date]] = defaultdict(set)
    promo_cat: dict[str, str] = {}
    for item, price, promo, day in zip(
        ev["item_id"], ev["price"], ev["promo_id"], ev["partition_date"], strict=True
    ):
        if promo is None:
            assert price == small.item_price[item]  # no price_shift: unpromoted events pay the list price
            continue
        assert price < small.item_price[item]
        assert 0.65 <= price / small.item_price[item] <= 0.91
        promo_days[promo].add(day)
        promo_cat.setdefault(promo, small.item_category[item])
        assert promo_cat[promo] == small.item_category[item]  # one promotion = one category
    assert len(promo_cat) >= 3
    # 3-7 day promotions (shorter when cut by the window end or when a small category has quiet days).
    spans = [(max(days) - min(days)).days + 1 for days in promo_days.values()]
    assert max(spans) <= 7
    assert np.median(spans) >= 3

    # The promoted category's daily event share rises during its promotion.
    per_day: Counter[datetime.date] = Counter(ev["partition_date"])
    per_day_cat: Counter[tuple[datetime.date, str]] = Counter(
        (d, small.item_category[i]) for d, i in zip(ev["partition_date"], ev["item_id"], strict=True)
    )
    on_promo = {(d, promo_cat[p]) for p, days in promo_days.items() for d in days}
    lifts = []
    for promo, days in promo_days.items():
        cat = promo_cat[promo]
        during = np.mean([per_day_cat[(d, cat)] / per_day[d] for d in days])
        outside = np.mean([per_day_cat[(d, cat)] / per_day[d] for d in per_day if (d, cat) not in on_promo])
        lifts.append(during / outside)
    assert np.mean(lifts) > 1.4
    assert np.median(lifts) > 1.2


def test_promotions_convert_better(medium: Lake) -> None:
    stats: Counter[tuple[bool, str]] = Counter(
        (p is not None, k)
        for p, k in zip(medium.events["promo_id"], medium.events["event_type"], strict=True)
    )
    promo_cart = stats[(True, "add_to_cart")] / stats[(True, "view")]
    plain_cart = stats[(False, "add_to_cart")] / stats[(False, "view")]
    assert promo_cart > 1.2 * plain_cart


def test_price_shift_raises_category_prices_from_date(tmp_path: pathlib.Path) -> None:
    from_date = datetime.date(2026, 10, 1)
    spec = LakeSpec(users=400, days=60, price_shift=("apparel", 0.2, from_date))
    lake = make_lake(tmp_path / "lake", spec)
    ratios_before, ratios_after = [], []
    ev = lake.events
    for item, price, promo, day in zip(
        ev["item_id"], ev["price"], ev["promo_id"], ev["partition_date"], strict=True
    ):
        listed = lake.item_price[item]
        if lake.item_category[item] != "apparel":
            if promo is None:
                assert price == listed
            continue
        if promo is not None:
            continue
        if day >= from_date:
            assert price == pytest.approx(listed * 1.2, abs=0.006)
            ratios_after.append(price / listed)
        else:
            assert price == listed
            ratios_before.append(price / listed)
    assert ratios_before and ratios_after
    assert np.mean(ratios_after) == pytest.approx(1.2, abs=0.01)


def test_users_activity_tiers_and_inactive_users(medium: Lake) -> None:
    per_user = Counter(medium.events["user_id"])
    ids = medium.users["user_id"]
    no_events = sum(per_user.get(u, 0) == 0 for u in ids) / len(ids)
    assert 0.01 < no_events < 0.1
    carts = Counter(
        u for u, k in zip(medium.events["user_id"], medium.events["event_type"], strict=True) if k != "view"
    )
    view_only = sum(per_user.get(u, 0) > 0 and carts.get(u, 0) == 0 for u in ids) / len(ids)
    assert view_only > 0.05
    by_tier: dict[str, list[int]] = defaultdict(list)
    for u, tier in zip(ids, medium.users["loyalty_tier"], strict=True):
        by_tier[tier].append(per_user.get(u, 0))
    means = [np.mean(by_tier[t]) for t in ("none", "bronze", "silver", "gold")]
    assert means == sorted(means) and means[3] > 3 * means[0]
    # Engagement is heavy-tailed: the top 10% users produce a large share of events.
    counts = sorted((per_user.get(u, 0) for u in ids), reverse=True)
    assert sum(counts[: len(counts) // 10]) > 0.3 * sum(counts)


def test_users_shop_few_categories(medium: Lake) -> None:
    per_user: dict[str, Counter[str]] = defaultdict(Counter)
    for u, i in zip(medium.events["user_id"], medium.events["item_id"], strict=True):
        per_user[u][medium.item_category[i]] += 1
    top3 = [
        sum(n for _, n in c.most_common(3)) / sum(c.values())
        for c in per_user.values()
        if sum(c.values()) >= 20
    ]
    assert len(top3) > 200
    assert np.mean(top3) > 0.75


def test_past_behaviour_predicts_future_purchases(medium: Lake) -> None:
    """User x category affinity and past interactions must beat popularity for future purchases."""
    cutoff = MEDIUM.end_date - datetime.timedelta(days=20)
    past_cat: dict[str, Counter[str]] = defaultdict(Counter)
    global_cat: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    future: list[tuple[str, str]] = []
    ev = medium.events
    for u, i, k, d in zip(ev["user_id"], ev["item_id"], ev["event_type"], ev["partition_date"], strict=True):
        if d < cutoff:
            past_cat[u][medium.item_category[i]] += 1
            global_cat[medium.item_category[i]] += 1
            seen.add((u, i))
        elif k == "purchase":
            future.append((u, i))
    assert len(future) > 300
    popular = {c for c, _ in global_cat.most_common(3)}
    user_hits = np.mean(
        [medium.item_category[i] in {c for c, _ in past_cat[u].most_common(3)} for u, i in future]
    )
    pop_hits = np.mean([medium.item_category[i] in popular for _, i in future])
    assert user_hits > 0.6
    assert user_hits > 2 * pop_hits
    # Re-buys / revisits: a good share of future purchases are of items the user interacted with before.
    assert np.mean([(u, i) in seen for u, i in future]) > 0.3


def test_total_events_close_to_rate(medium: Lake) -> None:
    expected = MEDIUM.users * MEDIUM.days * MEDIUM.events_per_user_day
    assert abs(medium.result["events"] - expected) < 0.1 * expected
