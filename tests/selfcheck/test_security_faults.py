"""Self-validation of the phone security test purposes against tests/faulty/secure_phone.py.

(1) With no fault the secure phone passes SEC-REFER-OOD-001, SEC-REPLACES-001 and SEC-FLOOD-001.
(2) Each fault fails exactly the test purposes listed for it and passes the rest; faults run in
    batches with disjoint failing sets (the three flood faults each in a batch of its own).

SEC-PBX-AUTH-001 is checked with the PBXs in test_pbx_faults.py. Every run is a
`referee run -m "security and not pbx"` subprocess with -n 2 (the phone's agents use free ports),
two at a time.
"""

from __future__ import annotations

import ast
import concurrent.futures
import pathlib

import pytest

from harness import REPO, SuiteResult, run_suite

pytestmark = pytest.mark.timeout(400)

PHONE = REPO / "tests" / "faulty" / "secure_phone.py"
COVERED = {"SEC-REFER-OOD-001", "SEC-REPLACES-001", "SEC-FLOOD-001"}
MARKERS = "security and not pbx"

SECURE_FAILS = {
    "ood_refer_dials": {"SEC-REFER-OOD-001"},
    "replaces_no_auth": {"SEC-REPLACES-001"},
    "flood_unanswered": {"SEC-FLOOD-001"},
    "flood_wrong_id": {"SEC-FLOOD-001"},
    "flood_crash": {"SEC-FLOOD-001"},
}
BATCHES = [
    ["ood_refer_dials", "flood_unanswered"],
    ["replaces_no_auth", "flood_wrong_id"],
    ["flood_crash"],
]


def faults_of(path: pathlib.Path) -> set[str]:
    """The keys of the FAULTS table of a faulty DUT (read, not imported)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FAULTS" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{path}: no FAULTS table")


def profile(directory: pathlib.Path, name: str, faults: list[str]) -> pathlib.Path:
    launch = ["{python}", str(PHONE), "--port", "{port}"] + (["--faults", ",".join(faults)] if faults else [])
    path = directory / f"secure-{name}.toml"
    path.write_text("\n".join([
        f'name = "secure test phone ({", ".join(faults) or "no fault"})"', 'kind = "phone"',
        "launch = [" + ", ".join(f'"{a}"' for a in launch) + "]", 'ready = "READY"',
        'roles = ["transferee", "target"]',
        'capabilities = ["transferee", "target", "replaces", "refer_sub"]', ""]))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[SuiteResult, set[str]]]:
    base = tmp_path_factory.mktemp("security-faults")
    todo = {"good": (profile(base, "good", []), set())}
    for i, batch in enumerate(BATCHES, 1):
        todo[f"batch{i}"] = (profile(base, f"batch{i}", batch), set().union(*(SECURE_FAILS[f] for f in batch)))

    def one(name: str) -> SuiteResult:
        return run_suite(todo[name][0], base / f"reports-{name}", markers=MARKERS, workers=2, timeout=300)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(one, name) for name in todo}
        return {name: (f.result(), todo[name][1]) for name, f in futures.items()}


def test_table_is_consistent():
    assert faults_of(PHONE) == set(SECURE_FAILS)
    flat = [f for batch in BATCHES for f in batch]
    assert sorted(flat) == sorted(SECURE_FAILS), "every fault in exactly one batch"
    for batch in BATCHES:
        sets = [SECURE_FAILS[f] for f in batch]
        assert sum(map(len, sets)) == len(set().union(*sets)), f"overlapping failing sets in {batch}"
    assert set().union(*SECURE_FAILS.values()) == COVERED


@pytest.mark.parametrize("name", ["good"] + [f"batch{i}" for i in range(1, len(BATCHES) + 1)])
def test_run_verdicts(runs, name):
    result, fails = runs[name]
    found = []
    for purpose in sorted(COVERED):
        want = "failed" if purpose in fails else "passed"
        got = result.verdicts.get(purpose, "not run")
        if got != want:
            detail = result.messages.get(purpose, "").strip().splitlines()
            found.append(f"{purpose}: {got}, expected {want}" + (f" ({' | '.join(detail[:3])[:400]})" if detail else ""))
    extra = set(result.verdicts) - COVERED
    if extra:
        found.append(f"test purposes outside the table ran (update COVERED): {sorted(extra)}")
    if found:
        pytest.fail(f"{name}: {len(found)} verdicts differ\n  " + "\n  ".join(found)
                    + f"\n--- referee run output (tail) ---\n{result.output[-2500:]}", pytrace=False)
