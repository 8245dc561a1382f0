"""Checks on the INVITE a transferee sends for a REFER (RFC 3515 §2.4.2, RFC 3261 §19.1.4-5).

Header conditions (Referred-By copied, Replaces copied, unsafe URI headers not honoured) are
plain `expect: INVITE` header matchers; what they cannot say lives here.
"""

from __future__ import annotations

from referee.scenario.library import Param, check
from referee.sip import NameAddr, SipParseError, SipUri, parse_uri


@check("invite_to_refer_to", """
    The INVITE's Request-URI is the Refer-To URI of the REFER.

    RFC 3515 §2.4.2: the transferee contacts the resource the Refer-To URI identifies. The
    Request-URI is compared with that URI as RFC 3261 §19.1.4 compares SIP URIs (user part
    included), leaving out what does not belong in a Request-URI: the URI's embedded headers
    (§19.1.5) and its method parameter.
    """, invite=Param("saved", "the INVITE the target received", required=True),
    refer=Param("saved", "the REFER (as sent) whose Refer-To names the target", required=True))
async def invite_to_refer_to(ctx, invite: str, refer: str) -> None:
    request = ctx.message(invite)
    refer_to = NameAddr.parse(ctx.message(refer).header("Refer-To") or "").uri
    if not isinstance(refer_to, SipUri):
        raise ctx.inconclusive(f"the Refer-To {refer_to} is not a SIP URI: this check compares SIP URIs")
    wanted = refer_to.replace(headers=(), params={k: v for k, v in refer_to.params.items()
                                                  if k.lower() != "method"})
    ctx.note(request)
    seen = request.uri_text
    try:
        uri = parse_uri(seen)
    except SipParseError as exc:
        raise ctx.violation(request, "Request-URI", str(wanted), f"{seen!r} (unparsable: {exc.reason})") from None
    if not isinstance(uri, SipUri) or not uri.equivalent(wanted):
        raise ctx.violation(request, "Request-URI", repr(str(wanted)), repr(seen),
                            f"INVITE Request-URI is {seen!r}, expected the Refer-To URI {str(wanted)!r}")
    ctx.detail = f"Request-URI {seen}"
