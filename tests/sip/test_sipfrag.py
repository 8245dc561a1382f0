"""message/sipfrag bodies (RFC 3420) as sent in the NOTIFYs of a REFER (RFC 3515)."""

from __future__ import annotations

import pytest

from referee.sip import SipParseError, Sipfrag, parse
from sip_samples import NOTIFY_SIPFRAG, build


@pytest.mark.parametrize("body, status, reason", [
    (b"SIP/2.0 100 Trying\r\n", 100, "Trying"),
    (b"SIP/2.0 180 Ringing", 180, "Ringing"),            # no final CRLF
    (b"SIP/2.0 200 OK\r\n\r\n", 200, "OK"),
    (b"SIP/2.0 503 Service Unavailable\r\n", 503, "Service Unavailable"),
    (b"sip/2.0 486 Busy Here\n", 486, "Busy Here"),       # version is case-insensitive; bare LF
    (b"SIP/2.0 603\r\n", 603, ""),
])
def test_status_lines(body, status, reason):
    frag = Sipfrag.parse(body)
    assert (frag.status, frag.reason, frag.method) == (status, reason, None)
    assert frag.is_response and frag.is_final == (status >= 200)
    assert frag.version.upper() == "SIP/2.0" and frag.defects == []


def test_headers_and_body():
    body = (b"SIP/2.0 200 OK\r\nContact: <sip:carol@198.18.0.3>\r\n"
            b"  ;expires=60\r\nl: 4\r\n\r\nabcd")
    frag = Sipfrag.parse(body)
    assert frag.headers == [("Contact", "<sip:carol@198.18.0.3> ;expires=60"), ("l", "4")]
    assert frag.header("contact") == "<sip:carol@198.18.0.3> ;expires=60"
    assert frag.header("Content-Length") == "4" and frag.body == b"abcd"
    assert frag.start_line == "SIP/2.0 200 OK"


def test_request_line_fragment():
    frag = Sipfrag.parse(b"INVITE sip:carol@198.18.0.3 SIP/2.0\r\nTo: <sip:carol@198.18.0.3>\r\n")
    assert (frag.method, frag.uri, frag.status) == ("INVITE", "sip:carol@198.18.0.3", None)
    assert not frag.is_response and not frag.is_final


def test_legacy_status_line_without_version():
    with pytest.raises(SipParseError, match="without SIP/2.0"):
        Sipfrag.parse(b"200 OK\r\n")
    frag = Sipfrag.parse(b"200 OK\r\n", strict=False)
    assert (frag.status, frag.reason, frag.version) == (200, "OK", None)
    assert frag.defects == ["sipfrag status line without SIP/2.0"]


def test_lenient_mode_records_other_deviations():
    frag = Sipfrag.parse(b"\r\nSIP/1.0  202  Accepted\r\n", strict=False)
    assert frag.status == 202 and frag.reason == "Accepted"
    assert frag.defects == ["empty lines before the sipfrag start line",
                            "extra whitespace in the sipfrag start line",
                            "sipfrag version 'SIP/1.0' is not SIP/2.0"]
    with pytest.raises(SipParseError, match="not SIP/2.0"):
        Sipfrag.parse(b"SIP/1.0 202 Accepted\r\n")


@pytest.mark.parametrize("body, reason", [
    (b"", "empty"),
    (b"\r\n\r\n", "empty"),
    (b"SIP/2.0\r\n", "without a status code"),
    (b"SIP/2.0 2000 OK\r\n", "bad status code"),
    (b"SIP/2.0 099 Low\r\n", "bad status code"),
    (b"SIP/2.0 OK 200\r\n", "bad status code"),
    (b"hello world again and again\r\n", "bad sipfrag start line"),
    (b"INVITE <sip:x> SIP/2.0\r\n", "not an absolute URI"),
    (b"SIP/2.0 200 OK\r\nno colon\r\n", "expected 'Name: value'"),
    (b"SIP/2.0 200 OK\r\n\x00bad: x\r\n", "bad header name"),
    (b"INVITE sip:c@198.18.0.3\r\n", "request line without SIP/2.0"),
])
def test_malformed_fragments_raise(body, reason):
    with pytest.raises(SipParseError, match=reason):
        Sipfrag.parse(body)


def test_non_bytes_raise_parse_error():
    with pytest.raises(SipParseError, match="expected bytes"):
        Sipfrag.parse("SIP/2.0 200 OK")   # type: ignore[arg-type]


def test_build():
    assert Sipfrag.build(100) == b"SIP/2.0 100 Trying\r\n"
    assert Sipfrag.build(200, "Fine") == b"SIP/2.0 200 Fine\r\n"
    body = Sipfrag.build(180, headers=[("Contact", "<sip:c@198.18.0.3>")])
    assert body == b"SIP/2.0 180 Ringing\r\nContact: <sip:c@198.18.0.3>\r\n"
    assert Sipfrag.parse(body).header("Contact") == "<sip:c@198.18.0.3>"
    assert Sipfrag.build(603, headers={"Reason": 'SIP;cause=603;text="Declined"'}).endswith(
        b'Reason: SIP;cause=603;text="Declined"\r\n')
    for bad in (99, 700, "200"):
        with pytest.raises(ValueError):
            Sipfrag.build(bad)   # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Sipfrag.build(200, headers=[("X", "a\r\nInjected: 1")])


def test_message_sipfrag_view():
    assert parse(NOTIFY_SIPFRAG).sipfrag().status == 200
    legacy = build("NOTIFY sip:a@198.18.0.1 SIP/2.0", [
        "Via: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bK-l", "From: <sip:b@198.18.0.2>;tag=2",
        "To: <sip:a@198.18.0.1>;tag=1", "Call-ID: legacy-1", "CSeq: 2 NOTIFY", "Max-Forwards: 70",
        "Event: refer", "Subscription-State: active", "Content-Type: message/sipfrag"], b"200 OK")
    msg = parse(legacy)
    with pytest.raises(SipParseError, match="without SIP/2.0"):
        msg.sipfrag()
