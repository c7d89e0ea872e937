"""The step table is the one list of steps: the functions/ folders, their handlers and the workflow agree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from testbed import steps, workflow

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def test_the_function_folders_are_exactly_the_steps_handler_folders() -> None:
    folders = {p.name for p in FUNCTIONS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {s.folder for s in steps.STEPS}
    assert len(steps.NAMES) == len(set(steps.NAMES)) == len({s.state for s in steps.STEPS})


def test_each_handler_exists_names_its_step_and_calls_its_module() -> None:
    for step in steps.STEPS:
        source = (FUNCTIONS / step.folder / "handler.py").read_text()
        assert f'@step_handler("{step.name}")' in source, step.name
        assert f"from testbed.pipeline.{step.module} import " in source, step.name
        assert (Path(steps.__file__).parent / "pipeline" / f"{step.module}.py").is_file(), step.name


def test_lookups_and_the_tracked_steps() -> None:
    assert steps.step("drift").reads_lake and not steps.step("evaluate").reads_lake
    assert steps.by_state("WhatIf") is steps.step("whatif") and steps.by_state("ExistingRecord?") is None
    assert steps.TRACKED == tuple(n for n in steps.NAMES if n != steps.RECORD_ERROR)


def test_every_step_has_a_state_in_the_workflow() -> None:
    asl = workflow.definition({name: f"<{name}>" for name in steps.NAMES})
    resources = set()

    def walk(states: dict[str, Any]) -> None:
        for state in states.values():
            if "Resource" in state and state["Resource"].startswith("<"):
                resources.add(state["Resource"].strip("<>"))
            for branch in state.get("Branches", []):
                walk(branch["States"])
            if "ItemProcessor" in state:
                walk(state["ItemProcessor"]["States"])

    walk(asl["States"])
    assert resources == set(steps.NAMES)


def test_a_step_without_the_lightgbm_layer_never_imports_lightgbm() -> None:
    """Its Lambda has no LightGBM layer (layers/build.py checks this on a real build): importing its handler with
    lightgbm made unimportable must work, or the step would fail on its first invocation in AWS."""
    import subprocess
    import sys

    light = [step.folder for step in steps.STEPS if not step.needs_lightgbm]
    code = ("import importlib.util, sys\n"
            "sys.modules['lightgbm'] = None  # import lightgbm -> ImportError\n"
            f"for folder in {light!r}:\n"
            "    spec = importlib.util.spec_from_file_location(folder, f'functions/{folder}/handler.py')\n"
            "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)}, check=False)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
