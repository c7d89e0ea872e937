#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c env=dev|staging|prod`. The only place that reads CDK context."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import EnvironmentConfig, build_config, resolve_layer_dirs
from infra.stacks import DataStack, WorkflowStack

ROOT = Path(__file__).resolve().parent


def build_app(app: App, layers_dir: Path | None = None) -> tuple[EnvironmentConfig, DataStack, WorkflowStack]:
    """Both stacks of one environment, checked by cdk-nag. Tests call this with their own App and layers dir."""
    env_name = app.node.try_get_context("env") or "dev"
    layer_dirs, placeholders = resolve_layer_dirs(layers_dir or ROOT / "build" / "layers",
                                                  Path(app.outdir) / "layer-placeholders")
    config = build_config(env_name, app.node.try_get_context("environments") or {}, layer_dirs,
                          app.node.try_get_context("lake_extra_columns"))
    data = DataStack(app, f"TestbedData-{env_name}", config=config)
    workflow = WorkflowStack(app, f"TestbedWorkflow-{env_name}", config=config, data=data)
    if placeholders:
        Validations.of(workflow).add_warning(
            "testbed:layers-not-built",
            f"layers {placeholders} are not built (build/layers/<name>/ missing): the synthesized functions use "
            "empty placeholder layers and would fail at import if deployed")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    return config, data, workflow


if __name__ == "__main__":
    cdk_app = App()
    build_app(cdk_app)
    cdk_app.synth()
