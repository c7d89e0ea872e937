"""The derived-feature expression language: parsing, hand-computed values, nulls, and agreement with DuckDB."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError
from functools import cache

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.core.feature_expr import (
    Binary,
    Call,
    Expr,
    ExprError,
    Name,
    Number,
    Unary,
    evaluate,
    parse,
    references,
    scalar_references,
    vector_references,
)

NAN = np.nan
COLUMNS = {"a": np.array([1.0, 2.0, NAN, 4.0]), "b": np.array([0.0, 4.0, 1.0, NAN]),
           "i": np.array([3, 0, 5, 7], dtype=np.int64), "g": np.array([6, 0, 10, 7], dtype=np.int64)}


def values(text: str) -> list[float]:
    return evaluate(parse(text), COLUMNS).tolist()


def same(got: list[float], want: list[float]) -> bool:
    return np.array_equal(np.array(got), np.array(want, dtype=float), equal_nan=True)


@pytest.mark.parametrize(("text", "want"), [
    ("1 + 2 * 3", [7, 7, 7, 7]),
    ("(1 + 2) * 3", [9, 9, 9, 9]),
    ("8 / 4 / 2", [1, 1, 1, 1]),
    ("2 - 3 - 4", [-5, -5, -5, -5]),
    ("-a - -b", [-1, 2, NAN, NAN]),
    ("a / b", [NAN, 0.5, NAN, NAN]),  # division by zero and a null operand are null
    ("i / g", [0.5, NAN, 0.5, 1]),  # integer counts divide as doubles, like DuckDB's int / int
    ("i / (g + 1.0)", [3 / 7, 0, 5 / 11, 7 / 8]),
    ("min(a, b)", [0, 2, 1, 4]),  # min and max skip nulls
    ("max(a, b, 3)", [3, 4, 3, 4]),
    ("min(a, a * b)", [0, 2, NAN, 4]),  # null only when every argument is
    ("coalesce(a, b, -1)", [1, 2, 1, 4]),
    ("coalesce(b, a)", [0, 4, 1, 4]),
    ("abs(b - a * 2)", [2, 0, NAN, NAN]),
    ("log1p(b - 1)", [NAN, math.log1p(3), 0, NAN]),  # log1p(-1) is null
    ("log1p(-2 + a * 0)", [NAN, NAN, NAN, NAN]),
    ("2.5e1 + .5", [25.5] * 4),
])
def test_hand_computed_values(text: str, want: list[float]) -> None:
    assert same(values(text), want)


def test_vectors_dot_and_cosine() -> None:
    u = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0], [NAN, NAN], [1.0, NAN]])
    v = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    vectors = {"u": u, "v": v}
    assert same(evaluate(parse("dot(u, v)"), {}, vectors).tolist(), [4, 2, 0, NAN, NAN])
    assert same(evaluate(parse("cosine(u, v)"), {}, vectors).tolist(), [0.8, 1, NAN, NAN, NAN])
    with pytest.raises(ExprError, match=r"dot\(\): vectors u and w have shapes \(5, 2\) and \(5, 3\)"):
        evaluate(parse("dot(u, w)"), {}, {**vectors, "w": np.zeros((5, 3))})


def test_a_constant_needs_the_row_count() -> None:
    assert evaluate(parse("1 / 4"), {}, rows=2).tolist() == [0.25, 0.25]
    with pytest.raises(ExprError, match="a constant expression needs the number of rows"):
        evaluate(parse("1"), {})
    with pytest.raises(ExprError, match="no values for feature zz"):
        evaluate(parse("a + zz"), COLUMNS)


def test_the_tree_is_frozen_and_names_its_references() -> None:
    tree = parse("coalesce(x / y, 0) + cosine(u, v) * -z")
    assert tree == parse("coalesce( x/y ,0)+cosine(u,v)*(-z)")
    assert tree == Binary("+", Call("coalesce", (Binary("/", Name("x"), Name("y")), Number(0.0))),
                          Binary("*", Call("cosine", (Name("u"), Name("v"))), Unary(Name("z"))))
    assert references(tree) == {"x", "y", "u", "v", "z"}
    assert scalar_references(tree) == {"x", "y", "z"} and vector_references(tree) == {"u", "v"}
    with pytest.raises(FrozenInstanceError):
        tree.op = "-"  # type: ignore[misc]


@pytest.mark.parametrize(("text", "message"), [
    ("a +", "at position 4: expected a number, a feature or '(', found end of expression"),
    ("a $ b", "at position 3: unexpected character '$'"),
    ("a b", "at position 3: unexpected 'b'"),
    ("(a + b", "at position 7: expected ')', found end of expression"),
    ("a + b)", "at position 6: unexpected ')'"),
    ("foo(a)", "at position 1: unknown function foo() (known: log1p, abs, min, max, coalesce, dot, cosine)"),
    ("min(a)", "at position 1: min() takes at least 2 arguments, got 1"),
    ("log1p(a, b)", "at position 1: log1p() takes 1 argument, got 2"),
    ("dot(u + 1, v)", "at position 1: dot() takes two vector feature names"),
    ("cosine(u)", "at position 1: cosine() takes two vector feature names"),
    ("a * , b", "at position 5: expected a number, a feature or '(', found ','"),
    ("1.2.3", "at position 4: unexpected '.3'"),
    ("a; drop table x", "at position 2: unexpected character ';'"),
    ("(" * 70 + "a" + ")" * 70, "at position 66: nested more than 64 levels deep"),
    ("-" * 70 + "a", "at position 66: nested more than 64 levels deep"),
    ("", "at position 1: expected a number, a feature or '(', found end of expression"),
])
def test_parse_errors_name_the_position_and_token(text: str, message: str) -> None:
    with pytest.raises(ExprError) as raised:
        parse(text)
    assert str(raised.value) == message


# Random expressions evaluated here and by DuckDB (DOUBLE columns, NULL for null) must agree exactly.
NAMES = ("a", "b", "c")
LEAVES = st.one_of(st.sampled_from([Name(n) for n in NAMES]),
                   st.sampled_from([Number(v) for v in (0.0, 1.0, 2.5, 0.1, 100.0)]))


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(Unary, children),
        st.builds(Binary, st.sampled_from("+-*/"), children, children),
        st.builds(lambda f, a: Call(f, (a,)), st.just("abs"), children),
        st.builds(Call, st.sampled_from(["min", "max", "coalesce"]),
                  st.lists(children, min_size=2, max_size=3).map(tuple)),
    )


EXPRESSIONS = st.recursive(LEAVES, _extend, max_leaves=12)
SQL_FUNCTIONS = {"min": "least", "max": "greatest", "coalesce": "coalesce", "abs": "abs"}


def text_of(expr: Expr) -> str:
    if isinstance(expr, Number):
        return repr(expr.value)
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Unary):
        return f"-({text_of(expr.operand)})"
    if isinstance(expr, Binary):
        return f"({text_of(expr.left)}) {expr.op} ({text_of(expr.right)})"
    return f"{expr.function}({', '.join(text_of(a) for a in expr.args)})"


def sql_of(expr: Expr) -> str:
    if isinstance(expr, Number):
        return f"CAST({expr.value!r} AS DOUBLE)"
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Unary):
        return f"(-({sql_of(expr.operand)}))"
    if isinstance(expr, Binary):
        right = f"nullif({sql_of(expr.right)}, 0)" if expr.op == "/" else sql_of(expr.right)
        return f"(({sql_of(expr.left)}) {expr.op} ({right}))"
    return f"{SQL_FUNCTIONS[expr.function]}({', '.join(sql_of(a) for a in expr.args)})"


@cache
def duck() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()  # one for every example: connecting costs more than the query


VALUES = st.lists(st.one_of(st.none(), st.integers(-400, 400).map(lambda q: q / 4)), min_size=6, max_size=6)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(expr=EXPRESSIONS, a=VALUES, b=VALUES, c=VALUES)
def test_random_expressions_agree_with_duckdb(expr: Expr, a: list[float | None], b: list[float | None],
                                              c: list[float | None]) -> None:
    table = pa.table({"a": pa.array(a, pa.float64()), "b": pa.array(b, pa.float64()), "c": pa.array(c, pa.float64())})
    columns = {name: table[name].to_numpy(zero_copy_only=False) for name in NAMES}
    con = duck()
    con.register("t", table)
    want = con.sql(f"SELECT CAST({sql_of(expr)} AS DOUBLE) FROM t").to_arrow_table().column(0)
    got = evaluate(parse(text_of(expr)), columns)
    assert np.array_equal(got, want.to_numpy(zero_copy_only=False), equal_nan=True), text_of(expr)
