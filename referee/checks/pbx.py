"""Checks and actions of the PBX suite: a transfer through a PBX judged end to end, for every user.

A PBX either passes the REFER on to the transferee (a proxy, or a B2BUA that re-originates it on
the transferee's leg: the transferee agent then carries it out, `auto_transferee`) or carries
out the transfer itself (a B2BUA: it INVITEs the target and NOTIFYs the transferor on its own).
These steps judge only what the users observe, so both kinds are judged the same way: what the
transferor is told, who ends up talking to whom (RTP that reaches each user, through the PBX's
media relay or directly), whose calls ended and by whose BYE.
"""

from __future__ import annotations

import asyncio
import time

from referee.agent import status_matches
from referee.agent.notifies import describe, frag_status, is_final, sub_state
from referee.scenario.library import Param, action, check
from referee.sip import Replaces, SipParseError

MEDIA_WAIT = 1.5       # seconds a burst of RTP gets to arrive (relay included)


# -- what the transferor is told ------------------------------------------------------------------

@check("transfer_report", """
    The refer NOTIFYs tell the transferor the outcome: the final one reports `final`, and none
    reports success (2xx) when the transfer failed.

    RFC 3515 §2.4.5: the response class in the sipfrag status line indicates the status of the
    referred action. With `first_provisional`, a NOTIFY with a 1xx status comes before the final
    one (RFC 6665 §4.2.1.2: a NOTIFY is sent at once when the subscription is accepted).
    """, notifies=Param("saved_list", "the NOTIFYs a collect step gathered", required=True),
    final=Param("status", "what the final NOTIFY must report, e.g. '2xx', '>=300', '6xx'", required=True),
    first_provisional=Param("boolean", "a 1xx NOTIFY must come before the final one", default=False))
async def transfer_report(ctx, notifies: str, final: str, first_provisional: bool = False) -> None:
    msgs = ctx.messages(notifies)
    if not msgs:
        raise ctx.missing("transferor", "refer NOTIFYs", "none came")
    success_wanted = status_matches(final, 200)
    for msg in msgs:
        status = frag_status(msg)
        if status is not None and 200 <= status < 300 and not success_wanted:
            raise ctx.violation(msg, "sipfrag", f"no success reported (the outcome is {final})",
                                f"status {status}",
                                f"the transferor was told the transfer succeeded ({describe(msg)}), "
                                f"but its outcome is {final}")
    last = msgs[-1]
    status = frag_status(last)
    if status is None or not status_matches(final, status):
        raise ctx.violation(last, "sipfrag", f"final status {final}", f"status {status}",
                            f"the final NOTIFY reports {status}, expected {final}: {describe(last)}")
    if first_provisional and not any((frag_status(m) or 999) < 200 for m in msgs[:-1]):
        raise ctx.violation(msgs[0], "sipfrag", "a 1xx NOTIFY before the final one",
                            "; ".join(describe(m) for m in msgs),
                            "no NOTIFY with a 1xx status came before the final one")
    ctx.detail = "; ".join(describe(m) for m in msgs)


@check("report_follows_target", """
    The refer NOTIFYs report only what the target has answered: none says success before the
    target sent its 2xx, and none reports a status the target had not sent (or a later one).

    RFC 3515 §2.4.5: the status line reflects the status of the referred action, so a NOTIFY
    cannot run ahead of the target. Compares each NOTIFY's arrival with the responses the target
    agent sent to its INVITE of the transfer.
    """, notifies=Param("saved_list", "the NOTIFYs the transferor collected", required=True),
    invite=Param("saved", "the INVITE of the transfer as the target received it", required=True),
    target=Param("party", "the target", required=True))
async def report_follows_target(ctx, notifies: str, invite: str, target: str) -> None:
    request = ctx.message(invite)
    sent = [(e.time, e.message.status) for e in ctx.agent(target).log
            if e.direction == "sent" and e.message is not None and not e.message.is_request
            and e.message.call_id == request.call_id and e.message.cseq.method == "INVITE"
            and e.message.cseq.seq == request.cseq.seq]
    received = {id(i.message): i.time for i in ctx.saved(notifies)}
    for msg in ctx.messages(notifies):
        status = frag_status(msg)
        if status is None or status == 100:
            continue                     # 100 Trying: the PBX's own INVITE is under way
        at = received.get(id(msg), time.time())
        answered = [s for t, s in sent if t <= at]
        if status not in answered and not (status >= 300 and not any(s >= 200 for s in answered)):
            so_far = ", ".join(map(str, answered)) or "nothing yet"
            raise ctx.violation(msg, "sipfrag", f"a status the target had sent (so far: {so_far})",
                                f"status {status}",
                                f"the NOTIFY reports {status} while the target had sent {so_far}: "
                                f"{describe(msg)}")


@check("refer_sub_honoured", """
    Refer-Sub: false is either honoured or declined, never both: a 2xx to the REFER that says
    `Refer-Sub: false` is followed by no NOTIFY; a 2xx without it means the implicit subscription
    exists and NOTIFYs follow.

    RFC 4488 §4: a REFER-Recipient that accepts `Refer-Sub: false` MUST put it in the 2xx, and
    then no subscription (and no NOTIFY) exists.
    """, refer=Param("saved", "the REFER sent with Refer-Sub: false", required=True),
    at=Param("party", "the transferor", required=True),
    call=Param("call", "the call the REFER went in", required=True),
    quiet=Param("number", "how long no NOTIFY is watched for, in seconds (a NOTIFY follows a 2xx "
                          "at once, RFC 6665 §4.2.1.2)", default=2.0))
async def refer_sub_honoured(ctx, refer: str, at: str, call: str, quiet: float = 2.0) -> None:
    cr = ctx.saved(refer)
    final = next((r for r in cr.responses if 200 <= r.status < 300), None)
    if final is None:
        raise ctx.inconclusive("the REFER was not accepted with a 2xx; nothing to judge")
    ctx.note(final)
    agent, dialog = ctx.agent(at), ctx.call(call)
    declined = (final.header("Refer-Sub") or "").strip().lower().startswith("false")
    if declined:
        try:
            notify = await agent.expect("NOTIFY", quiet, dialog)
        except AssertionError:
            ctx.detail = "2xx with Refer-Sub: false, and no NOTIFY followed"
            return
        raise ctx.violation(notify.message, "message", "no NOTIFY after a 2xx with Refer-Sub: false",
                            describe(notify.message),
                            f"the 2xx said Refer-Sub: false, yet a NOTIFY came: {describe(notify.message)}")
    try:
        notify = await agent.expect("NOTIFY", max(quiet, 4.0), dialog)
    except AssertionError:
        raise ctx.missing(at, "a NOTIFY (the 2xx had no Refer-Sub: false, so the subscription exists)",
                          "none came") from None
    ctx.note(notify.message)
    ctx.detail = "2xx without Refer-Sub: false; the subscription's NOTIFYs follow"


@check("event_ids", """
    Each NOTIFY of a REFER after the first in a dialog names its REFER: Event: refer;id=<the
    REFER's CSeq number>.

    RFC 3515 §2.4.6 (MUST): the id parameter tells apart the subscriptions of several REFERs in
    one dialog.
    """, notifies=Param("saved_list", "the NOTIFYs of the later REFER", required=True),
    refer=Param("saved", "the later REFER (as sent)", required=True))
async def event_ids(ctx, notifies: str, refer: str) -> None:
    seq = str(ctx.message(refer).cseq.seq)
    for msg in ctx.messages(notifies):
        try:
            event = msg.event
        except SipParseError as exc:
            raise ctx.violation(msg, "Event", f"refer;id={seq}", f"unparsable: {exc.reason}") from None
        if event is None or event.package != "refer" or event.id != seq:
            raise ctx.violation(msg, "Event", f"refer;id={seq}", repr(msg.header("Event")),
                                f"a NOTIFY of the REFER with CSeq {seq} says Event {msg.header('Event')!r}")


@check("notify_form", """
    Every refer NOTIFY is well formed: Event: refer, a message/sipfrag body that starts with a SIP
    status line, and a Subscription-State (active/pending with expires, or terminated).

    RFC 3515 §2.4.4 (Event refer), §2.4.5 (message/sipfrag beginning with a Status-Line),
    RFC 6665 §4.1.3/§8.2.3 (Subscription-State).
    """, notifies=Param("saved_list", "the NOTIFYs", required=True))
async def notify_form(ctx, notifies: str) -> None:
    for msg in ctx.messages(notifies):
        try:
            event = msg.event
            ctype = msg.content_type
        except SipParseError as exc:
            raise ctx.violation(msg, "header", "parsable Event and Content-Type", exc.reason) from None
        if event is None or event.package != "refer":
            raise ctx.violation(msg, "Event", "refer", repr(msg.header("Event")))
        if ctype is None or ctype.mime != "message/sipfrag":
            raise ctx.violation(msg, "Content-Type", "message/sipfrag", repr(msg.header("Content-Type")))
        if frag_status(msg) is None:
            first = msg.body.split(b"\n", 1)[0].decode("utf-8", "replace")
            raise ctx.violation(msg, "sipfrag", "a status line 'SIP/2.0 <code> <reason>'", repr(first))
        state = sub_state(msg)
        if state is None:
            raise ctx.violation(msg, "Subscription-State", "active;expires=N or terminated",
                                repr(msg.header("Subscription-State")))
        if state.state in ("active", "pending") and state.expires is None:
            raise ctx.violation(msg, "Subscription-State", f"{state.state};expires=N",
                                repr(msg.header("Subscription-State")))


@check("report_terminates", """
    The final refer NOTIFY ends the subscription: Subscription-State: terminated (with a reason).

    RFC 3515 §2.4.7 / RFC 6665 §4.2.2: the notifier terminates the implicit subscription with the
    NOTIFY that reports the final status.
    """, notifies=Param("saved_list", "the NOTIFYs", required=True))
async def report_terminates(ctx, notifies: str) -> None:
    msgs = ctx.messages(notifies)
    final = next((m for m in msgs if (frag_status(m) or 0) >= 200), msgs[-1] if msgs else None)
    if final is None:
        raise ctx.missing("transferor", "a final NOTIFY", "none came")
    state = sub_state(final)
    if state is None or state.state != "terminated":
        raise ctx.violation(final, "Subscription-State", "terminated;reason=noresource",
                            repr(final.header("Subscription-State")))


# -- who talks to whom --------------------------------------------------------------------------

def _pairs(values) -> list[tuple[str, str]]:
    out = []
    for value in values or []:
        a, sep, b = str(value).partition("-")
        if not sep:
            raise ValueError(f"a pair is written 'party-party', got {value!r}")
        out.append((a.strip(), b.strip()))
    return out


@check("talking", """
    The users who should be talking hear each other, and nobody is heard by those who left.

    Every party named sends a short burst of RTP in each of its calls still up, to the address
    the far end's latest SDP gave; the payload names the sender, so a packet that went through
    the PBX's media relay still tells who sent it. Each pair 'a-b' must hear each other (both
    directions) within 1.5 s; each `silent` party must hear nobody (the one who was transferred
    away keeps no media).
    """, pairs=Param("strings", "who must hear each other, as 'party-party'", required=True),
    silent=Param("strings", "parties that must hear nobody", default=[]))
async def talking(ctx, pairs, silent=()) -> None:
    pairs = _pairs([pairs] if isinstance(pairs, str) else pairs)
    silent = [silent] if isinstance(silent, str) else list(silent or [])
    parties = sorted({p for pair in pairs for p in pair} | set(silent))
    start = time.time()
    sent: dict[str, list[str]] = {}
    for party in parties:
        agent = ctx.agent(party)
        for call in [c for c in agent.calls if c.is_up and c.dialog.state.value == "confirmed"]:
            if agent.send_rtp(call, 10):
                sent.setdefault(party, []).append(f"call {call.call_id[:12]} -> {call.rtp_sent_to[0]}:"
                                                  f"{call.rtp_sent_to[1]}")
    deadline = start + MEDIA_WAIT
    while time.time() < deadline:
        if all(_heard(ctx, a, b, start) and _heard(ctx, b, a, start) for a, b in pairs):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)            # stray packets toward the silent ones get their chance
    for a, b in pairs:
        for listener, speaker in ((a, b), (b, a)):
            if not _heard(ctx, listener, speaker, start):
                untagged = [p for p in ctx.agent(listener).media.since(start) if not p.sender]
                how = "; ".join(sent.get(speaker, [])) or "it had no call up with usable SDP"
                if untagged:
                    raise ctx.inconclusive(f"{listener} received RTP without referee's tag ({len(untagged)} "
                                           f"packets): the PBX seems to transcode media; who talks to whom "
                                           f"cannot be told")
                raise ctx.missing(listener, f"RTP from {speaker} within {MEDIA_WAIT:g} s",
                                  f"none came ({speaker} sent 10 packets: {how})",
                                  f"{listener} does not hear {speaker}: no RTP from {speaker} reached "
                                  f"{listener} within {MEDIA_WAIT:g} s ({speaker} sent: {how})")
    for party in silent:
        heard = [p for p in ctx.agent(party).media.since(start) if p.sender and p.sender != party]
        if heard:
            first = heard[0]
            raise ctx.missing(party, "no RTP (this user left the call)",
                              f"{len(heard)} packets from {first.sender} via {first.source[0]}:{first.source[1]}",
                              f"{party}, who was transferred away, still hears {first.sender}: {len(heard)} RTP "
                              f"packets arrived from {first.source[0]}:{first.source[1]}")
    ctx.detail = "; ".join(f"{a} <-> {b}" for a, b in pairs) + (f"; silent: {', '.join(silent)}" if silent else "")


def _heard(ctx, listener: str, speaker: str, since: float) -> bool:
    return any(p.sender == speaker for p in ctx.agent(listener).media.since(since))


@check("calls_state", """
    Which users still have a call up, and which have none: each party in `up` has at least one
    call up, each party in `ended` has none (every call of theirs got or sent a BYE).

    The step's detail lists every call of every party named: Call-ID, up or ended, and the BYE
    that ended it (from whom, when).
    """, up=Param("strings", "parties that must have a call up", default=[]),
    ended=Param("strings", "parties whose calls must all have ended", default=[]),
    within=Param("number", "how long the calls of `ended` get to end, in seconds", default=4.0))
async def calls_state(ctx, up=(), ended=(), within: float = 4.0) -> None:
    up = [up] if isinstance(up, str) else list(up or [])
    ended = [ended] if isinstance(ended, str) else list(ended or [])
    deadline = time.time() + within
    while time.time() < deadline and any(_live(ctx, p) for p in ended):
        await asyncio.sleep(0.05)
    ctx.detail = "\n".join(_calls_line(ctx, p) for p in sorted(set(up) | set(ended)))
    for party in up:
        if not _live(ctx, party):
            bye = _last_bye(ctx, party)
            if bye is not None:
                raise ctx.violation(bye.message, "message", f"{party} stays in a call", bye.message.summary(),
                                    f"{party} has no call up: {bye.message.summary()} from "
                                    f"{bye.remote[0]}:{bye.remote[1]} ended it")
            raise ctx.missing(party, "a call up", "none", f"{party} has no call up")
    for party in ended:
        live = _live(ctx, party)
        if live:
            raise ctx.missing(party, f"a BYE ending its call within {within:g} s",
                              f"still up: {', '.join(c.call_id for c in live)}",
                              f"{party} still has a call up after {within:g} s: "
                              f"{', '.join(c.call_id for c in live)}")


def _live(ctx, party: str) -> list:
    return [c for c in ctx.agent(party).calls if c.is_up and c.dialog.state.value == "confirmed"]


def _last_bye(ctx, party: str):
    byes = [e for e in ctx.agent(party).log if e.direction == "received" and e.message is not None
            and e.message.is_request and e.message.method == "BYE"]
    return byes[-1] if byes else None


def _calls_line(ctx, party: str) -> str:
    agent = ctx.agent(party)
    parts = []
    for call in agent.calls:
        state = "up" if call.is_up else "ended"
        bye = next((e for e in agent.log if e.message is not None and e.message.is_request
                    and e.message.method == "BYE" and e.message.call_id == call.call_id), None)
        how = ""
        if bye is not None:
            who = f"from {bye.remote[0]}:{bye.remote[1]}" if bye.direction == "received" else "sent by it"
            how = f" (BYE {who} at {time.strftime('%H:%M:%S', time.localtime(bye.time))})"
        parts.append(f"{call.call_id[:16]} {state}{how}")
    return f"{party}: " + ("; ".join(parts) or "no calls")


# -- attended transfers ------------------------------------------------------------------------

@check("replaced_at_target", """
    The target's consultation call is replaced: either a new INVITE reaches her carrying one
    Replaces that names her own dialog (RFC 3891 §3 match: Call-ID, to-tag = her tag, from-tag =
    the far tag) — she accepts it and ends the consultation call with BYE — or, for a PBX that
    joins the calls inside itself, no INVITE comes and her consultation call goes on.

    A Replaces naming a dialog the target does not have (e.g. the transferor's leg of the call,
    passed through a B2BUA unmapped) is a violation: the target could only answer 481.
    """, target=Param("party", "the transfer target", required=True),
    consult=Param("call", "the target's side of the consultation call", required=True),
    save=Param("new_call", "name for the call that replaces it (when a new INVITE came)", default="call3"),
    within=Param("number", "how long a new INVITE may take, in seconds", default=4.0))
async def replaced_at_target(ctx, target: str, consult: str, save: str = "call3", within: float = 4.0) -> None:
    agent = ctx.agent(target)
    dialog = ctx.call(consult)
    try:
        item = await agent.expect("INVITE", within, where=lambda m: not m.to.tag and m.call_id != dialog.call_id)
    except AssertionError:
        if not dialog.is_up:
            raise ctx.missing(target, "a new INVITE with Replaces, or the consultation call going on",
                              "no INVITE came and the consultation call was ended") from None
        ctx.detail = "no new INVITE: the PBX joined the calls inside itself; the consultation call goes on"
        ctx.flow.calls[save] = dialog
        return
    ctx.note(item.message)
    values = item.message.values("Replaces")
    if len(values) != 1:
        raise ctx.violation(item.message, "Replaces", "one Replaces naming the target's consultation dialog",
                            f"{len(values)} Replaces header fields {values or ''}")
    try:
        replaces = Replaces.parse(values[0])
    except SipParseError as exc:
        raise ctx.violation(item.message, "Replaces", "a Replaces value", f"{values[0]!r}: {exc.reason}") from None
    d = dialog.dialog
    want = (d.call_id, d.local_tag, d.remote_tag)
    if (replaces.call_id, replaces.to_tag, replaces.from_tag) != want:
        raise ctx.violation(item.message, "Replaces",
                            f"call-id {want[0]}, to-tag {want[1]}, from-tag {want[2]} (the target's dialog)",
                            repr(values[0]),
                            f"the INVITE reached the target with Replaces {values[0]!r}, which names no dialog "
                            f"of hers (her consultation call is Call-ID {want[0]}, local tag {want[1]}, "
                            f"remote tag {want[2]})")
    ctx.flow.calls[save] = await agent.answer(item)
    await agent.bye(dialog, timeout=within)
    ctx.detail = f"INVITE with Replaces {values[0]!r} accepted; consultation call ended with BYE"


# -- actions ---------------------------------------------------------------------------------------

@action("end_call_if_up", """
    A party ends a call with BYE if the far end has not ended it.

    E.g. the transferor after a successful transfer through a PBX that did not end its leg
    itself (RFC 5589 §6.1).
    """, party=Param("party", "who hangs up", required=True),
    call=Param("call", "the call", required=True),
    after=Param("number", "wait this long first, in seconds (a PBX that ends the call itself does it "
                          "right after the final NOTIFY)", default=1.0))
async def end_call_if_up(ctx, party: str, call: str, after: float = 1.0) -> None:
    c = ctx.call(call)
    try:
        await asyncio.wait_for(c.ended.wait(), after)
        ctx.detail = "the call was already ended by the far end"
        return
    except asyncio.TimeoutError:
        pass
    if c.is_up:
        await ctx.agent(party).bye(c, timeout=4.0)
        ctx.detail = "BYE sent"


@action("hold", """
    A party puts a call on hold: a re-INVITE offering `direction` (sendonly by default, RFC 3264
    §8.4); the answer's direction is kept on the step's detail.
    """, party=Param("party", "who puts the call on hold", required=True),
    call=Param("call", "the call", required=True),
    direction=Param("string", "the direction offered", default="sendonly",
                    choices=("sendonly", "inactive", "sendrecv")))
async def hold(ctx, party: str, call: str, direction: str = "sendonly") -> None:
    agent = ctx.agent(party)
    c = ctx.call(call)
    cr = await agent.request("INVITE", call=c, body=agent.sdp_offer(direction), content_type="application/sdp")
    ctx.note(cr.request)
    response = await cr.final(4.0)
    ctx.note(response)
    if not 200 <= response.status < 300:
        raise ctx.violation(response, "status", "2xx to the hold re-INVITE", f"{response.status} {response.reason}")
    ctx.flow.saved[f"{call}_hold_answer"] = response
    from referee.sip.sdp import Sdp
    ctx.detail = f"answered {Sdp.parse(response.body).direction if response.body else 'without SDP'}"


@check("hold_answered", """
    A hold offer is answered as one: a re-INVITE offering sendonly gets an SDP answer that is
    recvonly (or inactive); offering inactive gets inactive.

    RFC 3264 §6.1 (MUST): a stream offered sendonly is answered recvonly or inactive.
    """, party=Param("party", "who held the call", required=True),
    call=Param("call", "the held call", required=True))
async def hold_answered(ctx, party: str, call: str) -> None:
    from referee.sip.sdp import Sdp
    response = ctx.saved(f"{call}_hold_answer")
    ctx.note(response)
    try:
        direction = Sdp.parse(response.body).direction if response.body else None
    except (SipParseError, ValueError) as exc:
        raise ctx.violation(response, "SDP", "an SDP answer", f"unparsable: {exc}") from None
    if direction not in ("recvonly", "inactive"):
        raise ctx.violation(response, "SDP a=direction", "recvonly or inactive (the answer to sendonly)",
                            str(direction))


@action("hang_up_all", """
    Clean up: every agent ends every call it still has up with BYE (best effort, never fails).
    """)
async def hang_up_all(ctx) -> None:
    ended = 0
    for agent in ctx.flow.binding.agents.values():
        for call in list(agent.calls):
            if call.is_up and call.dialog.state.value == "confirmed":
                try:
                    cr = await agent.request("BYE", call=call)
                    call.ended.set()
                    ended += 1
                    await asyncio.wait_for(asyncio.shield(cr.final_future), 1.0)
                except (Exception, asyncio.TimeoutError):     # noqa: BLE001 - clean-up is best effort
                    pass
    ctx.detail = f"{ended} calls ended"


@check("out_of_dialog_transfer", """
    An out-of-dialog REFER naming a call with Target-Dialog is either carried out on exactly that
    call or refused, never applied to another one.

    Accepted (2xx): the target is called within 4 s and the sender's other call (`untouched`)
    gets no BYE and stays up. Refused (>= 300, e.g. 420 Bad Extension without tdialog support,
    403, 481): nobody is called and the sender's calls stay up (RFC 4538 §4-§5; RFC 3261 §8.2.2.3
    for the 420 of an unsupported Require).
    """, refer=Param("saved", "the REFER as sent", required=True),
    target=Param("party", "the Refer-To party", required=True),
    untouched=Param("call", "another call of the sender that must not be affected", required=True))
async def out_of_dialog_transfer(ctx, refer: str, target: str, untouched: str) -> None:
    cr = ctx.saved(refer)
    final = await cr.final(8.0)
    ctx.note(final)
    other = ctx.call(untouched)
    agent = ctx.agent(target)
    if 200 <= final.status < 300:
        try:
            invite = await agent.expect("INVITE", 4.0, where=lambda m: not m.to.tag)
        except AssertionError:
            raise ctx.missing(target, "an INVITE for the accepted out-of-dialog REFER within 4 s",
                              "none came") from None
        ctx.note(invite.message)
        ctx.detail = f"accepted ({final.status}); the target was called"
    else:
        try:
            invite = await agent.expect("INVITE", 2.0, where=lambda m: not m.to.tag)
        except AssertionError:
            ctx.detail = f"refused ({final.status} {final.reason}); nobody was called"
        else:
            raise ctx.violation(invite.message, "message", "no call to the target (the REFER was refused)",
                                invite.message.summary(),
                                f"the REFER was refused with {final.status}, yet the target was called")
    await asyncio.sleep(0.5)
    if not other.is_up:
        raise ctx.missing("", f"call {untouched} untouched", "it was ended",
                          f"the sender's other call {untouched} ({other.call_id}) was ended: the REFER was "
                          f"applied to the wrong call")
