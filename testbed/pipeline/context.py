"""What every step after `validate` receives: where the run lives (its layout), the storage it is read and
written through, how to read its manifest, and the invocation (settings, clients, time left) it runs in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from testbed.adapters.storage import Storage
from testbed.invocation import Invocation
from testbed.manifest import Manifest, parse_manifest
from testbed.record.layout import RunLayout


@dataclass(frozen=True)
class RunContext:
    run_id: str
    run_uri: str
    lake: str
    invocation: Invocation
    execution: str | None = None  # the workflow execution's ARN (None outside one): who holds the run's claim

    @classmethod
    def from_event(cls, event: dict[str, Any], invocation: Invocation) -> RunContext:
        run = event["run"]
        return cls(run_id=run["run_id"], run_uri=run["run_uri"], lake=run["lake"], invocation=invocation,
                   execution=run.get("execution"))

    @property
    def storage(self) -> Storage:
        return self.invocation.storage

    @cached_property
    def layout(self) -> RunLayout:
        return RunLayout.at(self.run_uri, self.invocation.settings.scratch_uri)

    @property
    def resource_name(self) -> str:
        """The name of the run's Kinesis stream and DynamoDB state table."""
        return self.invocation.settings.run_resource_name(self.run_id)

    def uri(self, *parts: str) -> str:
        return self.layout.uri(*parts)

    def scratch(self, *parts: str) -> str:
        """The run's ephemeral prefix (Athena output, shard plans, stream chunks): `<scratch root>/<run_id>/`."""
        return self.layout.scratch(*parts)

    def manifest(self) -> Manifest:
        """Parsed as validate parses it, so a damaged copy fails as a ManifestError naming its field."""
        return parse_manifest(self.storage.read_json(self.layout.manifest.uri), source="manifest.json")
