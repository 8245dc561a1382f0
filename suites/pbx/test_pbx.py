"""The DUT as PBX: its users alice, bob and carol (the profile's first, second and third user)
transfer calls between each other through it. Blind, attended, declined, busy and unknown-target
transfers, judged on what the three users observe end to end (see pbx_common.py).
"""

from __future__ import annotations

import pytest

from fixtures.plugin import scenario_param
from referee.agent import ExpectationFailed
from referee.scenario import Flow, python_flow
from referee.sip import Replaces, SipParseError, SipUri, parse_uri

from pbx_common import (PARTIES, QUIET, TIMEOUT, Leg, basic_call, hang_up, new_call, note,
                        original_call_stays_up, refer, transfer_leg, transferee_result, transferee_starts,
                        transferor_notifies)


async def target_invited(flow: Flow, leg: Leg):
    """carol's INVITE of the transfer: taken already while finding out who acts, or awaited now.
    When it does not come, the failure says where an INVITE carrying Referred-By went instead."""
    item = leg.taken.pop("target", None)
    if item is not None:
        return item
    try:
        return await flow.binding.agent("target").expect("INVITE", TIMEOUT, where=new_call)
    except ExpectationFailed as exc:
        astray = [f"the {party} received {i.summary()}" for party in ("transferor", "transferee")
                  for i in flow.binding.agent(party).inbox
                  if not i.consumed and i.message.is_request and i.message.method == "INVITE"
                  and i.message.has("Referred-By")]
        raise ExpectationFailed(str(exc) + ("\n  instead, " + "; ".join(astray) if astray else "")) from None


async def target_answers(flow: Flow, leg: Leg, status: int) -> None:
    """carol: the INVITE of the transfer reaches her; she answers `status`."""
    requirement = "RFC 3261 §16.5: a request for an extension of the PBX reaches the contact registered for it"
    async with flow.step(f"target receives the INVITE of the transfer and answers {status}",
                         requirement=requirement) as step:
        carol = flow.binding.agent("target")
        item = await target_invited(flow, leg)
        note(flow, step, item.message)
        if status < 300:
            flow.calls["call3"] = await carol.answer(item, status)
        else:
            await carol.respond(item, status)


@python_flow(id="PB-BLIND-001", title="Blind transfer between two extensions: the transferor is told of the "
                                      "transfer's progress and of its success",
             rfc="RFC 3515", section="2.4.4", level="MUST", dut="pbx", parties=PARTIES,
             requirement="alice (1st user) calls bob (2nd user) through the PBX and REFERs him to carol's "
                         "extension. The REFER is accepted (2xx); the transfer is carried out (by bob, or by "
                         "the PBX itself) and carol's phone is called; carol answers. The refer NOTIFYs "
                         "(RFC 3515 §2.4.4: 'MUST be used to inform the agent sending the REFER of the status "
                         "of the reference') reach alice in her call with bob: one with a 1xx status first "
                         "(RFC 6665 §4.2.1.2: a NOTIFY is sent at once when a subscription is accepted), then "
                         "a final one reporting 200.")
async def blind_transfer(flow: Flow) -> None:
    await basic_call(flow)
    await refer(flow, "<{target.uri}>")
    leg = await transfer_leg(flow)
    await transferee_starts(flow, leg)
    await target_answers(flow, leg, 200)
    await transferee_result(flow, leg, "2xx", "carol's 200 reaches the transferee through the PBX")
    await transferor_notifies(flow, leg, "2xx", first_1xx=True, requirement="RFC 3515 §2.4.4 MUST; RFC 6665 §4.2.1.2")
    await hang_up(flow)


@python_flow(id="PB-ATT-001", title="Attended transfer between two extensions: the target's consultation call "
                                    "is replaced, by an INVITE with Replaces naming it or inside the PBX",
             rfc="RFC 3891", section="3", level="MUST", dut="pbx", parties=PARTIES,
             requirement="alice calls bob, then carol (the consultation call), then REFERs bob to carol's "
                         "extension with Replaces naming the consultation call. If a new INVITE reaches carol "
                         "(sent by bob through a proxying PBX, RFC 3891 §5, or by a PBX acting itself), it carries "
                         "one Replaces matching a dialog of hers the way RFC 3891 §3 matches it: Call-ID, "
                         "to-tag = her local tag, from-tag = her remote tag; carol then accepts it and ends the "
                         "consultation call with BYE. A PBX that joins the calls internally sends carol no new "
                         "INVITE and leaves her consultation call up. Either way alice's side of the consultation "
                         "call ends (the replaced dialog is terminated) and alice is told the transfer succeeded "
                         "(final NOTIFY 200).")
async def attended_transfer(flow: Flow) -> None:
    await basic_call(flow)
    carol = flow.binding.agent("target")
    carol.auto_answer = 200
    await flow.call("call2", "transferor", "target", timeout=TIMEOUT, requirement="the consultation call")
    carol.auto_answer = None
    await flow.expect("INVITE", "target", timeout=TIMEOUT, requirement="the consultation call reached carol")
    consult = next((c for c in reversed(carol.calls) if c.is_up), None)
    await refer(flow, "<{target.uri}?Replaces={call2.replaces_escaped}>")
    leg = await transfer_leg(flow)
    await transferee_starts(flow, leg)
    if leg.by == "pbx" and "target" not in leg.taken and leg.notifies:
        # the PBX joined the calls itself (a final NOTIFY came, no INVITE at carol)
        async with flow.step(f"carol's consultation call goes on (joined to the transferee's inside the PBX): "
                             f"no BYE at carol for {QUIET:g} s"):
            try:
                bye = await carol.expect("BYE", QUIET, call=consult)
            except ExpectationFailed:
                pass
            else:
                raise ExpectationFailed(f"carol received {bye.summary()}: the call she was to be transferred "
                                        f"into was ended")
    else:
        async with flow.step("the INVITE of the transfer reaches carol",
                             requirement="RFC 3261 §16.5: a request for an extension of the PBX reaches the "
                                         "contact registered for it") as step:
            invite = await target_invited(flow, leg)
            note(flow, step, invite.message)
        async with flow.step("the INVITE carries one Replaces that matches carol's consultation dialog",
                             requirement="RFC 3891 §3 (match), §5 (proxies pass Replaces on)"):
            values = invite.message.values("Replaces")
            if len(values) != 1:
                raise ExpectationFailed(f"the INVITE reached carol with {len(values)} Replaces header fields "
                                        f"({values or 'none'}); one naming her consultation call was due")
            try:
                replaces = Replaces.parse(values[0])
            except SipParseError as exc:
                raise ExpectationFailed(f"Replaces {values[0]!r} does not parse: {exc}") from None
            d = consult.dialog
            if (replaces.call_id, replaces.to_tag, replaces.from_tag) != (d.call_id, d.local_tag, d.remote_tag):
                raise ExpectationFailed(f"Replaces {values[0]!r} names no dialog of carol's: her consultation call "
                                        f"is Call-ID {d.call_id}, local tag {d.local_tag}, remote tag "
                                        f"{d.remote_tag}")
        async with flow.step("carol accepts the INVITE with Replaces and ends the consultation call"):
            flow.calls["call3"] = await carol.answer(invite)
            await carol.bye(consult, timeout=TIMEOUT)
        await transferee_result(flow, leg, "2xx", "carol's 200 reaches the transferee through the PBX")
    async with flow.step("the transferor's side of the consultation call is ended",
                         requirement="RFC 3891 §3: the replaced dialog is terminated"):
        alice_consult = flow.calls["call2"]
        try:
            await flow.binding.agent("transferor").expect("BYE", TIMEOUT, call=alice_consult)
        except ExpectationFailed:
            if alice_consult.is_up:
                raise ExpectationFailed(f"no BYE for the consultation call reached the transferor within "
                                        f"{TIMEOUT:g} s") from None
    await transferor_notifies(flow, leg, "2xx", first_1xx=False, requirement="RFC 3515 §2.4.4 MUST")
    await hang_up(flow)


FAILURE = ("the transfer target answers {code}: the refer NOTIFYs reach alice, the last one reporting a failure "
           "(>= 300) and none reporting success (RFC 3515 §2.4.5: the status line of the NOTIFY body gives the "
           "status of the referred action; 'SIP/2.0 200 OK' means it succeeded). The call between alice and bob "
           "stays up: a failed transfer leaves the transferor with the call to take back (the failed-transfer "
           "call flows of RFC 5589); neither of them receives a BYE.")


@python_flow(id="PB-DECLINE-001", title="Declined transfer: the target's 603 reaches the transferor as a failure, "
                                        "the original call stays up",
             rfc="RFC 3515", section="2.4.5", level="MUST", dut="pbx", parties=PARTIES,
             requirement="alice REFERs bob to carol's extension; " + FAILURE.format(code="603 Decline"))
async def declined_transfer(flow: Flow) -> None:
    await basic_call(flow)
    await refer(flow, "<{target.uri}>")
    leg = await transfer_leg(flow)
    await transferee_starts(flow, leg)
    await target_answers(flow, leg, 603)
    await transferee_result(flow, leg, ">=300", "carol's 603 reaches the transferee through the PBX")
    await transferor_notifies(flow, leg, ">=300", first_1xx=False, requirement="RFC 3515 §2.4.5")
    await original_call_stays_up(flow, "RFC 5589 (failed transfer): the original call remains")
    await hang_up(flow)


@python_flow(id="PB-BUSY-001", title="Transfer to a busy extension: the target's 486 reaches the transferor as "
                                     "a failure, the original call stays up",
             rfc="RFC 3515", section="2.4.5", level="MUST", dut="pbx", parties=PARTIES,
             requirement="alice REFERs bob to carol's extension, which is busy; " + FAILURE.format(code="486 Busy "
                                                                                                       "Here"))
async def busy_transfer(flow: Flow) -> None:
    await basic_call(flow)
    await refer(flow, "<{target.uri}>")
    leg = await transfer_leg(flow)
    await transferee_starts(flow, leg)
    await target_answers(flow, leg, 486)
    await transferee_result(flow, leg, ">=300", "carol's 486 reaches the transferee through the PBX")
    await transferor_notifies(flow, leg, ">=300", first_1xx=False, requirement="RFC 3515 §2.4.5")
    await original_call_stays_up(flow, "RFC 5589 (failed transfer): the original call remains")
    await hang_up(flow)


def unknown_extension(flow: Flow) -> str:
    """An extension of the PBX's numbering the profile does not have: the target's extension with
    every digit after the first a 9 (1003 -> 1999), lengthened until it is no user's."""
    target = parse_uri(flow.binding.uri("target"))
    known = {u.extension for u in flow.binding.dut.profile.users.values()}
    ext = target.user or "1"
    candidate = ext[:1] + "9" * max(len(ext) - 1, 3)
    while candidate in known:
        candidate += "9"
    return str(target.replace(user=candidate)) if isinstance(target, SipUri) else f"sip:{candidate}@invalid"


@python_flow(id="PB-UNKNOWN-001", title="Transfer to an extension that does not exist is reported as a failure, "
                                        "never as a success",
             rfc="RFC 3261", section="16.5", level="MUST", dut="pbx", parties=PARTIES,
             requirement="alice REFERs bob to an extension the PBX does not have (the target's extension with "
                         "its other digits replaced by 9s, e.g. 1999). A PBX routing the INVITE for it answers "
                         "with an error (RFC 3261 §16.5: 'If the Request-URI indicates a resource at this proxy "
                         "that does not exist, the proxy MUST return a 404 (Not Found) response'); a PBX "
                         "carrying out the transfer itself fails it. Either way the refer NOTIFYs reach alice, "
                         "the last one reporting a failure (>= 300) and none a success (RFC 3515 §2.4.5), and "
                         "the original call stays up.")
async def unknown_target(flow: Flow) -> None:
    await basic_call(flow)
    await refer(flow, f"<{unknown_extension(flow)}>")
    leg = await transfer_leg(flow, calls_target=False)
    await transferee_starts(flow, leg)
    await transferee_result(flow, leg, ">=300", "RFC 3261 §16.5 MUST: 404 for an extension that does not exist")
    await transferor_notifies(flow, leg, ">=300", first_1xx=False, requirement="RFC 3515 §2.4.5")
    await original_call_stays_up(flow, "RFC 5589 (failed transfer): the original call remains")
    await hang_up(flow)


FLOWS = [blind_transfer, attended_transfer, declined_transfer, busy_transfer, unknown_target]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_pbx(flow_fn, play):
    play(flow_fn)
