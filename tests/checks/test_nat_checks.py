"""The NAT steps (referee/checks/nat.py) on hand-made wire messages: what must be seen on which
side of the NAT, the evidence a failure carries, and the NAT's own behaviour (INCONCLUSIVE,
never a FAIL of the DUT)."""

import types

import pytest

from referee.checks import nat
from referee.scenario.verdict import Inconclusive
from referee.wire import WireMessage

from checkctx import msg, new_flow, run, violation

AGENT = ("198.18.0.2", 5060)     # the transferor behind the NAT
BINDING = ("198.19.0.1", 40001)  # its NAT binding
DUT = ("198.19.0.2", 5060)


@pytest.fixture(autouse=True)
def no_settling(monkeypatch):
    monkeypatch.setattr(nat, "SETTLE", 0.0)


class _Capture:
    def __init__(self, msgs):
        self.msgs = msgs

    def messages(self):
        return list(self.msgs)


def wire(iface, src, dst, text, t=0.0):
    m = msg(text)
    return WireMessage(t, iface, src[0], src[1], dst[0], dst[1], "UDP", m, bytes(m))


def nat_flow(tmp_path, msgs, local=(), dut=DUT):
    """A flow whose binding has a transferor agent behind the NAT and a NatContext over `msgs`."""
    flow = new_flow()
    topo = types.SimpleNamespace(nat_lan_if="lan0", nat_wan_if="wan0", nat_wan_addr=BINDING[0])
    ctx = nat.NatContext(topo, True, tmp_path, capture=_Capture(msgs), local=_Capture(local),
                         dut=types.SimpleNamespace(phone_address=dut, address=dut), flow=flow)
    flow.binding.agents["transferor"] = types.SimpleNamespace(name="transferor", host=AGENT[0], address=AGENT)
    flow.binding.nat = ctx
    return flow


INVITE = """INVITE sip:transferee@198.19.0.2:5060 SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bK1;rport
From: <sip:transferor@198.18.0.2:5060>;tag=a
To: <sip:transferee@198.19.0.2:5060>
Call-ID: c1
CSeq: 1 INVITE
Contact: <sip:transferor@{contact}>"""

OK = """SIP/2.0 200 OK
Via: SIP/2.0/UDP {via};branch=z9hG4bK1;rport
From: <sip:transferor@198.18.0.2:5060>;tag=a
To: <sip:transferee@198.19.0.2:5060>;tag=b
Call-ID: c1
CSeq: 1 INVITE"""

NOTIFY = """NOTIFY sip:transferor@198.18.0.2:5060 SIP/2.0
Via: SIP/2.0/UDP 198.19.0.2:5060;branch=z9hG4bKn{cseq}
From: <sip:transferee@198.19.0.2:5060>;tag=b
To: <sip:transferor@198.18.0.2:5060>;tag=a
Call-ID: c1
CSeq: {cseq} NOTIFY
Event: refer
Content-Type: message/sipfrag
Content-Length: 14

SIP/2.0 200 OK"""


def invite_both_sides(contact="198.18.0.2:5060"):
    return [wire("lan0", AGENT, DUT, INVITE.format(via="198.18.0.2:5060", contact=contact)),
            wire("wan0", BINDING, DUT, INVITE.format(via="198.18.0.2:5060", contact=contact))]


def test_responses_to_the_source_pass():
    msgs = invite_both_sides() + [wire("wan0", DUT, BINDING, OK.format(via="198.18.0.2:5060")),
                                  wire("lan0", DUT, AGENT, OK.format(via="198.18.0.2:5060"))]
    flow = nat_flow(None, msgs)
    _, result = run("nat_responses_to_source", flow)
    assert "answered to its source" in result.detail


def test_a_response_to_the_via_port_is_a_fail_with_the_response_on_wan0_as_evidence():
    sent = wire("wan0", DUT, (BINDING[0], 5060), OK.format(via="198.18.0.2:5060"), t=5.0)
    again = wire("wan0", DUT, (BINDING[0], 5060), OK.format(via="198.18.0.2:5060"), t=5.5)   # retransmission
    exc = violation("nat_responses_to_source", nat_flow(None, invite_both_sides() + [sent, again]))
    assert "went to 198.19.0.1:5060, expected 198.19.0.1:40001" in str(exc)
    assert len(exc.evidence) == 1            # one per response, not per copy
    evidence = exc.evidence[0]
    assert (evidence.part, evidence.seen, evidence.time) == ("destination", "198.19.0.1:5060", 5.0)
    assert evidence.party.startswith("wan0") and evidence.raw == sent.raw


def test_no_response_at_all_is_a_fail_naming_the_unanswered_request():
    exc = violation("nat_responses_to_source", nat_flow(None, invite_both_sides()))
    assert "no response to any of 1 request(s)" in str(exc)
    assert exc.evidence[0].absent and "198.19.0.1:40001" in exc.evidence[0].expected


def test_nothing_captured_cannot_be_judged():
    with pytest.raises(Inconclusive):
        run("nat_responses_to_source", nat_flow(None, []))


def test_notifies_to_the_binding_and_delivered_pass():
    msgs = invite_both_sides() + [wire("wan0", DUT, BINDING, NOTIFY.format(cseq=7)),
                                  wire("lan0", DUT, AGENT, NOTIFY.format(cseq=7))]
    _, result = run("nat_notifies_reach_binding", nat_flow(None, msgs), party="transferor")
    assert "1 NOTIFYs" in result.detail and "198.19.0.1:40001" in result.detail


def test_no_notify_toward_the_nat_names_the_private_contact():
    exc = violation("nat_notifies_reach_binding", nat_flow(None, invite_both_sides()), party="transferor")
    assert "no NOTIFY left 198.19.0.2 toward the NAT" in str(exc) and "not routable" in str(exc)
    assert exc.evidence[0].absent


def test_a_notify_to_another_port_is_the_evidence():
    stray = wire("wan0", DUT, (BINDING[0], 5060), NOTIFY.format(cseq=7))
    exc = violation("nat_notifies_reach_binding", nat_flow(None, invite_both_sides() + [stray]),
                    party="transferor")
    assert "elsewhere than the NAT binding 198.19.0.1:40001" in str(exc)
    assert exc.evidence[0].raw == stray.raw and exc.evidence[0].seen == "198.19.0.1:5060"


def test_a_notify_that_never_reached_the_lan_is_the_evidence():
    sent = wire("wan0", DUT, BINDING, NOTIFY.format(cseq=7))
    exc = violation("nat_notifies_reach_binding", nat_flow(None, invite_both_sides() + [sent]), party="transferor")
    assert "never the transferor" in str(exc) and exc.evidence[0].part == "delivery"


REFER = """REFER sip:transferee@198.19.0.2:5060 SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bK2;rport
From: <sip:transferor@198.18.0.2:5060>;tag=a
To: <sip:transferee@198.19.0.2:5060>;tag=b
Call-ID: c1
CSeq: 2 REFER
Contact: <sip:transferor@{contact}>
Refer-To: <sip:carol@{carol}:5060>
Referred-By: <sip:transferor@198.18.0.2:5060>"""


def refer_pair(carol_after="198.18.0.3"):
    return [wire("lan0", AGENT, DUT, REFER.format(via="198.18.0.2:5060", contact="198.18.0.2:5060",
                                                  carol="198.18.0.3")),
            wire("wan0", BINDING, DUT, REFER.format(via="198.19.0.1:40001", contact="198.19.0.1:40001",
                                                    carol=carol_after))]


def test_alg_rewrite_as_assumed_saves_the_artifacts(tmp_path):
    flow = nat_flow(tmp_path, refer_pair())
    run("nat_alg_rewrite", flow, method="REFER", sender="transferor", rewritten=["Via", "Contact"],
        unchanged=["Refer-To", "Referred-By", "Call-ID"], save_as="refer")
    assert "+Contact: <sip:transferor@198.19.0.1:40001>" in (tmp_path / "refer-alg.diff").read_text()
    assert (tmp_path / "refer-lan0.txt").read_text().startswith("REFER ")
    assert any("rewrote Via, Contact" in f for f in flow.trace.findings)


def test_a_nat_that_rewrites_otherwise_is_inconclusive_not_a_fail(tmp_path):
    with pytest.raises(Inconclusive, match="the NAT changed Refer-To"):
        run("nat_alg_rewrite", nat_flow(tmp_path, refer_pair(carol_after="198.19.0.1")), method="REFER",
            sender="transferor", unchanged=["Refer-To"], save_as="refer")


def test_names_binding_needs_the_public_address_and_a_mapped_port():
    ctx = nat_flow(None, []).binding.nat
    assert nat.names_binding(ctx, refer_pair()[1].msg, "Via")
    assert not nat.names_binding(ctx, refer_pair()[0].msg, "Via")
    assert nat.names_binding(ctx, refer_pair()[1].msg, "Contact")


def test_binding_open_matches_the_dut_port():
    table = "ipv4 2 udp 17 1 src=198.18.0.2 dst=198.19.0.2 sport=5060 dport=5062 src=198.19.0.2 ...\n"
    assert nat.binding_open(table, AGENT, ("198.19.0.2", 5062))
    assert not nat.binding_open(table, AGENT, ("198.19.0.2", 5060))


def test_settled_tries_again_until_the_capture_caught_up():
    import asyncio
    calls = []

    def judge():
        calls.append(1)
        if len(calls) < 3:
            raise AssertionError("not yet")
        return "ok"

    assert asyncio.run(nat.settled(judge, settle=2.0)) == "ok" and len(calls) == 3
