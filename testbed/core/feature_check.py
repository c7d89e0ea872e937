"""Loading and checking a feature set: the whole-set rules pydantic cannot see, its fit to the lake, and its fit
to a model. Every failure is a FeatureSetError (exit 2) whose one line names the feature and the field:
`feature set default.yaml: aggregations: feature u_brand_views: keys: unknown column item.brand (...)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import ValidationError

from testbed.core.feature_expr import (
    VECTOR_FUNCTIONS,
    Call,
    Expr,
    ExprError,
    Name,
    parse,
    references,
    scalar_references,
    walk,
)
from testbed.core.feature_spec import ATTRIBUTE_KEY, NAME, REVENUE, FeatureSet
from testbed.errors import FeatureSetError
from testbed.strict_json import DocumentError, check_json_data, loads_json, loads_yaml

_ARRAY = re.compile(r"\[[0-9]*\]$")  # DuckDB's DOUBLE[] and FLOAT[8]; Arrow's date32[day] is no list
KINDS = ("aggregations", "attributes", "external", "derived", "context")
_STRING = ("VARCHAR", "STRING", "LARGE_STRING", "UTF8", "LARGE_UTF8")
_BOOLEAN = ("BOOLEAN", "BOOL")
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FLOAT", "DOUBLE", "REAL",
            "HALF_FLOAT", "HALFFLOAT", "FLOAT16", "FLOAT32", "FLOAT64")


def type_kind(type_name: str) -> str:
    """string, boolean, numeric, time, list or other, for a type name as DuckDB or Arrow spells it."""
    name = type_name.strip().upper()
    if _ARRAY.search(name) or name.startswith(("LIST", "LARGE_LIST", "FIXED_SIZE_LIST")):
        return "list"
    base = name.split("(")[0].split("[")[0]
    if base in _STRING:
        return "string"
    if base in _BOOLEAN:
        return "boolean"
    if base in _NUMERIC or base.startswith("DECIMAL"):
        return "numeric"
    if base.startswith(("TIMESTAMP", "DATE")):
        return "time"
    return "other"


def _fail(source: str, message: str) -> NoReturn:
    raise FeatureSetError(f"feature set {source}: {message}")


def load_feature_set(data: bytes, source: str) -> FeatureSet:
    """A checked feature set from file bytes: YAML if `source` ends .yaml/.yml, else JSON (strict loaders)."""
    try:
        raw = loads_yaml(data) if source.endswith((".yaml", ".yml")) else loads_json(data)
    except DocumentError as exc:
        _fail(source, str(exc))
    return parse_feature_set(raw, source)


def parse_feature_set(data: Any, source: str) -> FeatureSet:
    """Validate raw data against the model, then the whole-set rules (check_feature_set)."""
    if not isinstance(data, dict):
        _fail(source, "a feature set must be an object")
    try:
        check_json_data(data)
        spec = FeatureSet.model_validate(data)
    except DocumentError as exc:
        _fail(source, str(exc))
    except ValidationError as exc:
        _fail(source, _rendered(exc.errors()[0], data))
    check_feature_set(spec, source)
    return spec


def _label(items: Any, index: Any, what: str) -> str:
    """`feature <name>` for the list entry at `index` of the raw data, or its position if it has no usable name."""
    item = items[index] if isinstance(items, list) and isinstance(index, int) and index < len(items) else None
    name = item.get("name") if isinstance(item, dict) else None
    return f"{what} {name}" if isinstance(name, str) and NAME.match(name) else f"{what} at index {index}"


def _rendered(error: Any, data: dict[str, Any]) -> str:
    """A pydantic error as `kind: feature <name>: field: message` (one line)."""
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
    loc = list(error["loc"])
    parts: list[str] = []
    if len(loc) >= 2 and loc[0] in KINDS and isinstance(loc[1], int):
        kind, index = loc[0], loc[1]
        entries = data.get(kind)
        parts = [kind, _label(entries, index, "table" if kind == "external" else "feature")]
        loc = loc[2:]
        if kind == "external" and len(loc) >= 2 and loc[0] == "features" and isinstance(loc[1], int):
            table = entries[index] if isinstance(entries, list) and index < len(entries) else None
            parts += ["features", _label(table.get("features") if isinstance(table, dict) else None, loc[1],
                                         "feature")]
            loc = loc[2:]
    if loc:
        parts.append(".".join(str(part) for part in loc))
    return ": ".join([*parts, " ".join(message.split())])


def derived_trees(spec: FeatureSet, source: str = "") -> dict[str, Expr]:
    """Each derived feature's parsed expression, by name."""
    out = {}
    for derived in spec.derived:
        try:
            out[derived.name] = parse(derived.expr)
        except ExprError as exc:
            _fail(source, f"derived: feature {derived.name}: expr: {exc}")
    return out


def evaluation_order(trees: Mapping[str, Expr], wanted: set[str] | None = None, source: str = "") -> list[str]:
    """Derived names in an order that evaluates each after the derived features it reads (only those `wanted`
    need, when given); a cycle is a FeatureSetError naming it."""
    order: list[str] = []
    state: dict[str, str] = {}  # visiting or done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            _fail(source, f"derived: feature {cycle[0]}: expr: cycle {' -> '.join(cycle)}")
        state[name] = "visiting"
        for ref in sorted(references(trees[name]) & trees.keys()):
            visit(ref, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in trees if wanted is None else sorted(wanted & trees.keys()):
        visit(name, [])
    return order


def check_feature_set(spec: FeatureSet, source: str) -> None:
    """Derived expressions parse, name declared features, use vectors only in dot()/cosine() (of equal length)
    and form no cycle."""
    declared = set(spec.names())
    lengths = {c.name: c.length for t in spec.external for c in t.features if c.type == "vector"}
    trees = derived_trees(spec, source)
    for name, tree in trees.items():
        where = f"derived: feature {name}: expr"
        unknown = sorted(references(tree) - declared)
        if unknown:
            _fail(source, f"{where}: unknown feature {unknown[0]}")
        misused = sorted(scalar_references(tree) & lengths.keys())
        if misused:
            _fail(source, f"{where}: {misused[0]} is a vector: only dot() and cosine() take it")
        for node in walk(tree):
            if isinstance(node, Call) and node.function in VECTOR_FUNCTIONS:
                u, v = (arg.name for arg in node.args if isinstance(arg, Name))
                scalar = next((n for n in (u, v) if n not in lengths), None)
                if scalar is not None:
                    _fail(source, f"{where}: {node.function}() takes vector features; {scalar} is not one")
                if lengths[u] != lengths[v]:
                    _fail(source, f"{where}: {node.function}({u}, {v}) of vectors of length {lengths[u]} and "
                                  f"{lengths[v]}")
    evaluation_order(trees, source=source)


def _column(ref: str) -> tuple[str, str]:
    """(table, column) of an event-side reference: `item.brand` → (items, brand), `quantity` → (events, ...)."""
    if ATTRIBUTE_KEY.match(ref):
        entity, _, column = ref.partition(".")
        return f"{entity}s", column
    return "events", ref


class _Lake:
    def __init__(self, columns: Mapping[str, Mapping[str, str]], source: str) -> None:
        self.columns, self.source = columns, source

    def type_of(self, where: str, table: str, column: str, shown: str) -> str:
        known = self.columns.get(table, {})
        if column not in known:
            _fail(self.source, f"{where}: unknown column {shown} ({table}/ has {', '.join(known) or 'no columns'})")
        return known[column]

    def require(self, where: str, table: str, column: str, shown: str, *, kinds: tuple[str, ...],
                need: str) -> None:
        type_name = self.type_of(where, table, column, shown)
        if type_kind(type_name) not in kinds:
            _fail(self.source, f"{where}: {shown} is {type_name}: {need}")


def check_event_types(spec: FeatureSet, declared: tuple[str, ...], source: str) -> None:
    """Every event type the set's aggregations keep is one the manifest declares (evaluation.event_types)."""
    for agg in spec.aggregations:
        for name in agg.events:
            if name not in declared:
                raise FeatureSetError(f"feature set {source}: aggregations: feature {agg.name}: events: {name!r} is "
                                      f"not a declared event type (evaluation.event_types: {', '.join(declared)})")


def check_against_lake(spec: FeatureSet, columns: Mapping[str, Mapping[str, str]], source: str,
                       external_columns: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Every column the set names exists with a type that fits. `columns` is table (events, items, users) →
    column → type name as DuckDB or Arrow reports it; `external_columns` the same per external table name."""
    lake = _Lake(columns, source)
    for agg in spec.aggregations:
        where = f"aggregations: feature {agg.name}"
        for key in agg.keys:
            lake.require(f"{where}: keys", *_column(key), key, kinds=("string",), need="a key must be a string column")
        if agg.input is not None and agg.input != REVENUE:
            kinds = ("string", "numeric", "boolean", "time") if agg.operation == "count_distinct" else ("numeric",)
            lake.require(f"{where}: input", *_column(agg.input), agg.input, kinds=kinds,
                         need=f"operation {agg.operation} needs a numeric column")
        for i, condition in enumerate(agg.where):
            lake.type_of(f"{where}: where.{i}.column", *_column(condition.column), condition.column)
    fits = {"numeric": ("numeric",), "boolean": ("boolean",), "categorical": ("string",)}
    for attr in spec.attributes:
        lake.require(f"attributes: feature {attr.name}: column", f"{attr.entity}s", attr.column, attr.column,
                     kinds=fits[attr.type], need=f"a {attr.type} attribute needs a {fits[attr.type][0]} column")
    for table in spec.external:
        if external_columns is None or table.name not in external_columns:
            continue
        ext = _Lake({table.name: external_columns[table.name]}, source)
        where = f"external: table {table.name}"
        for key in table.keys:
            ext.require(f"{where}: keys", table.name, key, key, kinds=("string",), need="a key must be a string column")
        ext.require(f"{where}: timestamp", table.name, table.timestamp, table.timestamp, kinds=("time",),
                    need="the timestamp must be a timestamp or date column")
        for feature in table.features:
            kind = ("list",) if feature.type == "vector" else ("numeric",)
            ext.require(f"{where}: features: feature {feature.name}: column", table.name, feature.column,
                        feature.column, kinds=kind, need=f"a {feature.type} feature needs a {kind[0]} column")


def check_model_features(spec: FeatureSet, feature_names: list[str], categorical_indices: list[int],
                         model_source: str, set_source: str) -> None:
    """The model's inputs are all declared scalars of the set, and its categorical features are exactly the set's
    categorical attributes among them."""
    declared, vectors = set(spec.names()), spec.vectors()
    for name in feature_names:
        if name not in declared:
            raise FeatureSetError(f"model {model_source} needs feature {name}, which feature set {set_source} "
                                  "does not declare")
        if name in vectors:
            raise FeatureSetError(f"model {model_source}: feature {name} of feature set {set_source} is a vector, "
                                  "which only dot() and cosine() can use")
    outside = [i for i in categorical_indices if not 0 <= i < len(feature_names)]
    if outside:
        raise FeatureSetError(f"model {model_source}: categorical_feature index {outside[0]} is not one of its "
                              f"{len(feature_names)} features")
    by_model = {feature_names[i] for i in categorical_indices}
    by_set = set(spec.categorical())
    for name in feature_names:
        if name in by_model and name not in by_set:
            raise FeatureSetError(f"model {model_source} treats feature {name} as categorical, but feature set "
                                  f"{set_source} does not declare it a categorical attribute")
        if name in by_set and name not in by_model:
            raise FeatureSetError(f"feature set {set_source} declares feature {name} categorical, but model "
                                  f"{model_source} does not list it in categorical_feature")
