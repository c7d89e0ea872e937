"""The sampling draw is identical in Python and in the SQL that DuckDB (and Athena) run."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from testbed.adapters.duckdb_engine import to_duckdb
from testbed.core.sampling import TWO_POW_52, uniform_draw, uniform_draw_sql


def _ids() -> list[str]:
    rng = np.random.default_rng(5)
    tricky = ["", "a", "O'Brien", 'quote"d', "tab\there", "Zoë", "名前", "emoji🙂", "x'; DROP TABLE users; --", " "]
    return tricky + [f"C{int(v):07d}-{rng.integers(0, 999)}" for v in rng.integers(0, 10**7, 10_000)]


def test_python_draw_matches_the_md5_definition() -> None:
    # md5("3:abc") = 8f3b5a0b9b0c9a8f...; the draw is the first 13 hex digits over 2**52.
    import hashlib

    digest = hashlib.md5(b"3:abc").hexdigest()
    assert uniform_draw(3, "abc") == int(digest[:13], 16) / TWO_POW_52
    assert 0.0 <= uniform_draw(3, "abc") < 1.0


def test_duckdb_and_python_draws_agree_exactly() -> None:
    import duckdb

    ids = _ids()
    con = duckdb.connect()
    con.execute("CREATE MACRO from_base(s, b) AS CAST('0x' || s AS BIGINT)")
    con.register("ids", pa.table({"user_id": ids}))
    sql = to_duckdb(f"SELECT user_id, {uniform_draw_sql(17, 'user_id')} AS draw FROM ids")
    rows = con.execute(sql).fetchall()
    mismatches = [(u, d) for u, d in rows if d != uniform_draw(17, u)]
    assert len(rows) == len(ids)
    assert mismatches == []


def test_draws_are_uniform_and_seed_dependent() -> None:
    ids = [f"user-{i}" for i in range(20_000)]
    a = np.array([uniform_draw(1, u) for u in ids])
    b = np.array([uniform_draw(2, u) for u in ids])
    assert abs(a.mean() - 0.5) < 0.01
    assert abs((a < 0.1).mean() - 0.1) < 0.01
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(0.0, abs=0.03)


def test_seed_must_be_an_int() -> None:
    with pytest.raises(ValueError):
        uniform_draw_sql("1; DROP", "user_id")  # type: ignore[arg-type]
