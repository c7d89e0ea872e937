"""What every step after `validate` receives: where the run lives and how to read its manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.adapters import storage
from testbed.manifest import Manifest, parse_manifest

FINAL_DECISIONS = ("PASS", "FAIL", "INCONCLUSIVE")


def scratch_uri(artifacts: str, run_id: str, *parts: str) -> str:
    return storage.join(artifacts, "scratch", run_id, *parts)


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

    def scratch(self, *parts: str) -> str:
        """The run's ephemeral prefix `<artifacts>/scratch/<run_id>/` (Athena output, shard plans)."""
        return scratch_uri(self.run_uri.rsplit("/runs/", 1)[0], self.run_id, *parts)

    def manifest(self) -> Manifest:
        return parse_manifest(storage.read_json(self.uri("manifest.json")), source="manifest.json")
