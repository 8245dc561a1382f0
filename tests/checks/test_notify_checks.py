"""The NOTIFY checks of referee/checks/notifies.py, on hand-made NOTIFYs (and, for the checks that
wait for NOTIFYs, on agents talking over loopback)."""

import asyncio

import pytest

from referee.agent import Agent, ExpectationFailed
from referee.agent.objects import Call
from referee.scenario.binding import Binding
from referee.scenario.context import StepContext
from referee.scenario.flow import Flow
from referee.scenario.library import lookup
from referee.scenario.trace import StepResult
from referee.scenario.verdict import HarnessError
from referee.sip import parse
from referee.stack import Dialog

from checkctx import msg, new_flow, run, violation

DEFAULT = object()


def notify(cseq: int = 5, status: str = "SIP/2.0 100 Trying", state=DEFAULT, event="refer",
           ctype="message/sipfrag;version=2.0", call_id="c1@127.0.0.1", from_tag="dut1", to_tag="ee1"):
    """A NOTIFY from the DUT to the transferor; None for a header leaves it out."""
    if state is DEFAULT:
        code = next((int(p) for p in status.split()[:2] if p.isdigit()), 100)
        state = "active;expires=60" if code < 200 else "terminated;reason=noresource"
    lines = ["NOTIFY sip:transferor@127.0.0.1:5062 SIP/2.0", f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK7n{cseq}",
             f"From: <sip:transferee@127.0.0.1:5080>;tag={from_tag}",
             f"To: <sip:transferor@127.0.0.1:5062>;tag={to_tag}",
             f"Call-ID: {call_id}", f"CSeq: {cseq} NOTIFY", "Max-Forwards: 70"]
    lines += [f"{name}: {value}" for name, value in (("Event", event), ("Subscription-State", state),
                                                      ("Content-Type", ctype)) if value is not None]
    body = status + "\r\n" if status else ""
    return parse(("\r\n".join(lines + [f"Content-Length: {len(body)}", "", ""]) + body).encode())


def transfer(*notifies):
    """A flow holding a collected list `notifies` (default: 100, 180, final 200)."""
    flow = new_flow()
    flow.saved["notifies"] = list(notifies) or [notify(5), notify(6, "SIP/2.0 180 Ringing"),
                                                notify(7, "SIP/2.0 200 OK")]
    return flow


GOOD_CHECKS = ["notify_event_refer", "notify_sipfrag_body", "notify_status_line", "notify_subscription_state",
               "notify_expires", "notify_terminated"]


@pytest.mark.parametrize("name", GOOD_CHECKS)
def test_a_good_transfer_passes(name):
    which = "final" if name == "notify_terminated" else "each"
    _, result = run(name, transfer(), notifies="notifies", which=which)
    assert result.detail.startswith(("3 of the 3", "1 of the 3"))


@pytest.mark.parametrize("name, bad, part, seen", [
    ("notify_event_refer", notify(6, event=None), "Event", "no Event header"),
    ("notify_event_refer", notify(6, event="presence"), "Event", "'presence'"),
    ("notify_sipfrag_body", notify(6, ctype="text/plain"), "Content-Type", "'text/plain'"),
    ("notify_sipfrag_body", notify(6, status=""), "body", "an empty body"),
    ("notify_status_line", notify(6, status="180 Ringing"), "sipfrag", "'180 Ringing'"),
    ("notify_status_line", notify(6, status="INVITE sip:x@h SIP/2.0"), "sipfrag", "not a status line"),
    ("notify_subscription_state", notify(6, state=None), "Subscription-State", "no Subscription-State header"),
    ("notify_subscription_state", notify(6, state="waiting"), "Subscription-State", "'waiting'"),
    ("notify_expires", notify(6, state="active"), "Subscription-State", "'active'"),
])
def test_a_bad_notify_is_the_evidence(name, bad, part, seen):
    exc = violation(name, transfer(notify(5), bad, notify(7, "SIP/2.0 200 OK")), notifies="notifies")
    (ev,) = exc.evidence
    assert ev.part == part and seen in ev.seen
    assert "CSeq 6 NOTIFY" in ev.message
    assert "1 of 3 NOTIFYs break" in str(exc) and "CSeq '6 NOTIFY'" in str(exc)


def test_every_offending_notify_is_named():
    exc = violation("notify_event_refer", transfer(notify(5, event=None), notify(6, "SIP/2.0 200 OK", event=None)),
                    notifies="notifies")
    assert [e.message.split("(CSeq ")[1] for e in exc.evidence] == ["5 NOTIFY)", "6 NOTIFY)"]


def test_expires_is_judged_on_active_and_pending_only():
    run("notify_expires", transfer(notify(5, state="pending;expires=30"),
                                   notify(6, "SIP/2.0 200 OK", state="terminated")), notifies="notifies")
    violation("notify_expires", transfer(notify(5, state="pending")), notifies="notifies")


def test_which_first_and_final():
    flow = transfer(notify(5, state="active"), notify(6, "SIP/2.0 200 OK", state="active;expires=10"))
    exc = violation("notify_terminated", flow, notifies="notifies", which="final")
    assert exc.evidence[0].seen == "'active;expires=10'" and "CSeq 6" in exc.evidence[0].message
    violation("notify_expires", flow, notifies="notifies", which="first")
    # the final NOTIFY is the last one only when it is final
    _, result = run("notify_terminated", transfer(notify(5)), notifies="notifies", which="final")
    assert result.detail.startswith("0 of the 1")


def test_terminated_with_a_reason():
    good = notify(7, "SIP/2.0 200 OK", state="terminated;reason=noresource")
    run("notify_terminated", transfer(good), notifies="notifies", which="final", reason="noresource")
    exc = violation("notify_terminated", transfer(notify(7, "SIP/2.0 200 OK", state="terminated;reason=timeout")),
                    notifies="notifies", which="final", reason="noresource")
    assert exc.evidence[0].expected == "terminated;reason=noresource"
    assert exc.evidence[0].seen == "'terminated;reason=timeout'"
    exc = violation("notify_terminated", transfer(notify(7, "SIP/2.0 200 OK", state=None)),
                    notifies="notifies", which="final")
    assert exc.evidence[0].seen == "no such header"


def test_status_of_one_saved_notify():
    flow = new_flow()
    flow.saved["first"] = notify(5, "SIP/2.0 180 Ringing")
    run("notify_status", flow, notify="first", status="provisional")
    exc = violation("notify_status", flow, notify="first", status=100)
    assert exc.evidence[0].part == "sipfrag" and exc.evidence[0].seen == "180 ('SIP/2.0 180 Ringing')"
    flow.saved["first"] = notify(5, "SIP/2.0 200 OK")
    violation("notify_status", flow, notify="first", status="provisional")
    flow.saved["first"] = notify(5, "200 OK")          # a legacy sipfrag still reports its status
    run("notify_status", flow, notify="first", status="2xx")


def test_one_source_of_notifies_exactly():
    flow = transfer()
    flow.saved["first"] = notify(5)
    with pytest.raises(HarnessError):
        run("notify_event_refer", flow, notifies="notifies", notify="first")
    with pytest.raises(HarnessError):
        run("notify_event_refer", flow)


def _call(call_id="c1@127.0.0.1", local="ee1", remote="dut1") -> Call:
    invite = msg(f"""INVITE sip:transferee@127.0.0.1:5080 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK0
From: <sip:transferor@127.0.0.1:5062>;tag={local}
To: <sip:transferee@127.0.0.1:5080>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:transferor@127.0.0.1:5062>""")
    response = msg(f"""SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK0
From: <sip:transferor@127.0.0.1:5062>;tag={local}
To: <sip:transferee@127.0.0.1:5080>;tag={remote}
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:transferee@127.0.0.1:5080>""")
    return Call(None, Dialog.from_uac(invite, response), invite, ("127.0.0.1", 5080))


def test_in_dialog():
    flow = transfer()
    flow.calls["call1"] = _call()
    run("notify_in_dialog", flow, notifies="notifies", call="call1")
    flow.saved["notifies"] = [notify(5, from_tag="dut1-other", call_id="other@127.0.0.1")]
    exc = violation("notify_in_dialog", flow, notifies="notifies", call="call1")
    assert [e.part for e in exc.evidence] == ["Call-ID", "From"]
    assert "tag=dut1-other" in exc.evidence[1].seen


def test_event_id_of_the_second_refer():
    flow = transfer(notify(5, event="refer;id=3"), notify(6, "SIP/2.0 200 OK", event="refer;id=3"))
    flow.saved["refer2"] = msg("""REFER sip:transferee@127.0.0.1:5080 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK3
From: <sip:transferor@127.0.0.1:5062>;tag=ee1
To: <sip:transferee@127.0.0.1:5080>;tag=dut1
Call-ID: c1@127.0.0.1
CSeq: 3 REFER
Refer-To: <sip:target@127.0.0.1:5072>""")
    run("notify_event_id", flow, notifies="notifies", refer="refer2")
    flow.saved["notifies"] = [notify(5, event="refer;id=4"), notify(6, "SIP/2.0 200 OK")]
    exc = violation("notify_event_id", flow, notifies="notifies", refer="refer2")
    assert [e.seen for e in exc.evidence] == ["'refer;id=4'", "'refer'"]


# -- checks that wait for NOTIFYs: a transferor agent, and a "DUT" agent sending it raw NOTIFYs -----

def answer_2xx(refer_sub: str | None, status_line: str = "SIP/2.0 202 Accepted"):
    return msg("\n".join([status_line, "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK2",
                          "From: <sip:transferor@127.0.0.1:5062>;tag=ee1",
                          "To: <sip:transferee@127.0.0.1:5080>;tag=dut1",
                          "Call-ID: c1@127.0.0.1", "CSeq: 2 REFER"]
                         + ([f"Refer-Sub: {refer_sub}"] if refer_sub else [])))


def with_agents(name: str, sent: list, saved: dict, **args):
    """Run check `name` with a transferor agent that receives `sent` (NOTIFYs from a second agent)."""
    async def go():
        transferor = await Agent.start("transferor", "127.0.0.1", 0)
        dut = await Agent.start("dut", "127.0.0.1", 0)
        try:
            flow = Flow(Binding(agents={"transferor": transferor}))
            flow.saved.update(saved)
            for message in sent:
                await dut.send_raw(bytes(message), transferor.address)
            result = StepResult("1", 0, name, "passed", 0.0, 0.0)
            await asyncio.wait_for(lookup(name).fn(StepContext(flow, result, name), **args), 15)
            return result
        finally:
            await dut.close()
            await transferor.close()
    return asyncio.run(go())


def test_no_notify_without_subscription():
    kept = with_agents("no_notify_without_subscription", [notify(5)], {"answer": answer_2xx(None)},
                       answer="answer", at="transferor", within=0.5)
    assert "kept the subscription" in kept.detail
    with_agents("no_notify_without_subscription", [], {"answer": answer_2xx("false")},
                answer="answer", at="transferor", within=0.5)
    with pytest.raises(ExpectationFailed) as exc:
        with_agents("no_notify_without_subscription", [notify(5)], {"answer": answer_2xx("false")},
                    answer="answer", at="transferor", within=0.5)
    assert "CSeq 5 NOTIFY" in exc.value.evidence[0].message


def test_refer_refused_or_failure_reported():
    refused = answer_2xx(None, "SIP/2.0 416 Unsupported URI Scheme")
    result = with_agents("refer_refused_or_failure_reported", [], {"answer": refused}, answer="answer",
                         at="transferor")
    assert "refused (416" in result.detail
    with_agents("refer_refused_or_failure_reported", [notify(5), notify(6, "SIP/2.0 416 Unsupported URI Scheme")],
                {"answer": answer_2xx(None)}, answer="answer", at="transferor", timeout=2)
    with pytest.raises(ExpectationFailed) as exc:
        with_agents("refer_refused_or_failure_reported", [notify(5), notify(6, "SIP/2.0 200 OK")],
                    {"answer": answer_2xx(None)}, answer="answer", at="transferor", timeout=2)
    assert exc.value.evidence[0].seen == "'SIP/2.0 200 OK'" and "CSeq 6 NOTIFY" in exc.value.evidence[0].message
    with pytest.raises(ExpectationFailed) as exc:       # accepted, and never a final NOTIFY
        with_agents("refer_refused_or_failure_reported", [notify(5)], {"answer": answer_2xx(None)},
                    answer="answer", at="transferor", timeout=0.5)
    assert "none final" in str(exc.value) and exc.value.evidence[0].absent
