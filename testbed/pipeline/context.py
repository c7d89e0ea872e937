"""What every step after `validate` receives: where the run lives and how to read its manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.adapters import storage
from testbed.manifest import Manifest, parse_manifest

FINAL_DECISIONS = ("PASS", "FAIL", "INCONCLUSIVE")


@dataclass(frozen=True)
class RunContext:
    run_id: str
    run_uri: str
    lake: str

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> RunContext:
        run = event["run"]
        return cls(run_id=run["run_id"], run_uri=run["run_uri"], lake=run["lake"])

    def uri(self, *parts: str) -> str:
        return storage.join(self.run_uri, *parts)

    def manifest(self) -> Manifest:
        return parse_manifest(storage.read_json(self.uri("manifest.json")), source="manifest.json")
