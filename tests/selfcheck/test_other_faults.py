"""Self-validation of the transfer-target, transferor and proxy suites against faulty DUTs.

(1) The good DUTs pass every test purpose of their role: the agent test phone
    (tests/faulty/phone.py, target tests it can run without a driver), the console test phone
    (tests/faulty/console_phone.py: transferor and target), the test proxy
    (tests/faulty/proxy.py) and Kamailio (duts/kamailio.toml; a machine without it fails the kamailio case).
(2) Each fault fails exactly the test purposes listed for it and passes the rest. Faults run in
    batches whose failing sets are disjoint and that do not act on the same messages, so a
    batch must fail exactly the union of its faults' sets.

Every run is a `referee run` subprocess with `-n 2`, three at a time.
"""

from __future__ import annotations

import concurrent.futures
import pathlib
import re

import pytest

from tests.programs import require_program
from harness import REPO, SuiteResult, faulty_phone_profile, run_suite

pytestmark = pytest.mark.timeout(600)

FAULTY = REPO / "tests" / "faulty"

TARGET = {f"TT-REPLACES-{n:03d}" for n in range(1, 9)} | {"TT-REFBY-001", "TT-SUPPORTED-001"}
NEEDS_DRIVER = {"TT-REPLACES-007", "TT-REPLACES-008"}
TRANSFEROR = {"TR-REFER-001", "TR-REFER-002", "TR-REFER-003", "TR-REFER-004", "TR-NOTIFY-001",
              "TR-NOTIFY-002", "TR-BYE-001", "TR-FAIL-001", "TR-ATT-001", "TR-ATT-002"}
PROXY = {"PX-RR-001", "PX-ROUTE-001", "PX-REFER-001", "PX-REFBY-001", "PX-REPLACES-001",
         "PX-MAXFWD-001", "PX-NOTIFY-001"}

# tests/faulty/phone.py (no driver: the early-dialog target tests are skipped)
PHONE_FAILS = {
    "keep_replaced": {"TT-REPLACES-002"},
    "accept_bad_replaces": {"TT-REPLACES-004"},
    "ignore_early_only": {"TT-REPLACES-005"},
}

# tests/faulty/console_phone.py
CONSOLE_FAILS = {
    "two_refer_to": {"TR-REFER-001"},
    "no_contact": {"TR-REFER-002"},
    "refer_outside_dialog": {"TR-REFER-003"},
    "two_referred_by": {"TR-REFER-004"},
    "notify_500": {"TR-NOTIFY-001", "TR-NOTIFY-002"},
    "early_notify_481": {"TR-NOTIFY-002"},
    "no_bye_after_success": {"TR-BYE-001"},
    "bye_after_failure": {"TR-FAIL-001"},
    "axfer_wrong_tags": {"TR-ATT-001"},
    "axfer_unescaped": {"TR-ATT-002"},
    # a target that cannot be replaced cannot end the replaced dialog or keep the new one either
    "reject_replaces": {"TT-REPLACES-001", "TT-REPLACES-002", "TT-REPLACES-003"},
    "keep_replaced": {"TT-REPLACES-002"},
    "bye_replacement": {"TT-REPLACES-003"},
    "accept_bad_replaces": {"TT-REPLACES-004"},
    "ignore_early_only": {"TT-REPLACES-005"},
    "two_replaces_ok": {"TT-REPLACES-006"},
    "no_cancel_early": {"TT-REPLACES-007"},
    "replace_incoming_early": {"TT-REPLACES-008"},
    "reject_referred_by": {"TT-REFBY-001"},
    "no_supported_replaces": {"TT-SUPPORTED-001"},
}
CONSOLE_BATCHES = [
    ["two_refer_to", "two_referred_by", "notify_500", "bye_after_failure", "axfer_wrong_tags",
     "keep_replaced", "accept_bad_replaces", "two_replaces_ok", "replace_incoming_early", "no_supported_replaces"],
    ["no_contact", "refer_outside_dialog", "early_notify_481", "no_bye_after_success", "axfer_unescaped",
     "bye_replacement", "ignore_early_only", "no_cancel_early", "reject_referred_by"],
    ["reject_replaces"],
]

# tests/faulty/proxy.py
PROXY_FAILS = {
    "strip_rr": {"PX-RR-001"},
    "keep_route": {"PX-ROUTE-001"},
    "strip_replaces": {"PX-REPLACES-001"},
    "rewrite_refer_to": {"PX-REFER-001"},
    "strip_referred_by": {"PX-REFBY-001"},
    "no_maxfwd_decrement": {"PX-MAXFWD-001"},
    "rewrite_body": {"PX-NOTIFY-001"},
}
PROXY_BATCHES = [
    ["strip_rr", "keep_route", "strip_replaces"],
    ["rewrite_refer_to", "strip_referred_by", "no_maxfwd_decrement", "rewrite_body"],
]

CONSOLE_MARK, PROXY_MARK = "target or transferor", "proxy"
SELECT = "TT- or TR- or PX-"


def console_profile(directory: pathlib.Path, faults: list[str]) -> pathlib.Path:
    name = "-".join(faults) or "none"
    path = directory / f"console-{name[:60]}.toml"
    launch = ["{python}", str(FAULTY / "console_phone.py"), "--host", "{host}", "--port", "{port}",
              "--user", "{user}", "--answer", "{answer}", "--faults", ",".join(faults)]
    path.write_text("\n".join([
        f'name = "console test phone ({name})"', 'kind = "phone"', 'driver = "console"',
        "launch = [" + ", ".join(f'"{a}"' for a in launch) + "]",
        'roles = ["transferor", "target"]',
        'capabilities = ["transferor", "attended", "target", "replaces", "manual_answer"]', ""]))
    return path


def proxy_profile(directory: pathlib.Path, faults: list[str]) -> pathlib.Path:
    name = "-".join(faults) or "none"
    path = directory / f"proxy-{name[:60]}.toml"
    launch = ["{python}", str(FAULTY / "proxy.py"), "--host", "{host}", "--port", "{port}",
              "--faults", ",".join(faults)]
    path.write_text("\n".join([
        f'name = "test proxy ({name})"', 'kind = "proxy"',
        "launch = [" + ", ".join(f'"{a}"' for a in launch) + "]", 'ready = "READY"', ""]))
    return path


# run name -> (profile maker, -m, test purposes the run covers, expected failures, expected skips)
def plan(base: pathlib.Path) -> dict[str, tuple]:
    runs = {
        "phone-good": (FAULTY / "good-phone.toml", "target", TARGET, set(), NEEDS_DRIVER),
        "phone-faults": (faulty_phone_profile(base, sorted(PHONE_FAILS)), "target", TARGET,
                         set().union(*PHONE_FAILS.values()), NEEDS_DRIVER),
        "console-good": (FAULTY / "console-phone.toml", CONSOLE_MARK, TARGET | TRANSFEROR, set(), set()),
        "proxy-good": (FAULTY / "proxy.toml", PROXY_MARK, PROXY, set(), set()),
    }
    for i, batch in enumerate(CONSOLE_BATCHES, 1):
        runs[f"console-batch{i}"] = (console_profile(base, batch), CONSOLE_MARK, TARGET | TRANSFEROR,
                                     set().union(*(CONSOLE_FAILS[f] for f in batch)), set())
    for i, batch in enumerate(PROXY_BATCHES, 1):
        runs[f"proxy-batch{i}"] = (proxy_profile(base, batch), PROXY_MARK, PROXY,
                                   set().union(*(PROXY_FAILS[f] for f in batch)), set())
    # always run: a machine without Kamailio fails test_run_verdicts[kamailio], naming the package
    runs["kamailio"] = (REPO / "duts" / "kamailio.toml", PROXY_MARK, PROXY, set(), set())
    return runs


def problems(result: SuiteResult, covered: set[str], fails: set[str], skips: set[str]) -> list[str]:
    """Each covered purpose must have its expected verdict, over every transport it ran on (a profile
    with several transports runs each purpose once per transport: ids ending in -udp / -tcp)."""
    by_purpose: dict[str, set[str]] = {}
    for test_id, verdict in result.verdicts.items():
        by_purpose.setdefault(re.sub(r"-(udp|tcp|tls)$", "", test_id), set()).add(verdict)
    out = []
    for purpose in sorted(covered):
        want = "failed" if purpose in fails else "skipped" if purpose in skips else "passed"
        seen = by_purpose.get(purpose, {"not run"})
        got = "/".join(sorted(seen))
        if seen != {want}:
            detail = result.messages.get(purpose, "").strip().splitlines()
            out.append(f"{purpose}: {got}, expected {want}" + (f" ({detail[0][:200]})" if detail else ""))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[SuiteResult, tuple]]:
    base = tmp_path_factory.mktemp("other-faults")
    todo = plan(base)

    def one(name: str) -> SuiteResult:
        profile, marks = todo[name][0], todo[name][1]
        return run_suite(profile, base / f"reports-{name}", markers=marks, keyword=SELECT, workers=2, timeout=400)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(one, name) for name in todo}
        return {name: (f.result(), todo[name]) for name, f in futures.items()}


def test_tables_are_consistent():
    """Every fault is batched once; batches have disjoint failing sets; every test purpose can fail."""
    import ast

    def faults_of(path: pathlib.Path) -> set[str]:
        """The keys of the FAULTS table of a faulty DUT (read, not imported)."""
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FAULTS" for t in node.targets):
                return set(ast.literal_eval(node.value))
        raise AssertionError(f"{path}: no FAULTS table")

    assert faults_of(FAULTY / "console_phone.py") == set(CONSOLE_FAILS)
    assert faults_of(FAULTY / "proxy.py") == set(PROXY_FAILS)
    assert set(PHONE_FAILS) <= faults_of(FAULTY / "phone.py")
    for table, batches in ((CONSOLE_FAILS, CONSOLE_BATCHES), (PROXY_FAILS, PROXY_BATCHES)):
        flat = [f for b in batches for f in b]
        assert sorted(flat) == sorted(table), "every fault in exactly one batch"
        for batch in batches:
            sets = [table[f] for f in batch]
            assert sum(map(len, sets)) == len(set().union(*sets)), f"overlapping failing sets in {batch}"
    assert set().union(*CONSOLE_FAILS.values()) == TARGET | TRANSFEROR
    assert set().union(*PROXY_FAILS.values()) == PROXY


RUN_NAMES = (["phone-good", "phone-faults", "console-good"] + [f"console-batch{i}" for i in range(1, 4)]
             + ["proxy-good", "proxy-batch1", "proxy-batch2", "kamailio"])


@pytest.mark.parametrize("name", RUN_NAMES)
def test_run_verdicts(runs, name):
    if name == "kamailio":
        require_program("kamailio")
    result, (profile, _marks, covered, fails, skips) = runs[name]
    found = problems(result, covered, fails, skips)
    if found:
        pytest.fail(f"{name} ({profile.name}): {len(found)} verdicts differ\n  " + "\n  ".join(found)
                    + f"\n--- referee run output (tail) ---\n{result.output[-2500:]}", pytrace=False)
