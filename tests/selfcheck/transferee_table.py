"""Which transferee test purposes each fault of tests/faulty/phone.py must fail, which it leaves
inconclusive, and how the faults are batched into suite runs. (The security test purposes have a
self-check of their own.)

A fault's FAIL set is every test purpose whose requirement that fault violates (some faults, like
`no_notify`, break many). Its INCONCLUSIVE set is every test purpose the fault keeps from being
judged: a prerequisite that is missing (no NOTIFY at all to read an Event header from) is the
requirement of another test purpose, which fails. Every other transferee test purpose passes.

Faults are run several at a time when their sets are disjoint and they do not mask each other
(`no_notify` would hide `notify_despite_nosub`, whose NOTIFYs would in turn hide
`refer_sub_true_as_false`; `no_substate` would hide `no_expires`); a batch must then give
exactly the union of its faults' verdicts.
"""

from __future__ import annotations

import concurrent.futures
import pathlib

from harness import PHONE, SuiteResult, run_suite

NOTIFY_ALL = {f"TE-NOTIFY-{n:03d}" for n in range(1, 11)}

# every transferee test purpose
ALL = {
    "TE-BLIND-001", "TE-SUB-001", "TE-SUCCESS-001", "TE-ORIG-001",
    "TE-DECLINE-001", "TE-DECLINE-002", "TE-DECLINE-003", "TE-NOANSWER-001",
    "TE-NOSUB-001", "TE-NOSUB-002", "TE-NOSUB-003",
    "TE-REJECT-001", "TE-REJECT-002", "TE-REJECT-003", "TE-REJECT-004", "TE-SUBSCRIBE-001",
    "TE-INVITE-001", "TE-INVITE-002", "TE-INVITE-003", "TE-INVITE-004", "TE-MULTI-001", "TE-MEDIA-001",
} | NOTIFY_ALL

# fault -> the test purposes it must fail (every other transferee test purpose must pass)
EXPECTED_FAILURES: dict[str, set[str]] = {
    # answering the REFER
    "refer_200": {"TE-BLIND-001"},
    "accept_no_refer_to": {"TE-REJECT-001"},
    "accept_two_refer_to": {"TE-REJECT-002"},
    "accept_unknown_dialog": {"TE-REJECT-004"},
    "stray_subscribe_489": {"TE-SUBSCRIBE-001"},
    # the implicit subscription (without NOTIFYs the purposes about them cannot be judged: see below)
    "no_notify": {"TE-SUB-001", "TE-SUCCESS-001", "TE-DECLINE-001", "TE-DECLINE-002", "TE-NOANSWER-001",
                  "TE-NOSUB-003", "TE-REJECT-003", "TE-NOTIFY-004"},
    "no_initial_notify": {"TE-NOTIFY-004"},
    "initial_not_trying": {"TE-NOTIFY-005"},
    # a body that is no status line cannot report an outcome either
    "bad_sipfrag": {"TE-NOTIFY-003", "TE-SUCCESS-001", "TE-DECLINE-001", "TE-DECLINE-002", "TE-DECLINE-003",
                    "TE-NOANSWER-001"},
    "no_event": {"TE-NOTIFY-001", "TE-MULTI-001"},
    # no Subscription-State at all: the final NOTIFY does not say terminated;reason=noresource either
    "no_substate": {"TE-NOTIFY-006", "TE-NOTIFY-008", "TE-NOTIFY-009"},
    "no_expires": {"TE-NOTIFY-007"},
    "wrong_ctype": {"TE-NOTIFY-002"},
    "final_active": {"TE-NOTIFY-008", "TE-NOTIFY-009"},
    "no_noresource": {"TE-NOTIFY-009"},
    "notify_wrong_dialog": {"TE-NOTIFY-010"},
    "wrong_event_id": {"TE-MULTI-001"},
    "no_event_id": {"TE-MULTI-001"},
    # what the NOTIFYs report
    "false_failure": {"TE-SUCCESS-001"},
    "report_success_on_failure": {"TE-DECLINE-001", "TE-DECLINE-002", "TE-NOANSWER-001", "TE-REJECT-003"},
    "no_final_on_timeout": {"TE-NOANSWER-001"},
    "unsupported_scheme_ok": {"TE-REJECT-003"},
    # Refer-Sub
    "ignore_refer_sub": {"TE-NOSUB-001"},
    "notify_despite_nosub": {"TE-NOSUB-002"},
    "refer_sub_true_as_false": {"TE-NOSUB-003"},
    # the triggered INVITE
    "drop_target_user": {"TE-INVITE-001"},
    "drop_referred_by": {"TE-INVITE-002"},
    "drop_replaces": {"TE-INVITE-003"},
    "copy_unsafe_headers": {"TE-INVITE-004"},
    # the original call (a BYE before the outcome is also a BYE after a failed one)
    "bye_after_decline": {"TE-DECLINE-003"},
    "bye_before_result": {"TE-ORIG-001", "TE-DECLINE-003"},
    # media after the transfer
    "media_to_transferor": {"TE-MEDIA-001"},
    # faults of the transfer-target role: the transferee suite must not notice them
    "accept_bad_replaces": set(),
    "keep_replaced": set(),
    "ignore_early_only": set(),
}

# fault -> the test purposes it leaves INCONCLUSIVE (a prerequisite of theirs, judged elsewhere, is missing)
EXPECTED_INCONCLUSIVE: dict[str, set[str]] = {
    # no NOTIFY at all: nothing to read an Event, a body or a Subscription-State from
    "no_notify": {"TE-DECLINE-003", "TE-MULTI-001"} | (NOTIFY_ALL - {"TE-NOTIFY-004"}),
    # no immediate NOTIFY: no first NOTIFY whose status could be 100 Trying
    "no_initial_notify": {"TE-NOTIFY-005"},
}

# suite runs: each batch's faults have disjoint sets and do not hide one another
BATCHES: list[list[str]] = [
    ["no_notify", "refer_200", "accept_no_refer_to", "accept_two_refer_to", "accept_unknown_dialog",
     "stray_subscribe_489", "ignore_refer_sub", "drop_target_user", "drop_referred_by", "drop_replaces",
     "copy_unsafe_headers", "accept_bad_replaces", "keep_replaced", "ignore_early_only"],
    ["bad_sipfrag", "no_event", "no_substate", "wrong_ctype", "notify_wrong_dialog", "initial_not_trying",
     "notify_despite_nosub", "unsupported_scheme_ok"],
    ["no_initial_notify", "no_expires", "final_active", "wrong_event_id", "false_failure", "no_final_on_timeout",
     "bye_after_decline", "media_to_transferor"],
    ["no_noresource", "no_event_id", "report_success_on_failure", "bye_before_result", "refer_sub_true_as_false"],
]


def expected_for(batch: list[str]) -> dict[str, str]:
    """Test purpose -> the verdict the batch must give it ('failed' or 'inconclusive'; the others pass)."""
    out = {p: "inconclusive" for f in batch for p in EXPECTED_INCONCLUSIVE.get(f, ())}
    out.update({p: "failed" for f in batch for p in EXPECTED_FAILURES[f]})
    return out


def affected(fault: str) -> set[str]:
    """Every test purpose a fault does not leave passing."""
    return EXPECTED_FAILURES.get(fault, set()) | EXPECTED_INCONCLUSIVE.get(fault, set())


def check_table() -> list[str]:
    """Problems with the table itself (empty when it is consistent)."""
    problems = []
    batched = [f for batch in BATCHES for f in batch]
    for fault in EXPECTED_FAILURES:
        if batched.count(fault) != 1:
            problems.append(f"fault {fault!r} is in {batched.count(fault)} batches (must be in exactly one)")
    for fault in batched:
        if fault not in EXPECTED_FAILURES:
            problems.append(f"batched fault {fault!r} has no expected failures entry")
    for fault in EXPECTED_INCONCLUSIVE:
        if fault not in EXPECTED_FAILURES:
            problems.append(f"fault {fault!r} has inconclusive test purposes but no expected failures entry")
        both = EXPECTED_FAILURES.get(fault, set()) & EXPECTED_INCONCLUSIVE[fault]
        if both:
            problems.append(f"{fault}: listed as both failing and inconclusive: {sorted(both)}")
    for i, batch in enumerate(BATCHES):
        seen: dict[str, str] = {}
        for fault in batch:
            for purpose in affected(fault):
                if purpose in seen:
                    problems.append(f"batch {i + 1}: {fault} and {seen[purpose]} both affect {purpose}")
                seen[purpose] = fault
    for fault in EXPECTED_FAILURES:
        unknown = affected(fault) - ALL
        if unknown:
            problems.append(f"{fault}: unknown test purposes {sorted(unknown)}")
    uncovered = ALL - set().union(*EXPECTED_FAILURES.values())
    if uncovered:
        problems.append(f"test purposes no fault makes fail: {sorted(uncovered)}")
    return problems


def batch_profile(directory: pathlib.Path, name: str, faults: list[str]) -> pathlib.Path:
    """A profile launching the test phone with `faults` (a short file name, whatever the batch)."""
    launch = ["{python}", str(PHONE), "--port", "{port}"] + (["--faults", ",".join(faults)] if faults else [])
    path = directory / "phone.toml"
    path.write_text("\n".join([
        f'name = "test phone ({name})"', 'kind = "phone"',
        "launch = [" + ", ".join(f'"{a}"' for a in launch) + "]",
        'roles = ["transferee", "target"]',
        'capabilities = ["transferee", "target", "replaces", "refer_sub"]', ""]))
    return path


def run_batches(base: pathlib.Path, batches: list[list[str]], workers: int = 2, parallel: int = 3,
                extra: dict[str, pathlib.Path] | None = None) -> dict[str, SuiteResult]:
    """`referee run -m transferee` for each batch ('batch1' ...) and each extra profile, `parallel` at a time."""
    jobs: dict[str, pathlib.Path] = {}
    for name, profile in (extra or {}).items():
        (base / name).mkdir(parents=True, exist_ok=True)
        jobs[name] = profile
    for i, batch in enumerate(batches):
        directory = base / f"batch{i + 1}"
        directory.mkdir(parents=True, exist_ok=True)
        jobs[f"batch{i + 1}"] = batch_profile(directory, f"batch{i + 1}", batch)

    def one(name: str) -> SuiteResult:
        return run_suite(jobs[name], base / name / "reports", markers="transferee and not security",
                         workers=workers, timeout=600)

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {name: pool.submit(one, name) for name in jobs}
        return {name: f.result() for name, f in futures.items()}


def verdict_problems(result: SuiteResult, expected: dict[str, str]) -> list[str]:
    """How a run's verdicts differ from `expected` (test purpose -> 'failed' or 'inconclusive';
    every other purpose passes)."""
    problems = []
    missing = ALL - set(result.verdicts)
    if missing:
        problems.append(f"not run: {sorted(missing)}")
    for purpose in sorted(ALL & set(result.verdicts)):
        verdict = result.verdicts[purpose]
        want = expected.get(purpose, "passed")
        if verdict != want:
            detail = result.messages.get(purpose, "").strip()
            problems.append(f"{purpose}: {verdict}, expected {want}" + (f"\n      {detail[:1500]}" if detail else ""))
    extra = set(result.verdicts) - ALL
    if extra:
        problems.append(f"unexpected test purposes in the run (update ALL): {sorted(extra)}")
    return problems
