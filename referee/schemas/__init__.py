"""The JSON Schemas of the two file formats users write, shipped with the package:

    scenario.schema.json   scenario files (scenarios/**/*.yaml); editors find it through the
                           yaml-language-server modeline at the top of each file
    profile.schema.json    DUT profiles (duts/*.toml)

Both are generated from the code that reads those files (`referee schema --write
referee/schemas` rewrites them); a test keeps the committed copies equal to what the code makes.
"""

from __future__ import annotations

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent


def schema(which: str) -> dict:
    if which == "scenario":
        from referee.scenario.schema import scenario_schema
        return scenario_schema()
    if which == "profile":
        from referee.dut.profile_schema import profile_schema
        return profile_schema()
    raise ValueError(f"no schema {which!r} (scenario or profile)")


def schema_text(which: str) -> str:
    return json.dumps(schema(which), indent=2, sort_keys=False) + "\n"


def path(which: str) -> pathlib.Path:
    return HERE / f"{which}.schema.json"
