"""INVITEs the built-in `send` step cannot say: several header fields of one name (two Replaces),
the agent's own SDP offer; and the CANCEL of an INVITE still pending."""

from __future__ import annotations

from referee.agent.agent import ALLOW, SUPPORTED
from referee.scenario.library import Param, action
from referee.scenario.verdict import HarnessError


def invite_headers(ctx, headers: dict) -> list[tuple[str, str]]:
    """Supported and Allow as the agent sends them, then the given fields in order; a list value
    gives one header field per item; a given Supported or Allow replaces the agent's own."""
    given: list[tuple[str, str]] = []
    for name, value in headers.items():
        for item in (value if isinstance(value, list) else [value]):
            given.append((name, ctx.var(str(item))))
    names = {n.lower() for n, _ in given}
    base = [(n, v) for n, v in (("Supported", SUPPORTED), ("Allow", ALLOW)) if n.lower() not in names]
    return base + given


@action("send_invite", """
    An agent sends the DUT an INVITE with its SDP offer and exactly the given header fields.

    Like `send: INVITE`, but a header whose value is a list is sent as that many header fields
    (e.g. two Replaces), and the body is the agent's own SDP offer. Supported and Allow are the
    agent's unless given. The INVITE is saved for `for:`, final_response and cancel_invite.
    """, **{"from": Param("party", "the agent that sends it", required=True)},
    to=Param("party", "the DUT party it goes to", required=True),
    headers=Param("mapping", "header name -> value, or a list of values (one header field each)", default={}),
    save=Param("new_saved", "the name the INVITE is kept under", required=True))
async def send_invite(ctx, to: str, save: str, headers: dict | None = None, **kw) -> None:
    sender = kw["from"]
    binding = ctx.flow.binding
    agent = ctx.agent(sender)
    if to != binding.dut_party or binding.dut is None:
        raise HarnessError(f"send_invite: {to!r} is not the DUT")
    cr = await agent.request("INVITE", binding.uri(to), headers=invite_headers(ctx, headers or {}),
                             body=agent.sdp_offer(), content_type="application/sdp", dest=binding.dut.address)
    ctx.note(cr.request)
    ctx.flow.saved[save] = cr


@action("cancel_invite", """
    The agent that sent a pending INVITE cancels it (CANCEL on the INVITE's branch, RFC 3261 §9.1).
    """, request=Param("saved", "the INVITE (a send_invite or send step's `save`)", required=True))
async def cancel_invite(ctx, request: str) -> None:
    from referee.agent.objects import ClientRequest
    cr = ctx.saved(request)
    if not isinstance(cr, ClientRequest) or cr.method != "INVITE":
        raise HarnessError(f"cancel_invite: {request!r} is not an INVITE an agent sent")
    cancel = await cr.agent.cancel(cr)
    ctx.note(cancel.request)
