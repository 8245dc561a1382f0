"""Whole messages: call-transfer traffic, framing, Content-Length, odd spellings, serialization."""

from __future__ import annotations

import pytest

from referee.sip import (Header, Request, Response, SipParseError, canonical_name,
                         default_reason, frame_stream, parse)
from sip_samples import (COMPACT_REFER, INVITE_IPV6, INVITE_REPLACES, NOTIFY_SIPFRAG,
                         REFER_NOSUB, REFER_REPLACES, RESPONSE_202, SDP_OFFER, build)

BASIC = [
    "Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK-basic",
    "Max-Forwards: 70",
    "From: <sip:alice@198.18.0.1>;tag=1",
    "To: <sip:bob@198.18.0.2>",
    "Call-ID: basic-1@198.18.0.1",
    "CSeq: 1 OPTIONS",
]


def options(*extra: str, body: bytes = b"", length: int | None = None, drop: str = "") -> bytes:
    headers = [h for h in BASIC if not (drop and h.lower().startswith(drop.lower() + ":"))]
    return build("OPTIONS sip:bob@198.18.0.2 SIP/2.0", headers + list(extra), body, length)


# -- call-transfer messages ------------------------------------------------------------------------

def test_refer_with_replaces_round_trips_and_yields_the_dialog():
    msg = parse(REFER_REPLACES)
    assert bytes(msg) == REFER_REPLACES
    assert isinstance(msg, Request) and msg.method == "REFER"
    assert msg.call_id == "4f9c2d1e@198.18.0.1"
    assert (msg.cseq.seq, msg.cseq.method) == (93809823, "REFER")
    assert msg.from_.display == "Alice" and msg.from_.tag == "a73kszlfl"
    assert msg.to.tag == "1kmmc8"
    target = msg.refer_to.uri
    assert (target.user, target.host, target.port) == ("carol", "198.18.0.3", 5060)
    assert target.header("Replaces") == "7a9f2c@198.18.0.3;to-tag=cc12;from-tag=aa34;early-only"
    replaces = msg.refer_to_replaces
    assert replaces.call_id == "7a9f2c@198.18.0.3"
    assert (replaces.to_tag, replaces.from_tag, replaces.early_only) == ("cc12", "aa34", True)
    assert msg.referred_by.uri.user == "alice"
    assert msg.supported == ["replaces", "norefersub"] and msg.supports("Replaces")
    assert msg.via[0].has_rport and msg.via[0].branch == "z9hG4bK-refer-1"
    msg.validate()


def test_unknown_headers_are_kept_in_order_with_their_spelling():
    msg = parse(REFER_REPLACES)
    names = [name for name, _ in msg.headers]
    assert names == ["Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq", "Contact", "Refer-To",
                     "Referred-By", "X-Trace", "Supported", "X-Trace", "Content-Length"]
    assert msg.header_all("x-trace") == ["unknown-1", "unknown-2"]
    assert msg.count("X-TRACE") == 2


def test_refer_without_subscription_in_a_target_dialog():
    msg = parse(REFER_NOSUB)
    assert msg.refer_sub is False
    assert msg.refer_to_replaces is None
    dialog = msg.target_dialog
    assert (dialog.call_id, dialog.local_tag, dialog.remote_tag) == (
        "9c2d1e4f@198.18.0.1", "1kmmc8", "a73kszlfl")
    assert msg.require == ["norefersub"]
    assert msg.via[0].transport == "TCP"


def test_notify_with_sipfrag_ends_the_refer_subscription():
    msg = parse(NOTIFY_SIPFRAG)
    assert (msg.event.package, msg.event.id) == ("refer", "93809823")
    state = msg.subscription_state
    assert (state.state, state.reason) == ("terminated", "noresource")
    assert msg.content_type.mime == "message/sipfrag"
    assert msg.content_type.params.get("version") == "2.0"
    frag = msg.sipfrag()
    assert (frag.status, frag.reason, frag.is_final) == (200, "OK", True)
    assert bytes(msg) == NOTIFY_SIPFRAG


def test_invite_with_replaces_referred_by_and_target_dialog():
    msg = parse(INVITE_REPLACES)
    replaces = msg.replaces
    assert (replaces.call_id, replaces.to_tag, replaces.from_tag, replaces.early_only) == (
        "7a9f2c@198.18.0.3", "cc12", "aa34", True)
    assert msg.referred_by.display == "Alice"
    assert msg.referred_by.params.get("cid") == '"20398823.2UWQFN309shb3@198.18.0.1"'
    assert msg.target_dialog.remote_tag == "cc12"
    assert msg.allow == ["INVITE", "ACK", "CANCEL", "BYE", "REFER", "NOTIFY"]
    assert msg.body == SDP_OFFER and msg.content_length == len(SDP_OFFER)
    assert msg.sdp().media[0].port == 49170


def test_response_202():
    msg = parse(RESPONSE_202)
    assert isinstance(msg, Response) and (msg.status, msg.reason) == (202, "Accepted")
    assert not msg.is_provisional and not msg.is_request
    assert msg.via[0].rport == 5060 and msg.via[0].received == "198.18.0.1"
    assert msg.max_forwards is None and msg.defects == []


def test_compact_forms_for_every_transfer_header():
    msg = parse(COMPACT_REFER)
    assert msg.header("Via") == msg.header("v") == "SIP/2.0/UDP 198.18.0.1;branch=z9hG4bK-compact"
    assert msg.from_.tag == "111" and msg.to.tag == "222"
    assert msg.call_id == "compact-1@198.18.0.1"
    assert msg.contact[0].uri.user == "alice"
    assert msg.refer_to.uri.user == "carol" and msg.referred_by.uri.user == "alice"
    assert msg.supported == ["norefersub"] and msg.header("Allow-Events") == "refer"
    assert msg.content_type.mime == "text/plain" and msg.body == b"hello"
    assert msg.content_length == 5


@pytest.mark.parametrize("short, full", [("v", "Via"), ("f", "From"), ("t", "To"), ("m", "Contact"),
                                         ("i", "Call-ID"), ("l", "Content-Length"),
                                         ("c", "Content-Type"), ("k", "Supported"),
                                         ("r", "Refer-To"), ("b", "Referred-By"), ("o", "Event"),
                                         ("u", "Allow-Events"), ("V", "Via")])
def test_compact_form_names(short, full):
    assert canonical_name(short) == full


def test_event_header_in_compact_form():
    msg = parse(options("o: refer;id=7"))
    assert msg.event.id == "7" and msg.header("Event") == "refer;id=7"


def test_ipv6_references_everywhere():
    msg = parse(INVITE_IPV6)
    assert msg.uri.host == "2001:2::3" and msg.uri.is_ipv6 and msg.uri.port == 5060
    via = msg.via[0]
    assert (via.host, via.port, via.received) == ("2001:2::2", 5060, "2001:2::99")
    assert via.sent_by == "[2001:2::2]:5060"
    assert msg.contact[0].uri.hostport == "[2001:2::2]:5060"
    assert msg.from_.uri.host == "2001:2::2"


# -- header access ---------------------------------------------------------------------------------

def test_names_are_case_insensitive():
    msg = parse(options("sUpPoRtEd: timer"))
    assert msg.header("CALL-ID") == msg.header("call-id") == msg.header("i") == "basic-1@198.18.0.1"
    assert msg.supported == ["timer"]


def test_folded_headers_are_unfolded():
    msg = parse(options("Subject: first", "\tsecond", "   third", "Supported: a,", " b"))
    assert msg.header("Subject") == "first second third"
    assert msg.supported == ["a", "b"] and msg.defects == []
    assert bytes(msg).count(b"\r\n\tsecond") == 1   # raw bytes are kept as written


def test_comma_lists_are_not_split_inside_quotes_or_brackets():
    msg = parse(options('Contact: "Doe, John" <sip:j,d@198.18.0.7;x=1>;q=0.1, <sip:b@198.18.0.8>',
                        'Contact: "\\"quoted, escaped\\"" <sip:c@198.18.0.9>'))
    assert msg.values("Contact") == ['"Doe, John" <sip:j,d@198.18.0.7;x=1>;q=0.1',
                                     "<sip:b@198.18.0.8>", '"\\"quoted, escaped\\"" <sip:c@198.18.0.9>']
    contacts = msg.contact
    assert [c.display for c in contacts] == ["Doe, John", None, '"quoted, escaped"']
    assert contacts[0].uri.user == "j,d" and contacts[0].params.get("q") == "0.1"


def test_unusual_whitespace_in_via_and_tabs():
    msg = parse(options("X-Tab:\t\tvalue\t").replace(
        b"Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK-basic",
        b"Via : SIP / 2.0 / UDP\t198.18.0.1 : 5060 ;\tbranch = z9hG4bK-basic"))
    via = msg.via[0]
    assert (via.protocol, via.version, via.transport) == ("SIP", "2.0", "UDP")
    assert (via.host, via.port, via.branch) == ("198.18.0.1", 5060, "z9hG4bK-basic")
    assert msg.header("X-Tab") == "value"


def test_escaped_characters_in_uris_are_decoded():
    msg = parse(options("Refer-To: <sip:c%61rol@198.18.0.3?Replaces=a%40b%3Bto-tag%3D1%3Bfrom-tag%3D2>"))
    assert msg.refer_to.uri.user == "carol"
    assert str(msg.refer_to_replaces) == "a@b;to-tag=1;from-tag=2"


def test_very_long_values():
    long_value = "x" * 20000
    msg = parse(options(f"X-Long: {long_value}", "Via: SIP/2.0/UDP 198.18.0.9;branch=z9hG4bK-" + "b" * 5000))
    assert msg.header("X-Long") == long_value
    assert msg.via[1].branch == "z9hG4bK-" + "b" * 5000


def test_non_utf8_bytes_are_kept_and_noted():
    data = options("Subject: caf\xe9").replace("caf\xe9".encode(), b"caf\xe9")   # Latin-1
    msg = parse(data)
    assert bytes(msg) == data
    assert any("not UTF-8" in d for d in msg.defects)
    assert msg.header("Subject").startswith("caf")
    clone = msg.copy()
    clone.set_header("Max-Forwards", "69")
    assert b"Subject: caf\xe9\r\n" in bytes(clone)   # the original octet survives re-rendering


def test_typed_view_errors_point_at_the_header_line():
    data = options("Event: ;bad")
    msg = parse(data)
    with pytest.raises(SipParseError) as info:
        msg.event
    assert info.value.offset == data.index(b"Event:")
    assert info.value.reason.startswith("Event:")
    assert isinstance(info.value, ValueError)


def test_single_valued_view_rejects_a_second_field():
    msg = parse(options("Refer-To: <sip:a@198.18.0.3>", "Refer-To: <sip:b@198.18.0.4>"))
    with pytest.raises(SipParseError, match="Refer-To: header appears more than once"):
        msg.refer_to


def test_refer_to_with_two_values_in_one_field_is_rejected():
    msg = parse(options("Refer-To: <sip:a@198.18.0.3>, <sip:b@198.18.0.4>"))
    with pytest.raises(SipParseError, match="junk"):
        msg.refer_to


def test_date_and_limits():
    msg = parse(options("Date: Sat, 13 Nov 2010 23:29:00 GMT", "Expires: 3600"))
    assert msg.date.year == 2010 and msg.date.tzinfo is not None
    assert msg.expires == 3600 and msg.max_forwards == 70


# -- Content-Length and framing --------------------------------------------------------------------

def test_body_shorter_than_content_length_raises():
    data = options(body=b"abc", length=10)
    with pytest.raises(SipParseError, match="Content-Length 10 but only 3 body bytes") as info:
        parse(data)
    assert info.value.offset == len(data)


def test_body_longer_than_content_length_keeps_trailing_bytes():
    data = options(body=b"abcdef", length=2)
    msg = parse(data)
    assert msg.body == b"ab" and msg.trailing == b"cdef"
    assert msg.defects == ["4 bytes after Content-Length discarded (RFC 3261 §18.3)"]
    assert bytes(msg) == data


def test_missing_content_length_over_udp_takes_the_rest():
    data = options(body=b"xyz").replace(b"Content-Length: 3\r\n", b"")
    msg = parse(data)
    assert msg.body == b"xyz" and msg.content_length is None


def test_missing_content_length_over_a_stream_raises():
    data = options().replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(SipParseError, match="mandatory over a stream"):
        parse(data, stream=True)


@pytest.mark.parametrize("value", ["-1", "abc", "1 2", "", "0x10", "\u0661"])
def test_bad_content_length_values_raise(value):
    with pytest.raises(SipParseError, match="Content-Length"):
        parse(options(length=0).replace(b"Content-Length: 0", f"Content-Length: {value}".encode()))


def test_leading_crlfs_are_tolerated_and_kept():
    data = b"\r\n\r\n\n" + options()
    msg = parse(data)
    assert msg.method == "OPTIONS" and bytes(msg) == data
    assert msg.header_fields[0].offset == data.index(b"Via:")


def test_bare_lf_line_endings():
    data = options(body=b"hi").replace(b"\r\n", b"\n")
    msg = parse(data)
    assert msg.body == b"hi" and msg.call_id == "basic-1@198.18.0.1"
    assert "lines end in a bare LF instead of CRLF" in msg.defects


@pytest.mark.parametrize("old, new", [(b"\r\n\r\n", b"\r\n\n"), (b"\r\n\r\n", b"\n\r\n"),
                                      (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n")])
def test_a_single_bare_lf_is_noted(old, new):
    msg = parse(options().replace(old, new))
    assert msg.defects == ["lines end in a bare LF instead of CRLF"]


def test_header_offsets_are_byte_offsets_even_after_utf8():
    data = options('Subject: \u00e9t\u00e9', "X-After: 1")
    msg = parse(data)
    after = next(h for h in msg.header_fields if h.name == "X-After")
    assert after.offset == data.index(b"X-After")


@pytest.mark.parametrize("drop", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_mandatory_headers_raise(drop):
    with pytest.raises(SipParseError, match=f"missing mandatory header {drop}"):
        parse(options(drop=drop))


def test_missing_max_forwards_is_a_defect():
    msg = parse(options(drop="Max-Forwards"))
    assert msg.defects == ["missing Max-Forwards (RFC 3261 §8.1.1.6)"]


@pytest.mark.parametrize("data, reason", [
    (b"", "empty message"),
    (b"\r\n\r\n", "empty message"),
    (b"OPTIONS sip:bob@198.18.0.2 SIP/2.0\r\nVia: x", "no empty line"),
    (b"OPTIONS sip:bob@198.18.0.2 SIP/2.0\r\nNoColonHere\r\n\r\n", "expected 'Name: value'"),
    (b"OPTIONS sip:bob@198.18.0.2 SIP/2.0\r\nBad Name: x\r\n\r\n", "bad header name"),
    (b"OPTIONS sip:bob@198.18.0.2 SIP/2.0\r\n folded: first\r\n\r\n", "continuation line"),
    (b"OPTIONS sip:bob@198.18.0.2 SIP/2.0\r\nVia: a\rb\r\n\r\n", "bare CR"),
    (b"OPTIONS sip:bob@198.18.0.2 SIP/2.0 extra\r\n\r\n", "bad request line"),
    (b"OPT<IONS sip:bob@198.18.0.2 SIP/2.0\r\n\r\n", "bad method"),
    (b"SIP/2.0 20 OK\r\n\r\n", "bad status code"),
    (b"SIP/2.0 700 Nope\r\n\r\n", "bad status code"),
    (b"SIP/3.0 200 OK\r\n\r\n", "unsupported version"),
])
def test_malformed_framing_raises(data, reason):
    with pytest.raises(SipParseError, match=reason):
        parse(data)


def test_bad_call_id_and_cseq():
    with pytest.raises(SipParseError, match="Call-ID: bad Call-ID"):
        parse(options().replace(b"Call-ID: basic-1@198.18.0.1", b"Call-ID: has space"))
    with pytest.raises(SipParseError, match="CSeq: bad CSeq"):
        parse(options().replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"))


def test_non_bytes_input_raises_parse_error():
    with pytest.raises(SipParseError, match="expected bytes"):
        parse("OPTIONS sip:x SIP/2.0\r\n\r\n")   # type: ignore[arg-type]
    assert parse(bytearray(options())).method == "OPTIONS"


def test_frame_stream_cuts_messages_and_keeps_the_rest():
    first, second = options(body=b"one", length=3), REFER_REPLACES
    message, rest = frame_stream(b"\r\n\r\n" + first + second[:40])
    assert message == first and rest == second[:40]
    assert frame_stream(rest) == (None, rest)
    message, rest = frame_stream(rest + second[40:])
    assert message == second and rest == b""
    compact = options().replace(b"Content-Length: 0", b"l: 0")
    assert frame_stream(compact) == (compact, b"")


def test_frame_stream_without_content_length_raises():
    with pytest.raises(SipParseError, match="without Content-Length"):
        frame_stream(options().replace(b"Content-Length: 0\r\n", b""))
    with pytest.raises(SipParseError, match="two different Content-Length"):
        frame_stream(options("Content-Length: 5"))


# -- building and changing messages ----------------------------------------------------------------

def test_changed_message_is_rendered_with_a_correct_content_length():
    msg = parse(NOTIFY_SIPFRAG)
    msg.set_body(b"SIP/2.0 100 Trying\r\n", "message/sipfrag")
    msg.set_header("Subscription-State", "active;expires=60")
    data = bytes(msg)
    again = parse(data)
    assert again.content_length == len(b"SIP/2.0 100 Trying\r\n")
    assert again.sipfrag().status == 100 and again.subscription_state.state == "active"
    assert [n for n, _ in again.headers].index("Subscription-State") == 8


def test_copy_is_independent():
    msg = parse(REFER_REPLACES)
    clone = msg.copy()
    clone.remove_header("Referred-By")
    clone.add_header("Referred-By", "<sip:mallory@198.18.0.66>", first=True)
    assert msg.referred_by.uri.user == "alice" and clone.referred_by.uri.user == "mallory"
    assert bytes(msg) == REFER_REPLACES and parse(bytes(clone)).header_fields[0].name == "Referred-By"


def test_building_a_request_from_scratch():
    req = Request("REFER", "sip:bob@198.18.0.2", [("Via", "SIP/2.0/UDP 198.18.0.1;branch=z9hG4bK-x"),
                                                    ("From", "<sip:a@198.18.0.1>;tag=1"),
                                                    ("To", "<sip:bob@198.18.0.2>"),
                                                    ("Call-ID", "new-1"), ("CSeq", "1 REFER"),
                                                    ("Refer-To", "<sip:c@198.18.0.3>")])
    parsed = parse(bytes(req))
    assert parsed.refer_to.uri.user == "c" and parsed.content_length == 0
    assert Header("v", "x").key == "via"


def test_response_reason_defaults():
    assert Response(481).reason == "Call/Transaction Does Not Exist"
    assert default_reason(499) == "Client Error"
    assert bytes(Response(202, headers=[("CSeq", "1 REFER")])).startswith(b"SIP/2.0 202 Accepted\r\n")
