"""Building the messages the PBX sends: responses, new INVITEs, ACK and CANCEL."""

from __future__ import annotations

import secrets

from referee.sip import Request, Response, SipParseError
from referee.stack import Dialog, new_branch

USER_AGENT = "referee-b2bua/0.1"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, REGISTER"
SUPPORTED = "replaces, norefersub, tdialog"
SDP = "application/sdp"


def is_sdp(msg: Request | Response) -> bool:
    """Does the message carry an SDP body (a body without Content-Type counts as SDP)?"""
    if not msg.body:
        return False
    try:
        ctype = msg.content_type
    except SipParseError:
        return False
    return ctype is None or ctype.mime == SDP


def response_to(request: Request, status: int, reason: str = "", to_tag: str | None = None,
                headers: list[tuple[str, str]] | tuple = (), body: bytes = b"",
                content_type: str | None = None) -> Response:
    """A response echoing the request's Via, From, To (with `to_tag` if it had none), Call-ID, CSeq."""
    out = [("Via", v) for v in request.header_all("Via")]
    to = request.header("To") or ""
    if status > 100 and not request.to.tag and to_tag:
        to = f"{to};tag={to_tag}"
    out += [("From", request.header("From") or ""), ("To", to), ("Call-ID", request.call_id or ""),
            ("CSeq", request.header("CSeq") or "")]
    out += list(headers)
    out.append(("Server", USER_AGENT))
    response = Response(status, reason, out)
    if body:
        response.set_body(body, content_type)
    return response


def add_via(request: Request, hostport: str, transport: str) -> None:
    request.add_header("Via", f"SIP/2.0/{transport.upper()} {hostport};branch={new_branch()};rport", first=True)


def new_call_id(host: str) -> str:
    return f"b2b-{secrets.token_hex(8)}@{host}"


def new_invite(uri: str, from_value: str, to_value: str, contact: str, call_id: str,
               headers: list[tuple[str, str]], body: bytes) -> Request:
    """An out-of-dialog INVITE (no Via yet)."""
    request = Request("INVITE", uri, [
        ("Max-Forwards", "70"), ("From", from_value), ("To", to_value), ("Call-ID", call_id),
        ("CSeq", "1 INVITE"), ("Contact", contact), ("Allow", ALLOW), ("Supported", SUPPORTED),
        ("User-Agent", USER_AGENT), *headers])
    if body:
        request.set_body(body, SDP)
    return request


def ack_for(dialog: Dialog, invite: Request) -> Request:
    """The ACK of a 2xx to `invite` in `dialog` (RFC 3261 §13.2.2.4; no Via yet)."""
    return dialog.build_request("ACK", cseq=invite.cseq.seq)


def cancel_for(invite: Request) -> Request:
    """CANCEL of a pending INVITE: same Request-URI, Call-ID, From, To, CSeq number and top Via
    (RFC 3261 §9.1)."""
    return Request("CANCEL", invite.uri_text, [
        ("Via", invite.header_all("Via")[0]), ("Max-Forwards", "70"), ("From", invite.header("From")),
        ("To", invite.header("To")), ("Call-ID", invite.call_id), ("CSeq", f"{invite.cseq.seq} CANCEL")])
