"""Typed header values: name-addr, Via, CSeq, Event, Subscription-State, Replaces,
Target-Dialog, Content-Type, Refer-Sub, parameters, lists, numbers and dates."""

from __future__ import annotations

import pytest

from referee.sip import (CSeq, ContentType, Event, NameAddr, Params, Replaces, SipParseError,
                         SubscriptionState, TargetDialog, Via, parse_date, parse_delta,
                         parse_refer_sub, split_list)


# -- name-addr / addr-spec -------------------------------------------------------------------------

def test_quoted_display_name_with_escapes():
    addr = NameAddr.parse('"Alice \\"A\\" Smith" <sip:alice@198.18.0.1>;tag=9fxced76sl')
    assert addr.display == 'Alice "A" Smith' and addr.uri.user == "alice"
    assert addr.tag == "9fxced76sl" and addr.bracketed


def test_unquoted_display_names_are_tokens():
    assert NameAddr.parse("A. G. Bell <sip:bell@198.18.0.1>").display == "A. G. Bell"
    assert NameAddr.parse("caller<sip:caller@198.18.0.1>").display == "caller"
    assert NameAddr.parse("<sip:x@198.18.0.1>").display is None
    assert NameAddr.parse("J\u00f6rg <sip:j@198.18.0.1>").display == "J\u00f6rg"


def test_addr_spec_parameters_belong_to_the_header():
    addr = NameAddr.parse("sip:bob@198.18.0.2;tag=abc;transport=tcp")
    assert not addr.bracketed and addr.tag == "abc" and addr.params.get("transport") == "tcp"
    assert str(addr.uri) == "sip:bob@198.18.0.2" and len(addr.uri.params) == 0


def test_bracketed_uri_parameters_stay_in_the_uri():
    addr = NameAddr.parse("<sip:bob@198.18.0.2;transport=tcp>;expires=60 ; q = 0.5")
    assert addr.uri.transport == "tcp" and addr.params.get("expires") == "60"
    assert addr.params.get("q") == "0.5"


def test_name_addr_keeps_and_renders_text():
    text = '"Bob" <sip:bob@198.18.0.2>;tag=1'
    assert str(NameAddr.parse(text)) == text
    built = NameAddr.build("sip:carol@198.18.0.3", display='Carol "C"', tag="x")
    assert str(built) == '"Carol \\"C\\"" <sip:carol@198.18.0.3>;tag=x'
    assert NameAddr.parse(str(built)).display == 'Carol "C"'


@pytest.mark.parametrize("value, reason", [
    ("", "empty name-addr"),
    ("*", "'\\*' is not a name-addr"),
    ('"Mr. J. User <sip:j.user@example.com>', "unterminated quoted string"),
    ('"Joe" sip:joe@example.org', "not followed by <URI>"),
    ("Bell, Alexander <sip:a.g.bell@example.com>", "must be tokens or a quoted string"),
    ("<sip:a@198.18.0.1", "missing '>'"),
    ("< sip:a@198.18.0.1 >", "spaces or nothing inside"),
    ("<>", "spaces or nothing inside"),
    ("<sip:a@198.18.0.1> junk", "junk"),
    ("<sip:a@198.18.0.1>;", "empty parameter"),
    ("<sip:a@198.18.0.1>;;tag=1", "empty parameter"),
    ("<sip:a@198.18.0.1>;tag=", "has '=' but no value"),
    ("<sip:a@198.18.0.1>;tag=a b", "bad value"),
    ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", "must be enclosed in <...>"),
    ("sip:a b@198.18.0.1", "addr-spec with spaces"),
    ("<sip:a@198.18.0.1:70000>", "bad port"),
])
def test_malformed_name_addrs_raise(value, reason):
    with pytest.raises(SipParseError, match=reason):
        NameAddr.parse(value)


# -- Via -------------------------------------------------------------------------------------------

def test_via_with_all_the_usual_parameters():
    via = Via.parse("SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK776asdhds;rport=5066;received=198.19.0.1")
    assert (via.transport, via.host, via.port) == ("UDP", "198.18.0.1", 5060)
    assert (via.branch, via.rport, via.received, via.has_rport) == (
        "z9hG4bK776asdhds", 5066, "198.19.0.1", True)
    assert str(via) == "SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK776asdhds;rport=5066;received=198.19.0.1"


def test_via_spacing_ipv6_and_lowercase_transport():
    via = Via.parse(" SIP / 2.0 / tls\t[2001:2::5] : 5061 ; branch = z9hG4bK-x ; rport")
    assert (via.transport, via.host, via.port, via.branch) == ("TLS", "2001:2::5", 5061, "z9hG4bK-x")
    assert via.has_rport and via.rport is None and via.sent_by == "[2001:2::5]:5061"
    assert Via.build("tcp", "198.18.0.1", None, branch="z9hG4bK-b").__str__() == \
        "SIP/2.0/TCP 198.18.0.1;branch=z9hG4bK-b"


@pytest.mark.parametrize("value", [
    "", "SIP/2.0/UDP", "SIP/2.0 198.18.0.1", "SIP/2.0/UDP 198.18.0.1;;", "SIP/2.0/UDP 198.18.0.1;",
    "SIP/2.0/UDP host name", "SIP/2.0/UDP 198.18.0.1:0", "SIP/2.0/UDP 198.18.0.1:port",
    "SIP/2.0/UDP [2001:2::1", "SIP/2.0/UDP 2001:2::1", "SIP/2.0/U<DP 198.18.0.1",
    "SIP/2.0/UDP 198.18.0.1;branch=", "SIP/2.0/UDP h\u00f6st",
])
def test_malformed_vias_raise(value):
    with pytest.raises(SipParseError):
        Via.parse(value)


# -- CSeq, Event, Subscription-State ---------------------------------------------------------------

def test_cseq():
    assert CSeq.parse("93809823 REFER") == CSeq(93809823, "REFER")
    assert CSeq.parse("0009\t INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(1, "NOTIFY")) == "1 NOTIFY"
    for bad in ("REFER", "1", "1 2 3", "-1 REFER", "2147483648 REFER", "1 RE<FER", "\u0661 REFER",
                "9" * 5000 + " REFER"):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)


def test_event_with_id():
    event = Event.parse("Refer;id=93809824")
    assert (event.package, event.id) == ("refer", "93809824")
    assert Event.parse("refer").id is None
    for bad in ("", ";id=1", "refer;", "refer;id=", "re fer"):
        with pytest.raises(SipParseError):
            Event.parse(bad)


def test_subscription_state():
    state = SubscriptionState.parse("terminated;reason=noresource")
    assert (state.state, state.reason, state.expires) == ("terminated", "noresource", None)
    active = SubscriptionState.parse("Active ; expires=60")
    assert (active.state, active.expires) == ("active", 60)
    assert SubscriptionState.parse("terminated;retry-after=30").retry_after == 30
    with pytest.raises(SipParseError):
        SubscriptionState.parse("terminated;reason=")


# -- Replaces, Target-Dialog, Refer-Sub, Content-Type ----------------------------------------------

def test_replaces():
    replaces = Replaces.parse("98732@sip.example.com ;from-tag=r33th4x0r ; to-tag=ff87ff;early-only")
    assert (replaces.call_id, replaces.from_tag, replaces.to_tag, replaces.early_only) == (
        "98732@sip.example.com", "r33th4x0r", "ff87ff", True)
    assert str(replaces) == "98732@sip.example.com;to-tag=ff87ff;from-tag=r33th4x0r;early-only"
    for bad in ("", ";to-tag=a;from-tag=b", "id;to-tag=a", "id;from-tag=b", "a b;to-tag=1;from-tag=2",
                "id;to-tag=a;;from-tag=b"):
        with pytest.raises(SipParseError):
            Replaces.parse(bad)


def test_target_dialog():
    td = TargetDialog.parse("7a9f2c@198.18.0.3;remote-tag=cc12;local-tag=aa34")
    assert (td.call_id, td.remote_tag, td.local_tag) == ("7a9f2c@198.18.0.3", "cc12", "aa34")
    with pytest.raises(SipParseError):
        TargetDialog.parse(";local-tag=1")


def test_refer_sub():
    assert parse_refer_sub("false") is False
    assert parse_refer_sub(" TRUE ;x=1") is True
    for bad in ("", "no", "false;", "true;=1"):
        with pytest.raises(SipParseError):
            parse_refer_sub(bad)


def test_content_type():
    ct = ContentType.parse("Message/SipFrag;version=2.0")
    assert (ct.mime, ct.params.get("version")) == ("message/sipfrag", "2.0")
    assert ContentType.parse('multipart/mixed; boundary="a;b"').params.get("boundary") == '"a;b"'
    for bad in ("text", "text/", "/plain", "te xt/plain", "text/plain;"):
        with pytest.raises(SipParseError):
            ContentType.parse(bad)


# -- parameters, lists, numbers, dates -------------------------------------------------------------

def test_params_keep_order_and_case_but_match_names_case_insensitively():
    params = Params.parse('Tag=1; LR ;x="a;b\\"c"')
    assert params.items() == [("Tag", "1"), ("LR", None), ("x", '"a;b\\"c"')]
    assert params.get("tag") == "1" and "lr" in params and params["X"] == '"a;b\\"c"'
    params.set("tag", "2")
    params.remove("lr")
    assert str(params) == ';Tag=2;x="a;b\\"c"'
    assert Params.parse("a=1;b") == Params.parse("B;A=1")
    with pytest.raises(KeyError):
        params["missing"]


def test_split_list():
    assert split_list('a, "b, c" , <sip:d,e@h>,, f') == ["a", '"b, c"', "<sip:d,e@h>", "f"]


def test_parse_delta_and_date():
    assert parse_delta(" 0070 ") == 70
    assert parse_delta("255", 255) == 255
    for bad in ("256", "1" * 30, "-1", "", "7O"):
        with pytest.raises(SipParseError):
            parse_delta(bad, 255)
    assert parse_date("Sat, 13 Nov 2010 23:29:00 GMT").isoformat() == "2010-11-13T23:29:00+00:00"
    for bad in ("Fri, 01 Jan 2010 16:00:00 EST", "Sat, 31 Feb 2010 23:29:00 GMT", "yesterday"):
        with pytest.raises(SipParseError):
            parse_date(bad)
