"""Verdicts of a test purpose, in the ETSI/TTCN-3 conformance tradition.

    PASS           the requirement was checked on what the DUT sent, and met
    FAIL           the DUT broke it: a message it sent in the test body violates the requirement,
                   or a message the requirement obliges it to send did not come in time
    INCONCLUSIVE   the flow never reached the point of judging, for a reason that is not this
                   requirement (the preamble failed: setup call refused, registration refused;
                   the product cannot perform an action it was asked to do)
    ERROR          the suite or the environment failed (bind error, missing program, exception
                   inside referee): nothing can be said about the DUT

A flow has a preamble (bring the parties to the state under test), a body (the behaviour the
requirement is about) and a postamble (clean up). Only the body can FAIL. A failed preamble step
is INCONCLUSIVE; a failed postamble step leaves the verdict as it was and is reported as a
finding.

Exceptions carry their verdict in a class attribute `verdict` when they know it (a driver's
"product cannot do this" is INCONCLUSIVE wherever it happens; a driver crash is ERROR). An
expectation that did not hold (ExpectationFailed, AssertionError) is judged by the phase it
happened in. Anything else is an ERROR of the suite.
"""

from __future__ import annotations

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
ERROR = "error"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, ERROR)

PHASES = ("preamble", "body", "postamble")


class HarnessError(Exception):
    """The suite cannot run this step (a scenario or profile that does not fit, a missing driver)."""
    verdict = ERROR


class Inconclusive(Exception):
    """The step cannot be judged, for a reason that is not the requirement under test."""
    verdict = INCONCLUSIVE


def classify(exc: BaseException, phase: str) -> str | None:
    """The verdict an exception raised in `phase` gives the test (None: no change — a postamble
    expectation that did not hold)."""
    declared = getattr(exc, "verdict", None)
    if declared in VERDICTS:
        return declared
    if isinstance(exc, AssertionError):        # ExpectationFailed and flow assertions
        return {"preamble": INCONCLUSIVE, "body": FAIL}.get(phase)
    return ERROR


def headline(verdict: str, phase: str) -> str:
    """The label a verdict's report starts with, e.g. 'INCONCLUSIVE (the preamble did not complete)'."""
    if verdict == FAIL:
        return "FAIL"
    if verdict == INCONCLUSIVE:
        return ("INCONCLUSIVE (the preamble did not complete; the requirement was not judged)" if phase == "preamble"
                else "INCONCLUSIVE (the flow could not reach the point of judging)")
    return "ERROR (the suite or its environment failed; nothing is said about the DUT)"


# Parts of a message a SIP ALG or SBC leaves as they are (measured with the kernel's SIP ALG: it
# rewrites the Request-URI, Via, Contact, From/To addresses and SDP, and nothing else). A FAIL
# judged on one of them stays a FAIL behind such a middlebox; any other (an address, an SDP, a
# sipfrag status that depends on reaching someone, a message that never came) becomes
# INCONCLUSIVE: the middlebox may have caused it.
SAFE_FROM_MIDDLEBOX = frozenset({
    "event", "subscription-state", "content-type", "refer-sub", "referred-by", "refer-to", "replaces",
    "target-dialog", "supported", "require", "allow", "call-id", "cseq", "max-forwards", "status"})


def downgrade_for_middlebox(trace, middlebox: str | None) -> None:
    """A FAIL that a middlebox rewriting headers could have caused becomes INCONCLUSIVE."""
    if not middlebox or trace.verdict != FAIL:
        return
    evidence = list(trace.evidence)
    if evidence and all(e.raw and e.part.lower() in SAFE_FROM_MIDDLEBOX for e in evidence):
        return
    trace.verdict = INCONCLUSIVE
    trace.failure = (f"headers are rewritten between referee and the DUT, so this failure may be the "
                     f"middlebox's doing, not the DUT's ({middlebox}).\nWhat was seen: {trace.failure}")
