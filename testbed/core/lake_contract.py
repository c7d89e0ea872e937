"""The SPEC §2 lake contract as data, plus the SQL checks that prove a lake honours it.

`event_type` is one of the manifest's declared types (testbed.core.event_types; SPEC §2's three by default).
Returns: a conversion line (a purchase by default) with quantity <= 0 (a return or a cancelled line; a null
quantity counts as 1) is not a relevant conversion: it grades no label (`conversion_line_sql`) and carries no
revenue (`revenue_cents_sql`). `testbed validate --lake` counts such lines in the run's window and says so."""

from __future__ import annotations

from testbed.core.event_types import DEFAULT_VOCABULARY, EventVocabulary, type_in_sql

_STRING = ("VARCHAR",)
_TIMESTAMP = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP_NS")
_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_NUMBER = ("DOUBLE", "FLOAT", *_INTEGER)

# dataset -> column -> (accepted engine types, human name)
REQUIRED: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "events": {
        "event_id": (_STRING, "string"),
        "event_time": (_TIMESTAMP, "timestamp"),
        "user_id": (_STRING, "string"),
        "item_id": (_STRING, "string"),
        "event_type": (_STRING, "string"),
        "session_id": (_STRING, "string"),
        "quantity": (_INTEGER, "int"),
        "price": (_NUMBER, "double"),
        "event_date": (("DATE", "VARCHAR"), "partition event_date=YYYY-MM-DD"),
    },
    "users": {"user_id": (_STRING, "string")},
    "items": {"item_id": (_STRING, "string"), "category": (_STRING, "string"), "price": (_NUMBER, "double")},
}


def type_accepted(engine_type: str, accepted: tuple[str, ...]) -> bool:
    base = engine_type.upper()
    return base in accepted or (base.startswith("DECIMAL") and "DOUBLE" in accepted)


def row_checks(window: str, partitions: str,
               vocabulary: EventVocabulary = DEFAULT_VOCABULARY) -> list[tuple[str, str, str, str]]:
    """(dataset, column, problem, Trino SQL returning one example row) per check: its first column is the example
    the message shows, further columns are shown beside it (the undeclared event_type).

    `window` and `partitions` are rendered predicates on alias `e` restricting events to the run's window and
    to its partitions (an event outside its partition may also be outside the window).
    """
    declared = type_in_sql("e.event_type", vocabulary.names)
    return [
        ("events", "price", "price is not a finite number",
         f"SELECT e.event_id FROM events e WHERE {window} AND {_not_finite('e.price')} ORDER BY e.event_id LIMIT 1"),
        ("items", "price", "price is not a finite number",
         f"SELECT item_id FROM items WHERE {_not_finite('price')} ORDER BY item_id LIMIT 1"),
        ("events", "event_id", "duplicate event_id",
         f"SELECT e.event_id FROM events e WHERE {window} GROUP BY e.event_id HAVING COUNT(*) > 1 "
         "ORDER BY e.event_id LIMIT 1"),
        ("events", "event_id", "null event_id",
         f"SELECT CAST(e.event_time AS VARCHAR) FROM events e WHERE {window} AND e.event_id IS NULL LIMIT 1"),
        ("events", "event_time", "event outside its event_date partition",
         f"SELECT e.event_id FROM events e WHERE {partitions} "
         "AND CAST(CAST(e.event_time AS DATE) AS VARCHAR) <> CAST(e.event_date AS VARCHAR) "
         "ORDER BY e.event_id LIMIT 1"),
        ("events", "event_type", f"an event type that evaluation.event_types does not declare (declared: "
                                 f"{', '.join(vocabulary.names)})",
         f"SELECT e.event_id, e.event_type FROM events e WHERE {window} AND (e.event_type IS NULL OR NOT "
         f"({declared})) ORDER BY e.event_id LIMIT 1"),
        ("events", "user_id", "null user_id",
         f"SELECT e.event_id FROM events e WHERE {window} AND e.user_id IS NULL ORDER BY e.event_id LIMIT 1"),
        ("events", "item_id", "null item_id",
         f"SELECT e.event_id FROM events e WHERE {window} AND e.item_id IS NULL ORDER BY e.event_id LIMIT 1"),
        ("users", "user_id", "duplicate user_id",
         "SELECT user_id FROM users GROUP BY user_id HAVING COUNT(*) > 1 ORDER BY user_id LIMIT 1"),
        ("items", "item_id", "duplicate item_id",
         "SELECT item_id FROM items GROUP BY item_id HAVING COUNT(*) > 1 ORDER BY item_id LIMIT 1"),
    ]


def _not_finite(column: str) -> str:
    """NaN or ±infinity, on both engines. `x - x` is NaN exactly then; a plain comparison (`isnan`, BETWEEN)
    is answered by DuckDB from Parquet min/max statistics, which leave NaN out, and misses it."""
    value = f"CAST({column} AS DOUBLE)"
    return f"{value} - {value} <> 0"


def conversion_line_sql(alias: str, vocabulary: EventVocabulary = DEFAULT_VOCABULARY) -> str:
    """A conversion line that counts: a conversion type with quantity above 0 (null counts as 1); not a return."""
    a = f"{alias}." if alias else ""
    return f"({type_in_sql(f'{a}event_type', vocabulary.conversions)} AND coalesce({a}quantity, 1) > 0)"


def click_sql(alias: str, vocabulary: EventVocabulary = DEFAULT_VOCABULARY) -> str:
    """An event of a type that counts as a click (the vocabulary's click types: `view` by default)."""
    a = f"{alias}." if alias else ""
    return f"({type_in_sql(f'{a}event_type', vocabulary.clicks)})"


def revenue_cents_sql(alias: str, vocabulary: EventVocabulary = DEFAULT_VOCABULARY) -> str:
    """Conversion revenue of one event in integer cents (exact on every engine); 0 for other event types and for
    return lines (quantity <= 0)."""
    a = f"{alias}." if alias else ""
    return (f"CASE WHEN {conversion_line_sql(alias, vocabulary)} THEN CAST(round(coalesce({a}price, 0) * "
            f"coalesce({a}quantity, 1) * 100) AS BIGINT) ELSE 0 END")
