"""Reading the NOTIFYs of a refer subscription leniently: a malformed sipfrag or Subscription-State
is what some test purpose judges, and it must not stop the others from seeing the rest."""

from __future__ import annotations

from referee.sip import Request, SipParseError
from referee.sip.sipfrag import Sipfrag


def frag_status(msg: Request) -> int | None:
    """The status a NOTIFY reports (a legacy '200 OK' without SIP/2.0 counts); None if none."""
    try:
        return Sipfrag.parse(msg.body, strict=False).status
    except SipParseError:
        return None


def sub_state(msg: Request):
    """The parsed Subscription-State, or None when absent or malformed."""
    try:
        return msg.subscription_state
    except SipParseError:
        return None


def is_final(msg: Request) -> bool:
    """The NOTIFY that ends the report: a final status, or a terminated subscription."""
    status, state = frag_status(msg), sub_state(msg)
    return (status is not None and status >= 200) or (state is not None and state.state == "terminated")


def describe(msg: Request) -> str:
    """One line for a NOTIFY in a report: CSeq, Event, Subscription-State, body's first line."""
    first = msg.body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return (f"NOTIFY CSeq {msg.header('CSeq')!r}, Event {msg.header('Event')!r}, "
            f"Subscription-State {msg.header('Subscription-State')!r}, "
            f"Content-Type {msg.header('Content-Type')!r}, body {first!r}")
