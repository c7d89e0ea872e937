"""mypy follows only the aws_cdk modules listed in pyproject.toml (the rest are skipped for speed): every module
that the checked code imports must be on that list, or its types would silently be Any."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = [*sorted((ROOT / "testbed").rglob("*.py")), *sorted((ROOT / "infra").rglob("*.py")), ROOT / "app.py"]


def cdk_modules(path: Path) -> set[str]:
    """The aws_cdk modules `path` imports: `import aws_cdk.x`, `from aws_cdk.x import Y`, `from aws_cdk import x`
    (a lower-case name imported from a package is a module; classes such as Stack are capitalised)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name[0].islower())
    return {name for name in found if name == "aws_cdk" or name.startswith("aws_cdk.")}


def followed_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    return {module for override in config if override.get("follow_imports") == "normal"
            for module in override["module"]}


def test_every_imported_cdk_module_is_type_checked() -> None:
    imported = set().union(*(cdk_modules(path) for path in CHECKED))
    assert "aws_cdk.aws_s3" in imported  # the scan sees the infra code's imports
    assert imported - followed_modules() == set()
