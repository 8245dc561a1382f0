"""Self-validation of the transferee suite against the test phone of tests/faulty/phone.py.

(1) With no fault the phone passes every transferee test purpose.
(2) With each fault, a `referee run -m transferee` fails exactly the test purposes the fault
    violates (transferee_table.EXPECTED_FAILURES), is inconclusive on exactly those it keeps
    from being judged (EXPECTED_INCONCLUSIVE) and passes all the others.

Faults run in batches (transferee_table.BATCHES: disjoint failing sets, no fault masking
another), each batch one suite run with `-n 2`, three runs at a time: about 2 minutes on a
2-core machine, most of it the 33 s of TE-NOANSWER-001 (an INVITE timing out).
"""

from __future__ import annotations

import pytest

from harness import REPO, SuiteResult
from transferee_table import (ALL, BATCHES, EXPECTED_FAILURES, affected, check_table, expected_for, run_batches,
                              verdict_problems)

GOOD_PHONE = REPO / "tests" / "faulty" / "good-phone.toml"

pytestmark = pytest.mark.timeout(900)


def test_table_is_consistent():
    """Every fault batched once, batches disjoint (failures and inconclusives alike), every test
    purpose failed by some fault."""
    assert check_table() == []


def test_faults_exist_in_the_phone():
    import importlib.util
    spec = importlib.util.spec_from_file_location("faulty_phone", REPO / "tests" / "faulty" / "phone.py")
    phone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(phone)
    assert set(EXPECTED_FAILURES) == set(phone.FAULTS), "table and phone disagree on the fault names"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, SuiteResult]:
    """All suite runs at once: 'good' (good-phone.toml) and one per batch."""
    base = tmp_path_factory.mktemp("transferee-faults")
    results = run_batches(base, BATCHES, workers=2, parallel=3, extra={"good": GOOD_PHONE})
    return results


def _report(name: str, result: SuiteResult, problems: list[str]) -> str:
    return (f"{name}: {len(problems)} verdicts differ from the table\n  " + "\n  ".join(problems)
            + f"\n--- referee run output (tail) ---\n{result.output[-3000:]}")


def test_good_phone_passes_everything(runs):
    result = runs["good"]
    problems = verdict_problems(result, {})
    assert not problems, _report("good phone", result, problems)
    assert result.exit_code == 0, result.output[-3000:]


@pytest.mark.parametrize("index", range(len(BATCHES)), ids=[f"batch{i + 1}" for i in range(len(BATCHES))])
def test_fault_batch_gives_exactly_its_verdicts(runs, index):
    batch = BATCHES[index]
    result = runs[f"batch{index + 1}"]
    expected = expected_for(batch)
    problems = verdict_problems(result, expected)
    if problems:
        owners = {p: [f for f in batch if p in affected(f)] for p in ALL}
        lines = [pr + (f"   (listed for {', '.join(owners[pr.split(':')[0]])})"
                       if pr.split(":")[0] in owners and owners[pr.split(":")[0]] else "") for pr in problems]
        pytest.fail(_report(f"faults {', '.join(batch)}", result, lines), pytrace=False)
