"""The settings of one invocation, read from its environment: the only module that reads `os.environ`.

A deployed Lambda gets them as environment variables (infra/functions.py sets them); the local runner gives its
embedded functions the same variables. `Settings.from_environment` is called per invocation (and once by the
CLI), never at import time, so tests pass a mapping instead of editing the process environment.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

import testbed
from testbed.errors import InputError, SettingsError

PII_SECRET_ENV = "TESTBED_PII_SECRET"
PII_SECRET_ARN_ENV = "TESTBED_PII_SECRET_ARN"  # deployed: a Secrets Manager secret
DEFAULT_REGION = "us-east-1"
MIN_SECRET_CHARS = 16
LAMBDA_RUNTIME = "AWS_Lambda_"  # how the Lambda runtime's AWS_EXECUTION_ENV begins (AWS_Lambda_python3.12)

# OpenMP (libgomp, which LightGBM loads) reads its wait policy once, when the library loads. PASSIVE: a thread that
# reaches a barrier first sleeps instead of spinning. With LightGBM's two threads and another busy process on a
# 2-core machine, the spinning thread held the core its partner needed: training the own-model example's control
# ran 36 s instead of 8.4 s, with the same model bytes either way (libgomp's default spins before it sleeps).
OPENMP_ENVIRONMENT: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def prefer_passive_openmp() -> None:
    """OPENMP_ENVIRONMENT in this process's environment, where it says nothing else; before LightGBM is first
    imported (the CLI's first step, the test suite's package; deployed functions get it from infra/functions.py)."""
    for name, value in OPENMP_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


# Field → the environment variable it comes from (the names infra/functions.py sets on every function).
VARIABLES: dict[str, str] = {
    "engine": "TESTBED_ENGINE",
    "athena_workgroup": "TESTBED_ATHENA_WORKGROUP",
    "glue_database": "TESTBED_GLUE_DATABASE",
    "lake_uri": "TESTBED_LAKE_URI",
    "artifacts_uri": "TESTBED_ARTIFACTS_URI",
    "scratch_uri": "TESTBED_SCRATCH_URI",  # deployed: the scratch bucket (no Object Lock, 1-day expiry)
    "resource_prefix": "TESTBED_RESOURCE_PREFIX",  # deployed: testbed-<env>, so environments never share a stream
    "pii_secret": PII_SECRET_ENV,
    "pii_secret_arn": PII_SECRET_ARN_ENV,
    "local_concurrency": "TESTBED_LOCAL_CONCURRENCY",
    "log_level": "POWERTOOLS_LOG_LEVEL",
    "metrics_disabled": "POWERTOOLS_METRICS_DISABLED",
}
_TRUE = ("1", "true", "yes", "on")


class Settings(BaseModel):
    """Every environment-derived setting, validated once per invocation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: Literal["duckdb", "athena"] = "duckdb"
    athena_workgroup: str | None = None
    glue_database: str | None = None
    lake_uri: str | None = None  # the deployment's defaults when an execution input leaves lake/artifacts out
    artifacts_uri: str | None = None
    scratch_uri: str | None = None  # where runs keep ephemeral objects; None: `<artifacts>/scratch`
    resource_prefix: str = Field(default="testbed", min_length=1)
    pii_secret: SecretStr | None = None
    pii_secret_arn: str | None = None
    aws_region: str = DEFAULT_REGION
    local_concurrency: int = Field(default=1, ge=1)  # embedded Lambda invocations at once (local runs)
    log_level: str | None = None  # None: Powertools' own default
    metrics_disabled: bool = False
    dumb_terminal: bool = False  # TERM=dumb: no live progress display
    lambda_runtime: bool = False  # AWS_EXECUTION_ENV is Lambda's: request timings are the deployed function's

    @model_validator(mode="after")
    def _athena_needs_its_catalog(self) -> Settings:
        if self.engine == "athena":
            missing = [VARIABLES[f] for f in ("athena_workgroup", "glue_database") if not getattr(self, f)]
            if missing:
                raise ValueError(f"TESTBED_ENGINE=athena needs {' and '.join(missing)}")
        return self

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (the process environment when None); empty variables count as unset."""
        env = os.environ if environ is None else environ
        given: dict[str, object] = {field: env[name] for field, name in VARIABLES.items() if env.get(name)}
        if "local_concurrency" in given:
            given["local_concurrency"] = _at_least_one(str(given["local_concurrency"]))
        if "metrics_disabled" in given:
            given["metrics_disabled"] = str(given["metrics_disabled"]).lower() in _TRUE
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        try:
            if region:
                given["aws_region"] = region
            return cls.model_validate({**given, "dumb_terminal": env.get("TERM", "") == "dumb",
                                       "lambda_runtime": env.get("AWS_EXECUTION_ENV", "").startswith(LAMBDA_RUNTIME)})
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = str(problem["loc"][0]) if problem["loc"] else ""
            where = f"{VARIABLES[field]}: " if field in VARIABLES else ""
            raise SettingsError(f"environment: {where}{problem['msg'].removeprefix('Value error, ')}") from None

    def environment(self) -> dict[str, str]:
        """The variables a Lambda function is configured with to get these settings (region and terminal aside:
        Lambda sets AWS_REGION itself)."""
        out: dict[str, str] = {}
        for field, name in VARIABLES.items():
            value = getattr(self, field)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, bool):
                value = "true" if value else ""
            if value is not None and value != "":
                out[name] = str(value)
        return out

    def pii_key(self, read_secret: Callable[[str], str]) -> bytes:
        """The HMAC key for PII masking: TESTBED_PII_SECRET, or the Secrets Manager secret TESTBED_PII_SECRET_ARN
        names (`read_secret` fetches it by ARN). Never in a run record."""
        secret = self.pii_secret.get_secret_value() if self.pii_secret else ""
        if not secret and self.pii_secret_arn:
            secret = read_secret(self.pii_secret_arn)
        if len(secret) < MIN_SECRET_CHARS:
            raise InputError(f"{PII_SECRET_ENV} (or {PII_SECRET_ARN_ENV}) must give a secret of at least "
                             f"{MIN_SECRET_CHARS} characters")
        return secret.encode()

    def default_uri(self, kind: Literal["lake", "artifacts"]) -> str | None:
        """Deployed defaults for a run's `lake` / `artifacts` when the execution input leaves them out."""
        return self.lake_uri if kind == "lake" else self.artifacts_uri

    def run_resource_name(self, run_id: str) -> str:
        """The name of a run's Kinesis stream and DynamoDB state table: the prefix plus the run id."""
        return f"{self.resource_prefix}-{run_id}"


def _at_least_one(value: str) -> int | str:
    """TESTBED_LOCAL_CONCURRENCY below 1 means 1; a non-number is left for validation to reject."""
    try:
        return max(1, int(value))
    except ValueError:
        return value


@functools.cache
def code_version() -> str:
    """Package version plus a digest of its sources: any code change gives new run ids."""
    root = Path(testbed.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{testbed.__version__}+{digest.hexdigest()[:12]}"
