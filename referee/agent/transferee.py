"""A conformant transferee, as an agent's automatic behaviour (`auto_transferee = True`).

When a REFER reaches the agent in one of its calls, it does what RFC 3515 and RFC 5589 describe
for the transferee, so that flows through a PBX that passes REFER on (instead of carrying out the
transfer itself) need not script it:

    202 Accepted (400 if the REFER has not exactly one Refer-To, RFC 3515 §2.4.1)
    NOTIFY SIP/2.0 100 Trying (the subscription's immediate NOTIFY, RFC 6665 §4.2.1.2)
    INVITE to the Refer-To URI, through the agent's outbound proxy, with the REFER's
      Referred-By (RFC 3892 §3) and the URI's embedded Replaces (RFC 3891 §5)
    NOTIFY with the final status of that INVITE, Subscription-State terminated
    the original call is left to the transferor to end (RFC 5589 §6.1)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from referee.sip import NameAddr, SipParseError, SipUri

from .matchers import ExpectationFailed

if TYPE_CHECKING:
    from .agent import Agent
    from .objects import Incoming

INVITE_TIMEOUT = 32.0       # RFC 3261 Timer B: the longest an INVITE may stay unanswered


async def carry_out(agent: "Agent", incoming: "Incoming") -> None:
    """Act on a REFER received in a call (never raises: problems become findings)."""
    refer = incoming.request
    values = refer.header_all("Refer-To")
    if len(values) != 1:
        await agent.respond(incoming, 400, "Exactly one Refer-To")
        return
    try:
        target = NameAddr.parse(values[0]).uri
    except SipParseError as exc:
        await agent.respond(incoming, 400, "Bad Refer-To")
        agent.findings.append(f"REFER with an unparsable Refer-To {values[0]!r}: {exc}")
        return
    if not isinstance(target, SipUri):
        await agent.respond(incoming, 603, "Unsupported URI scheme")
        return
    await agent.accept_refer(incoming, 202)
    call, notifier = agent.refer_subscription(incoming)
    await agent.notify_transfer(call, 100, final=False, notifier=notifier)
    headers: dict[str, str] = {}
    referred_by = refer.header("Referred-By")
    if referred_by:
        headers["Referred-By"] = referred_by
    replaces = target.header("Replaces")
    if replaces:
        headers["Replaces"] = replaces
    uri = str(target.replace(headers=()))
    try:
        cr = await agent.invite(uri, headers=headers, dest=agent.outbound)
        final = await cr.final(INVITE_TIMEOUT)
        status, reason = final.status, final.reason
    except ExpectationFailed:
        status, reason = 408, "Request Timeout"
    except Exception as exc:      # noqa: BLE001 - a transferee that cannot place the call reports it
        agent.findings.append(f"transferee could not place the INVITE to {uri}: {type(exc).__name__}: {exc}")
        status, reason = 500, "Server Internal Error"
    if call.is_up:
        await agent.notify_transfer(call, status, reason, final=True, notifier=notifier)


def start(agent: "Agent", incoming: "Incoming") -> None:
    """Run `carry_out` in the background (the agent's receive loop must not wait for the transfer)."""
    task = asyncio.get_running_loop().create_task(carry_out(agent, incoming))
    agent._tasks.append(task)
