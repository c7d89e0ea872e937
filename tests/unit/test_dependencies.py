"""The dependency picture is one way: core imports no edge, and a step imports only steps that ran before it.

Imports are read from the source (ast), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

from testbed.steps import STEPS

PACKAGE = Path(__file__).resolve().parents[2] / "testbed"
CORE_MAY_IMPORT = ("testbed.core", "testbed.errors", "testbed.manifest", "testbed.strict_json")  # strict_json: pure
# core modules that render the manifest model itself (SQL, gate definitions); everything else takes plain values
MANIFEST_READERS = {"gates", "slice_sql"}


def imports(path: Path) -> set[str]:
    """Every testbed module `path` imports, anywhere in it (`from testbed.x import y` yields testbed.x.y too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in out if name == "testbed" or name.startswith("testbed.")}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_core_imports_neither_adapters_nor_pipeline_nor_any_edge() -> None:
    found = {}
    for path in sorted((PACKAGE / "core").glob("*.py")):
        bad = sorted(n for n in imports(path) if not any(within(n, p) for p in CORE_MAY_IMPORT))
        if bad:
            found[path.stem] = bad
    assert found == {}


def test_only_the_known_core_modules_read_the_manifest_model() -> None:
    readers = {path.stem for path in (PACKAGE / "core").glob("*.py")
               if any(within(n, "testbed.manifest") for n in imports(path))}
    assert readers == MANIFEST_READERS


def _pipeline_imports(module: str) -> set[str]:
    return {n.split(".")[2] for n in imports(PACKAGE / "pipeline" / f"{module}.py")
            if within(n, "testbed.pipeline") and n.count(".") >= 2}


def test_a_step_imports_only_steps_that_run_before_it_and_helpers_import_no_step() -> None:
    order: dict[str, int] = {}
    concurrent = set()
    for index, step in enumerate(STEPS):
        order.setdefault(step.module, index)
        if step.concurrent:
            concurrent.add(step.module)
    modules = [p.stem for p in (PACKAGE / "pipeline").glob("*.py") if p.stem != "__init__"]
    backwards = []
    for module in modules:
        for target in _pipeline_imports(module) & set(order):
            if (module not in order or order[target] >= order[module]
                    or {module, target} <= concurrent):
                backwards.append(f"{module} -> {target}")
    assert backwards == []


def test_the_rule_sees_a_backward_import(tmp_path: Path) -> None:
    source = tmp_path / "evaluate.py"
    source.write_text("def f() -> None:\n    from testbed.pipeline.drift import run_drift\n")
    assert "testbed.pipeline.drift" in imports(source)
