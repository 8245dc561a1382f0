"""The shipped JSON Schema of DUT profiles is the one the code makes, covers every key profile.py
accepts, and every profile of the repository validates against it with a stock validator (as an
editor would, through the `#:schema` line each file starts with)."""

import json
import pathlib
import tomllib

import jsonschema
import pytest

from referee.dut.profile import TOP_KEYS
from referee.schemas import path as schema_path
from referee.schemas import schema

REPO = pathlib.Path(__file__).resolve().parents[2]
PROFILES = sorted(list((REPO / "duts").glob("*.toml")) + list((REPO / "tests" / "faulty").glob("*.toml"))
                  + list((REPO / "tests" / "upper").glob("*.toml")))


def test_committed_profile_schema_is_the_generated_one():
    assert json.loads(schema_path("profile").read_text()) == schema("profile"), \
        "run: referee schema --write referee/schemas"


def test_the_schema_knows_every_key_profile_py_accepts():
    assert set(schema("profile")["properties"]) == TOP_KEYS


@pytest.mark.parametrize("path", PROFILES, ids=[p.name for p in PROFILES])
def test_profile_validates_against_the_shipped_schema(path):
    validator = jsonschema.Draft202012Validator(json.loads(schema_path("profile").read_text()))
    errors = list(validator.iter_errors(tomllib.loads(path.read_text())))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    first = path.read_text().splitlines()[0]
    assert first.startswith("#:schema ") and (path.parent / first.split(None, 1)[1]).resolve() == \
        schema_path("profile").resolve()


def test_the_schema_rejects_a_misspelt_key():
    validator = jsonschema.Draft202012Validator(schema("profile"))
    assert list(validator.iter_errors({"name": "x", "kind": "phon"}))
    assert list(validator.iter_errors({"name": "x", "kind": "phone", "transprot": "udp"}))
