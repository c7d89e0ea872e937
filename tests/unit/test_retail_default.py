"""The built-in features as a feature set: today's names, the shipped file and the published schema in sync."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from testbed.core.feature_check import load_feature_set
from testbed.core.feature_spec import json_schema
from testbed.core.retail_default import DEFAULT_WINDOWS, SHIPPED, feature_set_yaml, retail_default
from tests.unit import frozen_reference

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "feature-set.schema.json"
REGENERATE = ("PYTHONPATH=. python -c 'from testbed.core.retail_default import *; "
              "SHIPPED.write_text(feature_set_yaml(retail_default(DEFAULT_WINDOWS)))'")


def test_the_inputs_are_the_old_built_in_model_features_in_their_order() -> None:
    for windows, names in frozen_reference.load()["model_features"].items():
        spec = retail_default([int(w) for w in windows.split(",")])
        assert spec.inputs == names


def test_the_shipped_file_is_the_rendering_of_the_default_windows() -> None:
    assert SHIPPED.read_text() == feature_set_yaml(retail_default(DEFAULT_WINDOWS)), f"stale: run {REGENERATE}"
    assert load_feature_set(SHIPPED.read_bytes(), SHIPPED.name) == retail_default(DEFAULT_WINDOWS)


def test_the_published_schema_is_current_and_accepts_the_shipped_file() -> None:
    regenerate = ("PYTHONPATH=. python -c 'import json; from testbed.core.feature_spec import json_schema; "
                  "print(json.dumps(json_schema(), indent=2, sort_keys=True))' > schemas/feature-set.schema.json")
    assert SCHEMA.read_text() == json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", regenerate
    jsonschema.validate(retail_default(DEFAULT_WINDOWS).model_dump(mode="json"), json_schema())
