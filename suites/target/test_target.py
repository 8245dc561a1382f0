"""The DUT as transfer target: the INVITE-with-Replaces cases the YAML schema cannot express
(two Replaces header fields, early dialogs whose tags come from a provisional response, a
verdict with two acceptable outcomes). The YAML ones are in scenarios/target/.

Parties: the DUT is the target; `transferor` is its peer in the dialog to be replaced; the
`transferee` sends the INVITE with Replaces (RFC 3891 §3).
"""

from __future__ import annotations

import asyncio

import pytest

from fixtures.plugin import scenario_param
from referee.agent import ExpectationFailed
from referee.agent.objects import ClientRequest
from referee.scenario import Flow, python_flow
from referee.sip import Response

PARTIES = {"transferor": "agent", "transferee": "agent", "target": "dut"}
NEEDS = ["target", "replaces"]
TIMEOUT = 5.0
SDP_HEADERS = {"Require": "replaces", "Referred-By": "<{transferor.uri}>"}


async def invite_with(flow: Flow, sender: str, headers: list[tuple[str, str]], what: str) -> ClientRequest:
    """`sender` sends an INVITE (with SDP) to the DUT carrying exactly these extra header fields."""
    agent = flow.binding.agent(sender)
    async with flow.step(f"{sender} sends INVITE to target ({what})"):
        hdrs = [("Supported", "replaces"), ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY")]
        hdrs += [(n, flow.var(v)) for n, v in headers]
        return await agent.request("INVITE", flow.binding.uri("target"), headers=hdrs, body=agent.sdp_offer(),
                                   content_type="application/sdp", dest=flow.binding.address("target"))


async def final_of(flow: Flow, cr: ClientRequest, who: str, wanted: str, check, requirement: str) -> Response:
    """Wait for the final response of `cr`; `check(status)` must hold ("wanted" names it)."""
    async with flow.step(f"{who} expects {wanted} to its INVITE", requirement=requirement):
        response = await cr.final(TIMEOUT)
        if not check(response.status):
            raise ExpectationFailed(f"the INVITE was answered {response.status} {response.reason}, "
                                    f"expected {wanted}")
        return response


async def wait_early(flow: Flow, cr: ClientRequest, who: str) -> Response:
    """Wait for a 101-199 response with a To tag (an early dialog) to `cr`."""
    async with flow.step(f"{who} expects a provisional response with a To tag (early dialog)"):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while loop.time() < deadline:
            early = next((r for r in cr.responses if 100 < r.status < 200 and r.to.tag), None)
            if early is not None:
                return early
            if cr.final_future.done():
                break
            await asyncio.sleep(0.02)
        seen = ", ".join(f"{r.status} {r.reason}" for r in cr.responses) or "nothing"
        raise ExpectationFailed(f"no 18x with a To tag within {TIMEOUT:g} s; got {seen}")


@python_flow(id="TT-REPLACES-006", title="An INVITE with two Replaces header fields is rejected with 400",
             rfc="RFC 3891", section="3", level="MUST", dut="target", needs=NEEDS, parties=PARTIES,
             requirement="If more than one Replaces header field is present in an INVITE, the UAS rejects it "
                         "with 400 Bad Request. The first Replaces names a live confirmed dialog, so a target "
                         "that simply uses the first one accepts instead.")
async def two_replaces(flow: Flow) -> None:
    await flow.call("call1", "transferor", "target")
    cr = await invite_with(flow, "transferee", [("Replaces", "{call1.replaces}"),
                                                ("Replaces", "referee-other@198.18.0.9;to-tag=1;from-tag=2"),
                                                ("Require", "replaces")], "two Replaces header fields")
    await final_of(flow, cr, "transferee", "400", lambda s: s == 400, "RFC 3891 §3 MUST 400")


@python_flow(id="TT-REPLACES-007", title="Replaces naming the target's own early dialog: 2xx, then CANCEL "
                                         "of the original INVITE",
             rfc="RFC 3891", section="3", level="MUST", dut="target", needs=NEEDS + ["driver"], parties=PARTIES,
             requirement="If the Replaces header matches an early dialog that the target itself initiated "
                         "(its INVITE got a 18x with a To tag but no final answer), the target accepts the new "
                         "INVITE with a 2xx and shuts the early dialog down by sending CANCEL for its INVITE. "
                         "(RFC 3891 §3, indicative wording for the only conformant behaviour; rated MUST.)")
async def replace_own_early(flow: Flow) -> None:
    await flow.dut("dial", {"to": "{transferor.uri}"})
    invite = await flow.expect("INVITE", "transferor", timeout=TIMEOUT, save="invite1")
    await flow.reply(180, "transferor", "invite1")
    request = invite.message
    # the early dialog as the target sees it: local tag = its From tag, remote tag = our To tag
    replaces = f"{request.call_id};to-tag={request.from_.tag};from-tag={invite.incoming.to_tag}"
    cr = await invite_with(flow, "transferee", [("Replaces", replaces), *SDP_HEADERS.items()],
                           "Replaces naming the DUT's early dialog")
    await final_of(flow, cr, "transferee", "2xx", lambda s: 200 <= s < 300, "RFC 3891 §3 accept with 2xx")
    await flow.expect("CANCEL", "transferor", timeout=TIMEOUT, requirement="RFC 3891 §3 CANCEL the early dialog")


@python_flow(id="TT-REPLACES-008", title="Replaces naming an early dialog the target did not initiate is "
                                         "rejected with 481, the ringing call left alone",
             rfc="RFC 3891", section="3", level="MUST", dut="target", needs=NEEDS + ["driver"], parties=PARTIES,
             requirement="If the Replaces header matches an early dialog the target did not initiate (a call "
                         "ringing at the target), the target returns 481 to the new INVITE and leaves the "
                         "matched dialog unchanged. (RFC 3891 §3, indicative wording; rated MUST.)")
async def replace_incoming_early(flow: Flow) -> None:
    await flow.dut("answer_mode", {"mode": "noanswer"})
    agent = flow.binding.agent("transferor")
    async with flow.step("transferor calls the target, which rings without answering"):
        ringing = await agent.invite(flow.binding.uri("target"), dest=flow.binding.address("target"))
    early = await wait_early(flow, ringing, "transferor")
    req = ringing.request
    # the ringing dialog as the target sees it: local tag = its To tag, remote tag = our From tag
    replaces = f"{req.call_id};to-tag={early.to.tag};from-tag={req.from_.tag}"
    cr = await invite_with(flow, "transferee", [("Replaces", replaces), *SDP_HEADERS.items()],
                           "Replaces naming the ringing call at the DUT")
    await final_of(flow, cr, "transferee", "481", lambda s: s == 481, "RFC 3891 §3 not ours -> 481")
    async with flow.step("the ringing call gets no final response for 1.5 s (left unchanged)",
                         requirement="RFC 3891 §3 leave the matched dialog unchanged"):
        await asyncio.sleep(1.5)
        if ringing.final_future.done():
            final = ringing.final_future.result()
            raise ExpectationFailed(f"the ringing call was ended: its INVITE was answered {final.status} "
                                    f"{final.reason}")
    async with flow.step("transferor cancels the ringing call (clean-up)"):
        await agent.cancel(ringing)


@python_flow(id="TT-REFBY-001", title="An INVITE carrying Referred-By (no token) is not refused for it",
             rfc="RFC 3892", section="2.3", level="MAY", dut="target", needs=["target"],
             parties={"transferee": "agent", "target": "dut", "transferor": "agent"},
             requirement="A refer target may apply extra admission policy to a request with Referred-By; "
                         "when it refuses one because no Referred-By token is present, the response is 429 "
                         "Provide Referrer Identity (428 is not appropriate). A target that answers plain "
                         "INVITEs by itself therefore answers this one 2xx, or 429 if it requires a token; "
                         "any other rejection means the Referred-By was treated as a fault.")
async def referred_by_ok(flow: Flow) -> None:
    cr = await invite_with(flow, "transferee", [("Referred-By", "<{transferor.uri}>")], "Referred-By, no token")
    await final_of(flow, cr, "transferee", "2xx or 429", lambda s: 200 <= s < 300 or s == 429,
                   "RFC 3892 §2.3 only 429 for a missing token")


FLOWS = [two_replaces, replace_own_early, replace_incoming_early, referred_by_ok]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_target(flow_fn, play):
    play(flow_fn)
