"""A feature set: the declared model inputs of one ranking model, as a frozen pydantic model.

A feature set file (YAML or JSON, schema in `schemas/feature-set.schema.json`) declares five kinds of feature.
Every feature has a `name`, unique across the set; a model's `feature_names` must all be declared here.

- aggregations: a windowed aggregate over the events before the cutoff, grouped by `keys`. A window `7d` or
  `12h` covers event times in [cutoff - window, cutoff); nothing at or after the cutoff counts. Keys are
  `user_id`, `item_id`, or an attribute of the event's item or user written `item.<column>` / `user.<column>`
  (a string column; a missing item or user, or a null value, keys as ''). No keys is one global value.
  `events` keeps only those event types; `where` adds predicates over event columns (`item.x` / `user.x` for
  attributes), with the segment filters' ops and values bound as parameters. `input` is a numeric event column
  or `revenue` (price × quantity, missing price 0 and missing quantity 1, summed exactly in cents);
  count_distinct takes any column. A key with no events in the window has 0 for count, sum and count_distinct
  and null for the rest. `last` is the input of the latest event (ties by event_id) whose input is not null.
  `population` says whose events count: `lake` (every user of the lake, as production serves item and
  category statistics) or `slice` (the sampled users). An aggregation that reads nothing of the user (no
  user_id or user.<col> in its keys, input or `where`) defaults to `lake`; one that does can only be `slice`.
- attributes: a column of `items/` or `users/`; numeric and boolean become float64, categorical becomes the
  position of its value in `categories` (a LightGBM categorical feature), null or unlisted values become null.
- external: a Parquet table of feature values with entity keys and a timestamp; for each key the row used is
  the latest one strictly before the cutoff. Values are numeric or fixed-length vectors (for derived features).
- derived: an expression over other features (testbed.core.feature_expr), evaluated per candidate pair.
- context: a property of the candidate pair itself (`candidate_source`: which generator proposed the item).

The digest is the SHA-256 of the canonical JSON (sorted keys, defaults filled): it covers the categorical
value → code mappings, so a model trained on one mapping cannot silently be scored with another. An
aggregation's `population` enters it only when it differs from the default, so sets written before the field
existed keep their digests.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from testbed.core.predicates import COLUMN, Filter, Strict

NAME = COLUMN  # feature names are LightGBM feature names: no spaces, quotes or dots
ATTRIBUTE_KEY = re.compile(r"^(item|user)\.[A-Za-z_][A-Za-z0-9_]{0,63}$")
WINDOW = re.compile(r"^([1-9][0-9]{0,4})([dh])$")
US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
MAX_WINDOW_US = 366 * 24 * US_PER_HOUR
Population = Literal["lake", "slice"]
SLICE_SUFFIX = "_slice"  # the table of a user-free key set whose aggregations count the slice's users only
Operation = Literal["count", "sum", "mean", "min", "max", "count_distinct", "last", "days_since_first",
                    "days_since_last"]
NEEDS_INPUT = {"sum", "mean", "min", "max", "count_distinct", "last"}
ZERO_WHEN_EMPTY = {"count", "sum", "count_distinct"}
REVENUE = "revenue"
FeatureName = Annotated[str, Field(pattern=NAME.pattern)]
Key = Annotated[str, Field(pattern=rf"^(user_id|item_id|{ATTRIBUTE_KEY.pattern[1:-1]})$")]


def window_us(window: str) -> int:
    """Microseconds in a window written `7d` or `12h`."""
    match = WINDOW.match(window)
    if match is None:
        raise ValueError(f"window {window!r}: write a whole number of days or hours, e.g. 7d or 12h")
    return int(match.group(1)) * US_PER_HOUR * (24 if match.group(2) == "d" else 1)


def epoch_us(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, in integers (no float rounding)."""
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def column_source(name: str) -> tuple[Literal["event", "item", "user"], str]:
    """Where a key, input or predicate column lives: `item.brand` → ("item", "brand"), `price` → ("event", "price")."""
    entity, dot, column = name.partition(".")
    if not dot:
        return "event", name
    if entity not in ("item", "user"):
        raise ValueError(f"column {name!r}: only item.<column> and user.<column> name an attribute")
    return ("item" if entity == "item" else "user"), column


def key_column(key: str) -> str:
    """The column a key takes in a feature table: `item.category` → `category`."""
    return key.partition(".")[2] or key


def group_name(keys: tuple[str, ...]) -> str:
    """A feature table's name from its (canonically ordered) keys: `user_category`, `user_item`, `global`."""
    return "_".join(key_column(k).removesuffix("_id") for k in keys) or "global"


def canonical_keys(keys: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """user_id, item_id, then user attributes, then item attributes, each by name: one table per key set."""
    rank = {"user_id": 0, "item_id": 1}
    return tuple(sorted(keys, key=lambda k: (rank.get(k, 2 if k.startswith("user.") else 3), k)))


class EventFilter(Filter):
    column: str = Field(pattern=rf"^({COLUMN.pattern[1:-1]}|{ATTRIBUTE_KEY.pattern[1:-1]})$",
                        description="An event column, or item.<column> / user.<column> of the event's item or user.")


class Aggregation(Strict):
    name: FeatureName
    keys: list[Key] = Field(default_factory=list, description="user_id, item_id, item.<col>, user.<col>; [] = global.")
    operation: Operation
    input: str | None = Field(default=None, description="A numeric event column or `revenue`; count_distinct: any.")
    window: str = Field(pattern=WINDOW.pattern, description="Days or hours before the cutoff: 7d, 12h.")
    events: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, description="Event types to keep; [] keeps every type.")
    where: list[EventFilter] = Field(default_factory=list, description="Predicates over event columns.")
    population: Population | None = Field(
        default=None, description="Whose events count: lake (every user; the default when the aggregation reads "
                                  "nothing of the user) or slice (the sampled users; the only choice when it does).")

    @field_validator("keys")
    @classmethod
    def _distinct_keys(cls, value: list[str]) -> list[str]:
        columns = [key_column(k) for k in value]
        if len(set(columns)) != len(columns):
            raise ValueError(f"keys {value} name the same column twice")
        return value

    @field_validator("window")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if window_us(value) > MAX_WINDOW_US:
            raise ValueError(f"window {value} is longer than 366 days")
        return value

    @model_validator(mode="after")
    def _input_fits_operation(self) -> Aggregation:
        if self.operation in NEEDS_INPUT and self.input is None:
            raise ValueError(f"input: operation {self.operation} needs an input column")
        if self.operation not in NEEDS_INPUT and self.input is not None:
            raise ValueError(f"input: operation {self.operation} takes no input")
        if self.input is not None and not (COLUMN.match(self.input) or ATTRIBUTE_KEY.match(self.input)):
            raise ValueError(f"input: {self.input!r} is not a column name")
        if self.population == "lake" and self.reads_user:
            raise ValueError(f"population: feature {self.name} reads the user ({self.user_column}), so it is "
                             "computed over the slice's users; population lake is only for aggregations whose "
                             "keys, input and where read nothing of the user")
        return self

    @property
    def user_column(self) -> str | None:
        """The first key, input or `where` column that is the user or one of the user's attributes."""
        named = [*self.keys, *([self.input] if self.input else []), *(f.column for f in self.where)]
        return next((n for n in named if n == "user_id" or n.startswith("user.")), None)

    @property
    def reads_user(self) -> bool:
        return self.user_column is not None

    @property
    def default_population(self) -> Population:
        return "slice" if self.reads_user else "lake"

    @property
    def reads(self) -> Population:
        """Whose events this aggregation counts: the lake's population or the slice's users."""
        return self.population or self.default_population

    @property
    def table(self) -> str:
        """Its feature table: one per key set, and a second one for user-free keys counted over the slice."""
        name = group_name(self.group_keys)
        user_keyed = any(k == "user_id" or k.startswith("user.") for k in self.keys)
        return name + SLICE_SUFFIX if self.reads == "slice" and not user_keyed else name

    @property
    def group_keys(self) -> tuple[str, ...]:
        return canonical_keys(self.keys)

    @property
    def window_us(self) -> int:
        return window_us(self.window)


def _predicate_text(flt: Filter) -> str:
    if flt.value is None:
        return f"{flt.column} {flt.op}"
    return f"{flt.column} {flt.op} {json.dumps(flt.value, ensure_ascii=False)}"


def describe(agg: Aggregation) -> str:
    """One line for reports: `count of view events by user_id, item.category over 7d`."""
    what = agg.operation.replace("_", " ") + (f" of {agg.input}" if agg.input else "")
    events = f"{'/'.join(agg.events)} events" if agg.events else "events"
    where = f" where {' and '.join(_predicate_text(f) for f in agg.where)}" if agg.where else ""
    keys = f" by {', '.join(agg.keys)}" if agg.keys else " over all events"
    return f"{what} of {events}{where}{keys} in the {agg.window} before the cutoff"


class Attribute(Strict):
    name: FeatureName
    entity: Literal["item", "user"]
    column: str = Field(pattern=COLUMN.pattern)
    type: Literal["numeric", "boolean", "categorical"] = "numeric"
    categories: list[Annotated[str, Field(max_length=256)]] | None = Field(
        default=None, description="categorical: the values in code order (code = position); others are null.")

    @model_validator(mode="after")
    def _categories_fit_type(self) -> Attribute:
        if self.type == "categorical":
            if not self.categories:
                raise ValueError("categories: a categorical attribute lists its values (code = position)")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError("categories: values must be unique")
        elif self.categories is not None:
            raise ValueError(f"categories: only a categorical attribute has categories, not a {self.type} one")
        return self


class ExternalColumn(Strict):
    name: FeatureName
    column: str = Field(pattern=COLUMN.pattern)
    type: Literal["numeric", "vector"] = "numeric"
    length: int | None = Field(default=None, ge=1, le=4096, description="vector: the number of elements.")

    @model_validator(mode="after")
    def _length_fits_type(self) -> ExternalColumn:
        if (self.type == "vector") != (self.length is not None):
            raise ValueError("length: a vector column needs its length, a numeric column has none")
        return self


class ExternalTable(Strict):
    name: str = Field(pattern=COLUMN.pattern, description="The table's name (not a feature).")
    uri: str = Field(min_length=1, description="Local path or s3:// URI of a Parquet file.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    keys: list[Literal["user_id", "item_id"]] = Field(min_length=1)
    timestamp: str = Field(pattern=COLUMN.pattern, description="When each row's values became known.")
    features: list[ExternalColumn] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _distinct_keys(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"keys {value} name the same column twice")
        return value


class Derived(Strict):
    name: FeatureName
    expr: str = Field(min_length=1, max_length=2000, description="e.g. `i_views_7d / (u_views_7d + 1)`.")


class Context(Strict):
    name: FeatureName
    value: Literal["candidate_source"] = Field(description="Which candidate generator proposed the item (0, 1, 2).")


class FeatureSet(Strict):
    """A model's declared inputs; see the module docstring for what each kind means."""

    version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    description: str = ""
    aggregations: list[Aggregation] = Field(default_factory=list)
    attributes: list[Attribute] = Field(default_factory=list)
    external: list[ExternalTable] = Field(default_factory=list)
    derived: list[Derived] = Field(default_factory=list)
    context: list[Context] = Field(default_factory=list)
    inputs: list[FeatureName] | None = Field(
        default=None, description="The features `testbed train` trains on, in this order; default: every feature "
                                  "that is not a vector. A model trained elsewhere may use any declared feature.")

    @model_validator(mode="after")
    def _names_unique(self) -> FeatureSet:
        seen: dict[str, str] = {}
        for kind, name in self.declared():
            if name in seen:
                raise ValueError(f"{kind}: feature {name}: name also declared in {seen[name]}")
            seen[name] = kind
        tables = [t.name for t in self.external]
        if len(set(tables)) != len(tables):
            raise ValueError("external: table names must be unique")
        for i, name in enumerate(self.inputs or []):
            if name not in seen:
                raise ValueError(f"inputs.{i}: feature {name} is not declared")
            if name in self.vectors():
                raise ValueError(f"inputs.{i}: feature {name} is a vector; use it in a derived feature")
        if self.inputs is not None and len(set(self.inputs)) != len(self.inputs):
            raise ValueError("inputs: a feature is listed twice")
        key_sets: dict[str, tuple[tuple[str, ...], Population]] = {}
        for agg in self.aggregations:
            known = key_sets.setdefault(agg.table, (agg.group_keys, agg.reads))
            if known != (agg.group_keys, agg.reads):
                raise ValueError(f"aggregations: feature {agg.name}: keys {list(agg.group_keys)} name the feature "
                                 f"table {agg.table} that keys {list(known[0])} already name; rename a key column")
        return self

    def training_inputs(self) -> list[str]:
        """What `testbed train` trains on: `inputs`, else every feature that is not a vector."""
        vectors = self.vectors()
        return list(self.inputs) if self.inputs is not None else [n for n in self.names() if n not in vectors]

    def declared(self) -> list[tuple[str, str]]:
        """(kind, name) of every feature, in file order within each kind."""
        out = [("aggregations", a.name) for a in self.aggregations]
        out += [("attributes", a.name) for a in self.attributes]
        out += [("external", c.name) for t in self.external for c in t.features]
        out += [("derived", d.name) for d in self.derived]
        out += [("context", c.name) for c in self.context]
        return out

    def names(self) -> list[str]:
        return [name for _, name in self.declared()]

    def vectors(self) -> set[str]:
        """Names of vector features: usable inside derived expressions, never a model input themselves."""
        return {c.name for t in self.external for c in t.features if c.type == "vector"}

    def categorical(self) -> list[str]:
        return [a.name for a in self.attributes if a.type == "categorical"]

    def groups(self) -> dict[str, list[Aggregation]]:
        """Aggregations by feature table (one per key set), tables and features in a stable order."""
        out: dict[str, list[Aggregation]] = {}
        for agg in self.aggregations:
            out.setdefault(agg.table, []).append(agg)
        return dict(sorted(out.items()))

    def lake_tables(self) -> set[str]:
        """The feature tables computed over the lake's population (the slice's population extract)."""
        return {name for name, aggs in self.groups().items() if aggs[0].reads == "lake"}

    def event_columns(self) -> set[str]:
        """The events' own columns the aggregations read (inputs and `where`; not item./user. attributes)."""
        used = {a.input for a in self.aggregations if a.input and a.input != REVENUE}
        used |= {f.column for a in self.aggregations for f in a.where}
        return {c for c in used if "." not in c}

    def table_keys(self) -> dict[str, tuple[str, ...]]:
        """Each feature table's key columns (`key_column` of its canonical keys), tables as in `groups()`."""
        return {name: tuple(key_column(k) for k in aggs[0].group_keys) for name, aggs in self.groups().items()}

    def longest_window_us(self) -> int:
        return max((a.window_us for a in self.aggregations), default=0)

    def longest_lake_window_us(self) -> int:
        return max((a.window_us for a in self.aggregations if a.reads == "lake"), default=0)

    def lake_event_columns(self) -> set[str]:
        """The event columns the lake-population aggregations read besides item_id, event_type, event_time:
        revenue's price and quantity, other inputs and `where` columns, event_id to order `last`'s ties."""
        lake = [a for a in self.aggregations if a.reads == "lake"]
        used = {c for a in lake for c in ([a.input] if a.input else []) + [f.column for f in a.where]}
        if any(a.input == REVENUE for a in lake):
            used |= {"price", "quantity"}
        if any(a.operation == "last" for a in lake):
            used.add("event_id")
        return {c for c in used if "." not in c and c != REVENUE}

    def canonical_json(self) -> str:
        data = self.model_dump(mode="json")
        for agg, dumped in zip(self.aggregations, data["aggregations"], strict=True):
            if agg.population in (None, agg.default_population):  # the default: digests from before the field
                del dumped["population"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def merged(control: FeatureSet, candidate: FeatureSet) -> FeatureSet:
    """The union of both models' sets, computed once per run; a name both declare must mean the same feature."""
    if control.digest() == candidate.digest():
        return control
    kinds = ("aggregations", "attributes", "derived", "context")
    out: dict[str, list[Strict]] = {kind: list(getattr(control, kind)) for kind in kinds}
    defined = {item.name: item for kind in kinds for item in out[kind]}  # type: ignore[attr-defined]
    for kind in kinds:
        for item in getattr(candidate, kind):
            known = defined.get(item.name)
            if known is None:
                out[kind].append(item)
                defined[item.name] = item
            elif known != item:
                raise ValueError(f"{kind}: feature {item.name}: the control's and the candidate's feature sets "
                                 "define it differently; give one of them another name")
    tables = {t.name: t for t in control.external}
    for table in candidate.external:
        if table.name in tables and tables[table.name] != table:
            raise ValueError(f"external: table {table.name}: the control's and the candidate's feature sets "
                             "declare it differently; give one of them another name")
        tables.setdefault(table.name, table)
    return FeatureSet(name=f"{control.name}-and-{candidate.name}"[:64].rstrip("-"),
                      aggregations=out["aggregations"], attributes=out["attributes"],  # type: ignore[arg-type]
                      external=list(tables.values()), derived=out["derived"],  # type: ignore[arg-type]
                      context=out["context"])  # type: ignore[arg-type]


def json_schema() -> dict[str, Any]:
    """The published schema of a feature set file (schemas/feature-set.schema.json)."""
    schema = FeatureSet.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://testbed.local/feature-set.schema.json"
    return schema
