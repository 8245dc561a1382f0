"""Checks on the NOTIFYs of a refer subscription (RFC 3515 §2.4.4-§2.4.7, RFC 6665 §4.2, RFC 4488).

    - collect: NOTIFY
      at: transferor
      save: notifies
    - check: notify_event_refer
      args: {notifies: notifies, which: each}

Each property check judges the NOTIFYs of a `collect` step's list (`notifies`) or one saved
NOTIFY (`notify`): every one of them, the first or the final one (`which`). A NOTIFY that breaks
the property becomes the evidence of the FAIL: its CSeq, the header value as sent, expected vs
seen. NOTIFYs are read leniently (referee.agent.notifies): a malformed Subscription-State is
what one check judges and must not stop the others from reading the rest.
"""

from __future__ import annotations

from referee.agent import ExpectationFailed, status_matches
from referee.agent.notifies import describe, frag_status, is_final, sub_state
from referee.scenario.library import Param, check
from referee.scenario.verdict import HarnessError
from referee.sip import Request, SipParseError
from referee.sip.sipfrag import Sipfrag

WHICH = ("each", "first", "final")
MAX_NOTIFIES = 8        # a transfer that needs more NOTIFYs than this is not converging

# the parameters every property check takes: what to judge
CHOSEN = dict(
    notifies=Param("saved_list", "the NOTIFYs to judge (a collect step's list); or give `notify`"),
    notify=Param("saved", "one saved NOTIFY to judge (an expect step's); or give `notifies`"),
    which=Param("string", "judge each NOTIFY, the first one, or the final one (the last of a list that "
                          "ends with a final NOTIFY)", default="each", choices=WHICH),
)


def chosen(ctx, notifies: str | None, notify: str | None, which: str) -> tuple[list[Request], int]:
    """The NOTIFYs a check judges (each, first or final) and how many there were in all."""
    if (notifies is None) == (notify is None):
        raise HarnessError(f"{ctx.name}: give exactly one of `notifies` (a list) and `notify` (one NOTIFY)")
    messages = ctx.messages(notifies if notifies is not None else notify)
    if which == "first":
        picked = messages[:1]
    elif which == "final":
        picked = [messages[-1]] if messages and is_final(messages[-1]) else []
    else:
        picked = list(messages)
    return picked, len(messages)


def judge(ctx, notifies, notify, which: str, what: str, problem) -> None:
    """`problem(msg)` gives None, or (part, expected, seen), or a list of them, for each chosen
    NOTIFY; every one found is evidence of one violation."""
    picked, total = chosen(ctx, notifies, notify, which)
    ctx.detail = f"{len(picked)} of the {total} NOTIFY{'s' if total != 1 else ''} checked ({which})"
    bad = []
    for msg in picked:
        ctx.note(msg)
        found = problem(msg) or []
        bad += [(msg, *item) for item in (found if isinstance(found, list) else [found])]
    if bad:
        offenders = len({id(m) for m, *_ in bad})
        lines = [f"{offenders} of {len(picked)} NOTIFYs break '{what}':"]
        lines += [f"  - {part}: expected {expected}, seen {seen}\n      in {describe(m)}"
                  for m, part, expected, seen in bad]
        raise ctx.violations(bad, "\n".join(lines))


def quoted(value: str | None) -> str:
    return "no such header" if value is None else repr(value)


# -- the Event header --------------------------------------------------------------------------------

def _event_of(msg, expected: str):
    """(the NOTIFY's Event view, None), or (None, the problem) when it has none or it is unparsable."""
    try:
        event = msg.event
    except SipParseError as exc:
        return None, ("Event", expected, f"{msg.header('Event')!r} (unparsable: {exc.reason})")
    if event is None:
        return None, ("Event", expected, "no Event header")
    return event, None


@check("notify_event_refer", """
    The NOTIFYs name the refer event package in their Event header.

    RFC 3515 §2.4.4: each NOTIFY of a subscription a REFER created carries `Event: refer`
    (with an `id` parameter where §2.4.6 asks for one; see notify_event_id).
    """, **CHOSEN)
async def notify_event_refer(ctx, notifies=None, notify=None, which="each") -> None:
    def problem(msg):
        event, unreadable = _event_of(msg, "'refer'")
        if unreadable:
            return unreadable
        if event.package != "refer":
            return "Event", "package 'refer'", f"{msg.header('Event')!r}"
        return None
    judge(ctx, notifies, notify, which, "Event: refer", problem)


@check("notify_event_id", """
    The NOTIFYs carry Event: refer;id=<CSeq number of the REFER>.

    RFC 3515 §2.4.6: the NOTIFYs of the subscription created by a second (or later) REFER in a
    dialog carry an `id` parameter equal to that REFER's CSeq number.
    """, **CHOSEN, refer=Param("saved", "the REFER (as sent) whose subscription the NOTIFYs belong to",
                               required=True))
async def notify_event_id(ctx, refer: str, notifies=None, notify=None, which="each") -> None:
    cseq = str(ctx.message(refer).cseq.seq)

    def problem(msg):
        event, unreadable = _event_of(msg, f"refer;id={cseq}")
        if unreadable:
            return unreadable
        if event.id != cseq:
            return "Event", f"id={cseq} (the REFER's CSeq)", f"{msg.header('Event')!r}"
        return None
    judge(ctx, notifies, notify, which, f"Event: refer;id={cseq}", problem)


# -- the body ------------------------------------------------------------------------------------------

@check("notify_sipfrag_body", """
    The NOTIFYs carry a non-empty body of type message/sipfrag.

    RFC 3515 §2.4.5: each NOTIFY of a refer subscription has a message/sipfrag body.
    """, **CHOSEN)
async def notify_sipfrag_body(ctx, notifies=None, notify=None, which="each") -> None:
    def problem(msg):
        try:
            ctype = msg.content_type
        except SipParseError as exc:
            return "Content-Type", "message/sipfrag", f"{msg.header('Content-Type')!r} (unparsable: {exc.reason})"
        if ctype is None:
            return "Content-Type", "message/sipfrag", "no Content-Type header"
        if ctype.mime != "message/sipfrag":
            return "Content-Type", "message/sipfrag", f"{msg.header('Content-Type')!r}"
        if not msg.body.strip():
            return "body", "a sipfrag", "an empty body"
        return None
    judge(ctx, notifies, notify, which, "a message/sipfrag body", problem)


@check("notify_status_line", """
    The NOTIFY bodies begin with a SIP status line (SIP/2.0 code reason).

    RFC 3515 §2.4.5: the sipfrag starts with a Status-Line, e.g. 'SIP/2.0 100 Trying'
    (a legacy '200 OK' without the version breaks it).
    """, **CHOSEN)
async def notify_status_line(ctx, notifies=None, notify=None, which="each") -> None:
    expected = "'SIP/2.0 <code> <reason>'"

    def problem(msg):
        first = msg.body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        try:
            frag = Sipfrag.parse(msg.body, strict=True)
        except SipParseError as exc:
            return "sipfrag", expected, f"{first!r} ({exc.reason})"
        if frag.status is None:
            return "sipfrag", expected, f"{frag.start_line!r} (not a status line)"
        if frag.version != "SIP/2.0":
            return "sipfrag", expected, f"{frag.start_line!r} (version {frag.version!r})"
        return None
    judge(ctx, notifies, notify, which, "a SIP/2.0 status line", problem)


@check("notify_status", """
    The NOTIFYs report the expected status in their sipfrag.

    The status line of a NOTIFY tells the state of the referenced request (RFC 3515 §2.4.5):
    e.g. the immediate NOTIFY reports a provisional status while the target has not answered,
    and the final one a failure (>= 300) when the request failed. Read leniently: a legacy
    '200 OK' counts as 200.
    """, **CHOSEN, status=Param("status", "the status the NOTIFYs must report: 100, 'provisional', '>=300' ...",
                                required=True))
async def notify_status(ctx, status, notifies=None, notify=None, which="each") -> None:
    def problem(msg):
        reported = frag_status(msg)
        if not status_matches(status, reported):
            first = msg.body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
            return "sipfrag", f"status {status}", f"{first!r}" if reported is None else f"{reported} ({first!r})"
        return None
    judge(ctx, notifies, notify, which, f"sipfrag status {status}", problem)


# -- Subscription-State --------------------------------------------------------------------------------

@check("notify_subscription_state", """
    The NOTIFYs carry a valid Subscription-State (active, pending or terminated).

    RFC 6665 §4.2.2: each NOTIFY tells the subscriber the state of the subscription.
    """, **CHOSEN)
async def notify_subscription_state(ctx, notifies=None, notify=None, which="each") -> None:
    expected = "active, pending or terminated"

    def problem(msg):
        value = msg.header("Subscription-State")
        if value is None:
            return "Subscription-State", expected, "no Subscription-State header"
        state = sub_state(msg)
        if state is None:
            return "Subscription-State", expected, f"{value!r} (unparsable)"
        if state.state not in ("active", "pending", "terminated"):
            return "Subscription-State", expected, f"{value!r}"
        return None
    judge(ctx, notifies, notify, which, "a valid Subscription-State", problem)


@check("notify_expires", """
    The NOTIFYs that say the subscription is active or pending carry an expires parameter.

    RFC 6665 §4.2.2: Subscription-State active/pending tells the time left with ;expires=.
    NOTIFYs with another (or no) state are not judged here.
    """, **CHOSEN)
async def notify_expires(ctx, notifies=None, notify=None, which="each") -> None:
    def problem(msg):
        state = sub_state(msg)
        if state is None or state.state not in ("active", "pending"):
            return None
        if state.expires is None:
            return "Subscription-State", f"{state.state};expires=<seconds>", f"{msg.header('Subscription-State')!r}"
        return None
    judge(ctx, notifies, notify, which, "Subscription-State active/pending carries ;expires=", problem)


@check("notify_terminated", """
    The NOTIFYs say Subscription-State: terminated (with the given reason, if any).

    RFC 3515 §2.4.7: the NOTIFY that reports the final outcome of the referenced request
    terminates the subscription, with reason=noresource (the referenced request is gone).
    Use with `which: final`.
    """, **CHOSEN, reason=Param("string", "the reason parameter it must carry (none: any or no reason)"))
async def notify_terminated(ctx, notifies=None, notify=None, which="each", reason=None) -> None:
    expected = "terminated" + (f";reason={reason}" if reason else "")

    def problem(msg):
        state = sub_state(msg)
        if state is None or state.state != "terminated":
            return "Subscription-State", expected, quoted(msg.header("Subscription-State"))
        if reason and (state.reason or "").lower() != reason.lower():
            return "Subscription-State", expected, quoted(msg.header("Subscription-State"))
        return None
    judge(ctx, notifies, notify, which, f"Subscription-State: {expected}", problem)


# -- the dialog ----------------------------------------------------------------------------------------

@check("notify_in_dialog", """
    The NOTIFYs carry the dialog identifiers of the call the REFER was sent in.

    RFC 3515 §2.4.4 / RFC 6665: the NOTIFYs of an in-dialog REFER's subscription are sent in
    that dialog: its Call-ID, the subscriber's (the agent's) tag in To, the notifier's (the
    DUT's) tag in From. Out of the dialog, a NOTIFY matches no subscription.
    """, **CHOSEN, call=Param("call", "the call (as the agent that sent the REFER holds it)", required=True))
async def notify_in_dialog(ctx, call: str, notifies=None, notify=None, which="each") -> None:
    c = ctx.call(call)
    call_id, ours, theirs = c.call_id, c.dialog.local_tag, c.dialog.remote_tag

    def problem(msg):
        wrong = []
        if msg.call_id != call_id:
            wrong.append(("Call-ID", repr(call_id), repr(msg.call_id)))
        if msg.to.tag != ours:
            wrong.append(("To", f"tag {ours!r} (the subscriber's)", repr(msg.header("To"))))
        if msg.from_.tag != theirs:
            wrong.append(("From", f"tag {theirs!r} (the DUT's tag of {call})", repr(msg.header("From"))))
        return wrong
    judge(ctx, notifies, notify, which, f"the dialog of {call}", problem)


# -- subscriptions that do not exist, or end in a failure report ----------------------------------------

@check("no_notify_without_subscription", """
    No NOTIFY comes when the 2xx to the REFER said Refer-Sub: false.

    RFC 4488 §4: a REFER-Recipient that answers Refer-Sub: false creates no implicit
    subscription and sends no NOTIFY for the REFER. A 2xx without Refer-Sub: false keeps the
    subscription (NOTIFYs are then allowed; whether it should have said false is judged on
    the 2xx itself).
    """, answer=Param("saved", "the 2xx the REFER was answered with", required=True),
    at=Param("party", "the agent that sent the REFER", required=True),
    within=Param("number", "how long no NOTIFY may come, in seconds", default=2.0))
async def no_notify_without_subscription(ctx, answer: str, at: str, within: float = 2.0) -> None:
    response = ctx.message(answer)
    value = response.header("Refer-Sub")
    if (value or "").split(";")[0].strip().lower() != "false":
        ctx.detail = f"the 2xx kept the subscription (Refer-Sub {value!r}): NOTIFYs are allowed"
        return
    ctx.note(response)
    await ctx.agent(at).expect_none("NOTIFY", within)
    ctx.detail = f"no NOTIFY within {within:g} s"


@check("refer_refused_or_failure_reported", """
    The REFER was refused, or the final NOTIFY of its subscription reports a failure (>= 300).

    RFC 3515 §2.4.5: the status line of a NOTIFY tells the outcome of the referenced request.
    A REFER the DUT cannot act on (e.g. an unusable Refer-To scheme) is refused (a 4xx-6xx
    answer, §2.4.2) or accepted and then reported as failed; never reported as a success.
    When accepted, every NOTIFY up to the final one is gathered (each within `timeout`).
    """, answer=Param("saved", "the final response the REFER was answered with", required=True),
    at=Param("party", "the agent that sent the REFER", required=True),
    timeout=Param("number", "each NOTIFY must come within this many seconds of the previous one", default=5.0))
async def refer_refused_or_failure_reported(ctx, answer: str, at: str, timeout: float = 5.0) -> None:
    response = ctx.message(answer)
    if response.status >= 300:
        ctx.detail = f"the REFER was refused ({response.status} {response.reason}): nothing was reported as done"
        return
    notifies = await gather(ctx, at, timeout)
    final = notifies[-1]
    ctx.note(final)
    status = frag_status(final)
    ctx.detail = f"{len(notifies)} NOTIFYs; the final one reports {status}"
    if status is None or status < 300:
        first = final.body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        raise ctx.violation(final, "sipfrag", "a failure status (>= 300)", repr(first),
                            f"the REFER was accepted ({response.status}) and its final NOTIFY reports {status}, "
                            f"not a failure: {describe(final)}")


async def gather(ctx, at: str, timeout: float) -> list[Request]:
    """Every NOTIFY the agent receives, each within `timeout` of the previous one, up to the final one."""
    agent = ctx.agent(at)
    seen: list[Request] = []
    for _ in range(MAX_NOTIFIES):
        try:
            item = await agent.expect("NOTIFY", timeout)
        except ExpectationFailed as exc:
            so_far = "\n".join(f"    {describe(m)}" for m in seen) or "    none"
            raise ExpectationFailed(f"{exc}\n  NOTIFYs before it (none final):\n{so_far}", exc.evidence) from None
        ctx.note(item.message)
        seen.append(item.message)
        if is_final(item.message):
            return seen
    last = seen[-1]
    raise ctx.violation(last, "message", f"a final NOTIFY within {MAX_NOTIFIES}", describe(last),
                        f"{MAX_NOTIFIES} NOTIFYs and none final (final status or Subscription-State terminated)")
