"""Typed per-environment settings. Only app.py reads CDK context; every construct gets one `EnvironmentConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_logs as logs

ENVIRONMENTS = ("dev", "staging", "prod")
PROTECTED_ENVIRONMENTS = ("staging", "prod")
LAYER_NAMES = ("lightgbm", "data", "project")
# CloudWatch Logs accepts only fixed retention periods; these are the ones an environment may choose (days).
LOG_RETENTION = {1: "ONE_DAY", 3: "THREE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH", 60: "TWO_MONTHS",
                 90: "THREE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 731: "TWO_YEARS", 1827: "FIVE_YEARS"}
ATHENA_MIN_CUTOFF = 10_000_000  # Athena rejects smaller per-query limits
GLUE_TYPES = ("string", "int", "bigint", "double", "float", "boolean", "date", "timestamp")

_DEFAULTS: dict[str, Any] = {
    "account": None,
    "region": None,
    "lambda_memory_mb": 1024,
    "heavy_lambda_memory_mb": 3008,
    "lambda_timeout_seconds": 300,
    "heavy_lambda_timeout_seconds": 900,
    "heavy_lambda_ephemeral_storage_mb": 4096,
    "athena_bytes_scanned_cutoff": 10 * 1024**3,
    "run_timeout_minutes": 120,  # the execution's TimeoutSeconds: a run past it fails (and alarms)
    "log_retention_days": 30,
    "artifact_lock_days": 30,
    "bulky_data_days": 14,
    "schedules": [],
}


class ConfigError(ValueError):
    """cdk.json context that does not describe a deployable environment."""


@dataclass(frozen=True)
class Schedule:
    """A recurring run: an EventBridge Scheduler cron expression and a manifest in the artifacts bucket."""

    name: str
    cron: str
    manifest_key: str


@dataclass(frozen=True)
class EnvironmentConfig:
    env_name: str
    account: str | None
    region: str | None
    lambda_memory_mb: int
    heavy_lambda_memory_mb: int
    lambda_timeout_seconds: int
    heavy_lambda_timeout_seconds: int
    heavy_lambda_ephemeral_storage_mb: int
    athena_bytes_scanned_cutoff: int
    run_timeout_minutes: int
    log_retention_days: int
    artifact_lock_days: int
    bulky_data_days: int
    schedules: tuple[Schedule, ...]
    layer_dirs: Mapping[str, Path]
    lake_extra_columns: Mapping[str, Mapping[str, str]]

    @property
    def protected(self) -> bool:
        """staging and prod: termination protection on the stateful stack."""
        return self.env_name in PROTECTED_ENVIRONMENTS

    def name(self, purpose: str) -> str:
        return f"testbed-{self.env_name}-{purpose}"

    @property
    def log_retention(self) -> logs.RetentionDays:
        return logs.RetentionDays[LOG_RETENTION[self.log_retention_days]]

    @property
    def glue_database(self) -> str:
        return f"testbed_{self.env_name}"

    @property
    def workgroup(self) -> str:
        return self.name("workgroup")

    @property
    def state_machine_name(self) -> str:
        return self.name("run")

    @property
    def run_resource_prefix(self) -> str:
        """Runs name their Kinesis stream and state table `<prefix>-<run_id>` (testbed.settings)."""
        return self.name("run")

    def bucket_name(self, purpose: str) -> str:
        """Globally unique and known before deployment, so the workflow stack refers to buckets by name."""
        return f"{self.name(purpose)}-{self.account or Aws.ACCOUNT_ID}-{self.region or Aws.REGION}"


def _int(raw: Mapping[str, Any], key: str, env: str, minimum: int = 1) -> int:
    value = raw[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"environments.{env}.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _schedules(raw: Any, env: str) -> tuple[Schedule, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"environments.{env}.schedules: expected a list")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or set(item) != {"name", "cron", "manifest_key"}:
            raise ConfigError(f"environments.{env}.schedules.{i}: expected exactly name, cron, manifest_key")
        if not str(item["cron"]).startswith("cron(") or str(item["manifest_key"]).startswith(("/", "s3://")):
            raise ConfigError(f"environments.{env}.schedules.{i}: cron must be cron(...), manifest_key a bucket key")
        out.append(Schedule(name=str(item["name"]), cron=str(item["cron"]), manifest_key=str(item["manifest_key"])))
    if len({s.name for s in out}) != len(out):
        raise ConfigError(f"environments.{env}.schedules: names must be unique")
    return tuple(out)


def _columns(raw: Any) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for dataset, columns in (raw or {}).items():
        if dataset not in ("events", "users", "items"):
            raise ConfigError(f"lake_extra_columns.{dataset}: unknown dataset")
        for column, glue_type in columns.items():
            if glue_type not in GLUE_TYPES:
                raise ConfigError(f"lake_extra_columns.{dataset}.{column}: type must be one of {GLUE_TYPES}")
        out[dataset] = dict(columns)
    return out


def build_config(env_name: str, environments: Mapping[str, Any], layer_dirs: Mapping[str, Path],
                 lake_extra_columns: Mapping[str, Any] | None = None) -> EnvironmentConfig:
    """Validate one environment's context (unknown keys are errors) and fill defaults."""
    if env_name not in ENVIRONMENTS or env_name not in environments:
        raise ConfigError(f"env {env_name!r}: expected one of {[e for e in ENVIRONMENTS if e in environments]}")
    raw = {**_DEFAULTS, **environments[env_name]}
    unknown = sorted(set(raw) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"environments.{env_name}: unknown keys {unknown}")
    if raw["log_retention_days"] not in LOG_RETENTION:
        raise ConfigError(f"environments.{env_name}.log_retention_days: must be one of {sorted(LOG_RETENTION)}")
    if _int(raw, "athena_bytes_scanned_cutoff", env_name) < ATHENA_MIN_CUTOFF:
        raise ConfigError(f"environments.{env_name}.athena_bytes_scanned_cutoff: at least {ATHENA_MIN_CUTOFF}")
    if sorted(layer_dirs) != sorted(LAYER_NAMES):
        raise ConfigError(f"layer directories needed for exactly {LAYER_NAMES}")
    ints = {key: _int(raw, key, env_name) for key, default in _DEFAULTS.items() if isinstance(default, int)}
    return EnvironmentConfig(
        env_name=env_name,
        account=raw["account"],
        region=raw["region"],
        schedules=_schedules(raw["schedules"], env_name),
        layer_dirs=dict(layer_dirs),
        lake_extra_columns=_columns(lake_extra_columns),
        **ints,
    )


def resolve_layer_dirs(build_dir: Path, placeholder_root: Path) -> tuple[dict[str, Path], list[str]]:
    """Built layers from `build_dir/<name>`; an empty placeholder layer for each one not built yet.

    Returns the directories and the names that are placeholders (the app warns about those: deploying them
    gives functions that fail at import).
    """
    dirs: dict[str, Path] = {}
    missing = []
    for name in LAYER_NAMES:
        built = build_dir / name
        if built.is_dir():
            dirs[name] = built
            continue
        placeholder = placeholder_root / name
        (placeholder / "python").mkdir(parents=True, exist_ok=True)
        (placeholder / "python" / "LAYER_NOT_BUILT.txt").write_text(
            f"placeholder for layer {name!r}: build it into build/layers/{name}/ before deploying\n")
        dirs[name] = placeholder
        missing.append(name)
    return dirs, missing
