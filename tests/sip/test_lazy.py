"""What parse() leaves for later — Header objects, the header index, the CSeq view, the
Request-URI of a known start line — and the quick checks that stand in for the full parsers:
the message must look the same whichever path was taken."""

from __future__ import annotations

import random

import pytest

from referee.sip import CSeq, Request, SipParseError, SipUri, parse, parse_delta, parse_uri
from referee.sip.uri import parses_as_plain_sip_uri
from referee.sip import message as message_module
from sip_samples import INVITE_REPLACES, NOTIFY_SIPFRAG, REFER_REPLACES, RESPONSE_202, build

BASIC = [
    "Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK-lazy",
    "Max-Forwards: 70",
    "From: <sip:alice@198.18.0.1>;tag=1",
    "To: <sip:bob@198.18.0.2>",
    "Call-ID: lazy-1@198.18.0.1",
    "CSeq: 1 OPTIONS",
]


def options(*extra: str, start: str = "OPTIONS sip:bob@198.18.0.2 SIP/2.0") -> bytes:
    return build(start, BASIC + list(extra))


# -- header fields made on first use ------------------------------------------------------------

@pytest.mark.parametrize("data", [REFER_REPLACES, NOTIFY_SIPFRAG, INVITE_REPLACES, RESPONSE_202])
def test_fields_made_later_have_the_offsets_names_and_values_of_their_lines(data):
    msg = parse(data)
    head = data[:data.index(b"\r\n\r\n")].decode().split("\r\n")[1:]
    fields = msg.header_fields
    assert [(h.name, h.value) for h in fields] == [
        (line.split(":", 1)[0], line.split(":", 1)[1].strip()) for line in head]
    assert [h.offset for h in fields] == [data.index(line.encode()) for line in head]
    assert msg.header_fields is not fields and msg.header_fields == fields


def test_lookups_before_and_after_the_fields_are_made_agree():
    first, second = parse(REFER_REPLACES), parse(REFER_REPLACES)
    assert first.header("x-trace") == "unknown-1"            # index made before anything else
    second.header_fields                                      # fields made first
    for msg in (first, second):
        assert msg.header_all("X-Trace") == ["unknown-1", "unknown-2"]
        assert msg.header("Nope") is None and msg.header_all("Nope") == []
        assert msg.cseq == CSeq(93809823, "REFER")


def test_the_header_index_follows_every_change():
    msg = parse(options("Supported: timer", "Supported: replaces"))
    assert msg.header_all("Supported") == ["timer", "replaces"]
    msg.set_header("supported", "100rel")
    assert msg.header_all("Supported") == ["100rel"] and msg.supported == ["100rel"]
    msg.add_header("k", "path")
    assert msg.header_all("Supported") == ["100rel", "path"]
    msg.add_header("Subject", "first", first=True)
    assert msg.header_fields[0].name == "Subject" and msg.header("s") == "first"
    msg.remove_header("Supported")
    assert msg.header("Supported") is None and msg.supported == []
    msg.set_header("X-New", "1")
    assert msg.header("x-new") == "1" and msg.count("X-New") == 1
    assert parse(bytes(msg)).headers == msg.headers


def test_views_are_recomputed_after_a_change():
    msg = parse(options("Expires: 60"))
    assert msg.expires == 60 and msg.cseq.seq == 1
    msg.set_header("Expires", "120")
    msg.set_header("CSeq", "2 OPTIONS")
    assert msg.expires == 120 and msg.cseq == CSeq(2, "OPTIONS")
    msg.set_header("Expires", "soon")
    with pytest.raises(SipParseError, match="Expires"):
        msg.expires


@pytest.mark.parametrize("data", [REFER_REPLACES, options("Subject: folded", " twice")])
def test_a_copy_made_before_the_fields_is_independent(data):
    msg = parse(data)
    clone = msg.copy()                       # neither has made its Header objects yet
    clone.set_header("Max-Forwards", "69")
    assert msg.max_forwards == 70 and clone.max_forwards == 69
    assert bytes(msg) == data and b"Max-Forwards: 69\r\n" in bytes(clone)
    other = msg.copy()
    msg.header_fields[0].value = "changed"   # fields of one message are its own
    assert other.header("Via") != "changed" and clone.header("Via") != "changed"


def test_a_line_without_a_colon_is_refused_even_when_it_is_a_header_name():
    for name in ("Via", "Subject", "X-Trace"):
        parse(options(f"{name}: known now"))   # (the name is met with a colon first)
        with pytest.raises(SipParseError, match="expected 'Name: value'"):
            parse(options(name))


def test_names_written_with_spaces_before_the_colon():
    msg = parse(options("X-Spaced  : 1", "Subject\t: hi"))
    assert msg.header("x-spaced") == "1" and msg.header("Subject") == "hi"
    assert [h.name for h in msg.header_fields][-3:-1] == ["X-Spaced", "Subject"]
    assert parse(options("X-Spaced  : 2")).header("X-Spaced") == "2"   # now a known spelling


# -- checks done quickly, or by the full parsers ------------------------------------------------

@pytest.mark.parametrize("cseq, seq", [("1 OPTIONS", 1), ("0009 OPTIONS", 9), ("0 OPTIONS", 0),
                                       ("2147483647 OPTIONS", 2 ** 31 - 1),
                                       ("1  OPTIONS", 1), ("00000000001 OPTIONS", 1)])
def test_cseq_values_that_parse(cseq, seq):
    data = options().replace(b"CSeq: 1 OPTIONS", f"CSeq: {cseq}".encode())
    assert parse(data).cseq == CSeq(seq, "OPTIONS")


@pytest.mark.parametrize("cseq", ["2147483648 OPTIONS", "99999999999 OPTIONS", "-1 OPTIONS",
                                  "1 OPT\x01IONS", "1", "one OPTIONS", "1 OPTIONS x", "\u0661 OPTIONS"])
def test_cseq_values_that_do_not(cseq):
    data = options().replace(b"CSeq: 1 OPTIONS", f"CSeq: {cseq}".encode())
    with pytest.raises(SipParseError, match="CSeq") as info:
        parse(data)
    assert info.value.offset == data.index(b"CSeq:")


def test_cseq_of_an_unusual_method_is_checked_in_full():
    data = build("FOO sip:bob@198.18.0.2 SIP/2.0", BASIC[:-1] + ["CSeq: 7 FOO"])
    assert parse(data).cseq == CSeq(7, "FOO")
    with pytest.raises(SipParseError, match="does not match"):
        parse(data.replace(b"CSeq: 7 FOO", b"CSeq: 7 INVITE"))


@pytest.mark.parametrize("call_id", ["has space", "tab\tinside", "caf\u00e9", "nul\x00", ""])
def test_call_ids_that_do_not_parse(call_id):
    data = options().replace(b"Call-ID: lazy-1@198.18.0.1", f"Call-ID: {call_id}".encode())
    with pytest.raises(SipParseError, match="Call-ID"):
        parse(data)


@pytest.mark.parametrize("value, length", [("0", 0), ("000000000000003", 3), (" 3 ", 3),
                                           ("4294967295", None)])
def test_content_length_values(value, length):
    data = options().replace(b"Content-Length: 0", f"Content-Length: {value}".encode()) + b"abc"
    if length is None:
        with pytest.raises(SipParseError, match="Content-Length"):
            parse(data)
    else:
        assert parse(data).content_length == length


def test_parse_delta_with_very_long_numbers_raises_only_parse_errors():
    assert parse_delta("0" * 5000 + "7") == 7
    with pytest.raises(SipParseError):
        parse_delta("9" * 5000)


# -- start lines checked once -------------------------------------------------------------------

def test_a_known_start_line_gives_the_same_message_as_the_first_time():
    data = options()
    first, second = parse(data), parse(data)
    assert (second.method, second.uri_text, second.version) == (first.method, first.uri_text,
                                                                first.version)
    assert second.uri == first.uri and second.uri is not first.uri


def test_a_request_uri_written_with_a_tab_is_rendered_the_same_each_time():
    data = options(start="OPTIONS \tsip:bob@198.18.0.2 SIP/2.0")
    assert parse(data).uri_text == parse(data).uri_text == "sip:bob@198.18.0.2"


@pytest.mark.parametrize("start, reason", [("SIP/2.0 200 OK", "OK"), ("SIP/2.0 200 ", ""),
                                           ("sip/2.0 404 Not Here", "Not Here")])
def test_known_status_lines_keep_reason_and_version_as_written(start, reason):
    data = build(start, BASIC)
    for msg in (parse(data), parse(data)):
        assert (msg.reason, msg.version) == (reason, start.split(" ")[0])
        assert msg.start_line() == start


def test_a_status_line_without_a_reason_is_noted_every_time():
    data = build("SIP/2.0 200", BASIC)
    for _ in range(2):
        assert parse(data).defects == ["status line without the space before the reason phrase"]


def test_bad_start_lines_are_refused_every_time():
    for _ in range(2):
        with pytest.raises(SipParseError, match="header component"):
            parse(options(start="OPTIONS sip:bob@198.18.0.2?Subject=x SIP/2.0"))


def test_the_start_line_memory_stays_bounded():
    for i in range(message_module._GOOD_START_LINES_MAX + 10):
        parse(options(start=f"OPTIONS sip:u{i}@198.18.0.2 SIP/2.0"))
    assert len(message_module._GOOD_START_LINES) <= message_module._GOOD_START_LINES_MAX
    assert isinstance(parse(options()), Request)


# -- URIs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["sip:a@198.18.0.1?x=<", "sip:a@198.18.0.1?x=\u00e9",
                                  "sip:a@198.18.0.1;p=1?h=a b"])
def test_illegal_characters_in_uri_headers_are_named(text):
    with pytest.raises(SipParseError, match="illegal character"):
        parse_uri(text)


@pytest.mark.parametrize("text, plain", [
    ("sip:bob@198.18.0.2", True), ("sips:bob:pw@host.example;transport=tls;lr", True),
    ("sip:198.18.0.2:5060", True), ("sip:b@h:65535", True),
    ("sip:b@h:65536", False), ("sip:b@h:0", False), ("sip:c%61rol@h", False),
    ("sip:b@[2001:2::3]", False), ("sip:b@h?Replaces=x", False), ("SIP:b@h", False),
    (" sip:b@h", False), ("tel:+1234", False), ("sip:b@h;p=%20", False), ("sip:", False)])
def test_plain_sip_uris_are_recognised_without_being_built(text, plain):
    assert parses_as_plain_sip_uri(text) is plain
    if plain:
        uri = parse_uri(text)
        assert isinstance(uri, SipUri) and uri.headers == () and str(uri) == text


def test_a_uri_found_plain_always_parses():
    rng = random.Random(7)
    seeds = ["sip:bob@198.18.0.2:5060;transport=udp", "sips:a:b@host.example;lr", "sip:h:1"]
    alphabet = "%[]?:;@=&<>\\\"\x00 \t.-_~!*'()/$,+#0123456789abcxyzABC\u00e9"
    for _ in range(20000):
        text = rng.choice(seeds)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(alphabet) + text[at + rng.randint(0, 2):]
        if parses_as_plain_sip_uri(text):
            uri = parse_uri(text)
            assert isinstance(uri, SipUri) and uri.headers == (), text
