"""Building blocks of the PBX flows: three users of the PBX transfer calls between each other.

The agent parties are the PBX's first, second and third user: alice (transferor), bob
(transferee) and carol (target). Everything they send goes through the PBX; `{target.uri}` is
carol's extension at the PBX. Each flow starts with alice calling bob (`call1`) and sending a
REFER in that call.

A PBX may pass the REFER on to bob (a proxy, or a B2BUA that re-originates it on bob's leg), or
carry out the transfer itself (a B2BUA: it INVITEs the target and NOTIFYs alice on its own).
The flows only check what the three users observe:
- if a REFER reaches bob, bob acts as a conformant transferee (202, NOTIFY 100 Trying, INVITE to
  the Refer-To URI through the PBX with the REFER's Referred-By and the URI's Replaces, a final
  NOTIFY with the target's final status) and the PBX must carry all of that end to end;
- if the PBX INVITEs carol or NOTIFYs alice itself instead, bob does nothing, and the same end
  results are required: carol is called (or, in an attended transfer, her consultation call is
  joined to bob's inside the PBX), alice is told the outcome.
What is never checked with a PBX that transfers by itself: the media path between bob and carol
(there is no RTP in these flows).
"""

from __future__ import annotations

import asyncio
import dataclasses

from referee.agent import ExpectationFailed
from referee.agent.objects import Call, ClientRequest, Inbound
from referee.scenario import Flow
from referee.sip import NameAddr, Request, SipParseError, SipUri
from referee.sip.sipfrag import Sipfrag

# bob answers alice's call by himself; carol's answer is up to each flow
PARTIES = {"transferor": "agent", "transferee": {"kind": "agent", "auto_answer": 200}, "target": "agent"}
TIMEOUT = 4.0          # every message a flow waits for must come within this
QUIET = 1.5            # how long "nothing more happens" is watched


def frag_status(msg: Request) -> int | None:
    """The status line code of a NOTIFY's sipfrag body, read leniently (None: no status line)."""
    try:
        return Sipfrag.parse(msg.body, strict=False).status
    except SipParseError:
        return None


def describe(msg: Request) -> str:
    first = msg.body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return (f"NOTIFY CSeq {msg.cseq.seq}, Event {msg.header('Event')!r}, "
            f"Subscription-State {msg.header('Subscription-State')!r}, body {first!r}")


def note(flow: Flow, step, msg) -> None:
    """Record that `step` checked `msg` (the ladder shows it)."""
    flow._mark(step, msg)


@dataclasses.dataclass
class Leg:
    """How the transfer went on after the REFER: who acted on it."""
    by: str                               # 'transferee' (the REFER reached bob) or 'pbx'
    refer: Inbound | None = None          # the REFER as bob received it
    call: Call | None = None              # bob's side of the dialog the REFER came in
    invite: ClientRequest | None = None   # bob's INVITE to the Refer-To URI
    # messages already taken while finding out who acts (the steps that check them use these):
    # 'target': the INVITE at carol; notifies: NOTIFYs at alice, in order
    taken: dict[str, Inbound] = dataclasses.field(default_factory=dict)
    notifies: list[Inbound] = dataclasses.field(default_factory=list)


async def basic_call(flow: Flow) -> None:
    """alice calls bob's extension through the PBX; bob answers."""
    await flow.call("call1", "transferor", "transferee", timeout=TIMEOUT,
                    requirement="the PBX connects a call between two of its users")


async def refer(flow: Flow, refer_to: str) -> None:
    """alice sends a REFER in call1 (saved as 'refer'); `transfer_leg` and `transferee_starts`
    see it accepted."""
    await flow.send("REFER", "transferor", call="call1", save="refer",
                    headers={"Refer-To": refer_to, "Referred-By": "<{transferor.aor}>"})


async def refer_accepted(flow: Flow) -> None:
    await flow.expect("2xx", "transferor", response_to="refer", timeout=TIMEOUT,
                      requirement="RFC 3515 §2.4.2: a REFER that is acted upon is accepted with 2xx")


async def _first(flow: Flow, waits: dict[str, tuple[str, str, dict]], timeout: float) -> dict[str, Inbound]:
    """Wait until at least one expectation is met; every message met by then (each taken, i.e.
    consumed, by its expectation) by the name of its expectation. Empty if none within timeout."""
    tasks = {asyncio.ensure_future(flow.binding.agent(party).expect(what, timeout, **kwargs)): name
             for name, (party, what, kwargs) in waits.items()}
    found: dict[str, Inbound] = {}
    pending = set(tasks)
    try:
        while pending and not found:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            found.update({tasks[t]: t.result() for t in done if t.exception() is None})
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # a task that met its expectation before it could be cancelled took its message too
        found.update({name: t.result() for t, name in tasks.items()
                      if t.done() and not t.cancelled() and t.exception() is None})
    return found


def new_call(msg) -> bool:
    """An INVITE that starts a call (no To tag), not a re-INVITE in one."""
    return not msg.to.tag


def is_final_notify(msg: Request) -> bool:
    status = frag_status(msg)
    try:
        state = msg.subscription_state
    except SipParseError:
        state = None
    return (status is not None and status >= 200) or (state is not None and state.state == "terminated")


async def transfer_leg(flow: Flow, calls_target: bool = True) -> Leg:
    """After the REFER: find out who acts on it. A REFER reaching bob makes bob act; a new INVITE
    reaching carol, or a final NOTIFY reaching alice, without a REFER at bob, means the PBX acts
    itself. NOTIFYs reaching alice before that (e.g. a B2BUA's own 100 Trying) are kept for the
    NOTIFY step."""
    alice_call = flow.calls["call1"]
    waits = {"transferee": ("transferee", "REFER", {}), "transferor": ("transferor", "NOTIFY", {"call": alice_call})}
    if calls_target:
        waits["target"] = ("target", "INVITE", {"where": new_call})
    notifies: list[Inbound] = []
    async with flow.step("the REFER reaches the transferee, or the PBX carries out the transfer itself",
                         requirement="RFC 3515 §2.4.2: the REFER is acted upon") as step:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            found = await _first(flow, waits, max(deadline - loop.time(), 0.05))
            if "transferor" in found:
                notifies.append(found.pop("transferor"))
            if found or (notifies and is_final_notify(notifies[-1].message)):
                break
            if loop.time() >= deadline:
                answers = [f"{r.status} {r.reason}" for r in flow.saved["refer"].responses]
                seen = ", ".join(f"{what} at the {party}" for party, what, _ in waits.values() if party != "transferor")
                raise ExpectationFailed(f"the transfer went nowhere: the REFER was answered "
                                        f"{', '.join(answers) or 'with nothing'}, then within {TIMEOUT:g} s no "
                                        f"{seen} and " + ("only non-final NOTIFYs at the transferor"
                                                          if notifies else "no NOTIFY at the transferor"))
        refer_in = found.pop("transferee", None)
        if refer_in is not None:
            note(flow, step, refer_in.message)
            step.detail = "the REFER reached the transferee"
        else:
            step.detail = "the PBX carries out the transfer itself (no REFER at the transferee)"
    leg = Leg("transferee" if refer_in is not None else "pbx", refer_in, taken=found, notifies=notifies)
    if refer_in is None:
        await refer_accepted(flow)
        return leg
    flow.saved["refer_in"] = refer_in
    leg.call = refer_in.incoming.call
    if leg.call is None:
        async with flow.step("the REFER arrives in a dialog of the transferee"):
            raise ExpectationFailed(f"the REFER reached the transferee outside any dialog it has: "
                                    f"{refer_in.summary()}")
    return leg


async def transferee_starts(flow: Flow, leg: Leg) -> None:
    """bob (when the REFER reached him): 202, NOTIFY 100 Trying, INVITE to the Refer-To URI."""
    if leg.by != "transferee":
        return
    await flow.reply(202, "transferee", "refer_in")
    await refer_accepted(flow)
    await notify_from_transferee(flow, leg, 100)
    bob = flow.binding.agent("transferee")
    async with flow.step("transferee sends INVITE to the Refer-To URI through the PBX"):
        refer_to = leg.refer.message.values("Refer-To")
        target = NameAddr.parse(refer_to[0]).uri
        if not isinstance(target, SipUri):
            raise ExpectationFailed(f"Refer-To {refer_to[0]!r} is not a SIP URI")
        headers: dict[str, str] = {}
        referred_by = leg.refer.message.header("Referred-By")
        if referred_by:
            headers["Referred-By"] = referred_by
        replaces = target.header("Replaces")
        if replaces:
            headers["Replaces"] = replaces
        uri = str(target.replace(headers=()))
        leg.invite = await bob.invite(uri, headers=headers, dest=bob.outbound)


async def notify_from_transferee(flow: Flow, leg: Leg, status: int) -> None:
    if leg.by != "transferee":
        return
    bob = flow.binding.agent("transferee")
    async with flow.step(f"transferee sends NOTIFY (sipfrag {status}) in its dialog with the transferor"):
        await bob.notify_transfer(leg.call, status, final=status >= 200)


async def transferee_result(flow: Flow, leg: Leg, wanted: str, requirement: str) -> int | None:
    """bob waits for the final response to his INVITE (`wanted`: '2xx' or '>=300') and NOTIFYs it."""
    if leg.by != "transferee":
        return None
    from referee.agent import status_matches
    async with flow.step(f"transferee's INVITE is answered {wanted}", requirement=requirement):
        final = await leg.invite.final(TIMEOUT)
        if not status_matches(wanted, final.status):
            raise ExpectationFailed(f"the transferee's INVITE to {leg.invite.request.uri_text} was answered "
                                    f"{final.status} {final.reason}, expected {wanted}")
    await notify_from_transferee(flow, leg, final.status)
    return final.status


async def transferor_notifies(flow: Flow, leg: Leg, final_wanted: str, first_1xx: bool,
                              requirement: str) -> list[Request]:
    """alice's refer NOTIFYs in call1, up to the final one (a final sipfrag status or a terminated
    subscription): it must report `final_wanted`; no NOTIFY may report success unless success
    is wanted; with first_1xx a 1xx NOTIFY must come before the final one."""
    from referee.agent import status_matches
    got: list[Request] = []
    async with flow.step(f"transferor receives the refer NOTIFYs, the last one reporting {final_wanted}",
                         requirement=requirement) as step:
        alice = flow.binding.agent("transferor")
        call = flow.calls["call1"]
        while True:
            try:
                item = leg.notifies.pop(0) if leg.notifies else await alice.expect("NOTIFY", TIMEOUT, call=call)
            except ExpectationFailed:
                seen = "; ".join(describe(m) for m in got) or "no NOTIFY at all"
                raise ExpectationFailed(f"no final refer NOTIFY reached the transferor within {TIMEOUT:g} s "
                                        f"(got: {seen})") from None
            note(flow, step, item.message)
            msg = item.message
            got.append(msg)
            status = frag_status(msg)
            if status is not None and 200 <= status < 300 and not status_matches(final_wanted, status):
                raise ExpectationFailed(f"the transferor was told the transfer succeeded ({describe(msg)}), "
                                        f"but it failed: a {final_wanted} outcome was due")
            if is_final_notify(msg):
                break
            if len(got) > 8:
                raise ExpectationFailed("more than 8 NOTIFYs without a final one: " +
                                        "; ".join(describe(m) for m in got))
        last = got[-1]
        status = frag_status(last)
        if status is None or not status_matches(final_wanted, status):
            raise ExpectationFailed(f"the final NOTIFY reports {status}, expected {final_wanted}: {describe(last)}")
        if first_1xx and not any((frag_status(m) or 999) < 200 for m in got[:-1]):
            raise ExpectationFailed("no NOTIFY with a 1xx status came before the final one (RFC 6665 §4.2.1.2: "
                                    "a NOTIFY is sent at once when the subscription is accepted): got "
                                    + "; ".join(describe(m) for m in got))
    return got


async def original_call_stays_up(flow: Flow, requirement: str) -> None:
    """Neither alice nor bob gets a BYE for call1 while QUIET passes; call1 is up."""
    alice_call = flow.calls["call1"]
    async with flow.step(f"the original call stays up: no BYE at the transferor or the transferee "
                         f"for {QUIET:g} s", requirement=requirement):
        alice = flow.binding.agent("transferor")
        bob = flow.binding.agent("transferee")
        results = await asyncio.gather(alice.expect("BYE", QUIET, call=alice_call),
                                       bob.expect("BYE", QUIET, call=alice_call), return_exceptions=True)
        for who, result in zip(("transferor", "transferee"), results):
            if isinstance(result, Inbound):
                raise ExpectationFailed(f"the {who} received {result.summary()}: the original call was ended "
                                        f"although the transfer failed")
        if not alice_call.is_up:
            raise ExpectationFailed(f"call1 ({alice_call.call_id}) was ended")


async def hang_up(flow: Flow) -> None:
    """Leave the PBX clean: end every call still up (best effort, never fails the flow)."""
    for agent in flow.binding.agents.values():
        for call in list(agent.calls):
            if call.is_up and call.dialog.state.value == "confirmed":
                try:
                    cr = await agent.request("BYE", call=call)
                    call.ended.set()
                    await asyncio.wait_for(asyncio.shield(cr.final_future), 1.0)
                except (Exception, asyncio.TimeoutError):
                    pass
