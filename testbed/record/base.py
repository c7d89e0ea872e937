"""What every run-record model shares: frozen, unknown keys rejected, and the decision and outcome vocabularies.

Numbers a producer writes as int or float are typed `Number` (a smart union keeps the type, so 1 stays 1 and
1.0 stays 1.0 through a load and a dump); NaN and infinities pass through as json.dumps writes them. A key
that a producer writes only sometimes is `absent()`: omitted from the dump when unset, never written as null.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR"]
FinalDecision = Literal["PASS", "FAIL", "INCONCLUSIVE"]
Outcome = Literal["pass", "fail", "inconclusive"]
PASS: Final = "PASS"
FAIL: Final = "FAIL"
INCONCLUSIVE: Final = "INCONCLUSIVE"
ERROR: Final = "ERROR"
OUTCOME_PASS: Final = "pass"
OUTCOME_FAIL: Final = "fail"
OUTCOME_INCONCLUSIVE: Final = "inconclusive"
FINAL_DECISIONS: tuple[FinalDecision, ...] = (PASS, FAIL, INCONCLUSIVE)
DECISIONS: tuple[Decision, ...] = (*FINAL_DECISIONS, ERROR)
OUTCOMES: tuple[Outcome, ...] = (OUTCOME_PASS, OUTCOME_FAIL, OUTCOME_INCONCLUSIVE)

Number = int | float
MetricValues = dict[str, Number]  # metric name ("ndcg@10", ...) or "users" -> value


class Document(BaseModel):
    """A run-record document or one of its parts."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _is_none(value: Any) -> bool:
    return value is None


def _is_empty(value: Any) -> bool:
    return not value


def omitted_when_empty() -> Any:
    """A list the producer writes only when it holds something: default empty, left out of the dump when empty."""
    return Field(default_factory=list, exclude_if=_is_empty)


def absent() -> Any:
    """A key the producer writes only when it has a value: default None, left out of the dump when None."""
    return Field(default=None, exclude_if=_is_none)
