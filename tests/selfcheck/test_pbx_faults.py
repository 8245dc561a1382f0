"""Self-validation of the PBX suite (PB-*) and of SEC-PBX-AUTH-001 against faulty PBXs.

(1) The good PBXs pass every one of them: tests/faulty/pbx.py as a proxy (pbx-good.toml), the same
    PBX carrying out transfers itself (pbx-transfer.toml), or joining the calls of an attended
    transfer internally (pbx-bridge.toml) and Kamailio (duts/kamailio-pbx.toml; a machine without it
    fails the kamailio case, naming the package).
(2) Each fault of tests/faulty/pbx.py fails exactly the test purposes listed for it and passes
    the rest. Faults run in batches whose failing sets are disjoint; a batch must fail exactly
    the union of its faults' sets.

A PBX profile's users listen on fixed ports, so two tests of one run cannot go side by side: each
run is a sequential `referee run -m pbx` (no -n), and three runs with their own user ports go at
a time (about 70 s on two cores).
"""

from __future__ import annotations

import ast
import concurrent.futures
import pathlib
import re

import pytest

from tests.programs import require_program
from harness import REPO, SuiteResult, run_suite

pytestmark = pytest.mark.timeout(400)

FAULTY = REPO / "tests" / "faulty"
TRANSFERS = {"PB-BLIND-001", "PB-ATT-001", "PB-DECLINE-001", "PB-BUSY-001", "PB-UNKNOWN-001"}
COVERED = TRANSFERS | {"SEC-PBX-AUTH-001"}

# fault -> the test purposes it must fail (every other covered purpose must pass)
PBX_FAILS = {
    # without the NOTIFYs the transferor learns no outcome, whatever the outcome
    "drop_notify": TRANSFERS,
    # a REFER swallowed with 200 goes nowhere
    "refer_200": TRANSFERS,
    # every transfer that calls an extension calls the wrong one; the unknown one rings the transferor
    "wrong_user": TRANSFERS,
    "drop_replaces": {"PB-ATT-001"},
    "unknown_200": {"PB-UNKNOWN-001"},
    "no_auth_refer": {"SEC-PBX-AUTH-001"},
    "hangup_failed_transfer": {"PB-DECLINE-001", "PB-BUSY-001", "PB-UNKNOWN-001"},
}
BATCHES = [
    ["drop_notify"],
    ["refer_200"],
    ["wrong_user"],
    ["drop_replaces", "hangup_failed_transfer"],
    ["unknown_200", "no_auth_refer"],
]
PORT_BASE = 25100            # fault batch i: users on PORT_BASE + 10*i + 1..3


def faults_of(path: pathlib.Path) -> set[str]:
    """The keys of the FAULTS table of a faulty DUT (read, not imported)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FAULTS" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{path}: no FAULTS table")


def fault_profile(directory: pathlib.Path, index: int, faults: list[str]) -> pathlib.Path:
    """pbx-good.toml with the faults switched on and the users on ports of their own."""
    name = f"pbx-batch{index}.toml"
    text = (FAULTY / "pbx-good.toml").read_text()
    text = text.replace('"{profile_dir}/pbx-good.toml"', f'"{{profile_dir}}/{name}"')
    text = text.replace('"--port", "{port}"]', f'"--port", "{{port}}", "--faults", "{",".join(faults)}"]')
    text = re.sub(r'^name = ".*"$', f'name = "referee test PBX ({", ".join(faults)})"', text, flags=re.M)
    ports = iter(range(PORT_BASE + 10 * index + 1, PORT_BASE + 10 * index + 10))
    text = re.sub(r"^port = \d+$", lambda _: f"port = {next(ports)}", text, flags=re.M)
    path = directory / name
    path.write_text(text)
    return path


def plan(base: pathlib.Path) -> dict[str, tuple[pathlib.Path, set[str]]]:
    """run name -> (profile, the test purposes it must fail)."""
    runs = {"pbx-good": (FAULTY / "pbx-good.toml", set()),
            "pbx-transfer": (FAULTY / "pbx-transfer.toml", set()),
            "pbx-bridge": (FAULTY / "pbx-bridge.toml", set())}
    for i, batch in enumerate(BATCHES, 1):
        runs[f"batch{i}"] = (fault_profile(base, i, batch), set().union(*(PBX_FAILS[f] for f in batch)))
    # always run: a machine without Kamailio fails test_run_verdicts[kamailio], naming the package
    runs["kamailio"] = (REPO / "duts" / "kamailio-pbx.toml", set())
    return runs


def problems(result: SuiteResult, fails: set[str]) -> list[str]:
    out = []
    for purpose in sorted(COVERED):
        want = "failed" if purpose in fails else "passed"
        got = result.verdicts.get(purpose, "not run")
        if got != want:
            detail = result.messages.get(purpose, "").strip().splitlines()
            out.append(f"{purpose}: {got}, expected {want}" + (f" ({' | '.join(detail[:3])[:400]})" if detail else ""))
    extra = set(result.verdicts) - COVERED
    if extra:
        out.append(f"test purposes outside the table ran (update COVERED): {sorted(extra)}")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[SuiteResult, pathlib.Path, set[str]]]:
    base = tmp_path_factory.mktemp("pbx-faults")
    todo = plan(base)

    def one(name: str) -> SuiteResult:
        return run_suite(todo[name][0], base / f"reports-{name}", markers="pbx", timeout=300)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(one, name) for name in todo}
        return {name: (f.result(), *todo[name]) for name, f in futures.items()}


def test_table_is_consistent():
    """Every fault of the PBX is listed and batched once; batches have disjoint failing sets;
    every covered test purpose is failed by some fault."""
    assert faults_of(FAULTY / "pbx.py") == set(PBX_FAILS)
    flat = [f for batch in BATCHES for f in batch]
    assert sorted(flat) == sorted(PBX_FAILS), "every fault in exactly one batch"
    for batch in BATCHES:
        sets = [PBX_FAILS[f] for f in batch]
        assert sum(map(len, sets)) == len(set().union(*sets)), f"overlapping failing sets in {batch}"
    assert set().union(*PBX_FAILS.values()) == COVERED


RUN_NAMES = ["pbx-good", "pbx-transfer", "pbx-bridge"] + [f"batch{i}" for i in range(1, len(BATCHES) + 1)] + ["kamailio"]


@pytest.mark.parametrize("name", RUN_NAMES)
def test_run_verdicts(runs, name):
    if name == "kamailio":
        require_program("kamailio")
    result, profile, fails = runs[name]
    found = problems(result, fails)
    if found:
        pytest.fail(f"{name} ({profile.name}): {len(found)} verdicts differ\n  " + "\n  ".join(found)
                    + f"\n--- referee run output (tail) ---\n{result.output[-2500:]}", pytrace=False)
