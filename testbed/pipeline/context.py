"""What every step after `validate` receives: where the run lives, how to read its manifest, and the invocation
(settings, clients, time left) it runs in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.adapters import storage
from testbed.invocation import Invocation
from testbed.manifest import Manifest, parse_manifest
from testbed.record.layout import scratch_prefix

FINAL_DECISIONS = ("PASS", "FAIL", "INCONCLUSIVE")


def scratch_uri(artifacts: str, run_id: str, *parts: str, root: str | None = None) -> str:
    """Under the run's scratch prefix (testbed.record.layout.scratch_prefix); `root` is TESTBED_SCRATCH_URI."""
    return storage.join(scratch_prefix(artifacts, run_id, root), *parts)


@dataclass(frozen=True)
class RunContext:
    run_id: str
    run_uri: str
    lake: str
    invocation: Invocation

    @classmethod
    def from_event(cls, event: dict[str, Any], invocation: Invocation) -> RunContext:
        run = event["run"]
        return cls(run_id=run["run_id"], run_uri=run["run_uri"], lake=run["lake"], invocation=invocation)

    @property
    def resource_name(self) -> str:
        """The name of the run's Kinesis stream and DynamoDB state table."""
        return self.invocation.settings.run_resource_name(self.run_id)

    def uri(self, *parts: str) -> str:
        return storage.join(self.run_uri, *parts)

    def scratch(self, *parts: str) -> str:
        """The run's ephemeral prefix (Athena output, shard plans, stream chunks): `<scratch root>/<run_id>/`."""
        return scratch_uri(self.run_uri.rsplit("/runs/", 1)[0], self.run_id, *parts,
                           root=self.invocation.settings.scratch_uri)

    def manifest(self) -> Manifest:
        return parse_manifest(storage.read_json(self.uri("manifest.json")), source="manifest.json")
