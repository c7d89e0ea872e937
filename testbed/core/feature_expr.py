"""The derived-feature expression language: parsed by hand into a frozen tree, evaluated with numpy.

Grammar (usual precedence, left-associative)::

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := "-" unary | atom
    atom   := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Functions: log1p(x), abs(x), min(a, b, ...), max(a, b, ...), coalesce(a, b, ...), and dot(u, v), cosine(u, v)
whose two arguments are names of vector features. Nothing is ever eval'd, exec'd or pasted into SQL.

Values are float64 arrays with NaN as null; literals are float64 (IEEE arithmetic, like DuckDB's DOUBLE):
- null propagates through + - * / unary -, abs and log1p;
- `a / b` is null where b == 0; log1p(x) is null where x <= -1;
- min and max ignore nulls and are null only when every argument is (DuckDB's LEAST/GREATEST);
- coalesce is the first non-null argument;
- dot(u, v) is null where either vector (or one of its elements) is null; cosine is also null where a norm is 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

MAX_DEPTH = 64  # nesting bound: a deep text must be an error, not a RecursionError
SCALAR_FUNCTIONS = {"log1p": (1, 1), "abs": (1, 1), "min": (2, None), "max": (2, None), "coalesce": (2, None)}
VECTOR_FUNCTIONS = ("dot", "cosine")
_TOKEN = re.compile(r"\s*(?:(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<symbol>[-+*/(),]))")


class ExprError(ValueError):
    """Why an expression does not parse or evaluate (one line, naming the position or the feature)."""


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Unary:
    operand: Expr


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Expr, ...]


Expr = Number | Name | Unary | Binary | Call


@dataclass(frozen=True)
class _Token:
    kind: str  # number, name, symbol or end
    text: str
    position: int  # 1-based column of the token's first character


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    at = 0
    while True:
        match = _TOKEN.match(text, at)
        if match is None:
            rest = text[at:].lstrip()
            if not rest:
                return [*out, _Token("end", "end of expression", len(text) + 1)]
            position = len(text) - len(rest) + 1
            raise ExprError(f"at position {position}: unexpected character {rest[0]!r}")
        kind = match.lastgroup or "symbol"
        out.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        at = match.end()


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, symbol: str) -> None:
        token = self.take()
        if token.text != symbol or token.kind != "symbol":
            raise ExprError(f"at position {token.position}: expected {symbol!r}, found {_shown(token)}")

    def expr(self, depth: int) -> Expr:
        node = self.term(depth)
        while self.peek().text in ("+", "-") and self.peek().kind == "symbol":
            node = Binary(self.take().text, node, self.term(depth))
        return node

    def term(self, depth: int) -> Expr:
        node = self.unary(depth)
        while self.peek().text in ("*", "/") and self.peek().kind == "symbol":
            node = Binary(self.take().text, node, self.unary(depth))
        return node

    def unary(self, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise ExprError(f"at position {self.peek().position}: nested more than {MAX_DEPTH} levels deep")
        if self.peek().text == "-" and self.peek().kind == "symbol":
            self.take()
            return Unary(self.unary(depth + 1))
        return self.atom(depth)

    def atom(self, depth: int) -> Expr:
        token = self.take()
        if token.kind == "number":
            return Number(float(token.text))
        if token.kind == "name":
            if self.peek().text == "(":
                return self.call(token, depth)
            return Name(token.text)
        if token.text == "(":
            node = self.expr(depth + 1)
            self.expect(")")
            return node
        raise ExprError(f"at position {token.position}: expected a number, a feature or '(', found {_shown(token)}")

    def call(self, function: _Token, depth: int) -> Expr:
        self.take()  # "("
        args = [self.expr(depth + 1)]
        while self.peek().text == "," and self.peek().kind == "symbol":
            self.take()
            args.append(self.expr(depth + 1))
        self.expect(")")
        name, where = function.text, f"at position {function.position}"
        if name in VECTOR_FUNCTIONS:
            if len(args) != 2 or not all(isinstance(a, Name) for a in args):
                raise ExprError(f"{where}: {name}() takes two vector feature names")
        elif name in SCALAR_FUNCTIONS:
            low, high = SCALAR_FUNCTIONS[name]
            if len(args) < low or (high is not None and len(args) > high):
                wanted = f"{low}" if low == high else f"at least {low}"
                raise ExprError(f"{where}: {name}() takes {wanted} argument{'s' if wanted != '1' else ''}, "
                                f"got {len(args)}")
        else:
            known = ", ".join([*SCALAR_FUNCTIONS, *VECTOR_FUNCTIONS])
            raise ExprError(f"{where}: unknown function {name}() (known: {known})")
        return Call(name, tuple(args))


def _shown(token: _Token) -> str:
    return token.text if token.kind == "end" else repr(token.text)


def parse(text: str) -> Expr:
    """The tree of `text`; ExprError names the position (1-based) and the token that does not fit."""
    parser = _Parser(text)
    node = parser.expr(0)
    token = parser.peek()
    if token.kind != "end":
        raise ExprError(f"at position {token.position}: unexpected {_shown(token)}")
    return node


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children."""
    yield expr
    if isinstance(expr, Unary):
        yield from walk(expr.operand)
    elif isinstance(expr, Binary):
        yield from walk(expr.left)
        yield from walk(expr.right)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from walk(arg)


def vector_references(expr: Expr) -> set[str]:
    """Names used as arguments of dot() or cosine()."""
    return {arg.name for node in walk(expr) if isinstance(node, Call) and node.function in VECTOR_FUNCTIONS
            for arg in node.args if isinstance(arg, Name)}


def scalar_references(expr: Expr) -> set[str]:
    """Names used as scalar values (everywhere but as dot()/cosine() arguments)."""
    vector_args = {id(arg) for node in walk(expr) if isinstance(node, Call) and node.function in VECTOR_FUNCTIONS
                   for arg in node.args}
    return {node.name for node in walk(expr) if isinstance(node, Name) and id(node) not in vector_args}


def references(expr: Expr) -> set[str]:
    return {node.name for node in walk(expr) if isinstance(node, Name)}


def evaluate(expr: Expr, columns: Mapping[str, np.ndarray], vectors: Mapping[str, np.ndarray] | None = None,
             rows: int | None = None) -> np.ndarray:
    """`expr` over float64 columns (NaN = null) and n × length vector arrays (a NaN row = null), as float64.

    `rows` is needed only when the expression names no feature (a constant).
    """
    vectors = vectors or {}
    if rows is None:
        sizes = [len(a) for a in (*columns.values(), *vectors.values())]
        if not sizes:
            raise ExprError("a constant expression needs the number of rows")
        rows = sizes[0]
    with np.errstate(all="ignore"):
        return np.asarray(_evaluate(expr, columns, vectors, rows), dtype=np.float64)


def _divide(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.where(right == 0, np.nan, left / right)


def _coalesce(args: list[np.ndarray]) -> np.ndarray:
    out = args[0].copy()
    for arg in args[1:]:
        out = np.where(np.isnan(out), arg, out)
    return out


_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": _divide}
_SCALAR: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {
    "log1p": lambda a: np.where(a[0] > -1, np.log1p(a[0]), np.nan),
    "abs": lambda a: np.abs(a[0]),
    "min": np.fmin.reduce,  # fmin/fmax skip NaN: null only when every argument is
    "max": np.fmax.reduce,
    "coalesce": _coalesce,
}


def _evaluate(expr: Expr, columns: Mapping[str, np.ndarray], vectors: Mapping[str, np.ndarray],
              rows: int) -> np.ndarray:
    if isinstance(expr, Number):
        return np.full(rows, expr.value)
    if isinstance(expr, Name):
        if expr.name not in columns:
            raise ExprError(f"no values for feature {expr.name}")
        return np.asarray(columns[expr.name], dtype=np.float64)
    if isinstance(expr, Unary):
        return -_evaluate(expr.operand, columns, vectors, rows)
    if isinstance(expr, Binary):
        return _BINARY[expr.op](_evaluate(expr.left, columns, vectors, rows),
                                _evaluate(expr.right, columns, vectors, rows))
    if expr.function in VECTOR_FUNCTIONS:
        return _vector_call(expr, vectors)
    return _SCALAR[expr.function]([_evaluate(arg, columns, vectors, rows) for arg in expr.args])


def _vector_call(call: Call, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    names = [arg.name for arg in call.args if isinstance(arg, Name)]
    missing = [n for n in names if n not in vectors]
    if missing:
        raise ExprError(f"{call.function}(): no vector values for feature {missing[0]}")
    u, v = (np.asarray(vectors[n], dtype=np.float64) for n in names)
    if u.ndim != 2 or u.shape != v.shape:
        raise ExprError(f"{call.function}(): vectors {names[0]} and {names[1]} have shapes {u.shape} and {v.shape}")
    dot = np.sum(u * v, axis=1)
    if call.function == "dot":
        return dot
    norms = np.sqrt(np.sum(u * u, axis=1)) * np.sqrt(np.sum(v * v, axis=1))
    return np.where(norms == 0, np.nan, dot / norms)
