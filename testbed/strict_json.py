"""Strict text → JSON data for documents people write (manifests): what json and PyYAML let through, refused.

`json.loads` keeps the last of two equal keys, accepts NaN and Infinity (and reads 1e999 as inf), raises a
bare ValueError past Python's integer-digit limit and RecursionError on deep nesting. PyYAML's SafeLoader
also keeps the last duplicate and builds timestamps, bytes and sets that JSON cannot hold. Here each of
those is a one-line DocumentError naming the key path (JSON) or the line (YAML), and `check_json_data`
bounds what any parsed document may contain, wherever it came from.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_VALUES = 100_000  # bounds YAML aliases too: a shared node is counted once per place it appears
MAX_INT_DIGITS = 100


class DocumentError(ValueError):
    """The text is not a document we accept; the message is one line."""


class _Refused:
    """What the JSON parser leaves where a value is refused; `check_json_data` reports it with its path."""

    def __init__(self, problem: str, key: str | None = None) -> None:
        self.problem = problem
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Refused:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            return _Refused("duplicate key (a second one would silently replace the first)", key)
        out[key] = value
    return out


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a JSON number")


def _float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused(f"{text[:20]} is beyond the floating-point range")


def _int(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_INT_DIGITS else _Refused(f"an integer of {digits} digits")


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise DocumentError(f"larger than {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def loads_json(data: bytes) -> Any:
    text = _decode(data)
    try:
        parsed = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float,
                            parse_int=_int)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise DocumentError(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    check_json_data(parsed)
    return parsed


_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and non-finite or huge numbers, and keeps dates as text."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<` merges may override on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # unhashable: the base class says so
                continue
            if repeated:
                raise DocumentError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                                    "(a second one would silently replace the first)")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if sum(c.isdigit() for c in text) > MAX_INT_DIGITS:
            raise DocumentError(f"line {node.start_mark.line + 1}: an integer of more than {MAX_INT_DIGITS} digits")
        return int(super().construct_yaml_int(node))

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = float(super().construct_yaml_float(node))
        if not math.isfinite(value):
            raise DocumentError(f"line {node.start_mark.line + 1}: {self.construct_scalar(node)} is not a "
                                "finite number")
        return value


_StrictYamlLoader.add_constructor("tag:yaml.org,2002:int", _StrictYamlLoader.construct_yaml_int)
_StrictYamlLoader.add_constructor("tag:yaml.org,2002:float", _StrictYamlLoader.construct_yaml_float)
_StrictYamlLoader.yaml_implicit_resolvers = {  # an unquoted 2026-10-17 stays the text pydantic parses
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def loads_yaml(data: bytes) -> Any:
    text = _decode(data)
    try:
        parsed = yaml.load(text, Loader=_StrictYamlLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise DocumentError(f"not valid YAML: {where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise DocumentError(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    check_json_data(parsed)
    return parsed


def _where(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"an integer of more than {MAX_INT_DIGITS} digits" if abs(value) >= 10**MAX_INT_DIGITS else None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text with a lone surrogate (\\ud800-\\udfff) is not valid Unicode"
        return None
    return f"a {type(value).__name__} value is not JSON data (quote it)"


def check_json_data(data: Any) -> None:
    """Raise DocumentError unless `data` is plain, finite, bounded JSON data (objects with string keys)."""
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    values = 0
    while stack:
        value, path = stack.pop()
        values += 1
        if values > MAX_VALUES:
            raise DocumentError(f"too many values (more than {MAX_VALUES:,}; YAML aliases count each time used)")
        if isinstance(value, _Refused):
            raise DocumentError(f"{_where(path + ([value.key] if value.key is not None else []))}: {value.problem}")
        if isinstance(value, dict | list) and len(path) >= MAX_DEPTH:
            raise DocumentError(f"{_where(path[:3])}: nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise DocumentError(f"{_where(path)}: key {key!r} is not a string")
                if _scalar_problem(key):
                    raise DocumentError(f"{_where(path)}: a key is {_scalar_problem(key)}")
            stack.extend((child, [*path, key]) for key, child in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((child, [*path, i]) for i, child in reversed(list(enumerate(value))))
        else:
            problem = _scalar_problem(value)
            if problem:
                raise DocumentError(f"{_where(path)}: {problem}")
