"""Security: requests a DUT must not act on blindly (a REFER from a stranger), and a REFER flood
it must survive with every REFER answered and every NOTIFY attributable to its REFER."""

from __future__ import annotations

import asyncio

from referee.agent import ExpectationFailed
from referee.agent.notifies import frag_status, sub_state
from referee.scenario.library import Param, action, check
from referee.scenario.verdict import HarnessError, Inconclusive
from referee.sip import Request, SipParseError


@check("profile_has_credentials", """
    The DUT profile gives its users passwords, so that a request without credentials means something.

    With register = true and passwords, a request without credentials can be told from one with
    them. Not a judgement of the DUT: without credentials in the profile the test purpose cannot be
    judged (INCONCLUSIVE).
    """)
async def profile_has_credentials(ctx) -> None:
    dut = ctx.flow.binding.dut
    profile = getattr(dut, "profile", None)
    if profile is None or not (profile.register and profile.secrets):
        name = getattr(profile, "name", getattr(dut, "name", "the DUT"))
        raise Inconclusive(f"{name!r} has no credentials (register = true and passwords): an unauthenticated "
                           f"request cannot be told from an authenticated one")


@check("refer_not_acted_on", """
    The party a REFER names receives no INVITE for a while: the DUT did not act on the REFER.

    It is watched for `within` seconds. RFC 3515 §2.4.2: a UA accepting a REFER SHOULD first get
    approval from its user or from configured policy. An INVITE that comes anyway is answered
    486 (so the DUT's call ends) and reported with the answers the REFER got.
    """, refer=Param("saved", "the REFER an agent sent (a send step's `save`)", required=True),
    at=Param("party", "the agent the Refer-To URI names", required=True),
    within=Param("number", "how long to watch, in seconds", default=3.0))
async def refer_not_acted_on(ctx, refer: str, at: str, within: float = 3.0) -> None:
    cr = ctx.saved(refer)
    agent = ctx.agent(at)
    try:
        got = await agent.expect("INVITE", within)
    except ExpectationFailed:
        answers = ", ".join(f"{r.status} {r.reason}" for r in cr.responses)
        ctx.detail = f"the REFER was {'answered ' + answers if answers else 'not answered'}"
        return
    await agent.respond(got, 486)
    answers = ", ".join(f"{r.status} {r.reason}" for r in cr.responses) or "no response"
    raise ctx.violation(got.message, "message", f"no INVITE to {at} within {within:g} s", got.summary(),
                        f"the DUT called {at} on a REFER it had no approval for ({got.summary()}; the REFER got "
                        f"{answers})")


@action("send_refers", """
    An agent sends `count` REFERs back to back in a call, without waiting for any answer.

    Each names the target party in Refer-To, with Referred-By; the list is saved for
    refers_answered and refer_notifies_attributed.
    """, **{"from": Param("party", "the agent that sends them", required=True)},
    call=Param("call", "the call they are sent in", required=True),
    to=Param("party", "the transfer target every Refer-To names", required=True),
    count=Param("integer", "how many REFERs (bounded: 1 to 100)", default=20),
    save=Param("new_list", "the name the list of REFERs is kept under", required=True))
async def send_refers(ctx, call: str, to: str, save: str, count: int = 20, **kw) -> None:
    if not 1 <= count <= 100:
        raise HarnessError(f"send_refers: count {count} is outside 1..100")
    agent = ctx.agent(kw["from"])
    c = ctx.call(call)
    target = ctx.flow.binding.uri(to)
    refers = []
    for _ in range(count):
        cr = await agent.refer(c, to=target)
        ctx.note(cr.request)
        refers.append(cr)
    ctx.flow.saved[save] = refers
    ctx.detail = f"CSeq {refers[0].request.cseq.seq}..{refers[-1].request.cseq.seq}"


def _outcomes(refers) -> tuple[set[int], dict[int, int]]:
    """(CSeqs of the REFERs answered 2xx, CSeq -> status of those refused), of the answered ones."""
    accepted, refused = set(), {}
    for cr in refers:
        if not cr.final_future.done() or cr.final_future.exception() is not None:
            continue
        status = cr.final_future.result().status
        if 200 <= status < 300:
            accepted.add(cr.request.cseq.seq)
        elif status >= 300:
            refused[cr.request.cseq.seq] = status
    return accepted, refused


@check("refers_answered", """
    Every REFER of a list gets a final response in time (refusing some is allowed).

    RFC 3261 §8.2 (UAS behaviour): every request gets a final response. When some did not, the
    report says whether the DUT process has exited.
    """, refers=Param("saved_list", "the REFERs (a send_refers step's `save`)", required=True),
    within=Param("number", "how long every answer may take, in seconds", default=10.0))
async def refers_answered(ctx, refers: str, within: float = 10.0) -> None:
    sent = ctx.saved(refers)
    results = await asyncio.gather(*(cr.final(within) for cr in sent), return_exceptions=True)
    missing = [cr.request.cseq.seq for cr, r in zip(sent, results) if isinstance(r, BaseException)]
    for r in results:
        if not isinstance(r, BaseException):
            ctx.note(r)
    if missing:
        dut = ctx.flow.binding.dut
        alive = getattr(dut, "alive", None)
        gone = " - the DUT process has exited" if alive is not None and not alive() else ""
        raise ctx.missing(sent[0].agent.name, f"a final response to each of {len(sent)} REFERs within {within:g} s",
                          f"none to CSeq {', '.join(map(str, missing))}{gone}",
                          f"{len(missing)} of {len(sent)} REFERs got no final response (CSeq "
                          f"{', '.join(map(str, missing))}){gone}")
    accepted, refused = _outcomes(sent)
    ctx.detail = f"{len(accepted)} accepted, {len(refused)} refused"


def _refer_event(msg: Request) -> tuple[bool, str | None]:
    """(a well-formed refer Event, its id)."""
    try:
        event = msg.event
    except SipParseError:
        return False, None
    if event is None or event.package != "refer":
        return False, None
    return True, event.id


def attribute(msg: Request, first: int, count: int, accepted: set[int], refused: dict[int, int],
              finished: set[int]) -> tuple[int | None, str | None]:
    """(the CSeq of the REFER a NOTIFY reports on, None) or (None, what is wrong with it).

    The first REFER of the dialog may be named without an id; every later one by id=<its CSeq>
    (RFC 3515 §2.4.6)."""
    ok, event_id = _refer_event(msg)
    if not ok:
        return None, "not a refer event"
    seq = first if event_id is None else int(event_id) if event_id.isdigit() else None
    if event_id is None and first not in accepted:
        return None, (f"no id, so it belongs to the first REFER (CSeq {first}), which was refused "
                      f"({refused.get(first)})")
    if seq is None or seq not in accepted and seq not in refused:
        return None, f"its id names none of the REFERs sent (CSeq {first}..{first + count - 1})"
    if seq in refused:
        return None, f"names REFER CSeq {seq}, which was refused with {refused[seq]}"
    if seq in finished and event_id is None:
        return None, (f"without an id it can only belong to the first REFER (CSeq {first}), whose subscription "
                      f"had already ended; the NOTIFYs of every later REFER carry id=<its CSeq>")
    if seq in finished:
        return None, f"REFER CSeq {seq}'s subscription had already ended"
    return seq, None


def _ends(msg: Request) -> bool:
    state = sub_state(msg)
    return (frag_status(msg) or 0) >= 200 or (state is not None and state.state == "terminated")


@check("refer_notifies_attributed", """
    Each accepted REFER's NOTIFYs carry its id and end with a final one.

    None names a refused REFER or continues a subscription that had ended. RFC 3515 §2.4.4
    (MUST: NOTIFYs up to a final one) and §2.4.6 (MUST: every NOTIFY of a REFER after the first
    in a dialog has Event id=<that REFER's CSeq>). NOTIFYs are read as they come in the call
    until every accepted REFER has its final one, for at most `within` seconds.
    """, refers=Param("saved_list", "the REFERs (a send_refers step's `save`), answered", required=True),
    at=Param("party", "the agent that sent them", required=True),
    call=Param("call", "the call they were sent in", required=True),
    within=Param("number", "how long all the NOTIFYs may take, in seconds", default=15.0))
async def refer_notifies_attributed(ctx, refers: str, at: str, call: str, within: float = 15.0) -> None:
    sent = ctx.saved(refers)
    agent, c = ctx.agent(at), ctx.call(call)
    accepted, refused = _outcomes(sent)
    first, count = sent[0].request.cseq.seq, len(sent)
    finished: set[int] = set()
    problems: list[tuple] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while finished != accepted and not problems:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            item = await agent.expect("NOTIFY", remaining, call=c)
        except ExpectationFailed:
            break
        msg = item.message
        ctx.note(msg)
        seq, wrong = attribute(msg, first, count, accepted, refused, finished)
        if wrong is not None:
            where = (f"NOTIFY CSeq {msg.cseq.seq} (Event {msg.header('Event')!r}, sipfrag {frag_status(msg)}, "
                     f"Subscription-State {msg.header('Subscription-State')!r})")
            problems.append((msg, "Event", "the id of an accepted REFER whose subscription is on",
                             f"{msg.header('Event')!r}: {wrong}", f"{where}: {wrong}"))
        elif _ends(msg):
            finished.add(seq)
    if problems:
        text = "; ".join(p[4] for p in problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise ctx.violations([p[:4] for p in problems], text)
    unfinished = sorted(accepted - finished)
    if unfinished:
        cseqs = ", ".join(map(str, unfinished))
        raise ctx.missing(at, f"a final NOTIFY within {within:g} s for each accepted REFER",
                          f"none for CSeq {cseqs}",
                          f"no final NOTIFY within {within:g} s for the accepted REFERs with CSeq {cseqs}")
    ctx.detail = f"{len(finished)} subscriptions reported to the end"
