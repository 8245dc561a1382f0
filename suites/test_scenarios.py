"""Every scenario file under scenarios/ as one test per test purpose, named by its id.

`referee run --scenarios PATH` (pytest --scenarios PATH, repeatable) runs the scenario files of
PATH (a file or a directory) instead — e.g. a test purpose of your own, outside this repository.
"""

import pathlib

import pytest

from fixtures.plugin import scenario_variants
from referee.scenario import ScenarioError, load_all, load_scenarios

SCENARIO_DIR = pathlib.Path(__file__).resolve().parents[1] / "scenarios"


def _load(paths: list[str]):
    if not paths:
        return load_all(SCENARIO_DIR)
    scenarios, errors = [], []
    for name in paths:
        path = pathlib.Path(name)
        if path.is_dir():
            found, broken = load_all(path)
            scenarios += found
            errors += broken
            continue
        try:
            scenarios += load_scenarios(path)
        except ScenarioError as exc:
            errors.append(exc)
    return scenarios, errors


def pytest_generate_tests(metafunc):
    scenarios, errors = _load(metafunc.config.getoption("--scenarios") or [])
    # A broken scenario file is a test of its own (an ERROR: the suite's input, not the DUT, is
    # at fault) and the rest of the run goes on.
    broken = [pytest.param(e, None, id=pathlib.Path(e.path).name) for e in errors]
    profile = getattr(metafunc.config, "referee_profile", None)
    metafunc.parametrize("scenario, variant", scenario_variants(scenarios, profile) + broken)


def test_scenario(scenario, variant, play):
    if isinstance(scenario, ScenarioError):
        from fixtures.verdicts import HarnessFailure
        raise HarnessFailure(f"ERROR: broken scenario file: {scenario}", pytrace=False)
    play(scenario, variant=variant)
