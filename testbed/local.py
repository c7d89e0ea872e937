"""The local runner: the deployed workflow's definition, executed by moto's Step Functions interpreter.

Each Task invokes its real handler in this process (functions/<step>/handler.py), against the embedded S3,
with DuckDB standing in for Athena. When the execution ends the run record is copied from the embedded
bucket to the local `--out` directory, `run.json` last.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from testbed import workflow
from testbed.adapters import storage
from testbed.adapters.aws import client
from testbed.adapters.duckdb_engine import mirror_s3_lake
from testbed.adapters.embedded_aws import embedded_aws, register_function, role_arn
from testbed.adapters.executions import Progress, follow, raise_for_failure, run_id_from_history
from testbed.core.slice_sql import partition_range
from testbed.manifest import parse_manifest, read_manifest_file
from testbed.record.base import Decision
from testbed.settings import PII_SECRET_ENV

LOCAL_BUCKET = "testbed-local-artifacts"
FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
LOCAL_POLL_SECONDS = 0.25


@dataclass
class LocalResult:
    run_id: str
    decision: Decision
    run_dir: Path
    existing: bool
    steps: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def load_handler(step: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Import functions/<step>/handler.py exactly as Lambda would, by file."""
    path = FUNCTIONS_DIR / step / "handler.py"
    spec = importlib.util.spec_from_file_location(f"functions.{step}.handler", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load handler {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.lambda_handler
    return handler


def ensure_pii_secret(out: Path) -> None:
    """Locally, keep one random masking key per output folder (outside runs/) unless one is given."""
    if os.environ.get(PII_SECRET_ENV):
        return
    key_file = out / ".testbed" / "pii.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    os.environ[PII_SECRET_ENV] = key_file.read_text().strip()


def _hydrate(out: Path) -> None:
    """Copy existing records into the embedded bucket so a rerun sees (and never overwrites) them."""
    for record in sorted((out / "runs").glob("*/run.json")):
        storage.write_bytes(f"s3://{LOCAL_BUCKET}/runs/{record.parent.name}/run.json", record.read_bytes())


def _export(run_id: str, out: Path) -> Path:
    prefix = f"s3://{LOCAL_BUCKET}/runs/{run_id}/"
    target = out / "runs" / run_id
    for uri in sorted(storage.list_keys(prefix), key=lambda u: u.endswith("/run.json")):  # run.json last
        storage.write_bytes(str(target / uri[len(prefix):]), storage.read_bytes(uri))
    return target


def deploy_local_workflow() -> str:
    """Register every step's handler as an embedded Lambda and the workflow as a state machine."""
    arns = {step: register_function(f"testbed-{step.replace('_', '-')}", load_handler(step))
            for step in workflow.STEPS}
    definition = json.dumps(workflow.definition(arns))
    created = client("stepfunctions").create_state_machine(
        name=f"testbed-{uuid.uuid4().hex[:8]}", definition=definition, roleArn=role_arn())
    return str(created["stateMachineArn"])


def run_local(manifest_path: Path, lake: str, out: Path, progress: Progress | None = None) -> LocalResult:
    raw = read_manifest_file(manifest_path)
    if storage.is_s3(lake):  # fetch the window's partitions with real credentials before AWS is emulated
        window = parse_manifest(raw, source=str(manifest_path)).time
        lake = str(mirror_s3_lake(lake, partition_range(window.start, window.end)))
    lake = str(Path(lake).resolve())
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ensure_pii_secret(out)
    with embedded_aws():
        client("s3").create_bucket(Bucket=LOCAL_BUCKET)
        _hydrate(out)
        machine = deploy_local_workflow()
        state = {"manifest": raw, "lake": lake, "artifacts": f"s3://{LOCAL_BUCKET}"}
        execution = client("stepfunctions").start_execution(
            stateMachineArn=machine, name=f"run-{uuid.uuid4().hex}", input=json.dumps(state))
        ended = follow(execution["executionArn"], progress or (lambda *_: None),
                       poll_s=LOCAL_POLL_SECONDS, max_poll_s=LOCAL_POLL_SECONDS)
        output = json.loads(ended.get("output") or "{}")
        run_id = (output.get("run") or {}).get("run_id") or run_id_from_history(ended["history"])
        if run_id:
            _export(run_id, out)
        if ended["status"] != "SUCCEEDED":
            raise_for_failure(ended.get("error", "Error"), ended.get("cause", ""))
        run = output["run"]
        run_id = run["run_id"]
        if run["existing_decision"]:
            return LocalResult(run_id, run["existing_decision"], out / "runs" / run_id, existing=True,
                               history=ended["history"])
        record = output["steps"]["record"]
        return LocalResult(run_id, record["decision"], out / "runs" / run_id, existing=record["existing"],
                           steps=output["steps"], history=ended["history"])
