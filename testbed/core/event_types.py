"""The lake's declared event types (the manifest's evaluation.event_types) as plain data, and the SQL they imply.

Each type has a relevance grade for labels (0: not a label), and may be a conversion (a line that carries
revenue, price x quantity, and is what conversion@K counts), a click (what click_through@K counts) or an exposure
(the item was shown, e.g. an impression with its `position` and `propensity`: kept in the slice, replayed and
readable by feature sets; an exposure cannot also be a click or a conversion). Without a declaration the
vocabulary is SPEC §2's: view 1 (click), add_to_cart 2, purchase 3 (conversion).

Type names are checked against NAME before they reach any SQL, so they are quoted as literals, never bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class DeclaredType:
    name: str
    relevance: int
    conversion: bool = False
    click: bool = False
    exposure: bool = False


@dataclass(frozen=True)
class EventVocabulary:
    types: tuple[DeclaredType, ...]

    def __post_init__(self) -> None:
        for t in self.types:
            if not NAME.match(t.name):
                raise ValueError(f"event type name {t.name!r} does not match {NAME.pattern}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.types)

    @property
    def grades(self) -> dict[str, int]:
        return {t.name: t.relevance for t in self.types}

    @property
    def conversions(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.types if t.conversion)

    @property
    def clicks(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.types if t.click)

    @property
    def exposures(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.types if t.exposure)

    def describe(self) -> str:
        """`view 1 (click), add_to_cart 2, purchase 3 (conversion)`: for messages."""
        def flags(t: DeclaredType) -> str:
            named = [f for f, on in (("conversion", t.conversion), ("click", t.click), ("exposure", t.exposure)) if on]
            return f" ({', '.join(named)})" if named else ""
        return ", ".join(f"{t.name} {t.relevance}{flags(t)}" for t in self.types)


DEFAULT_VOCABULARY = EventVocabulary((
    DeclaredType("view", 1, click=True),
    DeclaredType("add_to_cart", 2),
    DeclaredType("purchase", 3, conversion=True),
))


def type_in_sql(column: str, names: tuple[str, ...]) -> str:
    """`column` is one of `names` (FALSE when there are none); names are NAME-checked, so literals are safe."""
    if not names:
        return "FALSE"
    if len(names) == 1:
        return f"{column} = '{names[0]}'"
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"{column} IN ({quoted})"
