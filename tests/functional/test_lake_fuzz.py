"""Seeded fuzz of malformed lakes (issue 11): never a traceback, never exit 0 or 4, never a PASS.

Every generated lake is the small lake broken in one place that no correct reading accepts: a corrupt,
empty or cut-short Parquet file, a data file that is not Parquet, a non-finite price, a missing or mistyped
column in one file, a row that breaks the SPEC §2 contract, a dangling or looping link, a reserved column.
Lakes are cheap mirrors (`mirror_lake`: links to the shared lake's files; a broken file replaces its link).
Each goes through `testbed validate MANIFEST --lake LAKE` in-process and must be exit 2 with exactly one
`testbed: error:` line; a sample also goes through `testbed run` and must leave no PASS behind. The
default budget runs in the default suite; the slow one is larger.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.functional.test_input_errors import (
    assert_no_pass_record,
    assert_one_line_error,
    call,
    call_run,
    mirror_lake,
    replace_value,
    rewrite_parquet,
)

SEED = 2222
DEFAULT_CASES = 44
SLOW_CASES = 400
RUN_SAMPLE = 5
WINDOW = ("event_date=2026-08-02", "event_date=2026-10-30")  # the base manifest's [start, end) partitions

LakeEdit = Callable[[Path], None]


def parquet_files(lake: Path, dataset: str | None = None, *, in_window: bool = False) -> list[Path]:
    files = sorted((lake / dataset if dataset else lake).rglob("*.parquet"))
    if in_window:
        files = [p for p in files if p.parent.name.startswith("event_date=")
                 and WINDOW[0] <= p.parent.name <= WINDOW[1]]
    return files


def replace_bytes(path: Path, data: bytes) -> None:
    path.unlink()  # drop the link; never write through it
    path.write_bytes(data)


def one_row(rng: random.Random, table: pa.Table) -> int:
    return rng.randrange(table.num_rows)


# --------------------------------------------------------------------------------------------------
# mutations: each takes (lake, rng) and breaks the lake in one place


def zero_bytes(lake: Path, rng: random.Random) -> None:
    replace_bytes(rng.choice(parquet_files(lake)), b"")


def cut_short(lake: Path, rng: random.Random) -> None:
    path = rng.choice(parquet_files(lake))
    data = path.read_bytes()
    replace_bytes(path, data[:rng.randrange(1, len(data) - 1)])


def random_bytes(lake: Path, rng: random.Random) -> None:
    replace_bytes(rng.choice(parquet_files(lake)), rng.randbytes(rng.choice([3, 8, 12, 100, 5000])))


def broken_footer(lake: Path, rng: random.Random) -> None:
    path = rng.choice(parquet_files(lake))
    data = bytearray(path.read_bytes())
    data[len(data) - rng.randrange(1, 6)] ^= 0xFF  # the closing magic, or the footer length's high byte
    replace_bytes(path, bytes(data))


def not_parquet_file(lake: Path, rng: random.Random) -> None:
    folder = rng.choice(parquet_files(lake)).parent
    name, text = rng.choice([("part-9.csv", "event_id,user_id\n1,2\n"), ("part-9.json", '{"user_id": "x"}'),
                             ("part-9", "PAR1"), ("README.txt", "notes")])
    (folder / name).write_text(text)


def csv_named_parquet(lake: Path, rng: random.Random) -> None:
    replace_bytes(rng.choice(parquet_files(lake)), b"event_id,user_id,item_id\ne1,u1,i1\n")


def non_finite_price(lake: Path, rng: random.Random) -> None:
    value = rng.choice([float("nan"), float("inf"), float("-inf")])
    path = rng.choice(parquet_files(lake, "events", in_window=True) + parquet_files(lake, "items"))
    rewrite_parquet(path, lambda t: replace_value(t, "price", one_row(rng, t), value))


def drop_column(lake: Path, rng: random.Random) -> None:
    dataset, column = rng.choice([("events", "event_id"), ("events", "event_time"), ("events", "price"),
                                  ("events", "quantity"), ("events", "session_id"), ("users", "user_id"),
                                  ("items", "item_id"), ("items", "category"), ("items", "price")])
    rewrite_parquet(rng.choice(parquet_files(lake, dataset)), lambda t: t.drop_columns([column]))


def mistype_column(lake: Path, rng: random.Random) -> None:
    dataset, column, kind = rng.choice([("events", "event_time", pa.string()), ("events", "quantity", pa.string()),
                                        ("events", "price", pa.string()), ("events", "user_id", pa.int64()),
                                        ("items", "price", pa.string()), ("items", "category", pa.int64())])

    def change(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index(column)
        values = table.column(index)
        cast = pa.array(range(len(values)), kind) if kind == pa.int64() else values.cast(kind)
        return table.set_column(index, column, cast)

    rewrite_parquet(rng.choice(parquet_files(lake, dataset)), change)


def broken_row(lake: Path, rng: random.Random) -> None:
    path = rng.choice(parquet_files(lake, "events", in_window=True))
    table = pq.read_table(path)
    row = one_row(rng, table)
    column, value = rng.choice([
        ("event_id", table.column("event_id")[(row + 1) % table.num_rows].as_py()), ("event_id", None),
        ("user_id", None), ("item_id", None), ("event_type", rng.choice(["click", "", "VIEW", None])),
        ("event_time", table.column("event_time")[row].as_py() + timedelta(days=rng.choice([-3, 1, 40]))),
    ])
    if column == "event_id" and value == table.column("event_id")[row].as_py():
        value = None  # a one-row file: no other id to duplicate
    rewrite_parquet(path, lambda t: replace_value(t, column, row, value))


def duplicate_key(lake: Path, rng: random.Random) -> None:
    dataset, column = rng.choice([("users", "user_id"), ("items", "item_id")])
    rewrite_parquet(rng.choice(parquet_files(lake, dataset)),
                    lambda t: replace_value(t, column, 1, t.column(column)[0].as_py()))


def dangling_link(lake: Path, rng: random.Random) -> None:
    folder = rng.choice(parquet_files(lake)).parent
    (folder / rng.choice(["part-7.parquet", "more"])).symlink_to(lake / "nowhere")


def link_loop(lake: Path, rng: random.Random) -> None:
    folder = rng.choice(parquet_files(lake)).parent
    (folder / "again").symlink_to(rng.choice([folder, lake / rng.choice(["events", "users", "items"])]))


def reserved_column(lake: Path, rng: random.Random) -> None:
    name = rng.choice(["inclusion_probability", "stratum"])
    rewrite_parquet(rng.choice(parquet_files(lake, "users")),
                    lambda t: t.append_column(name, pa.array([0.5] * t.num_rows)))


def missing_dataset(lake: Path, rng: random.Random) -> None:
    dataset = rng.choice(["events", "users", "items"])
    for path in parquet_files(lake, dataset):
        path.unlink()
    if rng.random() < 0.5:
        for folder in sorted((lake / dataset).rglob("*"), reverse=True):
            folder.rmdir()
        (lake / dataset).rmdir()


def bad_partition_name(lake: Path, rng: random.Random) -> None:
    path = rng.choice(parquet_files(lake, "events", in_window=True))
    target = lake / "events" / rng.choice(["event_date=2026-13-01", "event_date=yesterday", "event_date="])
    target.mkdir(exist_ok=True)
    pq.write_table(pq.read_table(path), target / "part-0.parquet")


MUTATIONS: list[Callable[[Path, random.Random], None]] = [
    zero_bytes, cut_short, random_bytes, broken_footer, not_parquet_file, csv_named_parquet, non_finite_price,
    drop_column, mistype_column, broken_row, duplicate_key, dangling_link, link_loop, reserved_column,
    missing_dataset, bad_partition_name,
]


def malformed_lakes(small_lake: Path, root: Path, seed: int, count: int) -> Iterator[tuple[str, Path]]:
    rng = random.Random(seed)
    for case in range(count):
        mutation = MUTATIONS[case % len(MUTATIONS)]  # every mutation gets an equal share
        name = f"{case}-{mutation.__name__}"
        lake = mirror_lake(small_lake, root / name)
        mutation(lake, rng)
        yield name, lake


def check_validate(cases: Iterator[tuple[str, Path]], manifest: Path, capsys: pytest.CaptureFixture[str]) -> int:
    seen = 0
    for name, lake in cases:
        code, out, err = call(["validate", str(manifest), "--lake", str(lake)], capsys)
        assert code == 2, f"{name}: exit {code}, stdout {out!r}, stderr {err!r}"
        assert out == "", name
        assert_one_line_error(err)
        seen += 1
    return seen


@pytest.fixture
def manifest(manifest_data: dict[str, Any], write_manifest: Callable[..., Path]) -> Path:
    return write_manifest(manifest_data)


def test_the_mirrored_lake_is_valid(small_lake: Path, manifest: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    lake = mirror_lake(small_lake, tmp_path / "lake")
    assert call(["validate", str(manifest), "--lake", str(lake)], capsys)[0] == 0


def test_malformed_lakes_are_exit_2_at_validate(small_lake: Path, manifest: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert check_validate(malformed_lakes(small_lake, tmp_path, SEED, DEFAULT_CASES), manifest, capsys) >= 40


@pytest.mark.slow
def test_malformed_lakes_are_exit_2_at_validate_large_budget(small_lake: Path, manifest: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    check_validate(malformed_lakes(small_lake, tmp_path, SEED + 1, SLOW_CASES), manifest, capsys)


def test_a_sample_of_malformed_lakes_is_exit_2_at_run(small_lake: Path, manifest: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """One case of several mutations, each through a whole `testbed run` (embedded AWS)."""
    cases = list(malformed_lakes(small_lake, tmp_path / "lakes", SEED, len(MUTATIONS)))
    for name, lake in cases[:: len(MUTATIONS) // RUN_SAMPLE][:RUN_SAMPLE]:
        out = tmp_path / f"out-{name}"
        code, err = call_run(manifest, lake, out, capsys)
        assert code == 2, f"{name}: exit {code}, {err!r}"
        assert_one_line_error(err)
        assert_no_pass_record(out)
