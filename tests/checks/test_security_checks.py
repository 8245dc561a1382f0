"""The REFER-flood attribution of referee/checks/security.py: which REFER each NOTIFY reports on."""

import pytest

from referee.checks.security import attribute
from referee.sip import parse

FIRST, COUNT = 10, 20


def notify(event: str, body: str = "SIP/2.0 100 Trying\r\n", state: str = "active;expires=60"):
    head = (f"NOTIFY sip:a@127.0.0.1:5061 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK9\r\n"
            f"From: <sip:b@127.0.0.1:5080>;tag=b\r\nTo: <sip:a@127.0.0.1:5061>;tag=a\r\nCall-ID: c1\r\n"
            f"CSeq: 7 NOTIFY\r\nEvent: {event}\r\nSubscription-State: {state}\r\n"
            f"Content-Type: message/sipfrag\r\nContent-Length: {len(body)}\r\n\r\n")
    return parse(head.encode() + body.encode())


@pytest.mark.parametrize("event, accepted, refused, finished, want", [
    ("refer", {10, 11}, {}, set(), (10, None)),                 # the first REFER may go without an id
    ("refer;id=11", {10, 11}, {}, set(), (11, None)),
    ("refer", {11}, {10: 403}, set(), "which was refused"),
    ("refer;id=99", {10, 11}, {}, set(), "names none of the REFERs"),
    ("refer;id=12", {10}, {12: 486}, set(), "refused with 486"),
    ("refer", {10, 11}, {}, {10}, "can only belong to the first REFER"),
    ("refer;id=11", {10, 11}, {}, {11}, "had already ended"),
    ("presence", {10}, {}, set(), "not a refer event"),
])
def test_attribute(event, accepted, refused, finished, want):
    got = attribute(notify(event), FIRST, COUNT, accepted, refused, finished)
    if isinstance(want, tuple):
        assert got == want
    else:
        assert got[0] is None and want in got[1]
