"""Self-validation of the PBX suite (PB-* and SEC-PBX-AUTH-001).

(1) Conformant PBXs pass every PBX test purpose that applies to them: the B2BUA test PBX of
    tests/faulty/b2bua in each of its modes — it carries out transfers itself and relays media
    (b2bua-good), passes the REFER on to the transferee (b2bua-pass), re-INVITEs media away
    instead of relaying it (b2bua-reinvite), reaches its users over TCP (b2bua-tcp), challenges
    in-dialog REFERs (b2bua-challenge) — and Kamailio as a registrar/proxy PBX, over UDP and TCP.
(2) Each fault of the B2BUA fails exactly the test purposes listed for it, leaves exactly the
    listed ones INCONCLUSIVE (a broken prerequisite, not the requirement they judge) and passes
    the rest. Faults run in batches whose affected sets are disjoint; a batch must produce exactly
    the union of its faults' sets.

Each test launches its own PBX and its users listen on free ports (the PBX learns them from
their REGISTERs), so the tests of a run go side by side and two runs at a time.
"""

from __future__ import annotations

import ast
import concurrent.futures
import pathlib
import re

import pytest

from harness import REPO, SuiteResult, run_suite
from tests.programs import require_program

pytestmark = pytest.mark.timeout(900)

FAULTY = REPO / "tests" / "faulty"
PB = {"PB-BLIND-001", "PB-BLIND-002", "PB-REFBY-001", "PB-NOTIFY-001", "PB-NOTIFY-002", "PB-NOTIFY-003",
      "PB-DECLINE-001", "PB-DECLINE-002", "PB-DECLINE-003", "PB-BUSY-001", "PB-BUSY-002", "PB-BUSY-003",
      "PB-NOANSWER-001", "PB-UNKNOWN-001", "PB-UNREACH-001", "PB-ATT-001", "PB-ATT-002", "PB-ATT-003",
      "PB-ATT-004", "PB-REPLACES-001", "PB-HOLD-001", "PB-HOLD-002", "PB-REJECT-001", "PB-REJECT-002",
      "PB-SUB-001", "PB-AUTH-001", "PB-RETRY-001", "PB-NOTIFY-004", "PB-HANGUP-001", "PB-BACK-001",
      "PB-DOUBLE-001", "PB-PARALLEL-001", "PB-OOD-001", "PB-TCP-001"}
COVERED = PB | {"SEC-PBX-AUTH-001"}
NOTIFY_JUDGED = {"PB-ATT-001", "PB-ATT-004", "PB-BLIND-001", "PB-BUSY-001", "PB-BUSY-002", "PB-DECLINE-001",
                 "PB-DECLINE-002", "PB-NOANSWER-001", "PB-NOTIFY-001", "PB-NOTIFY-002", "PB-NOTIFY-003",
                 "PB-PARALLEL-001", "PB-UNKNOWN-001", "PB-UNREACH-001"}
AFTER_A_TRANSFER = {"PB-BACK-001", "PB-DOUBLE-001", "PB-NOTIFY-004", "PB-RETRY-001"}

# fault -> (test purposes it must FAIL, test purposes it must leave INCONCLUSIVE)
FAULT_VERDICTS = {
    # the transferor is told nothing: every purpose that judges the NOTIFYs fails; those that
    # need a first transfer's outcome before the one they judge cannot be judged
    "no_notify": (NOTIFY_JUDGED, AFTER_A_TRANSFER),
    # over TCP the NOTIFYs sent over UDP never arrive: the same, and the TCP purpose itself
    "tcp_notify_udp": (NOTIFY_JUDGED | {"PB-TCP-001"}, AFTER_A_TRANSFER),
    # as Asterisk 22 does: the original call is torn down when a transfer fails
    "bye_transferee_on_failure": ({"PB-BUSY-003", "PB-DECLINE-003", "PB-NOANSWER-001", "PB-UNKNOWN-001",
                                   "PB-UNREACH-001"}, {"PB-NOTIFY-004", "PB-RETRY-001"}),
    # as Asterisk 22 does: 503 whatever the target answered
    "status_503": ({"PB-BUSY-002", "PB-DECLINE-002"}, set()),
    # success is announced before the target is even called: every report misleads
    "notify_before_invite": ({"PB-BLIND-001", "PB-BUSY-001", "PB-BUSY-002", "PB-DECLINE-001", "PB-DECLINE-002",
                              "PB-NOANSWER-001", "PB-NOTIFY-003", "PB-UNKNOWN-001", "PB-UNREACH-001"},
                             {"PB-NOTIFY-004", "PB-RETRY-001"}),
    "notify_lies_ringing": ({"PB-NOANSWER-001", "PB-NOTIFY-002", "PB-NOTIFY-003"}, set()),
    # the transferee's media keeps going to the transferor: every "who talks to whom" after a transfer
    "media_to_transferor": ({"PB-ATT-003", "PB-ATT-004", "PB-BACK-001", "PB-BLIND-002", "PB-DOUBLE-001",
                             "PB-HOLD-002", "PB-PARALLEL-001", "PB-RETRY-001"}, set()),
    "replaces_unmapped": ({"PB-ATT-001", "PB-ATT-002", "PB-ATT-003", "PB-ATT-004", "PB-REPLACES-001"}, set()),
    "refer_unauthenticated": ({"SEC-PBX-AUTH-001"}, set()),
    "no_referred_by": ({"PB-REFBY-001"}, set()),
    "no_terminated": ({"PB-NOTIFY-002"}, set()),
    "no_event_id": ({"PB-NOTIFY-004"}, set()),
    "ignore_refer_sub": ({"PB-SUB-001"}, set()),
    "accept_bad_refer": ({"PB-REJECT-001", "PB-REJECT-002"}, set()),
    "abandon_on_bye": ({"PB-HANGUP-001"}, set()),
    "hold_stuck": ({"PB-HOLD-002"}, set()),
    "hold_answer_sendrecv": ({"PB-HOLD-001"}, set()),
    "no_bye_replaced": ({"PB-ATT-002"}, set()),
    "early_replace_fails": ({"PB-ATT-004"}, set()),
    "ood_wrong_call": ({"PB-OOD-001"}, set()),
    # a PBX that never accepts credentials: every REFER it challenges is refused for good, which the
    # purposes whose body sends the REFER judge, and the others (REFER in the preamble) cannot judge
    "reauth_refer": ({"PB-ATT-001", "PB-ATT-002", "PB-ATT-003", "PB-ATT-004", "PB-AUTH-001", "PB-BLIND-001",
                      "PB-BLIND-002", "PB-HANGUP-001", "PB-HOLD-002", "PB-NOANSWER-001", "PB-NOTIFY-001",
                      "PB-NOTIFY-002", "PB-NOTIFY-003", "PB-PARALLEL-001", "PB-REFBY-001", "PB-REJECT-001",
                      "PB-REJECT-002", "PB-SUB-001", "PB-UNKNOWN-001", "PB-UNREACH-001"},
                     {"PB-BACK-001", "PB-BUSY-001", "PB-BUSY-002", "PB-BUSY-003", "PB-DECLINE-001",
                      "PB-DECLINE-002", "PB-DECLINE-003", "PB-DOUBLE-001", "PB-NOTIFY-004", "PB-RETRY-001"}),
}
# batch -> (base profile, faults)
BATCHES = {
    "notify": ("b2bua-good", ["no_notify"]),
    "tcp": ("b2bua-tcp", ["tcp_notify_udp"]),
    "challenge": ("b2bua-challenge", ["reauth_refer"]),
    "failures": ("b2bua-good", ["bye_transferee_on_failure", "replaces_unmapped", "refer_unauthenticated",
                                "no_referred_by", "ignore_refer_sub", "accept_bad_refer", "abandon_on_bye",
                                "ood_wrong_call", "hold_stuck"]),
    "reports": ("b2bua-good", ["notify_before_invite", "no_bye_replaced"]),
    "media": ("b2bua-good", ["media_to_transferor", "status_503", "no_event_id", "no_terminated"]),
    "ringing": ("b2bua-good", ["notify_lies_ringing", "early_replace_fails", "hold_answer_sendrecv"]),
}
GOOD = ["b2bua-good", "b2bua-pass", "b2bua-reinvite", "b2bua-tcp", "b2bua-challenge", "kamailio"]
WORKERS = 3            # tests of one run side by side (each launches its own PBX)


def faults_of(path: pathlib.Path) -> set[str]:
    """The keys of the FAULTS table of a faulty DUT (read, not imported)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FAULTS" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{path}: no FAULTS table")


def fault_profile(directory: pathlib.Path, name: str, base: str, faults: list[str]) -> pathlib.Path:
    source = FAULTY / f"{base}.toml"
    text = source.read_text().replace(f"{{profile_dir}}/{base}.toml", str(source))
    text = text.replace('"--port", "{port}"', f'"--port", "{{port}}", "--faults", "{",".join(faults)}"')
    text = re.sub(r'^name = ".*"$', f'name = "B2BUA test PBX ({", ".join(faults)})"', text, flags=re.M)
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def expected(name: str, profile: pathlib.Path, faults: list[str]) -> dict[str, str]:
    fails = set().union(*(FAULT_VERDICTS[f][0] for f in faults)) if faults else set()
    inconclusive = set().union(*(FAULT_VERDICTS[f][1] for f in faults)) if faults else set()
    text = profile.read_text()
    tcp = '"tcp"' in text
    early = "early_transfer" in text
    out = {}
    for purpose in COVERED:
        if purpose == "PB-TCP-001" and not tcp or purpose == "PB-ATT-004" and not early:
            out[purpose] = "skipped"
        elif purpose in fails:
            out[purpose] = "failed"
        elif purpose in inconclusive:
            out[purpose] = "inconclusive"
        else:
            out[purpose] = "passed"
    return out


def plan(base: pathlib.Path) -> dict[str, tuple[pathlib.Path, list[str]]]:
    runs = {name: (REPO / "duts" / "kamailio-pbx.toml" if name == "kamailio" else FAULTY / f"{name}.toml", [])
            for name in GOOD}
    for batch, (profile, faults) in BATCHES.items():
        runs[f"faults-{batch}"] = (fault_profile(base, f"faults-{batch}", profile, faults), faults)
    return runs


def verdicts_by_purpose(result: SuiteResult) -> dict[str, set[str]]:
    """Test purpose -> its verdicts (a profile with several transports runs each purpose per transport,
    its test ids ending in -udp / -tcp)."""
    out: dict[str, set[str]] = {}
    for test_id, verdict in result.verdicts.items():
        purpose = re.sub(r"-(udp|tcp|tls)$", "", test_id)
        out.setdefault(purpose, set()).add(verdict)
    return out


def problems(result: SuiteResult, want: dict[str, str]) -> list[str]:
    got = verdicts_by_purpose(result)
    out = []
    for purpose, verdict in sorted(want.items()):
        seen = got.get(purpose, {"not run"})
        if seen != {verdict}:
            detail = " | ".join(result.messages.get(purpose, "").strip().splitlines()[:2])[:300]
            out.append(f"{purpose}: {'/'.join(sorted(seen))}, expected {verdict}" + (f" ({detail})" if detail else ""))
    extra = set(got) - COVERED
    if extra:
        out.append(f"test purposes outside the table ran (update COVERED): {sorted(extra)}")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[SuiteResult, pathlib.Path, list[str]]]:
    require_program("kamailio")
    base = tmp_path_factory.mktemp("pbx-faults")
    todo = plan(base)

    def one(name: str) -> SuiteResult:
        return run_suite(todo[name][0], base / f"reports-{name}", markers="pbx", timeout=600, workers=WORKERS)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(one, name) for name in todo}
        return {name: (f.result(), *todo[name]) for name, f in futures.items()}


def test_table_is_consistent():
    """Every fault of the B2BUA is listed and batched once; a batch's affected sets are disjoint;
    every PBX test purpose is failed by some fault."""
    assert faults_of(FAULTY / "b2bua" / "faults.py") == set(FAULT_VERDICTS)
    flat = [f for _, faults in BATCHES.values() for f in faults]
    assert sorted(flat) == sorted(FAULT_VERDICTS), "every fault in exactly one batch"
    for name, (_, faults) in BATCHES.items():
        sets = [FAULT_VERDICTS[f][0] | FAULT_VERDICTS[f][1] for f in faults]
        assert sum(map(len, sets)) == len(set().union(*sets)), f"overlapping affected sets in batch {name}"


def test_every_test_purpose_can_fail():
    failed_by_some_fault = set().union(*(f for f, _ in FAULT_VERDICTS.values()))
    assert COVERED == failed_by_some_fault, f"no fault fails {sorted(COVERED - failed_by_some_fault)}"


RUN_NAMES = GOOD + [f"faults-{b}" for b in BATCHES]


@pytest.mark.parametrize("name", RUN_NAMES)
def test_run_verdicts(runs, name):
    result, profile, faults = runs[name]
    found = problems(result, expected(name, profile, faults))
    if found:
        pytest.fail(f"{name} ({profile.name}): {len(found)} verdicts differ\n  " + "\n  ".join(found)
                    + f"\n--- referee run output (tail) ---\n{result.output[-2500:]}", pytrace=False)
