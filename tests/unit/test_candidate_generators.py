"""The built-in candidate stage as declared generators with quotas (testbed.core.ranking_data Generator,
RankingSession.candidates), item-to-item co-occurrence by hand, and the manifest's refusals."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from testbed.core.ranking_data import SOURCE_STRIDE, SOURCES, Generator, default_generators
from testbed.core.ranking_session import RankingSession
from testbed.errors import ManifestError
from testbed.manifest import parse_manifest
from tests.conftest import BASE_MANIFEST

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)
ITEMS = pa.table({"item_id": ["a", "b", "c", "d", "e"], "category": ["x", "x", "y", "y", "z"],
                  "price": [1.0, 2.0, 3.0, 4.0, 5.0]})
# u1 saw a alone (session s1); u2's session s2 held a, b, c and u3's s3 held a, b: a shares 2 sessions with b,
# 1 with c; e is popular (three views by u3 outside any session)
ROWS = [("u1", "a", "s1", 5), ("u2", "a", "s2", 4), ("u2", "b", "s2", 4), ("u2", "c", "s2", 4),
        ("u3", "a", "s3", 3), ("u3", "b", "s3", 3), ("u3", "e", None, 2), ("u3", "e", None, 2), ("u3", "e", None, 1)]
EVENTS = pa.table({
    "event_id": [f"e{i}" for i in range(len(ROWS))], "user_id": [r[0] for r in ROWS], "item_id": [r[1] for r in ROWS],
    "event_type": ["view"] * len(ROWS), "session_id": [r[2] for r in ROWS],
    "event_time": pa.array([CUTOFF - timedelta(days=r[3]) for r in ROWS], pa.timestamp("us", tz="UTC")),
    "price": pa.array([1.0] * len(ROWS)), "quantity": pa.array([1] * len(ROWS), pa.int32())})
USERS = pa.table({"user_id": ["u1", "u2", "u3"]})


def _candidates(n: int, generators: tuple[Generator, ...] | None) -> dict[str, list[tuple[str, int]]]:
    with RankingSession(EVENTS, ITEMS) as session:
        session.prepare(CUTOFF, [30])
        session.candidates(USERS, n, generators)
        pairs = session.candidate_pairs().to_pylist()
    out: dict[str, list[tuple[str, int]]] = {}
    for row in sorted(pairs, key=lambda r: (r["user_id"], r["priority"])):
        out.setdefault(row["user_id"], []).append((row["item_id"], row["priority"]))
    return out


def test_the_default_list_is_the_stage_without_a_declaration() -> None:
    for n in (1, 3, 5):
        assert _candidates(n, default_generators(n)) == _candidates(n, None)


def test_co_occurrence_ranks_the_items_sharing_most_sessions_with_the_users_items() -> None:
    co = SOURCES["co_occurrence"] * SOURCE_STRIDE
    got = _candidates(5, (Generator("co_occurrence"),))
    assert got["u1"] == [("b", co + 1), ("c", co + 2)]  # a: b twice (s2, s3), c once (s2)
    # u3's seeds a, b, e: a (with b in s2, s3), b (with a in s2, s3) and c (with a and with b in s2) score 2 each,
    # ties by item_id; the user's own items are not left out
    assert got["u3"] == [("a", co + 1), ("b", co + 2), ("c", co + 3)]
    assert "u2" in got and all(priority // SOURCE_STRIDE == SOURCES["co_occurrence"] for _, priority in got["u2"])


def test_quotas_and_order_are_as_declared() -> None:
    got = _candidates(3, (Generator("global_top", 1), Generator("co_occurrence", 1), Generator("recent_items")))
    glob, co, recent = (SOURCES[k] * SOURCE_STRIDE for k in ("global_top", "co_occurrence", "recent_items"))
    assert got["u1"] == [("a", glob + 1), ("b", co + 1)]  # a is the best-seller; u1's recent a is already given
    assert got["u2"] == [("b", recent + 2), ("c", recent + 3), ("a", glob + 1)]  # co_occurrence's top 1 was a
    assert got["u3"] == [("e", recent + 1), ("b", recent + 3), ("a", glob + 1)]


def _manifest(candidate: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = {"control": {"uri": "control.txt", "sha256": "a" * 64}, "candidate": candidate}
    return data


@pytest.mark.parametrize(("extra", "says"), [
    ({"candidates": {"uri": "c.parquet", "sha256": "b" * 64}, "generators": [{"kind": "global_top"}]},
     "either its candidates table or the built-in"),
    ({"generators": [{"kind": "global_top"}, {"kind": "global_top", "quota": 3}]}, "each generator kind may appear"),
    ({"generators": [{"kind": "popular"}]}, "generators.0.kind"),
    ({"generators": [{"kind": "global_top", "quota": 0}]}, "generators.0.quota"),
    ({"kind": "rankings", "generators": [{"kind": "global_top"}]}, "generators: a rankings file"),
])
def test_the_manifest_refuses_a_stage_it_cannot_run(extra: dict[str, Any], says: str) -> None:
    with pytest.raises(ManifestError, match=says):
        parse_manifest(_manifest({"uri": "candidate.txt", "sha256": "c" * 64, **extra}))


def test_a_declared_list_is_kept_in_the_canonical_manifest() -> None:
    declared = [{"kind": "co_occurrence", "quota": 10}, {"kind": "global_top"}]
    manifest = parse_manifest(_manifest({"uri": "candidate.txt", "sha256": "c" * 64, "generators": declared}))
    assert [g.kind for g in manifest.models.candidate.generators or []] == ["co_occurrence", "global_top"]
    assert manifest.models.control.generators is None
