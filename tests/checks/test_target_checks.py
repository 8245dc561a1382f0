"""The target-side steps: naming a DUT's early dialog (referee/checks/replaces.py), the header
fields of a crafted INVITE (invites.py) and the judgement of a final response (answers.py)."""

import asyncio

import pytest

from referee.agent.objects import ClientRequest, Inbound, Incoming
from referee.checks.invites import invite_headers
from referee.checks.replaces import early_dialog_of
from referee.scenario.verdict import HarnessError

from checkctx import msg, new_flow, run, violation

INVITE = """INVITE sip:transferor@127.0.0.1:5061 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK3
From: <sip:dut@127.0.0.1:5080>;tag=dutTag
To: <sip:transferor@127.0.0.1:5061>{to_tag}
Call-ID: early1
CSeq: 1 INVITE
Contact: <sip:dut@127.0.0.1:5080>"""


def test_early_dialog_of_an_invite_the_dut_sent_and_an_agent_answered_18x():
    invite = msg(INVITE.format(to_tag=""))
    incoming = Incoming(None, invite, ("127.0.0.1", 5080), None, None)
    incoming.to_tag = "ours"
    d = early_dialog_of(Inbound(invite, ("127.0.0.1", 5080), 0.0, incoming=incoming))
    assert d.replaces == "early1;to-tag=dutTag;from-tag=ours"
    incoming.to_tag = None
    with pytest.raises(HarnessError):
        early_dialog_of(Inbound(invite, ("127.0.0.1", 5080), 0.0, incoming=incoming))


def test_early_dialog_of_a_18x_the_dut_sent():
    ringing = msg("""SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK4
From: <sip:transferor@127.0.0.1:5061>;tag=agentTag
To: <sip:target@127.0.0.1:5080>;tag=dutTag
Call-ID: ring1
CSeq: 1 INVITE""")
    d = early_dialog_of(Inbound(ringing, ("127.0.0.1", 5080), 0.0))
    assert d.fields == {"call_id": "ring1", "local_tag": "dutTag", "remote_tag": "agentTag",
                        "replaces": "ring1;to-tag=dutTag;from-tag=agentTag"}


def test_invite_headers_lists_become_several_fields_and_given_ones_replace_the_agents():
    class Ctx:
        var = staticmethod(lambda text: text.replace("{x.y}", "v"))
    got = invite_headers(Ctx(), {"Replaces": ["{x.y}", "b"], "Supported": "replaces"})
    names = [n for n, _ in got]
    assert names == ["Allow", "Replaces", "Replaces", "Supported"]
    assert got[1:3] == [("Replaces", "v"), ("Replaces", "b")]


class _Agent:
    name = "transferee"
    log: list = []


def _judge(status_line: str | None, **args):
    """final_response on a request whose final response is `status_line` (None: never answered)."""
    flow = new_flow()
    request = msg(INVITE.format(to_tag=""))

    async def make():
        cr = ClientRequest(_Agent(), request, ("127.0.0.1", 5080), None)
        if status_line:
            response = msg(f"SIP/2.0 {status_line}\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK3\n"
                           f"From: <sip:dut@127.0.0.1:5080>;tag=dutTag\nTo: <sip:t@127.0.0.1:5061>;tag=t\n"
                           f"Call-ID: early1\nCSeq: 1 INVITE")
            cr.responses.append(response)
            cr.final_future.set_result(response)
        return cr
    flow.saved["invite"] = asyncio.run(make())
    return flow, dict(request="invite", **args)


def test_final_response_passes_on_either_status():
    flow, args = _judge("429 Provide Referrer Identity", status="2xx", or_status=429)
    run("final_response", flow, **args)


def test_final_response_names_the_wrong_answer():
    flow, args = _judge("403 Forbidden", status="2xx", or_status=429, why="Referred-By treated as a fault")
    exc = violation("final_response", flow, **args)
    (ev,) = exc.evidence
    assert (ev.part, ev.expected, ev.seen) == ("status", "2xx or 429", "403 Forbidden")
    assert str(exc).endswith(": Referred-By treated as a fault")
