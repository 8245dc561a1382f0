"""Every scenario file under scenarios/ as one test, named by its test purpose ID."""

import pathlib

import pytest

from fixtures.plugin import scenario_variants
from referee.scenario import load_all

SCENARIO_DIR = pathlib.Path(__file__).resolve().parents[1] / "scenarios"
SCENARIOS, ERRORS = load_all(SCENARIO_DIR)


@pytest.mark.parametrize("scenario, variant", scenario_variants(SCENARIOS))
def test_scenario(scenario, variant, play):
    play(scenario, variant=variant)


if ERRORS:
    # A broken scenario file is a failing test of its own; the rest of the run goes on.
    @pytest.mark.parametrize("error", ERRORS, ids=[pathlib.Path(e.path).name for e in ERRORS])
    def test_scenario_file_is_valid(error):
        pytest.fail(str(error), pytrace=False)
