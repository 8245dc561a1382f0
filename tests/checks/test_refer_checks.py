"""The checks on the REFER a transferor sends (referee/checks/refer.py), on hand-made REFERs."""

import pytest

from referee.agent.objects import Call
from referee.stack import Dialog

from checkctx import msg, new_flow, run, violation

TARGET = "sip:target@127.0.0.1:5072"


def refer(*extra: str, refer_to: str | None = f"<{TARGET}>", contact: str | None = "<sip:dut@127.0.0.1:5080>",
          call_id: str = "c1@127.0.0.1", from_tag: str = "dut1", to_tag: str = "ee1"):
    lines = ["REFER sip:transferee@127.0.0.1:5062 SIP/2.0",
             "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1",
             f"From: <sip:dut@127.0.0.1:5080>;tag={from_tag}", f"To: <sip:transferee@127.0.0.1:5062>;tag={to_tag}",
             f"Call-ID: {call_id}", "CSeq: 2 REFER", "Max-Forwards: 70"]
    if contact:
        lines.append(f"Contact: {contact}")
    if refer_to:
        lines.append(f"Refer-To: {refer_to}")
    return msg("\n".join(lines + list(extra)))


def flow_with(message, **calls):
    flow = new_flow()
    flow.saved["refer"] = message
    flow.calls.update(calls)
    return flow


def test_refer_to_target_passes_with_parameters_and_headers_aside():
    run("refer_to_target", flow_with(refer(refer_to=f"<{TARGET};transport=udp?X=1>")), refer="refer", target=TARGET)


@pytest.mark.parametrize("message, seen", [
    (refer("Refer-To: <sip:other@127.0.0.1:5072>"), "2: "),
    (refer(refer_to="<sip:other@127.0.0.1:5072>"), "'<sip:other@127.0.0.1:5072>'"),
])
def test_refer_to_target_violations_quote_the_header(message, seen):
    exc = violation("refer_to_target", flow_with(message), refer="refer", target=TARGET)
    (ev,) = exc.evidence
    assert ev.part == "Refer-To" and seen in ev.seen
    assert "CSeq 2 REFER" in ev.message or "REFER" in ev.message


def test_refer_contact():
    run("refer_contact", flow_with(refer()), refer="refer")
    exc = violation("refer_contact", flow_with(refer(contact=None)), refer="refer")
    assert exc.evidence[0].part == "Contact" and exc.evidence[0].seen == "none"
    exc = violation("refer_contact", flow_with(refer("Contact: <sip:x@127.0.0.1:5099>")), refer="refer")
    assert "2 Contact values" in str(exc)
    exc = violation("refer_contact", flow_with(refer(contact="<tel:+15550100>")), refer="refer")
    assert "not a SIP or SIPS URI" in str(exc)


def _call(call_id="c1@127.0.0.1", local="ee1", remote="dut1") -> Call:
    invite = msg(f"""INVITE sip:transferee@127.0.0.1:5062 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK0
From: <sip:dut@127.0.0.1:5080>;tag={remote}
To: <sip:transferee@127.0.0.1:5062>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:dut@127.0.0.1:5080>""")
    return Call(None, Dialog.from_uas(invite, local), invite, ("127.0.0.1", 5080))


def test_refer_in_dialog():
    run("refer_in_dialog", flow_with(refer(), call1=_call()), refer="refer", call="call1")
    exc = violation("refer_in_dialog", flow_with(refer(call_id="new@127.0.0.1", to_tag="x9"), call1=_call()),
                    refer="refer", call="call1")
    assert "Call-ID 'new@127.0.0.1'" in exc.evidence[0].seen
    assert "no Target-Dialog" in str(exc)


def test_referred_by_single():
    run("referred_by_single", flow_with(refer()), refer="refer")
    run("referred_by_single", flow_with(refer("Referred-By: <sip:dut@127.0.0.1:5080>")), refer="refer")
    exc = violation("referred_by_single", flow_with(refer("Referred-By: <sip:a@h>", "Referred-By: <sip:b@h>")),
                    refer="refer")
    assert exc.evidence[0].part == "Referred-By" and exc.evidence[0].seen.startswith("2:")


def _attended(replaces: str):
    return refer(refer_to=f"<{TARGET}?Replaces={replaces}>")


def test_refer_to_replaces_names_the_dialog_as_the_target_sees_it():
    consult = _call("c2@127.0.0.1", local="tgt", remote="dut2")      # the target agent's side
    good = _attended("c2%40127.0.0.1%3Bto-tag%3Dtgt%3Bfrom-tag%3Ddut2")
    run("refer_to_replaces", flow_with(good, call2=consult), refer="refer", call="call2")
    swapped = _attended("c2%40127.0.0.1%3Bto-tag%3Ddut2%3Bfrom-tag%3Dtgt")
    exc = violation("refer_to_replaces", flow_with(swapped, call2=consult), refer="refer", call="call2")
    assert "to-tag 'dut2'" in exc.evidence[0].seen and "to-tag 'tgt'" in exc.evidence[0].expected
    exc = violation("refer_to_replaces", flow_with(refer(), call2=consult), refer="refer", call="call2")
    assert "carries no ?Replaces=" in str(exc)


def test_refer_to_replaces_escaped():
    run("refer_to_replaces_escaped", flow_with(_attended("c2%40h%3Bto-tag%3Da%3Bfrom-tag%3Db")), refer="refer")
    exc = violation("refer_to_replaces_escaped", flow_with(_attended("c2@h;to-tag=a;from-tag=b")), refer="refer")
    assert "';'" in str(exc) and "'@'" in str(exc) and "'='" in str(exc)
