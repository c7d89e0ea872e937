"""The local runner: the same Lambda handlers, in order, against an embedded AWS (moto) and DuckDB.

Run data goes through the embedded S3 exactly as it would in AWS; when the run ends its record is copied
to the local `--out` directory, `run.json` last.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from testbed.adapters import storage
from testbed.adapters.aws import client, reset_clients
from testbed.errors import InputError, ManifestError, TestbedError
from testbed.settings import PII_SECRET_ENV

LOCAL_BUCKET = "testbed-local-artifacts"
STEPS = ("slice", "features", "score", "evaluate", "gate", "record")
FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"

Progress = Callable[[str, int, int, dict[str, Any] | None], None]


@dataclass
class LocalResult:
    run_id: str
    decision: str
    run_dir: Path
    existing: bool
    steps: dict[str, Any] = field(default_factory=dict)


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


@contextlib.contextmanager
def embedded_aws() -> Iterator[None]:
    """moto's in-process AWS with throwaway credentials; nothing leaves this process."""
    from moto import mock_aws

    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in fake}
    os.environ.update(fake)
    try:
        with mock_aws():
            reset_clients()
            yield
    finally:
        reset_clients()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read_manifest_file(path: Path) -> dict[str, Any]:
    """Raw manifest data with relative model paths resolved against the manifest's folder."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc.strerror})") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: not valid JSON/YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: the manifest must be an object")
    for model in (data.get("models") or {}).values():
        if isinstance(model, dict) and isinstance(model.get("uri"), str) and not storage.is_s3(model["uri"]):
            model["uri"] = str((path.parent / model["uri"]).resolve())
    return data


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
    keys = list(storage.list_keys(prefix))
    for uri in sorted(keys, key=lambda u: u.endswith("/run.json")):  # run.json last
        storage.write_bytes(str(target / uri[len(prefix):]), storage.read_bytes(uri))
    return target


def run_local(manifest_path: Path, lake: str, out: Path, progress: Progress | None = None) -> LocalResult:
    raw = read_manifest_file(manifest_path)
    lake = lake if storage.is_s3(lake) else str(Path(lake).resolve())
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ensure_pii_secret(out)
    notify = progress or (lambda *_: None)
    total = len(STEPS) + 1
    with embedded_aws():
        client("s3").create_bucket(Bucket=LOCAL_BUCKET)
        _hydrate(out)
        state: dict[str, Any] = {"manifest": raw, "lake": lake, "artifacts": f"s3://{LOCAL_BUCKET}"}
        notify("validate", 1, total, None)
        state["run"] = load_handler("validate")(state, None)
        notify("validate", 1, total, state["run"])
        run_id = state["run"]["run_id"]
        if state["run"]["existing_decision"]:
            return LocalResult(run_id, state["run"]["existing_decision"], out / "runs" / run_id, existing=True)
        state["steps"] = {}
        for index, step in enumerate(STEPS, start=2):
            notify(step, index, total, None)
            try:
                state["steps"][step] = load_handler(step)(state, None)
            except Exception as exc:
                error = {"Error": type(exc).__name__, "Cause": str(exc)}
                load_handler("record_error")({**state, "failed_step": step, "error": error}, None)
                _export(run_id, out)
                if isinstance(exc, TestbedError):
                    raise
                raise RunFailedError(f"step {step} failed: {type(exc).__name__}: {exc}") from exc
            notify(step, index, total, state["steps"][step])
        result = state["steps"]["record"]
        run_dir = _export(run_id, out)
        return LocalResult(run_id, result["decision"], run_dir, existing=result["existing"], steps=state["steps"])


class RunFailedError(TestbedError):
    """A step raised an unexpected error; the run was recorded as ERROR (exit code 4)."""


__all__ = ["InputError", "LocalResult", "run_local"]
