"""Security test purposes: requests a DUT must not act on blindly, and a REFER flood it must survive.

- SEC-PBX-AUTH-001 (PBX): an out-of-dialog REFER without credentials is challenged or refused.
- SEC-REFER-OOD-001 (phone as transferee): an out-of-dialog REFER from a stranger naming an
  external number does not make the phone call that number by itself.
- SEC-REPLACES-001 (phone as target): an INVITE with Replaces from a party that is not in the
  dialog and shows no authorization does not take the call over.
- SEC-FLOOD-001 (phone as transferee): 20 REFERs back to back in one dialog: every one answered,
  every NOTIFY attributable to its REFER by Event id, the phone still answering afterwards.

Refer-To URIs with embedded headers that must not be copied into the triggered INVITE are
covered by TE-INVITE-004 (transferee suite), not repeated here.
"""

from __future__ import annotations

import asyncio

import pytest

from fixtures.plugin import scenario_param
from referee.agent import ExpectationFailed
from referee.agent.objects import ClientRequest, Inbound
from referee.scenario import Flow, python_flow
from referee.sip import Request, SipParseError
from referee.sip.sipfrag import Sipfrag

TIMEOUT = 4.0        # a single answer must come within this
QUIET = 3.0          # how long "nothing happens" is watched
FLOOD = 20           # REFERs in the flood (bounded)
FLOOD_DEADLINE = 15.0   # every accepted REFER of the flood reports its outcome within this
# a premium-rate looking number on a host of the test range nobody listens on
EXTERNAL = "sip:+19005550100@198.18.0.99;user=phone"


def note(flow: Flow, step, msg) -> None:
    """Record that `step` checked `msg` (the ladder shows it)."""
    flow._mark(step, msg)


@python_flow(id="SEC-PBX-AUTH-001", title="An out-of-dialog REFER without credentials is challenged or refused "
                                          "by the PBX, never delivered",
             rfc="RFC 3515", section="2.4.2", level="SHOULD", dut="pbx", markers=["security"],
             parties={"transferor": "agent", "transferee": "agent"},
             requirement="RFC 3515 §2.4.2: a UA accepting a REFER SHOULD first get approval, from its user or "
                         "from configured policy; for a PBX whose users authenticate (register = true, "
                         "passwords in the profile) that policy is its users' credentials (RFC 3261 §22.3: a "
                         "proxy challenges with 407). alice's agent, without answering any challenge, sends an "
                         "out-of-dialog REFER to bob's extension naming an external number. The PBX answers it "
                         "401/407 (challenge) or with another refusal (4xx-6xx); the REFER never reaches bob and "
                         "is never accepted. Level SHOULD, as in RFC 3515; the profile must hold passwords.")
async def pbx_unauthenticated_refer(flow: Flow) -> None:
    alice = flow.binding.agent("transferor")
    alice.auto_auth = False        # the REFER goes out without credentials and stays without them
    cr = await flow.send("REFER", "transferor", to="transferee", save="refer",
                         headers={"Refer-To": f"<{EXTERNAL}>", "Referred-By": "<{transferor.aor}>"})
    async with flow.step(f"the REFER does not reach the extension within {QUIET:g} s",
                         requirement="RFC 3515 §2.4.2 SHOULD (approval by configured policy)"):
        try:
            got = await flow.binding.agent("transferee").expect("REFER", QUIET)
        except ExpectationFailed:
            pass
        else:
            raise ExpectationFailed(f"the PBX delivered the unauthenticated REFER to the extension: "
                                    f"{got.summary()} with Refer-To {got.message.header('Refer-To')!r}")
    async with flow.step("the REFER is challenged (401/407) or refused (4xx-6xx)",
                         requirement="RFC 3261 §22.3; RFC 3515 §2.4.2 SHOULD"):
        final = await _final(cr)
        if final.status < 400:
            raise ExpectationFailed(f"the PBX answered the unauthenticated REFER {final.status} {final.reason}: "
                                    f"it accepted a transfer from a party it never authenticated")


async def _final(cr: ClientRequest):
    try:
        return await cr.final(TIMEOUT)
    except ExpectationFailed as exc:
        raise ExpectationFailed(f"no final response to the REFER ({exc})") from None


@python_flow(id="SEC-REFER-OOD-001", title="An out-of-dialog REFER from a stranger naming an external number "
                                           "does not make the phone call it unapproved",
             rfc="RFC 3515", section="2.4.2", level="SHOULD", dut="transferee", needs=["transferee"],
             markers=["security"],
             parties={"transferor": {"kind": "agent", "user": "stranger"}, "transferee": "dut",
                      "target": {"kind": "agent", "user": "+19005550100"}},
             requirement="RFC 3515 §2.4.2: 'A UA accepting a well-formed REFER request SHOULD request approval "
                         "from the user to proceed (this request could be satisfied with an interactive query or "
                         "through accessing configured policy)'. A party the phone has no call with sends it a "
                         "REFER outside any dialog, without credentials, naming a premium-rate looking number "
                         "(sip:+19005550100@...;user=phone, an agent of the suite). With nobody at the phone to "
                         "approve, the phone does not call that number: it refuses or challenges the REFER, or "
                         "accepts it pending an approval that never comes. It fails if the number receives an "
                         "INVITE within 3 s. Level SHOULD, as in RFC 3515.")
async def ood_refer_external(flow: Flow) -> None:
    cr = await flow.send("REFER", "transferor", to="transferee", save="refer",
                         headers={"Refer-To": "<{target.uri};user=phone>", "Referred-By": "<{transferor.uri}>"})
    async with flow.step(f"the external number receives no INVITE within {QUIET:g} s",
                         requirement="RFC 3515 §2.4.2 SHOULD (approval before acting)") as step:
        try:
            got = await flow.binding.agent("target").expect("INVITE", QUIET)
        except ExpectationFailed:
            answers = ", ".join(f"{r.status} {r.reason}" for r in cr.responses) or "not answered"
            step.detail = f"the REFER was {answers if answers == 'not answered' else 'answered ' + answers}"
            return
        note(flow, step, got.message)
        await flow.binding.agent("target").respond(got, 486)
        answers = ", ".join(f"{r.status} {r.reason}" for r in cr.responses) or "no response"
        raise ExpectationFailed(f"the phone called the external number on an out-of-dialog REFER from a stranger "
                                f"without approval ({got.summary()}; the REFER got {answers})")


@python_flow(id="SEC-REPLACES-001", title="An INVITE with Replaces from a party outside the dialog, without any "
                                          "authorization, does not take the call over",
             rfc="RFC 3891", section="3", level="MUST", dut="target", needs=["target", "replaces"],
             markers=["security"],
             parties={"transferor": "agent", "transferee": {"kind": "agent", "user": "mallory"}, "target": "dut"},
             requirement="RFC 3891 §3: 'If the Replaces header field matches an active dialog, the UA MUST verify "
                         "that the initiator of the new INVITE is authorized to replace the matched dialog': by "
                         "authenticating it as the user being replaced, or (SHOULD) by a Referred-By naming that "
                         "user; §8 (Security Considerations) accepts a replacement only from a properly "
                         "authenticated peer. mallory, who is not in the call between the transferor and the "
                         "target, learns its identifiers and sends the target an INVITE with a Replaces naming "
                         "it, with no credentials and no Referred-By. The target does not accept it (any "
                         "non-2xx final response, a 401/407 challenge included) and the original call stays up.")
async def replaces_hijack(flow: Flow) -> None:
    await flow.call("call1", "transferor", "target", timeout=TIMEOUT)
    mallory = flow.binding.agent("transferee")
    async with flow.step("mallory sends the target an INVITE with Replaces naming call1 (no Referred-By, no "
                         "credentials)") as step:
        cr = await mallory.invite(flow.binding.uri("target"), dest=flow.binding.address("target"),
                                  headers={"Replaces": flow.var("{call1.replaces}"), "Require": "replaces"})
        note(flow, step, cr.request)
    async with flow.step("the target does not accept the replacement",
                         requirement="RFC 3891 §3 MUST verify authorization; §8") as step:
        final = await cr.final(TIMEOUT)
        note(flow, step, final)
        if 200 <= final.status < 300:
            raise ExpectationFailed(f"the target accepted ({final.status} {final.reason}) an INVITE with Replaces "
                                    f"from a party outside the dialog that showed no authorization: the call "
                                    f"was handed over to it")
    async with flow.step(f"the original call stays up: no BYE at the transferor for {QUIET:g} s",
                         requirement="RFC 3891 §3: an unauthorized replacement leaves the matched dialog alone"):
        call = flow.calls["call1"]
        try:
            bye = await flow.binding.agent("transferor").expect("BYE", QUIET, call=call)
        except ExpectationFailed:
            return
        raise ExpectationFailed(f"the transferor received {bye.summary()}: the target ended the call mallory tried "
                                f"to take over")


def _event_id(msg: Request) -> tuple[bool, str | None]:
    """(well formed refer Event, its id)."""
    try:
        event = msg.event
    except SipParseError:
        return False, None
    if event is None or event.package != "refer":
        return False, None
    return True, event.id


def _frag(msg: Request) -> int | None:
    try:
        return Sipfrag.parse(msg.body, strict=False).status
    except SipParseError:
        return None


def _terminated(msg: Request) -> bool:
    try:
        state = msg.subscription_state
    except SipParseError:
        return False
    return state is not None and state.state == "terminated"


@python_flow(id="SEC-FLOOD-001", title="20 REFERs back to back in one dialog: every one answered, every NOTIFY "
                                       "carries the id of its own REFER, the phone keeps working",
             rfc="RFC 3515", section="2.4.6", level="MUST", dut="transferee", needs=["transferee"],
             markers=["security"],
             parties={"transferor": "agent", "transferee": "dut", "target": {"kind": "agent", "auto_answer": 486}},
             requirement="The transferor sends 20 REFERs in one call without waiting (the target answers each "
                         "triggered INVITE 486 Busy Here). The phone stays consistent: it answers every REFER "
                         "(a final response within 10 s; refusing some is allowed); for each accepted one it "
                         "sends NOTIFYs up to a final one (RFC 3515 §2.4.4 MUST), and, for every REFER after the "
                         "first in the dialog, each NOTIFY carries Event id=<that REFER's CSeq> (§2.4.6: 'it MUST "
                         "include an id parameter ... containing the sequence number ... of the REFER this NOTIFY "
                         "is associated with'); no NOTIFY names a REFER it refused or continues a subscription it "
                         "ended; afterwards it still answers an OPTIONS and has not crashed.")
async def refer_flood(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee", timeout=TIMEOUT)
    alice = flow.binding.agent("transferor")
    call = flow.calls["call1"]
    refers: list[ClientRequest] = []
    async with flow.step(f"transferor sends {FLOOD} REFERs back to back in call1") as step:
        for _ in range(FLOOD):
            cr = await alice.refer(call, to=flow.binding.uri("target"))
            note(flow, step, cr.request)
            refers.append(cr)
    async with flow.step("every REFER is answered within 10 s",
                         requirement="RFC 3261 §8.2 (UAS behaviour): every request gets a final response") as step:
        results = await asyncio.gather(*(cr.final(10.0) for cr in refers), return_exceptions=True)
        missing = [cr.request.cseq.seq for cr, r in zip(refers, results) if isinstance(r, BaseException)]
        if missing:
            dut = flow.binding.dut
            gone = " - the DUT process has exited" if dut is not None and not dut.alive() else ""
            raise ExpectationFailed(f"{len(missing)} of {FLOOD} REFERs got no final response (CSeq "
                                    f"{', '.join(map(str, missing))}){gone}")
        accepted = {cr.request.cseq.seq for cr, r in zip(refers, results) if 200 <= r.status < 300}
        refused = {cr.request.cseq.seq: r.status for cr, r in zip(refers, results) if r.status >= 300}
        step.detail = f"{len(accepted)} accepted, {len(refused)} refused"
    first = refers[0].request.cseq.seq
    async with flow.step("each accepted REFER's NOTIFYs carry its id and end with a final one",
                         requirement="RFC 3515 §2.4.6 MUST (id), §2.4.4 MUST (NOTIFYs)") as step:
        finished: set[int] = set()
        problems: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLOOD_DEADLINE
        while finished != accepted and not problems:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                item: Inbound = await alice.expect("NOTIFY", remaining, call=call)
            except ExpectationFailed:
                break
            note(flow, step, item.message)
            msg = item.message
            ok, event_id = _event_id(msg)
            where = (f"NOTIFY CSeq {msg.cseq.seq} (Event {msg.header('Event')!r}, sipfrag {_frag(msg)}, "
                     f"Subscription-State {msg.header('Subscription-State')!r})")
            if not ok:
                problems.append(f"{where}: not a refer event")
                continue
            seq = first if event_id is None else int(event_id) if event_id.isdigit() else None
            if event_id is None and first not in accepted:
                problems.append(f"{where}: no id, so it belongs to the first REFER (CSeq {first}), which was "
                                f"refused ({refused.get(first)})")
            elif seq is None or seq not in accepted and seq not in refused:
                problems.append(f"{where}: its id names none of the REFERs sent (CSeq {first}..{first + FLOOD - 1})")
            elif seq in refused:
                problems.append(f"{where}: names REFER CSeq {seq}, which was refused with {refused[seq]}")
            elif seq in finished and event_id is None:
                problems.append(f"{where}: without an id it can only belong to the first REFER (CSeq {first}), "
                                f"whose subscription had already ended; the NOTIFYs of every later REFER carry "
                                f"id=<its CSeq>")
            elif seq in finished:
                problems.append(f"{where}: REFER CSeq {seq}'s subscription had already ended")
            elif (_frag(msg) or 0) >= 200 or _terminated(msg):
                finished.add(seq)
        unfinished = sorted(accepted - finished)
        if unfinished and not problems:
            problems.append(f"no final NOTIFY within {FLOOD_DEADLINE:g} s for the accepted REFERs with CSeq "
                            f"{', '.join(map(str, unfinished))}")
        if problems:
            raise ExpectationFailed("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)"
                                                               if len(problems) > 5 else ""))
    async with flow.step("the phone still answers an OPTIONS after the flood",
                         requirement="robustness: no crash, no lock-up"):
        try:
            await alice.options(flow.binding.uri("transferee"), dest=flow.binding.address("transferee"),
                                timeout=TIMEOUT)
        except ExpectationFailed as exc:
            raise ExpectationFailed(f"after the flood the phone no longer answers: {exc}") from None


FLOWS = [pbx_unauthenticated_refer, ood_refer_external, replaces_hijack, refer_flood]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_security(flow_fn, play, dut_profile):
    scenario = flow_fn.scenario
    if (scenario.dut_role == "pbx" and dut_profile.kind == "pbx"
            and not (dut_profile.register and dut_profile.secrets)):
        pytest.skip(f"{dut_profile.name!r} has no credentials (register = true and passwords): an "
                    f"unauthenticated request cannot be told from an authenticated one")
    play(flow_fn)
