"""The Lambda layers (layers/build.py): the 250 MiB budget and the isolation checks, whenever a build exists.

Build first with `python layers/build.py` (it needs a CPython 3.12 for the checks; `--host` builds a host-Python
twin instead). Without a build under build/layers the build tests are skipped; the first two tests need none.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
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


def test_dependency_check_uses_the_lambda_runtimes_markers(tmp_path: Path) -> None:
    """The marker trap: requirements are judged for Python 3.12 on Linux, whatever the host runs."""
    meta = tmp_path / "app-1.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: app\nVersion: 1.0\n"
        'Requires-Dist: needed-on-312; python_version >= "3.12"\n'
        'Requires-Dist: only-before-312; python_version < "3.12"\n'
        'Requires-Dist: only-with-extra; extra == "fancy"\n'
    )
    assert build.dependency_problems([tmp_path], build.LAMBDA_MARKERS) == [
        'app requires needed-on-312; python_version >= "3.12": missing'
    ]


def test_importtime_total_sums_only_top_level_entries() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       100 |        100 |   _io\n"
        "import time:       200 |        300 | encodings\n"
        "import time:        50 |         50 |     numpy.version\n"
        "import time:      1000 |       5000 | handler\n"
    )
    assert build.top_level_import_us(stderr) == (5300, 5000)


def test_size_failures_name_the_function_over_budget_or_short_of_headroom() -> None:
    def sized_at(total_mib: float) -> dict[str, object]:
        return build.against_budget(int(total_mib * build.MIB))

    assert build.size_failures({"fits": sized_at(200.0)}) == []
    assert build.size_failures({"score": sized_at(235.5)}) == [
        "score: 235.5 MiB leaves 14.5 MiB under 250.0 MiB, less than the 20.0 MiB headroom"]
    assert build.size_failures({"score": sized_at(251.0)}) == ["score: 251.0 MiB > 250.0 MiB budget"]


def test_sourceless_layers_keep_bytecode_beside_a_removed_source(tmp_path: Path) -> None:
    """Legacy .pyc next to where the .py was import without it and name Lambda's path in tracebacks; a file that
    does not compile keeps its source."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("def where():\n    return where.__code__.co_filename\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    build.compile_bytecode(tmp_path, sys.executable, sourceless=True)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "broken.py", "pkg/__init__.pyc", "pkg/mod.pyc"]
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import pkg.mod; print(pkg.mod.where())"
    out = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "/opt/python/pkg/mod.py"


def test_a_sourceless_module_still_clashes_with_the_runtimes_source(tmp_path: Path) -> None:
    (tmp_path / "six.pyc").write_bytes(b"")
    (tmp_path / "pkg").mkdir()
    assert build.top_level_names(tmp_path) == {"six.py", "pkg"}


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


def test_every_function_keeps_the_headroom(sized: Any) -> None:
    assert not build.size_failures(build.size_report(sized, zipped=False)["functions"])


def test_third_party_layers_ship_bytecode_only(sized: Any) -> None:
    info = json.loads(sized.info_file.read_text())
    sources = [str(p) for layer in info["sourceless"] for p in sized.python_dir(layer).rglob("*.py")]
    assert not sources


def test_layers_do_not_overlap_and_dependencies_are_complete(sized: Any) -> None:
    problems = {name: found for name, found in build.static_checks(sized).items() if found}
    assert not problems


def test_layers_work_in_isolation(checked: Any) -> None:
    results = build.isolation_checks(checked)
    failed = {name: r["error"][-1] for name, r in results.items() if not r["ok"]}
    assert not failed, f"{failed} (see layers/README.md)"
    lib = str(checked.out / "lightgbm" / "lib") + "/"
    assert all(path.startswith(lib) for path in results["lightgbm_train_predict"]["libgomp"])
    for step, layers in checked.layout.function_layers.items():
        loaded = results[f"handler:{step}"]["loaded_from"]
        assert "lightgbm" in loaded or "lightgbm" not in layers, f"{step} has lightgbm, never loads it"


def test_score_handler_cold_import_is_timed(checked: Any) -> None:
    cold = build.cold_import_ms(checked, runs=1)
    assert cold["ok"], cold
    assert cold["median_handler_ms"] > 0
