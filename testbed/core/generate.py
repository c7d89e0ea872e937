"""Seeded, byte-reproducible synthetic retail data lake generator.

The lake follows the project's lake contract::

    <out_dir>/events/event_date=YYYY-MM-DD/part-0.parquet   (one file per day with events)
    <out_dir>/users/part-0.parquet
    <out_dir>/items/part-0.parquet

Everything is drawn from a single ``numpy.random.Generator`` seeded from ``LakeSpec.seed`` and the
simulation is fully vectorised (no per-event Python loops), so the same spec always yields
byte-identical files and ~1M events take a few seconds.

Behavioural model (all knobs are the module-level ``_`` constants below):

* catalogue: ``categories`` named categories with a category-specific log-normal list price; item
  popularity is Zipf-like (exponent ``_ZIPF_EXPONENT``) over a random permutation inside each category;
* users: log-normal engagement, loyalty tier correlated with engagement, Dirichlet category
  preferences with a small concentration (each user mostly shops 2-4 categories), a few dormant users
  (no events) and view-only users, some users signing up inside the window;
* sessions: Poisson number of sessions per user spread over days with a weekly profile (weekends
  busier) and an hour-of-day profile (evenings busier); each session browses one category (plus some
  wandering), and part of the views revisit items from the user's own earlier sessions;
* funnel: view -> add_to_cart (same session, same item, shortly after the view) -> purchase (at the
  checkout at the end of the session), with conversion higher for cheaper items, promoted items,
  revisited items and higher loyalty tiers;
* promotions: a deterministic schedule (every ~2 weeks 1-3 categories get 10-30% off for 3-7 days);
  promoted categories attract more sessions and convert better;
* optional ``price_shift`` multiplies one category's paid prices from a date on.
"""

from __future__ import annotations

import datetime
import pathlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
FileCallback = Callable[[int, int], None]  # (event files written, event files to write)

__all__ = ["LakeSpec", "generate_lake"]

_EPOCH = datetime.date(1970, 1, 1)
_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000
_PARQUET_COMPRESSION = "zstd"

# --- catalogue -------------------------------------------------------------------------------------
_CATEGORY_NAMES = (
    "apparel", "footwear", "home", "beauty", "electronics", "grocery", "toys", "sports",
    "books", "garden", "jewelry", "kitchen", "pet", "automotive", "office", "health",
    "baby", "outdoor", "music", "furniture", "tools", "crafts", "luggage", "gaming",
)  # fmt: skip
_BRAND_PREFIXES = (
    "Nor", "Vel", "Ast", "Bri", "Cal", "Dun", "Eli", "Fen", "Gal", "Hal", "Iso", "Jun", "Kor", "Lum",
    "Mar", "Nex", "Orb", "Pax", "Quin", "Ros", "Sol", "Tav", "Ul", "Ver", "Wyn", "Xan", "Yor", "Zel",
)  # fmt: skip
_BRAND_SUFFIXES = ("ora", "ix", "en", "ia", "o", "ex", "is", "um", "ar", "io", "wick", "line")
_BRANDS_PER_CATEGORY = 6
_ZIPF_EXPONENT = 1.1  # item popularity inside a category: weight = rank ** -exponent
_CATEGORY_MEDIAN_PRICE = (6.0, 220.0)  # log-uniform range of category median list prices
_CATEGORY_PRICE_SIGMA = (0.35, 0.75)  # log-normal sigma range of list prices inside a category
_MIN_PRICE = 0.99

# --- users -----------------------------------------------------------------------------------------
_FIRST_NAMES = (
    "anna", "ben", "carla", "david", "emma", "felix", "grace", "hugo", "ines", "jack", "kate", "liam",
    "maria", "noah", "olivia", "paul", "quinn", "rosa", "sam", "tara", "umar", "vera", "will", "xena",
    "yusuf", "zoe", "leo", "mia", "omar", "nina",
)  # fmt: skip
_LAST_NAMES = (
    "smith", "jones", "brown", "taylor", "wilson", "davies", "evans", "thomas", "johnson", "roberts",
    "walker", "wright", "robinson", "thompson", "white", "hughes", "edwards", "green", "hall", "wood",
    "harris", "martin", "jackson", "clarke", "lewis", "young", "king", "baker", "moore", "allen",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
_REGIONS = ("north", "south", "east", "west", "central")
_REGION_SHARES = (0.22, 0.21, 0.19, 0.20, 0.18)
_TIERS = ("none", "bronze", "silver", "gold")
_TIER_SHARES = (0.58, 0.24, 0.12, 0.06)
_TIER_CONVERSION = (1.0, 1.08, 1.18, 1.3)  # multiplier on cart / purchase probabilities
_TIER_PRIOR_ORDERS = (1.0, 1.6, 2.4, 3.5)
_ACTIVITY_SIGMA = 0.9  # log-normal engagement
_ACTIVITY_CAP = 15.0  # cap on engagement relative to the mean
_TIER_NOISE = 0.6  # noise added to log-engagement before ranking users into tiers
_USER_PREF_CONCENTRATION = 2.0  # total Dirichlet concentration of a user's category preferences
_DORMANT_SHARE = 0.012  # users with no events at all (on top of naturally inactive ones)
_VIEW_ONLY_SHARE = 0.08  # users that never add to cart (only among "none"/"bronze" tiers)
_NEW_USER_SHARE = 0.08  # users signing up inside the window (no events before signup, 0 prior orders)
_PRIOR_ZERO_SHARE = 0.12  # established users that still never ordered before the window
_SIGNUP_AGE_MEAN_DAYS = 420.0
_SIGNUP_AGE_MAX_DAYS = 3650

# --- sessions and funnel ---------------------------------------------------------------------------
_DOW_WEIGHTS = (0.92, 0.90, 0.92, 0.97, 1.06, 1.42, 1.36)  # Monday .. Sunday
_DAY_NOISE_SIGMA = 0.06
_HOUR_WEIGHTS = (
    0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.55, 0.80, 0.90, 0.95, 1.00,
    1.10, 1.05, 0.95, 0.95, 1.00, 1.10, 1.35, 1.60, 1.75, 1.60, 1.15, 0.60,
)  # fmt: skip
_MEAN_EXTRA_VIEWS = 2.2  # views per session = 1 + Poisson(this), capped
_MAX_VIEWS_PER_SESSION = 30
_VIEW_GAP_MS = (5_000, 70_000, 600_000)  # minimum, exponential mean, cap of gaps between views
_CHECKOUT_GAP_MS = (15_000, 45_000, 300_000)  # gap between the last view and the checkout
_PURCHASE_STEP_MS = 1_500  # purchases at checkout are this far apart (plus < 1 s jitter)
_WANDER_SHARE = 0.15  # views drawn from a fresh category (user preferences) instead of the session's
_REVISIT_SHARE = 0.25  # views (of users with earlier sessions) re-viewing an item from their history
_CART_BASE = 0.11
_BUY_BASE = 0.38
_CART_MAX = 0.7
_BUY_MAX = 0.9
_PRICE_ELASTICITY = 0.35  # conversion factor = (paid / category median) ** -elasticity, clipped
_PRICE_FACTOR_CLIP = (0.5, 1.8)
_PROMO_CART_LIFT = 1.5
_PROMO_BUY_LIFT = 1.3
_REVISIT_CART_LIFT = 1.6
_EXTRA_QUANTITY_P = 0.12  # quantity = 1 + Binomial(2, p * price_factor ** 1.5)
_EVENTS_PER_SESSION = 3.83  # calibration: mean events (views + carts + purchases) per session

# --- promotions ------------------------------------------------------------------------------------
_PROMO_DISCOUNTS = (0.10, 0.15, 0.20, 0.25, 0.30)
_PROMO_FIRST_DAY = (2, 9)  # integers(low, high)
_PROMO_EVERY_DAYS = (11, 18)
_PROMO_DURATION_DAYS = (3, 8)
_PROMO_CATEGORIES = (1, 4)
_PROMO_PULL_PER_CATEGORY = 0.06  # share of a day's sessions redirected to each promoted category
_PROMO_PULL_MAX = 0.35


@dataclass(frozen=True)
class LakeSpec:
    """What to generate. Events cover ``[end_date - days, end_date)``."""

    users: int = 5000
    days: int = 180
    seed: int = 7
    end_date: datetime.date = datetime.date(2026, 10, 31)
    items: int | None = None  # default: max(500, users // 4)
    categories: int = 24
    events_per_user_day: float = 0.35
    price_shift: tuple[str, float, datetime.date] | None = None  # (category, fraction, from_date)


@dataclass(frozen=True)
class _Catalogue:
    item_num: IntArray  # SKU number per item
    item_cat: IntArray
    price: FloatArray  # list price
    brand: IntArray  # index into brand_names
    brand_names: list[str]
    launch_day: IntArray  # epoch day
    category_names: list[str]
    category_median: FloatArray
    category_pop: FloatArray
    table_items: IntArray  # items ordered by (category, popularity rank)
    table_keys: FloatArray  # category + within-category cumulative popularity


@dataclass(frozen=True)
class _Users:
    user_num: IntArray
    email_first: IntArray
    email_last: IntArray
    email_num: IntArray
    email_domain: IntArray
    tier: IntArray
    region: IntArray
    signup_day: IntArray  # epoch day
    signup_idx: IntArray  # first window day index the user can be active on
    prior_orders: IntArray
    activity: FloatArray
    view_only: BoolArray
    pref_keys: FloatArray  # flattened user + cumulative category preference


@dataclass(frozen=True)
class _Promotions:
    promo_of: IntArray  # (days, categories): promotion index or -1
    discount: FloatArray  # per promotion


@dataclass(frozen=True)
class _Events:
    time_ms: IntArray
    user: IntArray
    item: IntArray
    kind: IntArray  # 0 view, 1 add_to_cart, 2 purchase
    session: IntArray  # session number (ordered by session start)
    quantity: IntArray
    price: FloatArray
    promo: IntArray  # promotion index or -1


def generate_lake(out_dir: pathlib.Path, spec: LakeSpec, on_file: FileCallback | None = None) -> dict[str, int]:
    """Generate the synthetic lake under ``out_dir``; return counts of users, items, events, days, files.
    ``on_file`` hears (event files written, event files to write) after each day's file.

    The generator owns ``out_dir/events``, ``out_dir/users`` and ``out_dir/items``: if they exist they are
    replaced, so regenerating in place never leaves stale partitions behind. Nothing else is touched.
    """
    _validate(spec)
    out_dir = pathlib.Path(out_dir)
    n_items = spec.items if spec.items is not None else max(500, spec.users // 4)
    start_date = spec.end_date - datetime.timedelta(days=spec.days)
    start_epoch = (start_date - _EPOCH).days

    rng = np.random.default_rng(spec.seed)
    catalogue = _build_catalogue(rng, spec.categories, n_items, start_epoch)
    users = _build_users(rng, spec, catalogue.category_pop, start_epoch)
    promotions = _build_promotions(rng, spec.days, spec.categories)
    shift_cat, shift_fraction, shift_day = -1, 0.0, spec.days
    if spec.price_shift is not None:
        name, shift_fraction, from_date = spec.price_shift
        shift_cat = catalogue.category_names.index(name)
        shift_day = (from_date - start_date).days
    events = _simulate(
        rng,
        spec,
        catalogue=catalogue,
        users=users,
        promotions=promotions,
        start_epoch=start_epoch,
        shift=(shift_cat, float(shift_fraction), shift_day),
    )

    for sub in ("events", "users", "items"):
        if (out_dir / sub).exists():
            shutil.rmtree(out_dir / sub)
    n_event_files = _write_events(
        out_dir / "events", events, catalogue=catalogue, users=users, start_epoch=start_epoch, days=spec.days,
        on_file=on_file,
    )
    _write_users(out_dir / "users", users)
    _write_items(out_dir / "items", catalogue)
    return {
        "users": spec.users,
        "items": n_items,
        "events": len(events.time_ms),
        "days": spec.days,
        "files": n_event_files + 2,
    }


def _validate(spec: LakeSpec) -> None:
    n_items = spec.items if spec.items is not None else max(500, spec.users // 4)
    if spec.users < 1 or spec.days < 1 or spec.categories < 1:
        raise ValueError("users, days and categories must be >= 1")
    if spec.users > 9_000_000:
        raise ValueError("at most 9,000,000 users (7-digit customer numbers)")
    if not spec.categories <= n_items <= 900_000:
        raise ValueError("items must be between the number of categories and 900,000 (6-digit SKUs)")
    if not spec.events_per_user_day >= 0:
        raise ValueError("events_per_user_day must be >= 0")
    if spec.price_shift is not None:
        name, fraction, _ = spec.price_shift
        if name not in category_names(spec.categories):
            raise ValueError(f"price_shift category {name!r} is not one of the generated categories")
        if not fraction > -1:
            raise ValueError("price_shift fraction must be > -1")


def category_names(n: int) -> list[str]:
    """The names of the first `n` generated categories (what a price shift may name)."""
    base = len(_CATEGORY_NAMES)
    return [_CATEGORY_NAMES[i % base] + (f"-{i // base + 1}" if i >= base else "") for i in range(n)]


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    pool = [p + s for p in _BRAND_PREFIXES for s in _BRAND_SUFFIXES]
    picks = rng.permutation(len(pool))
    return [
        pool[int(picks[i % len(pool)])] + (f" {i // len(pool) + 1}" if i >= len(pool) else "")
        for i in range(n)
    ]


def _normalised_gamma(rng: np.random.Generator, alpha: FloatArray) -> FloatArray:
    """Dirichlet draws along the last axis, robust to tiny concentrations."""
    g = rng.standard_gamma(alpha)
    total = g.sum(axis=-1, keepdims=True)
    fallback = np.full_like(g, 1.0 / g.shape[-1])
    return np.where(total > 0, g / np.where(total > 0, total, 1.0), fallback)


def _build_catalogue(rng: np.random.Generator, n_cats: int, n_items: int, start_epoch: int) -> _Catalogue:
    category_pop = _normalised_gamma(rng, np.full(n_cats, 3.0))
    size_share = 0.5 * category_pop + 0.5 / n_cats
    item_cat = np.concatenate(
        [np.arange(n_cats), rng.choice(n_cats, size=n_items - n_cats, p=size_share)]
    ).astype(np.int64)
    lo, hi = np.log(_CATEGORY_MEDIAN_PRICE[0]), np.log(_CATEGORY_MEDIAN_PRICE[1])
    category_median = np.exp(rng.uniform(lo, hi, n_cats))
    category_sigma = rng.uniform(*_CATEGORY_PRICE_SIGMA, n_cats)
    raw = category_median[item_cat] * np.exp(category_sigma[item_cat] * rng.standard_normal(n_items))
    price = np.round(np.maximum(raw, _MIN_PRICE), 2)

    # Zipf popularity over a random permutation inside each category.
    table_items = np.lexsort((rng.random(n_items), item_cat)).astype(np.int64)
    table_cat = item_cat[table_items]
    counts = np.bincount(table_cat, minlength=n_cats)
    group_start = np.cumsum(counts) - counts
    rank = np.arange(n_items) - group_start[table_cat]
    weight = (rank + 1.0) ** -_ZIPF_EXPONENT
    csum = np.cumsum(weight)
    before = (csum - weight)[group_start]  # cumulative weight before each category
    total = np.bincount(table_cat, weights=weight, minlength=n_cats)
    cdf = (csum - before[table_cat]) / total[table_cat]
    cdf[group_start + counts - 1] = 1.0
    table_keys = table_cat + cdf

    brand_names = _brand_names(rng, n_cats * _BRANDS_PER_CATEGORY)
    brand_w = 1.0 / np.arange(1, _BRANDS_PER_CATEGORY + 1)
    brand = item_cat * _BRANDS_PER_CATEGORY + rng.choice(
        _BRANDS_PER_CATEGORY, n_items, p=brand_w / brand_w.sum()
    )
    launch_age = 30 + np.minimum(rng.exponential(365.0, n_items), 3000).astype(np.int64)
    item_num = rng.choice(900_000, size=n_items, replace=False).astype(np.int64) + 100_000
    return _Catalogue(
        item_num=item_num,
        item_cat=item_cat,
        price=price,
        brand=brand.astype(np.int64),
        brand_names=brand_names,
        launch_day=start_epoch - launch_age,
        category_names=category_names(n_cats),
        category_median=category_median,
        category_pop=category_pop,
        table_items=table_items,
        table_keys=table_keys,
    )


def _build_users(
    rng: np.random.Generator, spec: LakeSpec, category_pop: FloatArray, start_epoch: int
) -> _Users:
    n = spec.users
    n_cats = len(category_pop)
    activity = np.exp(_ACTIVITY_SIGMA * rng.standard_normal(n))
    activity = np.minimum(activity / activity.mean(), _ACTIVITY_CAP)
    score = np.log(activity) + _TIER_NOISE * rng.standard_normal(n)
    quantile = np.empty(n)
    quantile[np.argsort(score, kind="stable")] = (np.arange(n) + 0.5) / n
    # Lowest scores -> "none", highest -> "gold".
    tier = np.searchsorted(np.cumsum(_TIER_SHARES), quantile, side="right").astype(np.int64)
    tier = np.minimum(tier, len(_TIERS) - 1)
    activity = np.where(rng.random(n) < _DORMANT_SHARE, 0.0, activity)
    view_only = (rng.random(n) < _VIEW_ONLY_SHARE / sum(_TIER_SHARES[:2])) & (tier <= 1)

    new_user = rng.random(n) < _NEW_USER_SHARE
    window_signup = rng.integers(0, spec.days, n)
    age = 1 + np.minimum(rng.exponential(_SIGNUP_AGE_MEAN_DAYS, n), _SIGNUP_AGE_MAX_DAYS).astype(np.int64)
    signup_day = np.where(new_user, start_epoch + window_signup, start_epoch - age)
    signup_idx = np.where(new_user, window_signup, 0)

    tier_orders = np.asarray(_TIER_PRIOR_ORDERS)[tier]
    prior = 1 + rng.poisson(np.minimum(1.2 * np.sqrt(activity + 0.05) * tier_orders, 30.0))
    prior = np.where(new_user | (rng.random(n) < _PRIOR_ZERO_SHARE), 0, prior)

    alpha = _USER_PREF_CONCENTRATION * np.broadcast_to(category_pop, (n, n_cats))
    prefs = _normalised_gamma(rng, np.ascontiguousarray(alpha))
    cum = np.cumsum(prefs, axis=1)
    cum[:, -1] = 1.0
    pref_keys = (np.arange(n, dtype=np.float64)[:, None] + cum).ravel()

    region = rng.choice(len(_REGIONS), n, p=np.asarray(_REGION_SHARES) / sum(_REGION_SHARES))
    user_num = rng.choice(9_000_000, size=n, replace=False).astype(np.int64) + 1_000_000
    email_num = rng.choice(max(1000, 10 * n), size=n, replace=False).astype(np.int64)
    return _Users(
        user_num=user_num,
        email_first=rng.integers(0, len(_FIRST_NAMES), n),
        email_last=rng.integers(0, len(_LAST_NAMES), n),
        email_num=email_num,
        email_domain=rng.integers(0, len(_EMAIL_DOMAINS), n),
        tier=tier,
        region=region.astype(np.int64),
        signup_day=signup_day.astype(np.int64),
        signup_idx=signup_idx.astype(np.int64),
        prior_orders=prior.astype(np.int64),
        activity=activity,
        view_only=view_only,
        pref_keys=pref_keys,
    )


def _build_promotions(rng: np.random.Generator, days: int, n_cats: int) -> _Promotions:
    promo_of = np.full((days, n_cats), -1, dtype=np.int64)
    discounts: list[float] = []
    day = int(rng.integers(*_PROMO_FIRST_DAY))
    while day < days:  # loop over promotion campaigns (a handful), not events
        n_promo_cats = min(int(rng.integers(*_PROMO_CATEGORIES)), n_cats)
        cats = rng.choice(n_cats, size=n_promo_cats, replace=False)
        duration = int(rng.integers(*_PROMO_DURATION_DAYS))
        for cat in np.sort(cats):
            promo_of[day : day + duration, cat] = len(discounts)
            discounts.append(float(rng.choice(_PROMO_DISCOUNTS)))
        day += int(rng.integers(*_PROMO_EVERY_DAYS))
    return _Promotions(promo_of=promo_of, discount=np.asarray(discounts, dtype=np.float64))


def _draw_rows(keys: FloatArray, width: int, rows: IntArray, u: FloatArray) -> IntArray:
    """Inverse-CDF draw of a column per row from flattened ``row + cumulative`` keys."""
    pos = np.searchsorted(keys, rows + np.minimum(u, 1.0 - 1e-9), side="right")
    cols: IntArray = np.clip(pos - rows * width, 0, width - 1).astype(np.int64)
    return cols


def _draw_items(catalogue: _Catalogue, cat: IntArray, u: FloatArray) -> IntArray:
    pos = np.searchsorted(catalogue.table_keys, cat + np.minimum(u, 1.0 - 1e-9), side="right")
    items: IntArray = catalogue.table_items[np.minimum(pos, len(catalogue.table_items) - 1)]
    return items


def _capped_gaps(rng: np.random.Generator, spec_ms: tuple[int, int, int], n: int) -> IntArray:
    low, mean, cap = spec_ms
    return (low + np.minimum(rng.exponential(mean, n), cap)).astype(np.int64)


def _group_starts(counts: IntArray) -> IntArray:
    return np.cumsum(counts) - counts


def _simulate(
    rng: np.random.Generator,
    spec: LakeSpec,
    *,
    catalogue: _Catalogue,
    users: _Users,
    promotions: _Promotions,
    start_epoch: int,
    shift: tuple[int, float, int],
) -> _Events:
    n_users, days = spec.users, spec.days
    n_cats = len(catalogue.category_names)

    # --- sessions per user, spread over days with a weekly profile -----------------------------------
    dow = (np.arange(days) + (start_epoch + 3)) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    day_w = np.asarray(_DOW_WEIGHTS)[dow] * np.exp(_DAY_NOISE_SIGMA * rng.standard_normal(days))
    wcum = np.cumsum(day_w)
    w_before = np.concatenate(([0.0], wcum))[users.signup_idx]
    exposure = users.activity * (wcum[-1] - w_before)
    target_sessions = n_users * days * spec.events_per_user_day / _EVENTS_PER_SESSION
    scale = target_sessions / exposure.sum() if exposure.sum() > 0 else 0.0
    n_sess_user = rng.poisson(exposure * scale)
    n_sess = int(n_sess_user.sum())
    sess_user = np.repeat(np.arange(n_users, dtype=np.int64), n_sess_user)
    lo = w_before[sess_user]
    sess_day = np.searchsorted(wcum, lo + rng.random(n_sess) * (wcum[-1] - lo), side="right")
    sess_day = np.minimum(sess_day, days - 1).astype(np.int64)

    # --- views per session and their timing offsets -----------------------------------------------
    n_views = np.minimum(1 + rng.poisson(_MEAN_EXTRA_VIEWS, n_sess), _MAX_VIEWS_PER_SESSION).astype(np.int64)
    n_v = int(n_views.sum())
    first_view = _group_starts(n_views)
    view_sess = np.repeat(np.arange(n_sess, dtype=np.int64), n_views)
    gaps = _capped_gaps(rng, _VIEW_GAP_MS, n_v)
    gaps[first_view] = 0
    csum = np.cumsum(gaps)
    view_off = csum - csum[first_view][view_sess]
    tail = _capped_gaps(rng, _CHECKOUT_GAP_MS, n_sess)
    last_view = first_view + n_views - 1
    next_gap = np.empty(n_v, dtype=np.int64)
    next_gap[:-1] = gaps[1:]
    next_gap[last_view] = tail
    duration = view_off[last_view] + tail + n_views * _PURCHASE_STEP_MS

    hour_cdf = np.cumsum(_HOUR_WEIGHTS) / np.sum(_HOUR_WEIGHTS)
    hour = np.minimum(np.searchsorted(hour_cdf, rng.random(n_sess), side="right"), 23)
    in_day = hour * _MS_PER_HOUR + rng.integers(0, _MS_PER_HOUR, n_sess)
    in_day = np.minimum(in_day, _MS_PER_DAY - 1 - duration)  # sessions never cross midnight
    sess_start = (start_epoch + sess_day) * _MS_PER_DAY + in_day

    # Reorder sessions (and their views) by (user, start) so "earlier sessions" are earlier in time.
    order = np.lexsort((sess_start, sess_user))
    new_first = _group_starts(n_views[order])
    view_perm = np.repeat(first_view[order] - new_first, n_views[order]) + np.arange(n_v)
    sess_user, sess_day, sess_start = sess_user[order], sess_day[order], sess_start[order]
    n_views, tail, last_off = n_views[order], tail[order], view_off[last_view][order]
    view_off, next_gap = view_off[view_perm], next_gap[view_perm]
    first_view = new_first
    view_sess = np.repeat(np.arange(n_sess, dtype=np.int64), n_views)

    # --- session category: user preferences, pulled towards promoted categories ---------------------
    sess_cat = _draw_rows(users.pref_keys, n_cats, sess_user, rng.random(n_sess))
    active = promotions.promo_of >= 0
    n_active = active.sum(axis=1)
    active_sorted = np.argsort(~active, axis=1, kind="stable")
    s_active = n_active[sess_day]
    pulled = rng.random(n_sess) < np.minimum(_PROMO_PULL_PER_CATEGORY * s_active, _PROMO_PULL_MAX)
    pick = np.minimum((rng.random(n_sess) * s_active).astype(np.int64), np.maximum(s_active - 1, 0))
    sess_cat = np.where(pulled, active_sorted[sess_day, pick], sess_cat)

    # --- items viewed: Zipf inside the category, some wandering, revisits of own history -----------
    view_user = sess_user[view_sess]
    view_day = sess_day[view_sess]
    wander = rng.random(n_v) < _WANDER_SHARE
    fresh_cat = _draw_rows(users.pref_keys, n_cats, view_user, rng.random(n_v))
    view_cat = np.where(wander, fresh_cat, sess_cat[view_sess])
    drawn = _draw_items(catalogue, view_cat, rng.random(n_v))
    user_first = np.searchsorted(view_user, np.arange(n_users), side="left")[view_user]
    sess_first = first_view[view_sess]
    revisit = (sess_first > user_first) & (rng.random(n_v) < _REVISIT_SHARE)
    src = user_first + (np.sqrt(rng.random(n_v)) * (sess_first - user_first)).astype(np.int64)
    pointer = np.arange(n_v, dtype=np.int64)
    pointer[revisit] = np.minimum(src, sess_first - 1)[revisit]
    for _ in range(64):  # pointer jumping (sources are strictly earlier): O(log chain length) passes
        nxt = pointer[pointer]
        if np.array_equal(nxt, pointer):
            break
        pointer = nxt
    item = drawn[pointer]

    # --- prices paid and the funnel ----------------------------------------------------------------
    cat = catalogue.item_cat[item]
    promo = promotions.promo_of[view_day, cat]
    on_promo = promo >= 0
    discount = np.append(promotions.discount, 0.0)[promo]  # promo == -1 -> the trailing 0.0
    shift_cat, shift_fraction, shift_day = shift
    multiplier = np.where((cat == shift_cat) & (view_day >= shift_day), 1.0 + shift_fraction, 1.0)
    paid = np.maximum(np.round(catalogue.price[item] * (1.0 - discount) * multiplier, 2), 0.01)

    price_factor = np.clip((paid / catalogue.category_median[cat]) ** -_PRICE_ELASTICITY, *_PRICE_FACTOR_CLIP)
    tier_conv = np.asarray(_TIER_CONVERSION)[users.tier[view_user]]
    p_cart = _CART_BASE * tier_conv * price_factor
    p_cart *= np.where(on_promo, _PROMO_CART_LIFT, 1.0) * np.where(revisit, _REVISIT_CART_LIFT, 1.0)
    p_cart = np.where(users.view_only[view_user], 0.0, np.minimum(p_cart, _CART_MAX))
    p_buy = _BUY_BASE * tier_conv * np.sqrt(price_factor) * np.where(on_promo, _PROMO_BUY_LIFT, 1.0)
    cart = rng.random(n_v) < p_cart
    buy = cart & (rng.random(n_v) < np.minimum(p_buy, _BUY_MAX))
    quantity = 1 + rng.binomial(2, np.minimum(_EXTRA_QUANTITY_P * price_factor**1.5, 0.5))
    cart_off = view_off + (next_gap * rng.uniform(0.2, 0.8, n_v)).astype(np.int64)

    # --- assemble views, carts (right after their view) and purchases (at checkout) ---------------
    view_time = sess_start[view_sess] + view_off
    cart_idx = np.flatnonzero(cart)
    buy_idx = np.flatnonzero(buy)
    buy_sess = view_sess[buy_idx]
    buy_rank = np.arange(len(buy_idx)) - np.searchsorted(buy_sess, buy_sess, side="left")
    buy_time = (
        sess_start[buy_sess] + last_off[buy_sess] + tail[buy_sess]
        + buy_rank * _PURCHASE_STEP_MS + rng.integers(0, 1000, len(buy_idx))
    )  # fmt: skip
    src_view = np.concatenate((np.arange(n_v), cart_idx, buy_idx))
    kind = np.repeat(np.arange(3, dtype=np.int64), (n_v, len(cart_idx), len(buy_idx)))
    time_ms = np.concatenate((view_time, sess_start[view_sess[cart_idx]] + cart_off[cart_idx], buy_time))
    qty = np.where(kind == 0, 1, quantity[src_view])

    # Session numbers follow session start time; events are ordered by time (ties: generation order).
    sess_number = np.empty(n_sess, dtype=np.int64)
    sess_number[np.argsort(sess_start, kind="stable")] = np.arange(n_sess)
    ev_order = np.argsort(time_ms, kind="stable")
    src_view = src_view[ev_order]
    return _Events(
        time_ms=time_ms[ev_order].astype(np.int64),
        user=view_user[src_view],
        item=item[src_view],
        kind=kind[ev_order],
        session=sess_number[view_sess[src_view]],
        quantity=qty[ev_order].astype(np.int64),
        price=paid[src_view],
        promo=promo[src_view],
    )


def _prefixed(prefix: str, numbers: IntArray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _strings(values: list[str] | tuple[str, ...]) -> pa.Array:
    return pa.array(list(values), type=pa.string())


def _write(table: pa.Table, directory: pathlib.Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(directory / "part-0.parquet"), compression=_PARQUET_COMPRESSION)


def _write_events(
    root: pathlib.Path, events: _Events, *, catalogue: _Catalogue, users: _Users, start_epoch: int, days: int,
    on_file: FileCallback | None,
) -> int:
    n = len(events.time_ms)
    promo_idx = pa.array(np.maximum(events.promo, 0), mask=events.promo < 0, type=pa.int64())
    n_promos = int(events.promo.max()) + 1 if n and events.promo.max() >= 0 else 0
    table = pa.table(
        {
            "event_id": _prefixed("ev-", np.arange(1, n + 1, dtype=np.int64), 10),
            "event_time": pa.array(events.time_ms, type=pa.timestamp("ms", tz="UTC")),
            "user_id": _prefixed("C", users.user_num, 7).take(pa.array(events.user)),
            "item_id": _prefixed("SKU-", catalogue.item_num, 6).take(pa.array(events.item)),
            "event_type": _strings(("view", "add_to_cart", "purchase")).take(pa.array(events.kind)),
            "session_id": _prefixed("sess-", events.session + 1, 9),
            "quantity": pa.array(events.quantity.astype(np.int32), type=pa.int32()),
            "price": pa.array(events.price, type=pa.float64()),
            "promo_id": _prefixed("PROMO-", np.arange(1, n_promos + 1, dtype=np.int64), 4).take(promo_idx),
        }
    )
    day = events.time_ms // _MS_PER_DAY - start_epoch
    counts = np.bincount(day, minlength=days)
    offsets = _group_starts(counts)
    root.mkdir(parents=True, exist_ok=True)
    files, days_with_events = 0, np.flatnonzero(counts)
    for d in days_with_events:  # one file per day
        date = _EPOCH + datetime.timedelta(days=start_epoch + int(d))
        _write(table.slice(int(offsets[d]), int(counts[d])), root / f"event_date={date.isoformat()}")
        files += 1
        if on_file is not None:
            on_file(files, len(days_with_events))
    return files


def _write_users(root: pathlib.Path, users: _Users) -> None:
    order = pa.array(np.argsort(users.user_num, kind="stable"))
    email = pc.binary_join_element_wise(
        _strings(_FIRST_NAMES).take(pa.array(users.email_first)),
        ".",
        _strings(_LAST_NAMES).take(pa.array(users.email_last)),
        pc.cast(pa.array(users.email_num), pa.string()),
        "@",
        _strings(_EMAIL_DOMAINS).take(pa.array(users.email_domain)),
        "",
    )
    table = pa.table(
        {
            "user_id": _prefixed("C", users.user_num, 7),
            "email": email,
            "loyalty_tier": _strings(_TIERS).take(pa.array(users.tier)),
            "signup_date": pa.array(users.signup_day.astype(np.int32), type=pa.date32()),
            "region": _strings(_REGIONS).take(pa.array(users.region)),
            "prior_orders": pa.array(users.prior_orders.astype(np.int32), type=pa.int32()),
        }
    )
    _write(table.take(order), root)


def _write_items(root: pathlib.Path, catalogue: _Catalogue) -> None:
    order = pa.array(np.argsort(catalogue.item_num, kind="stable"))
    table = pa.table(
        {
            "item_id": _prefixed("SKU-", catalogue.item_num, 6),
            "category": _strings(catalogue.category_names).take(pa.array(catalogue.item_cat)),
            "price": pa.array(catalogue.price, type=pa.float64()),
            "brand": _strings(catalogue.brand_names).take(pa.array(catalogue.brand)),
            "launch_date": pa.array(catalogue.launch_day.astype(np.int32), type=pa.date32()),
        }
    )
    _write(table.take(order), root)
