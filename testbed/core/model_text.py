"""A complete structural check of a LightGBM text model, done before LightGBM's own parser sees it.

LightGBM parses trees in an OpenMP loop at the offsets its `tree_sizes` header gives: a tree cut short or
edited (with the trailer kept) makes it read past the text and abort or segfault the whole process, and a
node pointing outside its tree crashes `predict` later. So every tree block is checked here the way
LightGBM (v4 format) reads it: where it starts, its size, its keys, how many numbers each array holds and
that its child links form one tree over the features the header declares.
"""

from __future__ import annotations

import json
import math
import re

HEADER_KEYS = ("version", "num_class", "num_tree_per_iteration", "max_feature_idx", "objective", "feature_names")
_TREE_LINE = re.compile(rb"^Tree=(\d+)$", re.MULTILINE)
_END_OF_TREES = b"end of trees"
_PANDAS_KEY = "pandas_categorical:"
_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|-?inf|nan")
_OBJECTIVE = re.compile(r"[a-z_]+(?: [a-z_]+:[^ ]+)*")
_PARAMETER = re.compile(r"\[[a-z0-9_]+: .*\]")

_NODE_INTS = ("split_feature", "decision_type", "left_child", "right_child")  # one per internal node
_NODE_FLOATS = ("threshold",)
_OPTIONAL_NODE = ("split_gain", "internal_value", "internal_weight", "internal_count")
_OPTIONAL_LEAF = ("leaf_weight", "leaf_count")
_CATEGORICAL = 1  # decision_type bit: a categorical split, threshold indexes cat_boundaries


class ModelTextError(ValueError):
    """Why the text is not a whole LightGBM text model (one line)."""


def _key_values(block: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ModelTextError(f"{what}: line {line[:30]!r} is not key=value")
        out[key] = value
    return out


def _numbers(values: dict[str, str], key: str, count: int, what: str, *, integer: bool) -> list[float]:
    if key not in values:
        raise ModelTextError(f"{what}: {key} is missing")
    fields = values[key].split(" ")  # LightGBM splits on spaces only; str.split() would also split on \x1c
    if len(fields) != count:
        raise ModelTextError(f"{what}: {key} has {len(fields)} values, expected {count}")
    pattern = _INT if integer else _FLOAT
    if not all(pattern.fullmatch(f) for f in fields):
        raise ModelTextError(f"{what}: {key} holds a value that is not a number")
    return [int(f) for f in fields] if integer else [float(f) for f in fields]


def _count(values: dict[str, str], key: str, what: str, default: int | None = None) -> int:
    if key not in values and default is not None:
        return default
    number = _numbers(values, key, 1, what, integer=True)[0]
    if number < 0:
        raise ModelTextError(f"{what}: {key} is negative")
    return int(number)


def _check_links(left: list[float], right: list[float], leaves: int, what: str) -> None:
    """From the root, child links (node >= 0, leaf as ~index) reach every node and every leaf exactly once."""
    nodes, seen_leaves, stack = {0}, set(), [0]
    while stack:
        node = stack.pop()
        for child in (int(left[node]), int(right[node])):
            if child >= 0:
                if child >= leaves - 1 or child in nodes:
                    raise ModelTextError(f"{what}: child link {child} does not form a tree")
                nodes.add(child)
                stack.append(child)
            elif ~child >= leaves or ~child in seen_leaves:
                raise ModelTextError(f"{what}: leaf link {child} does not form a tree")
            else:
                seen_leaves.add(~child)
    if len(nodes) != leaves - 1 or len(seen_leaves) != leaves:
        raise ModelTextError(f"{what}: not every node and leaf hangs from the root")


def _check_splits(values: dict[str, str], leaves: int, categories: int, features: int, what: str) -> None:
    """The internal nodes' arrays: lengths, feature indices, split kinds, and the links between nodes."""
    ints = {key: _numbers(values, key, leaves - 1, what, integer=True) for key in _NODE_INTS}
    thresholds = _numbers(values, "threshold", leaves - 1, what, integer=False)
    for key in _OPTIONAL_NODE:
        if key in values:
            _numbers(values, key, leaves - 1, what, integer=False)
    if any(not 0 <= f < features for f in ints["split_feature"]):
        raise ModelTextError(f"{what}: split_feature outside the header's {features} features")
    for decision, threshold in zip(ints["decision_type"], thresholds, strict=True):
        if not 0 <= decision < 16:
            raise ModelTextError(f"{what}: decision_type {decision} is not a split kind")
        if int(decision) & _CATEGORICAL and not (math.isfinite(threshold) and 0 <= threshold < categories):
            raise ModelTextError(f"{what}: a categorical split points outside num_cat")
    _check_links(ints["left_child"], ints["right_child"], leaves, what)


def _check_tree(block: str, index: int, features: int) -> None:
    what = f"tree {index}"
    values = _key_values(block.removeprefix(f"Tree={index}\n"), what)
    leaves = _count(values, "num_leaves", what)
    if leaves < 1:
        raise ModelTextError(f"{what}: num_leaves is 0")
    categories = _count(values, "num_cat", what)
    _numbers(values, "leaf_value", leaves, what, integer=False)
    for key in _OPTIONAL_LEAF:
        if key in values:
            _numbers(values, key, leaves, what, integer=False)
    if "shrinkage" in values:
        _numbers(values, "shrinkage", 1, what, integer=False)
    if leaves > 1:
        _check_splits(values, leaves, categories, features, what)
    if categories:
        bounds = _numbers(values, "cat_boundaries", categories + 1, what, integer=True)
        if bounds[0] != 0 or any(b > a for a, b in zip(bounds[1:], bounds, strict=False)):
            raise ModelTextError(f"{what}: cat_boundaries are not increasing from 0")
        _numbers(values, "cat_threshold", int(bounds[-1]), what, integer=True)
    linear = _count(values, "is_linear", what, default=0)
    if linear > 1:
        raise ModelTextError(f"{what}: is_linear is neither 0 nor 1")
    if linear:
        _numbers(values, "leaf_const", leaves, what, integer=False)
        per_leaf = _numbers(values, "num_features", leaves, what, integer=True)
        _numbers(values, "leaf_features", int(sum(per_leaf)), what, integer=True)
        _numbers(values, "leaf_coeff", int(sum(per_leaf)), what, integer=False)


def _check_trailer(trailer: str) -> None:
    """After the trees: importances, a closed parameters block of `[key: value]` lines, pandas_categorical."""
    if "\nparameters:\n" in trailer:
        block, closed, _ = trailer.split("\nparameters:\n", 1)[1].partition("end of parameters")
        if not closed:
            raise ModelTextError("the parameters block has no 'end of parameters': truncated?")
        if any(line and not _PARAMETER.fullmatch(line) for line in block.split("\n")):
            raise ModelTextError("the parameters block has a line that is not [key: value]")
    last = trailer[trailer.rfind("\n", 0, -len(_PANDAS_KEY)):].strip()  # as lightgbm's _load_pandas_categorical
    if last.startswith(_PANDAS_KEY):
        try:
            json.loads(last[len(_PANDAS_KEY):])
        except (ValueError, RecursionError):
            raise ModelTextError("what follows pandas_categorical: is not JSON") from None


def check_model_text(data: bytes) -> None:
    """Raise ModelTextError unless `data` is a complete, internally consistent LightGBM text model."""
    control = _CONTROL.search(data)
    if control:  # LightGBM writes none; a NUL ends its C string early, others break its parameters' JSON
        hint = "; Windows line endings?" if control.group() == b"\r" else ""
        raise ModelTextError(f"it holds a control character (byte 0x{data[control.start()]:02x} at offset "
                             f"{control.start()}{hint})")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelTextError("it is not UTF-8 text") from None
    if not data.startswith(b"tree\n"):
        raise ModelTextError("it does not start with 'tree'")
    end = data.find(b"\n" + _END_OF_TREES)
    if end < 0:
        raise ModelTextError("no 'end of trees' marker: truncated?")
    trees = list(_TREE_LINE.finditer(data, 0, end + 1))
    header = _key_values(data[len(b"tree\n"):trees[0].start() if trees else end].decode(), "header")
    missing = [key for key in HEADER_KEYS if key not in header]
    if missing:
        raise ModelTextError(f"the header lacks {missing[0]}")
    features = _count(header, "max_feature_idx", "header") + 1
    per_iteration = _count(header, "num_tree_per_iteration", "header")
    if per_iteration < 1 or per_iteration != _count(header, "num_class", "header") or len(trees) % per_iteration:
        raise ModelTextError("the header's num_class and num_tree_per_iteration do not fit the trees")
    if not _OBJECTIVE.fullmatch(header["objective"]):  # an empty objective crashes LightGBM at load
        raise ModelTextError("the header's objective is not a name with optional key:value settings")
    if len(header["feature_names"].split(" ")) != features:
        raise ModelTextError("the header's feature_names do not match max_feature_idx")
    listed = header.get("tree_sizes")
    sizes = _numbers(header, "tree_sizes", len(listed.split(" ")), "header", integer=True) if listed else []
    offset = trees[0].start() if trees else end + 1
    for i, tree in enumerate(trees):
        if int(tree.group(1)) != i:
            raise ModelTextError(f"tree {i} is numbered {tree.group(1).decode()}")
        stop = trees[i + 1].start() if i + 1 < len(trees) else end + 1
        if i < len(sizes) and (tree.start() != offset or stop - tree.start() != sizes[i]):
            raise ModelTextError(f"tree {i} is not the {sizes[i]} bytes its header records: truncated or edited?")
        offset = stop
        _check_tree(data[tree.start():stop].decode(), i, features)
    if listed is not None and len(sizes) != len(trees):
        raise ModelTextError(f"the header lists {len(sizes)} tree sizes but the file has {len(trees)} trees")
    _check_trailer(data[end:].decode())


def categorical_indices(data: bytes) -> list[int]:
    """Indices into feature_names of the model's categorical features, from its `[categorical_feature: ...]`
    parameter (comma-separated indices, or `name:a,b` as LightGBM's CLI accepts); [] when it has none."""
    text = data.decode("utf-8", errors="replace")
    line = next((ln for ln in text.split("\n") if ln.startswith("[categorical_feature: ")), None)
    value = line.removeprefix("[categorical_feature: ").removesuffix("]").strip() if line else ""
    if not value:
        return []
    if value.startswith("name:"):
        header = text.split("\nTree=", 1)[0]
        names = next((ln.removeprefix("feature_names=").split(" ") for ln in header.split("\n")
                      if ln.startswith("feature_names=")), [])
        unknown = [n for n in value.removeprefix("name:").split(",") if n not in names]
        if unknown:
            raise ModelTextError(f"categorical_feature names {unknown[0]!r}, which is not in feature_names")
        return sorted(names.index(n) for n in value.removeprefix("name:").split(","))
    fields = value.split(",")
    if not all(_INT.fullmatch(f) for f in fields):
        raise ModelTextError(f"categorical_feature {value[:40]!r} is not a list of feature indices")
    return sorted(int(f) for f in fields)
