"""The JSON Schemas shipped with the package are the ones the code makes, and every scenario file
of the repository validates against them with a stock JSON Schema validator (as an editor would)."""

import json
import pathlib
import re

import jsonschema
import pytest
import yaml

from referee.schemas import path as schema_path
from referee.schemas import schema

REPO = pathlib.Path(__file__).resolve().parents[2]
SCENARIO_FILES = sorted(p for p in (REPO / "scenarios").rglob("*.yaml") if "sipp" not in p.parts)
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def test_committed_scenario_schema_is_the_generated_one():
    committed = json.loads(schema_path("scenario").read_text())
    assert committed == schema("scenario"), "run: referee schema --write referee/schemas"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.name for p in SCENARIO_FILES])
def test_scenario_file_validates_against_the_shipped_schema(path):
    validator = jsonschema.Draft202012Validator(json.loads(schema_path("scenario").read_text()))
    errors = sorted(validator.iter_errors(yaml.safe_load(path.read_text())), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.name for p in SCENARIO_FILES])
def test_scenario_file_names_the_schema_for_editors(path):
    first = path.read_text().splitlines()[0]
    m = MODELINE.match(first)
    assert m, f"{path.name}: first line must be the yaml-language-server modeline"
    assert (path.parent / m.group(1)).resolve() == schema_path("scenario").resolve()


def test_the_schema_rejects_what_referee_validate_rejects(tmp_path):
    validator = jsonschema.Draft202012Validator(schema("scenario"))
    good = yaml.safe_load((REPO / "scenarios" / "transferee" / "te-blind-001.yaml").read_text())
    assert not list(validator.iter_errors(good))
    bad = dict(good, body=[{"expect": 202, "at": "transferor", "hedaers": {}}])
    assert list(validator.iter_errors(bad))
    bad = dict(good, body=[{"check": "call_up", "args": {"cal": "call1"}}])
    assert list(validator.iter_errors(bad))
