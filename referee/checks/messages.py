"""General checks on saved messages and small actions that name things for later steps."""

from __future__ import annotations

import asyncio

from referee.agent import header_matchers
from referee.scenario.library import Param, action, check
from referee.sip import SipUri, escape_header_value, parse_uri


@check("message_header", """
    A saved message carries a header as required: `equals`, `contains` (case-insensitive),
    `regex`, `present` or `absent` — the same matchers as an expect step's `headers`, for a
    message an earlier step already took.
    """, message=Param("saved", "the saved message", required=True),
    header=Param("string", "the header name", required=True),
    equals=Param("string", "the value it must have"),
    contains=Param("string", "text the value must contain (any case)"),
    regex=Param("string", "a regular expression the value must match"),
    present=Param("boolean", "true: it must be there; false: it must not"))
async def message_header(ctx, message: str, header: str, equals=None, contains=None, regex=None,
                         present=None) -> None:
    msg = ctx.message(message)
    conditions = {op: v for op, v in (("equals", equals), ("contains", contains), ("regex", regex)) if v is not None}
    if present is not None:
        conditions["present" if present else "absent"] = True
    if not conditions:
        conditions["present"] = True
    for matcher in header_matchers({header: conditions}):
        problem = matcher.problem(msg)
        if problem is not None:
            part, expected, seen = problem
            raise ctx.violation(msg, part, expected, seen)
    ctx.note(msg)


@action("name_call", """
    Give a name to a call a party holds but no step named (e.g. the call a party answered by
    itself with `auto_answer`): its latest call that is up.
    """, party=Param("party", "whose call", required=True),
    save=Param("new_call", "the name later steps use", required=True))
async def name_call(ctx, party: str, save: str) -> None:
    agent = ctx.agent(party)
    live = [c for c in agent.calls if c.is_up]
    if not live:
        raise ctx.inconclusive(f"{party} has no call up to name {save!r}")
    call = live[-1]
    ctx.flow.calls[save] = call
    for item in agent.inbox:            # the INVITE that made it was answered: no later step waits for it
        if not item.consumed and item.call_id == call.call_id and item.message.is_request \
                and item.message.method == "INVITE":
            item.consumed = True
            agent._unconsumed.remove(item)
    ctx.detail = f"{save} = {call.call_id}"


@action("early_replaces", """
    The Replaces value naming the early dialog of an INVITE a party sent and that is ringing
    (a 18x with a To tag came back), as that party sees it, with `;early-only` (RFC 3891 §3):
    saved as a value with `.value` and `.escaped` (for a Refer-To URI).
    """, request=Param("saved", "the INVITE the party sent (saved by a send step)", required=True),
    save=Param("new_saved", "the name later steps use ({NAME.escaped})", required=True),
    early_only=Param("boolean", "add ;early-only", default=True),
    within=Param("number", "how long the 18x may take to come back, in seconds", default=4.0))
async def early_replaces(ctx, request: str, save: str, early_only: bool = True, within: float = 4.0) -> None:
    cr = ctx.saved(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within           # the 18x has to cross the PBX first
    ringing = None
    while ringing is None and loop.time() < deadline:
        ringing = next((r for r in cr.responses if 100 < r.status < 200 and r.to.tag), None)
        if ringing is None:
            await asyncio.sleep(0.02)
    if ringing is None:
        raise ctx.inconclusive(f"no 18x with a To tag came back to the INVITE {request!r} within {within:g} s: "
                               f"no early dialog")
    req = cr.request
    value = f"{req.call_id};to-tag={ringing.to.tag};from-tag={req.from_.tag}" + (";early-only" if early_only else "")
    ctx.flow.saved[save] = _Value(value=value, escaped=escape_header_value(value))
    ctx.detail = value


@action("unknown_extension", """
    An address at the PBX for an extension its profile does not list: the given party's
    extension with every digit after the first a 9 (1003 -> 1999), longer until it is no user's.
    Saved as a value with `.uri`.
    """, party=Param("party", "whose address it is built from", required=True),
    save=Param("new_saved", "the name later steps use ({NAME.uri})", required=True))
async def unknown_extension(ctx, party: str, save: str) -> None:
    uri = parse_uri(ctx.flow.binding.uri(party))
    users = ctx.flow.binding.dut.profile.users.values() if ctx.flow.binding.dut is not None else []
    known = {u.extension for u in users}
    ext = (uri.user if isinstance(uri, SipUri) else None) or "1"
    candidate = ext[:1] + "9" * max(len(ext) - 1, 3)
    while candidate in known:
        candidate += "9"
    value = str(uri.replace(user=candidate)) if isinstance(uri, SipUri) else f"sip:{candidate}@invalid"
    ctx.flow.saved[save] = _Value(uri=value)
    ctx.detail = value


@check("challenge_answered", """
    A request the DUT challenged (401/407) and the agent re-sent with credentials is accepted:
    its final response is a 2xx, not another challenge or a refusal. A request that was not
    challenged passes as it is (the DUT chose not to ask).

    RFC 3261 §22.2/§22.3: a request carrying valid credentials for the challenge is processed.
    """, request=Param("saved", "the request (as sent)", required=True))
async def challenge_answered(ctx, request: str) -> None:
    cr = ctx.saved(request)
    statuses = [r.status for r in cr.responses]
    challenged = any(s in (401, 407) for s in statuses)
    final = next((r for r in reversed(cr.responses) if r.status >= 200), None)
    if final is None:
        raise ctx.missing("", "a final response", f"got {statuses or 'nothing'}")
    ctx.note(final)
    if not challenged:
        ctx.detail = f"not challenged: answered {final.status}"
        return
    if not 200 <= final.status < 300:
        raise ctx.violation(final, "status", "2xx to the request re-sent with credentials",
                            f"{final.status} {final.reason} (responses: {', '.join(map(str, statuses))})")
    ctx.detail = "challenged, then accepted: " + ", ".join(map(str, statuses))


class _Value:
    """A saved value with named fields ({save.field} in later steps)."""

    def __init__(self, **fields: str) -> None:
        self.fields = dict(fields)

    def __str__(self) -> str:
        return next(iter(self.fields.values()), "")


