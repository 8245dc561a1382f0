"""SIP, SIPS, TEL and other URIs: parts, escapes, IPv6, parameters, URI headers, comparison."""

from __future__ import annotations

import pytest

from referee.sip import (SipParseError, SipUri, TelUri, Uri, escape_header_value, make_sip_uri,
                         parse_uri, unescape)


def test_full_sip_uri():
    uri = parse_uri("sips:alice:secret@Atlanta.example.com:5061;transport=TCP;lr;maddr=198.18.0.5")
    assert isinstance(uri, SipUri) and uri.scheme == "sips"
    assert (uri.user, uri.password, uri.host, uri.port) == ("alice", "secret", "Atlanta.example.com", 5061)
    assert uri.transport == "tcp" and uri.has_param("lr") and uri.param("maddr") == "198.18.0.5"
    assert str(uri) == "sips:alice:secret@Atlanta.example.com:5061;transport=TCP;lr;maddr=198.18.0.5"


def test_scheme_is_case_insensitive_and_text_is_kept():
    uri = parse_uri("SIP:Bob@198.18.0.2")
    assert uri.scheme == "sip" and uri.user == "Bob" and str(uri) == "SIP:Bob@198.18.0.2"


def test_refer_to_uri_with_escaped_replaces():
    text = ("sip:carol@198.18.0.3?Replaces=7a9f2c%40198.18.0.3%3Bto-tag%3Dcc12%3Bfrom-tag%3Daa34"
            "&Require=replaces")
    uri = parse_uri(text)
    assert uri.headers == (("Replaces", "7a9f2c@198.18.0.3;to-tag=cc12;from-tag=aa34"),
                           ("Require", "replaces"))
    assert uri.header("replaces") == "7a9f2c@198.18.0.3;to-tag=cc12;from-tag=aa34"
    assert uri.header("Accept") is None


def test_make_sip_uri_escapes_replaces_and_round_trips():
    replaces = "7a9f2c@198.18.0.3;to-tag=cc12;from-tag=aa34;early-only"
    uri = make_sip_uri("198.18.0.3", 5060, user="carol", headers=[("Replaces", replaces)])
    assert str(uri) == ("sip:carol@198.18.0.3:5060?Replaces=7a9f2c%40198.18.0.3%3Bto-tag%3Dcc12"
                        "%3Bfrom-tag%3Daa34%3Bearly-only")
    assert parse_uri(str(uri)).header("Replaces") == replaces
    assert escape_header_value("a b&c=d") == "a%20b%26c%3Dd"


def test_semicolons_and_question_marks_in_the_user_part():
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u@example.net" and uri.host == "example.com" and len(uri.params) == 0
    assert parse_uri("sip:a?b@example.com").user == "a?b"


def test_escapes_in_user_and_parameters():
    uri = parse_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "caller"
    assert uri.has_param("lr") and uri.param("name") == "value%41"
    assert uri.params.items() == [("%6C%72", None), ("n%61me", "v%61lue%25%34%31")]   # as written


def test_escaped_non_utf8_octets_round_trip():
    uri = parse_uri("sip:%FF%00x@example.com")
    assert uri.user.encode("utf-8", "surrogateescape") == b"\xff\x00x"
    assert str(uri.replace(port=5060)) == "sip:%FF%00x@example.com:5060"


def test_ipv6_hosts():
    uri = parse_uri("sip:bob@[2001:2::2]:5070;transport=udp")
    assert (uri.host, uri.port, uri.is_ipv6, uri.hostport) == ("2001:2::2", 5070, True, "[2001:2::2]:5070")
    assert parse_uri("sip:[::ffff:198.18.0.1]").host == "::ffff:198.18.0.1"
    assert make_sip_uri("2001:2::9", 5060).text == "sip:[2001:2::9]:5060"


def test_tel_and_other_schemes():
    tel = parse_uri("tel:+1-201-555-0123;ext=1234;phone-context=example.com")
    assert isinstance(tel, TelUri) and tel.number == "+1-201-555-0123"
    assert tel.params.get("ext") == "1234"
    other = parse_uri("urn:service:sos")
    assert type(other) is Uri and other.scheme == "urn" and str(other) == "urn:service:sos"
    assert parse_uri("soap.beep://198.18.0.4:3002").scheme == "soap.beep"


def test_replace_renders_a_new_uri():
    uri = parse_uri("sip:bob@198.18.0.2;transport=udp")
    moved = uri.replace(host="198.19.0.1", port=5062, params={"transport": "tcp", "lr": None})
    assert str(moved) == "sip:bob@198.19.0.1:5062;transport=tcp;lr"
    assert moved.transport == "tcp" and str(uri) == "sip:bob@198.18.0.2;transport=udp"


def test_equivalence_rules_of_rfc3261():
    a = parse_uri("sip:%61lice@ATLANTA.example.com;transport=TCP")
    b = parse_uri("sip:alice@atlanta.example.com;Transport=tcp")
    assert a.equivalent(b) and a != b   # equivalent, but not the same text
    assert not a.equivalent(parse_uri("sip:alice@atlanta.example.com"))   # transport differs
    assert not parse_uri("sip:bob@h").equivalent(parse_uri("sip:bob@h:5060"))
    assert parse_uri("sip:bob@h;x=1").equivalent(parse_uri("sip:bob@h"))   # other params ignored
    assert not parse_uri("sip:bob@h?Subject=a").equivalent(parse_uri("sip:bob@h"))


def test_uris_are_hashable_and_compare_by_text():
    assert len({parse_uri("sip:a@h"), parse_uri("sip:a@h"), parse_uri("sip:b@h")}) == 2


@pytest.mark.parametrize("text", [
    "", "sip", "sip:", ":x", "1sip:x@h", "sip:bob@", "sip:@h", "sip:bob@h:0", "sip:bob@h:65536",
    "sip:bob@h:99999999999999999999", "sip:bob@h:5o60", "sip:bob@h;", "sip:bob@h;;lr",
    "sip:bob@h;=x", "sip:bob@h;x=", "sip:bob@h?", "sip:bob@h?noequals", "sip:bob@[2001:2::1",
    "sip:bob@[zz::1]", "sip:bob@[2001:2::1]x", "sip:bob@[fe80::1%25eth0]", "sip:bob@2001:2::1",
    "sip:bob b@h", "sip:<bob@h>", 'sip:"bob"@h', "sip:bob@h\x00", "sip:b\u00f6b@h",
    "sip:bob%zz@h", "sip:bob%4@h", "sip:bob@ho st", "sip:bob@h!st", "tel:", "tel:abc", "mailto:a b",
])
def test_malformed_uris_raise(text):
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_unescape():
    assert unescape("a%20b%2c") == "a b,"
    with pytest.raises(SipParseError, match="bad %-escape"):
        unescape("50%")


def test_local_tel_numbers_need_a_phone_context():
    assert parse_uri("tel:7042;phone-context=example.com").number == "7042"
    assert parse_uri("tel:*97#;phone-context=+1-201").number == "*97#"
    with pytest.raises(SipParseError, match="phone-context"):
        parse_uri("tel:7042")
