"""The local runner: the deployed workflow's definition, executed by moto's Step Functions interpreter.

Each Task invokes its real handler in this process (functions/<step>/handler.py), against the embedded S3,
with DuckDB standing in for Athena. The embedded functions are configured with this run's settings as their
environment, as deployed ones are, so nothing of one run (such as its `--out` folder's PII key) outlives it in the
process. When the execution ends the run record is copied from the embedded bucket to the local `--out`
directory create-only (testbed.local_records).
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import SecretStr

from testbed import local_records, pii_key, steps, workflow
from testbed.adapters.aws import clients_for
from testbed.adapters.duckdb_engine import mirror_s3_lake
from testbed.adapters.embedded_aws import EmbeddedAWS, embedded_aws
from testbed.adapters.executions import Progress, follow, raise_for_failure, run_id_from_history
from testbed.adapters.storage import UriStorage, is_s3
from testbed.core.slice_sql import partition_range
from testbed.manifest import parse_manifest, read_manifest_file
from testbed.record.base import Decision
from testbed.settings import Settings

LOCAL_BUCKET = "testbed-local-artifacts"
FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
LOCAL_FIRST_POLL_SECONDS = 0.05  # the waits between polls grow from this (a run stopped by validate ends sooner)
LOCAL_MAX_POLL_SECONDS = 0.25
LOCAL_LOG_LEVEL = "WARNING"  # step logs are for CloudWatch; locally the progress display and summary speak


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


def ensure_pii_secret(out: Path, settings: Settings) -> Settings:
    """Locally, keep one random masking key per output folder (outside runs/) unless one is given; returns the
    settings of this run, which carry it."""
    if settings.pii_secret:
        return settings
    return settings.model_copy(update={"pii_secret": SecretStr(pii_key.ensure_key(out))})


def function_settings(settings: Settings) -> Settings:
    """What the embedded functions run with: the run's settings, quiet, with no EMF metrics on the terminal."""
    return settings.model_copy(update={"metrics_disabled": True, "log_level": settings.log_level or LOCAL_LOG_LEVEL})


def deploy_local_workflow(aws: EmbeddedAWS, settings: Settings) -> str:
    """Register every step's handler as an embedded Lambda with the settings as its environment, and the
    workflow as a state machine."""
    environment = function_settings(settings).environment()
    arns = {step.name: aws.register_function(f"testbed-{step.name.replace('_', '-')}", load_handler(step.folder),
                                             environment)
            for step in steps.STEPS}
    definition = json.dumps(workflow.definition(arns))
    created = aws.client("stepfunctions").create_state_machine(
        name=f"testbed-{uuid.uuid4().hex[:8]}", definition=definition, roleArn=aws.role_arn())
    return str(created["stateMachineArn"])


def run_local(manifest_path: Path, lake: str, out: Path, progress: Progress | None = None,
              settings: Settings | None = None, *, watch: bool = True) -> LocalResult:
    """Run a manifest through the embedded workflow; `settings` default to the process environment's. Without a
    progress callback, or with `watch` False (--quiet), the steps are reported once the execution ends: fetching
    moto's whole history while it runs costs CPU the run's own thread needs."""
    raw = read_manifest_file(manifest_path)
    settings = settings or Settings.from_environment()
    if is_s3(lake):  # fetch the window's partitions with real credentials before AWS is emulated
        window = parse_manifest(raw, source=str(manifest_path)).time
        lake = str(mirror_s3_lake(UriStorage(clients_for(settings).client("s3")), lake,
                                  partition_range(window.start, window.end)))
    lake = str(Path(lake).resolve())
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = ensure_pii_secret(out, settings)
    with embedded_aws(settings) as aws:
        aws.client("s3").create_bucket(Bucket=LOCAL_BUCKET)
        embedded = UriStorage(aws.client("s3"))
        local_records.hydrate(embedded, f"s3://{LOCAL_BUCKET}", out)
        machine = deploy_local_workflow(aws, settings)
        state = {"manifest": raw, "lake": lake, "artifacts": f"s3://{LOCAL_BUCKET}"}
        sfn = aws.client("stepfunctions")
        execution = sfn.start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4().hex}",
                                        input=json.dumps(state))
        ended = follow(sfn, execution["executionArn"], progress or (lambda *_: None),
                       poll_s=LOCAL_FIRST_POLL_SECONDS, max_poll_s=LOCAL_MAX_POLL_SECONDS,
                       watch=watch and progress is not None)
        output = json.loads(ended.get("output") or "{}")
        run_id = (output.get("run") or {}).get("run_id") or run_id_from_history(ended["history"])
        there_first = local_records.publish(embedded, f"s3://{LOCAL_BUCKET}", run_id, out) if run_id else None
        if ended["status"] != "SUCCEEDED":
            raise_for_failure(ended.get("error", "Error"), ended.get("cause", ""))
        run = output["run"]
        run_id = run["run_id"]
        if run["existing_decision"]:
            return LocalResult(run_id, run["existing_decision"], out / "runs" / run_id, existing=True,
                               history=ended["history"])
        if there_first is not None:  # a concurrent run into the same folder recorded this run first
            return LocalResult(run_id, there_first.decision, out / "runs" / run_id, existing=True,
                               steps=output["steps"], history=ended["history"])
        record = output["steps"]["record"]
        return LocalResult(run_id, record["decision"], out / "runs" / run_id, existing=record["existing"],
                           steps=output["steps"], history=ended["history"])
