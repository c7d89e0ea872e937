"""ranx as a reference implementation of the ranking metrics, run in its own venv.

ranx pulls numba, llvmlite, pandas, matplotlib and ir_datasets (about 450 MB beyond the dev venv), so .ci/run
installs it into `.ranx` from .ci/requirements-ranx.txt and sets TESTBED_RANX to that venv's python; without it the
tests that use it skip. The tests call :func:`ranx_scores`, which runs this file as a script under that python:
qrels, run and metric names go in as JSON on stdin, each metric's per-user scores (ranx's ``run.scores``) come back
on stdout. The script part imports nothing from the testbed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RANX = os.environ.get("TESTBED_RANX")
SKIP_REASON = "TESTBED_RANX is not set; .ci/run installs ranx into .ranx (.ci/requirements-ranx.txt)"
Qrels = dict[str, dict[str, int]]
Ranked = dict[str, dict[str, float]]


def ranx_scores(qrels: Qrels, run: Ranked, metrics: list[str]) -> dict[str, dict[str, float]]:
    """metric -> user -> ranx's score, for every user in `qrels` (users absent from `run` are misses)."""
    assert RANX, SKIP_REASON
    out = subprocess.run([RANX, str(Path(__file__).resolve())], input=json.dumps(
        {"qrels": qrels, "run": run, "metrics": metrics}), capture_output=True, text=True, check=False, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    scores: dict[str, dict[str, float]] = json.loads(out.stdout)
    return scores


def _main() -> None:
    import warnings

    from ranx import Qrels, Run, evaluate

    warnings.simplefilter("ignore")  # numba's type-safety warnings on ranx's own casts
    given: dict[str, Any] = json.load(sys.stdin)
    qrels = Qrels(given["qrels"])
    run = Run(given["run"]).make_comparable(qrels)  # a user with labels but no list gets an empty list
    evaluate(qrels, run, given["metrics"], return_mean=False)
    json.dump({m: {u: float(v) for u, v in run.scores[m].items()} for m in given["metrics"]}, sys.stdout)


if __name__ == "__main__":
    _main()
