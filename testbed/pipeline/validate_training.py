"""Validation's training-window check: was a model trained on events of the run's label window?

The window comes from the model's sidecar (`<model uri>.json`, written by `testbed train`) when the sidecar
describes the very file the manifest names (same SHA-256). An overlap is a warning, or with
`evaluation.training_overlap: error` a TrainingOverlapError (exit 2). A model without such a sidecar gets no
warning; its provenance says the overlap is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from testbed.adapters.storage import Storage
from testbed.core import training_window
from testbed.core.training_window import Overlap, TrainingWindow
from testbed.errors import TrainingOverlapError
from testbed.manifest import Manifest
from testbed.record.run import TrainingWindowRecord

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class TrainingCheck:
    window: TrainingWindow | None
    overlap: Overlap
    warning: str | None

    def record(self) -> TrainingWindowRecord | None:
        if self.window is None:
            return None
        first = self.window.features_from
        return TrainingWindowRecord(features_from=first.isoformat() if first else None,
                                    cutoff=self.window.cutoff.isoformat(), label_end=self.window.label_end.isoformat())


def recorded_window(storage: Storage, uri: str, sha256: str) -> TrainingWindow | None:
    try:
        data = storage.read_bytes(uri + SIDECAR_SUFFIX)
    except (OSError, ClientError):
        return None
    return training_window.from_sidecar(data, sha256)


def check_training(storage: Storage, manifest: Manifest, role: str, uri: str, sha256: str) -> TrainingCheck:
    """The model's recorded window against [time.cutoff, time.end); raises when the manifest says error."""
    window = recorded_window(storage, uri, sha256)
    if window is None:
        return TrainingCheck(None, "unknown", None)
    cutoff, end = manifest.time.cutoff, manifest.time.end
    if not window.overlaps(cutoff, end):
        return TrainingCheck(window, "none", None)
    line = training_window.overlap_line(f"models.{role} ({uri})", window, cutoff, end)
    if manifest.evaluation.training_overlap == "error":
        raise TrainingOverlapError(f"manifest: {line} (evaluation.training_overlap: error)")
    return TrainingCheck(window, "overlap", line)
