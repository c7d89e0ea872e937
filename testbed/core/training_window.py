"""Does a model's training window overlap the run's evaluation window?

`testbed train` writes the window it trained on into the model's sidecar (`<model>.json`, `training`): the first
event its features read (`features_from`, the cutoff minus the longest feature window), its `cutoff`, and the end
of its label window (`label_end`). A model whose training read any event of the run's label window
[time.cutoff, time.end) was trained on what the run evaluates it on: offline metrics flatter it. That is the
case when its training labels overlap that window, or when its features read events past the run's cutoff.

A model without a readable sidecar for its own bytes (trained outside the testbed) has an unknown window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Overlap = Literal["none", "overlap", "unknown"]


@dataclass(frozen=True)
class TrainingWindow:
    """The events a model's training read: features from `features_from` (None in sidecars from before it was
    recorded) to `cutoff`, labels in [cutoff, label_end)."""

    features_from: datetime | None
    cutoff: datetime
    label_end: datetime

    def overlaps(self, cutoff: datetime, end: datetime) -> bool:
        """Whether training read any event of [cutoff, end)."""
        first = self.features_from or self.cutoff
        return first < end and self.label_end > cutoff


def _instant(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def from_sidecar(data: bytes, model_sha256: str) -> TrainingWindow | None:
    """The window a sidecar records for the model with `model_sha256`; None when the sidecar is not JSON, names
    another model file, or records no window."""
    try:
        meta = json.loads(data)
        training = meta["training"]
        if meta.get("sha256") != model_sha256:
            return None
        window = TrainingWindow(
            features_from=_instant(training["features_from"]) if training.get("features_from") else None,
            cutoff=_instant(training["cutoff"]), label_end=_instant(training["label_end"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return window if window.cutoff < window.label_end else None


def _span(start: datetime | None, end: datetime) -> str:
    return f"[{start.isoformat() if start else '?'}, {end.isoformat()})"


def overlap_line(model: str, window: TrainingWindow, cutoff: datetime, end: datetime) -> str:
    """One line naming the model, what of its training overlaps, and both windows."""
    labels = window.label_end > cutoff and window.cutoff < end
    what = (f"its training labels {_span(window.cutoff, window.label_end)}" if labels else
            f"its training features {_span(window.features_from, window.cutoff)}")
    return (f"{model} was trained on events of the run's label window: {what} overlap [time.cutoff, time.end) = "
            f"{_span(cutoff, end)}; its offline metrics flatter it")
