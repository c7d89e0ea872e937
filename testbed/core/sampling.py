"""Deterministic sampling shared by every engine.

A user's uniform draw is the first 13 hex digits (52 bits) of MD5(UTF-8 of `seed:user_id`) divided by 2^52,
so Athena (Trino), DuckDB and Python compute the same double exactly (see FIELD-NOTES). A user is in the
sample iff draw < inclusion probability, except for `stratified`, which takes the ceil(rate * N_h) users with
the smallest draws in each stratum (at least one), so every stratum is hit.
"""

from __future__ import annotations

import hashlib

TWO_POW_52 = 4503599627370496  # 2**52
REVENUE_FLOOR_SHARE = 0.1  # revenue_weighted: zero-revenue users keep rate * 0.1 so they stay representable
HEAD_RATE_MULTIPLIER = 5.0  # head_tail: default heavy-user rate = min(1, 5 * rate)


def uniform_draw(seed: int, user_id: str) -> float:
    """The user's draw in [0, 1): int(md5(f"{seed}:{user_id}")[:13], 16) / 2**52."""
    digest = hashlib.md5(f"{seed}:{user_id}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:13], 16) / TWO_POW_52


def uniform_draw_sql(seed: int, user_column: str) -> str:
    """The same draw as Trino SQL. `seed` is a validated int, so rendering it is safe."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("seed must be an int")
    return (f"CAST(from_base(substr(to_hex(md5(to_utf8('{seed}:' || {user_column}))), 1, 13), 16) AS DOUBLE)"
            f" / {TWO_POW_52}.0")


def head_rate(rate: float, head_rate_override: float | None) -> float:
    return head_rate_override if head_rate_override is not None else min(1.0, HEAD_RATE_MULTIPLIER * rate)
