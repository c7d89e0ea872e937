"""Settings come from a mapping (no process environment needed), are validated, and round-trip through the
environment a Lambda function is configured with."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testbed.errors import InputError, SettingsError
from testbed.settings import Settings, prefer_passive_openmp

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:1:secret:pii"
DEPLOYED = {"TESTBED_ENGINE": "athena", "TESTBED_ATHENA_WORKGROUP": "wg", "TESTBED_GLUE_DATABASE": "lake",
            "TESTBED_LAKE_URI": "s3://lake", "TESTBED_ARTIFACTS_URI": "s3://art",
            "TESTBED_RESOURCE_PREFIX": "testbed-dev", "TESTBED_PII_SECRET_ARN": SECRET_ARN, "AWS_REGION": "eu-west-1"}


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_environment({})
    assert settings.engine == "duckdb" and settings.aws_region == "us-east-1"
    assert settings.run_resource_name("r-1") == "testbed-r-1" and settings.default_uri("lake") is None
    assert settings.local_concurrency == 1 and not settings.metrics_disabled and not settings.dumb_terminal


def test_a_deployed_environment() -> None:
    settings = Settings.from_environment(DEPLOYED)
    assert (settings.engine, settings.athena_workgroup, settings.glue_database) == ("athena", "wg", "lake")
    assert settings.default_uri("lake") == "s3://lake" and settings.default_uri("artifacts") == "s3://art"
    assert settings.run_resource_name("r-1") == "testbed-dev-r-1" and settings.aws_region == "eu-west-1"
    assert settings.pii_key(lambda arn: f"secret-of-{arn}") == f"secret-of-{SECRET_ARN}".encode()


def test_empty_variables_count_as_unset_and_small_concurrency_means_one() -> None:
    settings = Settings.from_environment({"TESTBED_RESOURCE_PREFIX": "", "TESTBED_LOCAL_CONCURRENCY": "0",
                                          "AWS_DEFAULT_REGION": "eu-central-1", "TERM": "dumb",
                                          "POWERTOOLS_METRICS_DISABLED": "True"})
    assert settings.resource_prefix == "testbed" and settings.local_concurrency == 1
    assert settings.aws_region == "eu-central-1" and settings.dumb_terminal and settings.metrics_disabled


@pytest.mark.parametrize(("environ", "needle"), [
    ({"TESTBED_ENGINE": "athena", "TESTBED_GLUE_DATABASE": "lake"}, "TESTBED_ENGINE=athena needs "
                                                                     "TESTBED_ATHENA_WORKGROUP"),
    ({"TESTBED_ENGINE": "presto"}, "TESTBED_ENGINE"),
    ({"TESTBED_LOCAL_CONCURRENCY": "many"}, "TESTBED_LOCAL_CONCURRENCY"),
])
def test_invalid_settings_are_one_clear_input_error(environ: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle) as raised:
        Settings.from_environment(environ)
    assert raised.value.exit_code == 2 and "\n" not in str(raised.value)


def test_the_function_environment_round_trips() -> None:
    settings = Settings.from_environment({**DEPLOYED, "TESTBED_PII_SECRET": "k" * 16,
                                          "POWERTOOLS_METRICS_DISABLED": "true"})
    environment = settings.environment()
    assert "AWS_REGION" not in environment  # Lambda sets it
    assert Settings.from_environment({**environment, "AWS_REGION": "eu-west-1"}) == settings


def test_the_pii_secret_is_never_shown_and_must_be_long_enough() -> None:
    settings = Settings.from_environment({"TESTBED_PII_SECRET": "short"})
    assert "short" not in repr(settings)
    with pytest.raises(InputError, match="at least 16 characters"):
        settings.pii_key(lambda arn: "")


def test_openmp_waits_passively_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    prefer_passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's own choice wins
    prefer_passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_cli_sets_the_policy_before_anything_loads_lightgbm() -> None:
    """libgomp reads the policy when LightGBM loads it, so importing the CLI must not load LightGBM, and main
    sets the policy first (even for --help)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = ("import os, sys\n"
            "from testbed.cli import main\n"
            "loaded = 'lightgbm' in sys.modules\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(loaded, os.environ.get('OMP_WAIT_POLICY'))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["False", "PASSIVE"]
