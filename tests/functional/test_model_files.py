"""Model files cut or edited so that LightGBM's own parser would abort the process (issue 11, item 16).

A model truncated inside a tree with its trailer kept must be exit 2 at validate, in one line naming the
file, from a real process (an abort would take the process down). A seeded fuzz then edits a small model
in many ways in one child process: each edit is either refused by validate's model check or loads and
predicts; the child never crashes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_input_errors import assert_one_line_error

FUZZ_SEED = 20261031
ROOT = Path(__file__).resolve().parents[2]


def _tree_span(text: bytes, index: int) -> tuple[int, int]:
    start = text.index(b"\nTree=%d\n" % index) + 1
    following = text.find(b"\nTree=%d\n" % (index + 1))
    return start, (following + 1 if following >= 0 else text.index(b"\nend of trees"))


def cut_inside_a_tree(text: bytes, index: int = 5) -> bytes:
    """Tree `index` loses its second half (mid-line); every other tree and the whole trailer stay."""
    start, stop = _tree_span(text, index)
    return text[:start + (stop - start) // 2] + b"\n\n" + text[stop:]


def truncated_then_trailer(text: bytes, index: int = 5) -> bytes:
    """A download cut inside tree `index`, with the file's trailer (end of trees onwards) put back."""
    start, stop = _tree_span(text, index)
    return text[:start + (stop - start) // 3] + text[text.index(b"\nend of trees"):]


def without_tree_sizes(change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """The same cut in a model whose header has no tree_sizes (LightGBM then reads the trees one by one)."""
    def edit(text: bytes) -> bytes:
        start = text.index(b"\ntree_sizes=") + 1
        return change(text[:start] + text[text.index(b"\n", start) + 1:])

    return edit


CUTS = {"cut-inside-a-tree": cut_inside_a_tree, "truncated-then-trailer": truncated_then_trailer,
        "cut-inside-a-tree-no-tree-sizes": without_tree_sizes(cut_inside_a_tree)}


def validate_in_a_process(manifest: Path, lake: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testbed", "validate", str(manifest), "--lake", str(lake)],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120, check=False)


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_a_model_cut_inside_a_tree_is_exit_2_at_validate(
        cut: str, small_models: dict[str, dict[str, str]], manifest_data: dict[str, Any],
        write_manifest: Callable[..., Path], small_lake: Path, tmp_path: Path) -> None:
    text = CUTS[cut](Path(small_models["control"]["uri"]).read_bytes())
    path = tmp_path / "control-cut.txt"
    path.write_bytes(text)
    manifest_data["models"]["control"] = {"uri": str(path), "sha256": hashlib.sha256(text).hexdigest()}
    done = validate_in_a_process(write_manifest(manifest_data), small_lake)
    assert done.returncode == 2, done.stderr[-2000:]
    assert_one_line_error(done.stderr, "models.control", str(path), "tree 5")


def test_a_model_needing_an_undeclared_feature_is_exit_2_naming_it(
        small_models: dict[str, dict[str, str]], manifest_data: dict[str, Any],
        write_manifest: Callable[..., Path], small_lake: Path, tmp_path: Path) -> None:
    """Validate reads the model's feature_names against its feature set (here the default one)."""
    text = Path(small_models["control"]["uri"]).read_bytes()
    start = text.index(b"\nfeature_names=") + len(b"\nfeature_names=")
    first = text[start:text.index(b" ", start)]
    text = text[:start] + b"embedding_sim" + text[start + len(first):]
    path = tmp_path / "control-renamed.txt"
    path.write_bytes(text)
    manifest_data["models"]["control"] = {"uri": str(path), "sha256": hashlib.sha256(text).hexdigest()}
    done = validate_in_a_process(write_manifest(manifest_data), small_lake)
    assert done.returncode == 2, done.stderr[-2000:]
    assert_one_line_error(done.stderr, "models.control", str(path), "needs feature embedding_sim", "retail-default")


FUZZ_CHILD = textwrap.dedent("""
    import random, sys
    import numpy as np
    from testbed.core.feature_check import check_model_features
    from testbed.core.model_text import categorical_indices
    from testbed.core.retail_default import retail_default
    from testbed.core.scoring import load_model
    from testbed.errors import FeatureSetError, ModelArtifactError
    from testbed.pipeline.validate import check_model_file

    original = open(sys.argv[1], "rb").read()
    rng = random.Random(int(sys.argv[2]))
    default_set = retail_default([7, 30, 90])

    def edit(text):
        lines = text.split(b"\\n")
        where = rng.randrange(len(lines))
        kind = rng.randrange(7)
        if kind == 0:  # truncate, keep the trailer
            cut = rng.randrange(len(text))
            return text[:cut] + text[text.index(b"\\nend of trees"):]
        if kind == 1:  # drop a line
            return b"\\n".join(lines[:where] + lines[where + 1:])
        if kind == 2:  # repeat a line
            return b"\\n".join(lines[:where] + [lines[where]] + lines[where:])
        if kind == 3:  # one number token replaced
            tokens = lines[where].split(b" ")
            i = rng.randrange(len(tokens))
            number = str(rng.choice([-40, -2, -1, 0, 1, 2, 3, 30, 99, 10**9])).encode()
            tokens[i] = tokens[i].split(b"=")[0] + b"=" + number if b"=" in tokens[i] else number
            lines[where] = b" ".join(tokens)
            return b"\\n".join(lines)
        if kind == 4:  # a byte flipped
            i = rng.randrange(len(text))
            return text[:i] + bytes([rng.randrange(256)]) + text[i + 1:]
        if kind == 5:  # a value cut off a line
            lines[where] = lines[where][: rng.randrange(len(lines[where]) + 1)]
            return b"\\n".join(lines)
        return text[: rng.randrange(len(text))]  # plain truncation

    refused = loaded = 0
    for case in range(int(sys.argv[3])):
        text = edit(original)
        print(case, flush=True)
        try:
            check_model_file(text, "model")
            model = load_model("control", text, "model")
            check_model_features(default_set, model.features, categorical_indices(text), "model", "retail-default")
        except (ModelArtifactError, FeatureSetError):
            refused += 1
            continue
        matrix = np.random.default_rng(case).random((50, len(model.features)))
        model.booster.predict(matrix, num_threads=1)
        loaded += 1
    print("refused", refused, "loaded", loaded)
""")


def fuzz_models(model: Path, cases: int) -> None:
    """MALLOC_CHECK_=3: glibc aborts at the first heap corruption, not at some later case or at exit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_CHECK_": "3"}
    done = subprocess.run([sys.executable, "-c", FUZZ_CHILD, str(model), str(FUZZ_SEED), str(cases)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    last = done.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert done.returncode == 0, f"child died ({done.returncode}) at case {last[0]}: {done.stderr[-1500:]}"
    assert last[0].startswith("refused "), last


def test_edited_models_are_refused_or_load_never_crash(small_models: dict[str, dict[str, str]]) -> None:
    fuzz_models(Path(small_models["control"]["uri"]), cases=300)


@pytest.mark.slow
def test_edited_models_are_refused_or_load_never_crash_large_budget(
        small_models: dict[str, dict[str, str]]) -> None:
    fuzz_models(Path(small_models["candidate"]["uri"]), cases=5000)
