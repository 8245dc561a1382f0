"""Requests the built-in `send` step cannot build: several header fields of one name (a REFER
with two Refer-To header fields, RFC 3515 §2.4.1)."""

from __future__ import annotations

from referee.scenario.library import Param, action


@action("send_in_call", """
    An agent sends a request in a call with the given header fields; a list value is sent as that many fields.

    Like `send:` with `in:`, but `headers: {Refer-To: [a, b]}` gives two Refer-To header fields
    (a mapping cannot repeat a name). The dialog's own headers (From, To, Call-ID, CSeq, Via)
    are built as for any in-dialog request. Saved for `for:` of a later expect step.
    """, **{"from": Param("party", "the agent that sends it", required=True),
            "in": Param("call", "the call (dialog) it is sent in", required=True)},
    method=Param("string", "the method, e.g. REFER", required=True),
    headers=Param("mapping", "header name -> value, or a list of values (one header field each)", default={}),
    save=Param("new_saved", "the name the request is kept under"))
async def send_in_call(ctx, method: str, headers: dict | None = None, save: str | None = None, **kw) -> None:
    fields = [(name, ctx.var(str(item))) for name, value in (headers or {}).items()
              for item in (value if isinstance(value, list) else [value])]
    cr = await ctx.agent(kw["from"]).request(method, call=ctx.call(kw["in"]), headers=fields)
    ctx.note(cr.request)
    if save:
        ctx.flow.saved[save] = cr
