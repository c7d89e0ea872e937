"""The Lambda layers (layers/build.py): the 250 MiB budget and the isolation checks, whenever a build exists.

Build first with `python layers/build.py` (it needs a CPython 3.12 for the checks; `--host` builds a host-Python
twin instead). Without a build under build/layers every test here is skipped.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "layers"


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layers_build", ROOT / "layers" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build = _load_build_script()


@pytest.fixture(scope="module")
def sized() -> Any:
    """The build whose sizes count: the Lambda (cp312) build, else the host twin."""
    for target in (build.make_target(BUILD), build.make_target(BUILD, host=True)):
        if target.info_file.is_file():
            return target
    pytest.skip(f"no layer build in {BUILD}: run `python layers/build.py` first")


@pytest.fixture(scope="module")
def checked(sized: Any) -> Any:
    """The build the isolation checks can run on: cp312 with a CPython 3.12, else the host twin."""
    if sized.check_python:
        return sized
    twin = build.make_target(BUILD, host=True)
    if twin.info_file.is_file():
        return twin
    pytest.skip("no CPython 3.12 to check the cp312 layers and no host twin: run `python layers/build.py --host`")


def test_every_function_within_budget(sized: Any) -> None:
    functions = build.size_report(sized, zipped=False)["functions"]
    assert set(functions) == {p.parent.name for p in (ROOT / "functions").glob("*/handler.py")}
    over = {step: f["total_mib"] for step, f in functions.items() if not f["within_budget"]}
    assert not over, f"over the {build.BUDGET_MIB} MiB unzipped budget: {over}"


def test_layers_do_not_overlap_and_dependencies_are_complete(sized: Any) -> None:
    problems = {name: found for name, found in build.static_checks(sized).items() if found}
    assert not problems


def test_layers_work_in_isolation(checked: Any) -> None:
    results = build.isolation_checks(checked)
    failed = {name: r["error"] for name, r in results.items() if not r["ok"]}
    assert not failed, failed
    lib = str(checked.out / "lightgbm" / "lib") + "/"
    assert all(path.startswith(lib) for path in results["lightgbm_train_predict"]["libgomp"])
    for step, layers in checked.layout.function_layers.items():
        loaded = results[f"handler:{step}"]["loaded_from"]
        assert "lightgbm" in loaded or "lightgbm" not in layers, f"{step} has the lightgbm layer but never loads it"


def test_score_handler_cold_import_is_timed(checked: Any) -> None:
    cold = build.cold_import_ms(checked, runs=1)
    assert cold["ok"], cold
    assert cold["median_handler_ms"] > 0
