"""Checks on the calls (dialogs) the agents hold: still up, ended, by whom."""

from __future__ import annotations

import asyncio

from referee.scenario.library import Param, check


@check("call_up", """
    The call is still up: no BYE was received or sent in it.

    Use after a step that must not end a call (a failed transfer keeps the original call).
    """, call=Param("call", "the call (a name given by a call step or an answered INVITE)", required=True))
async def call_up(ctx, call: str) -> None:
    c = ctx.call(call)
    if not c.is_up:
        bye = _bye_in(ctx, c)
        if bye is not None:
            raise ctx.violation(bye, "message", f"call {call} stays up", bye.summary(),
                                f"call {call} ({c.call_id}) was ended: {bye.summary()}")
        raise ctx.missing("", f"call {call} up", "it was ended", f"call {call} ({c.call_id}) was ended")


@check("call_ended", """
    The call has ended (a BYE was received or sent in it) within `within` seconds.
    """, call=Param("call", "the call", required=True),
    within=Param("number", "how long to wait for the end of the call, in seconds", default=1.0))
async def call_ended(ctx, call: str, within: float = 1.0) -> None:
    c = ctx.call(call)
    try:
        await asyncio.wait_for(c.ended.wait(), within)
    except asyncio.TimeoutError:
        raise ctx.missing(c.agent.name, f"a BYE ending call {call} within {within:g} s", "the call is still up",
                          f"call {call} ({c.call_id}) is still up after {within:g} s") from None


def _bye_in(ctx, c):
    """The BYE received in call `c`, if any (what ended it, for the evidence)."""
    for entry in c.agent.log:
        msg = entry.message
        if (entry.direction == "received" and msg is not None and msg.is_request and msg.method == "BYE"
                and msg.call_id == c.call_id):
            return msg
    return None
