"""`testbed demo`: a seeded lake, a control and a candidate model, and a local run of the example manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from testbed.cli_support import EXIT_CODES, say
from testbed.core.generate import LakeSpec, generate_lake
from testbed.local import Progress, run_local
from testbed.phase_progress import PhaseProgress
from testbed.pipeline.train import train_model

EXAMPLE = Path(__file__).resolve().parent.parent / "manifests" / "loyalty-members-90d.json"
DEMO_LAKE = LakeSpec(users=5000, days=180, seed=7)


def prepare(directory: Path, phases: Callable[[str], PhaseProgress] = PhaseProgress) -> Path:
    """Lake, models and a manifest pointing at them; reused when already there (all steps are seeded).
    `phases` makes the progress display of each model's training (default: none)."""
    lake, models = directory / "lake", directory / "models"
    if not (lake / "users").exists():
        say(f"demo: generating a retail lake ({DEMO_LAKE.users} users, {DEMO_LAKE.days} days) in {lake}")
        generate_lake(lake, DEMO_LAKE)
    shas = {}
    for role, feature_set in (("control", "control"), ("candidate", "full")):
        path = models / f"{role}.txt"
        if not path.exists():
            say(f"demo: training the {role} model ({feature_set} features)")
            with phases(f"demo: {role} model") as progress:
                train_model(str(lake), path, feature_set=feature_set, progress=progress)
        shas[role] = json.loads(Path(str(path) + ".json").read_text())["sha256"]
    manifest = json.loads(EXAMPLE.read_text())
    for role, sha in shas.items():
        manifest["models"][role] = {"uri": f"models/{role}.txt", "sha256": sha}
    target = directory / "manifest.json"
    target.write_text(json.dumps(manifest, indent=2) + "\n")
    return target


def run_demo(directory: Path, progress: Progress, summary: Callable[[Path, str, bool], None],
             phases: Callable[[str], PhaseProgress] = PhaseProgress) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = prepare(directory, phases)
    say(f"demo: running {manifest} locally")
    result = run_local(manifest, str(directory / "lake"), directory, progress)
    summary(result.run_dir, result.decision, result.existing)
    return EXIT_CODES[result.decision]
