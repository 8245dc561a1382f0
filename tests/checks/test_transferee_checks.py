"""The other checks and actions of the transferee suite, on hand-made messages and packets:
the triggered INVITE's Request-URI (referee/checks/triggered_invite.py), who receives the media
(referee/checks/media.py) and a request with repeated header fields (referee/checks/requests.py)."""

import asyncio

import pytest

from referee.agent import Agent, ExpectationFailed
from referee.checks.media import judge
from referee.scenario.binding import Binding
from referee.scenario.context import StepContext
from referee.scenario.flow import Flow
from referee.scenario.library import lookup
from referee.scenario.trace import StepResult
from referee.wire.packets import Segment

from checkctx import msg, new_flow, run, violation


def invite(uri: str):
    return msg(f"""INVITE {uri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1
From: <sip:transferee@127.0.0.1:5080>;tag=dut2
To: <{uri}>
Call-ID: c2@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:transferee@127.0.0.1:5080>""")


def refer(refer_to: str):
    return msg(f"""REFER sip:transferee@127.0.0.1:5080 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK2
From: <sip:transferor@127.0.0.1:5062>;tag=ee1
To: <sip:transferee@127.0.0.1:5080>;tag=dut1
Call-ID: c1@127.0.0.1
CSeq: 2 REFER
Refer-To: {refer_to}""")


def flow_with(invite_uri: str, refer_to: str):
    flow = new_flow()
    flow.saved["invite"], flow.saved["refer"] = invite(invite_uri), refer(refer_to)
    return flow


@pytest.mark.parametrize("invite_uri, refer_to", [
    ("sip:xfer-7001@127.0.0.1:5072", "<sip:xfer-7001@127.0.0.1:5072>"),
    ("sip:xfer-7001@127.0.0.1:5072", "<sip:xfer-7001@127.0.0.1:5072?Replaces=a%40b%3Bto-tag%3D1%3Bfrom-tag%3D2>"),
    ("sip:xfer-7001@127.0.0.1:5072", "<sip:xfer-7001@127.0.0.1:5072;method=INVITE>"),
    ("sip:xfer-7001@127.0.0.1:5072;transport=udp", "<sip:xfer-7001@127.0.0.1:5072;transport=UDP>"),
])
def test_invite_to_refer_to_passes(invite_uri, refer_to):
    run("invite_to_refer_to", flow_with(invite_uri, refer_to), invite="invite", refer="refer")


def test_invite_to_refer_to_names_the_request_uri():
    exc = violation("invite_to_refer_to", flow_with("sip:127.0.0.1:5072", "<sip:xfer-7001@127.0.0.1:5072>"),
                    invite="invite", refer="refer")
    (ev,) = exc.evidence
    assert ev.part == "Request-URI" and ev.seen == "'sip:127.0.0.1:5072'"
    assert ev.expected == "'sip:xfer-7001@127.0.0.1:5072'" and "CSeq 1 INVITE" in ev.message


def rtp(dport: int, t: float = 1.0) -> Segment:
    return Segment(t, "lo", "127.0.0.1", 40000, "127.0.0.1", dport, "UDP", b"\x80\x00" + b"\xff" * 170)


TARGET, TRANSFEROR = ("target", "127.0.0.1", 7002), ("transferor", "127.0.0.1", 7004)


def judged(segments):
    result = StepResult("1", 0, "media_only_to", "passed", 0.0, 0.0)
    judge(StepContext(new_flow(), result, "media_only_to"), segments, TARGET, TRANSFEROR, 1.5, 3)
    return result


def test_media_to_the_target_only():
    assert judged([rtp(7002, t) for t in range(5)]).detail == "5 packets to the target, 0 to the transferor"


def test_media_still_to_the_transferor_is_shown_as_a_packet():
    with pytest.raises(ExpectationFailed) as exc:
        judged([rtp(7002, t) for t in range(5)] + [rtp(7004, 9.0), rtp(7004, 9.5)])
    (ev,) = exc.value.evidence
    assert ev.party == "transferor" and ev.part == "media" and ev.seen == "2 packets in 1.5 s"
    assert not ev.absent and ev.time == 9.0 and ev.source == "127.0.0.1:40000"


def test_no_media_to_the_target_is_a_missing_stream():
    with pytest.raises(ExpectationFailed) as exc:
        judged([rtp(7002), rtp(9999), rtp(9999)])
    assert exc.value.evidence[0].absent and "(1 packets)" in str(exc.value)


def test_send_in_call_repeats_a_header():
    async def go():
        transferor = await Agent.start("transferor", "127.0.0.1", 0)
        transferee = await Agent.start("transferee", "127.0.0.1", 0)
        transferee.auto_answer = 200
        try:
            flow = Flow(Binding(agents={"transferor": transferor, "transferee": transferee}))
            flow.calls["call1"] = await transferor.call(transferee.uri)
            result = StepResult("1", 0, "send_in_call", "passed", 0.0, 0.0)
            await lookup("send_in_call").fn(StepContext(flow, result, "send_in_call"), method="REFER",
                                            headers={"Refer-To": ["<sip:a@127.0.0.1>", "<{transferor.uri}>"],
                                                     "Referred-By": "<sip:t@127.0.0.1>"},
                                            save="refer", **{"from": "transferor", "in": "call1"})
            got = await transferee.expect("REFER", 5)
            return flow, got.message
        finally:
            await transferor.close()
            await transferee.close()

    flow, received = asyncio.run(go())
    assert received.header_all("Refer-To")[0] == "<sip:a@127.0.0.1>"
    assert received.header_all("Refer-To")[1].startswith("<sip:transferor@127.0.0.1:")
    assert received.header("Referred-By") == "<sip:t@127.0.0.1>"
    assert flow.saved["refer"].request.method == "REFER"
