"""Minimal SDP (RFC 4566): parsing, direction (hold), offers and RFC 3264 answers."""

from __future__ import annotations

import pytest

from referee.sip import Sdp, SipParseError, parse
from sip_samples import INVITE_REPLACES, SDP_OFFER

TWO_STREAMS = (
    b"v=0\r\n"
    b"o=jdoe 2890844526 2890842807 IN IP4 198.18.0.5\r\n"
    b"s=SDP Seminar\r\n"
    b"i=A Seminar on the session description protocol\r\n"
    b"c=IN IP4 233.252.0.12/127\r\n"
    b"b=AS:128\r\n"
    b"t=2873397496 2873404696\r\n"
    b"a=recvonly\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"m=video 51372/2 RTP/AVP 99\r\n"
    b"c=IN IP6 2001:2::12\r\n"
    b"b=TIAS:64000\r\n"
    b"a=rtpmap:99 h263-1998/90000\r\n"
    b"a=sendonly\r\n")


def test_parse_offer():
    sdp = Sdp.parse(SDP_OFFER)
    assert sdp.version == 0 and sdp.session_name == "-"
    o = sdp.origin
    assert (o.username, o.session_id, o.version, o.nettype, o.addrtype, o.address) == (
        "bob", 2890844526, 2890844526, "IN", "IP4", "198.18.0.2")
    assert sdp.connection.address == "198.18.0.2" and sdp.times == [(0, 0)]
    [audio] = sdp.media
    assert (audio.kind, audio.port, audio.proto, audio.formats) == ("audio", 49170, "RTP/AVP",
                                                                     ["0", "8", "101"])
    assert audio.attributes[:2] == [("rtpmap", "0 PCMU/8000"), ("rtpmap", "8 PCMA/8000")]
    assert audio.attributes[-1] == ("sendrecv", None)
    assert audio.rtpmap["101"] == "telephone-event/8000" and audio.fmtp == {"101": "0-16"}
    assert audio.direction == "sendrecv" and sdp.direction == "sendrecv"
    assert sdp.defects == []


def test_session_and_media_level_connection_and_direction():
    sdp = Sdp.parse(TWO_STREAMS)
    audio, video = sdp.media
    assert (sdp.connection.address, sdp.connection.ttl) == ("233.252.0.12", 127)
    assert audio.connection is None and sdp.connection_for(audio) is sdp.connection
    assert (video.connection.addrtype, video.connection.address) == ("IP6", "2001:2::12")
    assert sdp.connection_for(video) is video.connection
    assert audio.direction == "recvonly"        # inherited from the session level
    assert video.direction == "sendonly"        # media level overrides
    assert sdp.direction == "recvonly"          # the first audio stream
    assert video.port_count == 2 and video.bandwidths == [("TIAS", 64000)]
    assert sdp.bandwidths == [("AS", 128)] and sdp.attribute("recvonly") is None
    assert sdp.attributes == [("recvonly", None)]


def test_hold_with_a_null_connection():
    held = Sdp.parse(SDP_OFFER.replace(b"c=IN IP4 198.18.0.2", b"c=IN IP4 0.0.0.0")
                     .replace(b"a=sendrecv", b"a=inactive"))
    assert held.connection.is_null and held.direction == "inactive"


def test_bare_lf_and_unknown_lines_are_tolerated():
    sdp = Sdp.parse(SDP_OFFER.replace(b"\r\n", b"\n") + b"x=unknown\n")
    assert sdp.media[0].port == 49170 and sdp.defects == ["unknown SDP line type x="]


def test_missing_time_and_connection_are_defects():
    sdp = Sdp.parse(b"v=0\r\no=- 1 1 IN IP4 198.18.0.1\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n")
    assert sdp.defects == ["no t= line", "no c= line for the audio stream"]


@pytest.mark.parametrize("body, reason", [
    (b"", "empty body"),
    (b"o=- 1 1 IN IP4 198.18.0.1\r\n", "first line must be v="),
    (b"v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\n", "unsupported SDP version"),
    (b"v=0\r\ns=-\r\n", "missing o="),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\n", "missing s="),
    (b"v=0\r\no=- x 1 IN IP4 h\r\ns=-\r\n", "bad o= session id"),
    (b"v=0\r\no=- 1 IN IP4 h\r\ns=-\r\n", "expected 6 fields"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=\r\n", "empty s= line"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4\r\n", "bad c= line"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n", "m= port 70000 is above"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 4000 RTP/AVP\r\n", "bad m= line"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", "inside a media"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nb=AS\r\n", "bad b= line"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0\r\n", "bad t= line"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\na=\r\n", "bad attribute"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n\r\nt=0 0\r\n", "bad line"),
    (b"v = 0\r\n", "bad line"),
    (b"v=0\r\nv=0\r\n", "more than one v="),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 a\r\nc=IN IP4 b\r\n", "two session-level c="),
])
def test_malformed_sdp_raises(body, reason):
    with pytest.raises(SipParseError, match=reason):
        Sdp.parse(body)


def test_offer_ipv4():
    body = Sdp.offer("198.18.0.2", 40000, session_id=123, version=2)
    assert body == (b"v=0\r\no=referee 123 2 IN IP4 198.18.0.2\r\ns=referee\r\n"
                    b"c=IN IP4 198.18.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\n"
                    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
                    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n")
    assert Sdp.parse(body).media[0].encoding("0") == "PCMU/8000"


def test_offer_ipv6_and_hold():
    sdp = Sdp.parse(Sdp.offer("[2001:2::2]", 40002, formats=(8, 96), direction="sendonly"))
    assert (sdp.origin.addrtype, sdp.connection.address) == ("IP6", "2001:2::2")
    assert sdp.media[0].formats == ["8", "96"] and sdp.media[0].fmtp == {"96": "0-16"}
    assert sdp.direction == "sendonly" and sdp.origin.session_id > 0


@pytest.mark.parametrize("kwargs", [dict(address="pbx.example.com"), dict(port=70000),
                                    dict(direction="both"), dict(formats=(0, 77)),
                                    dict(formats=("0",))])
def test_offer_rejects_bad_arguments(kwargs):
    args = dict(address="198.18.0.2", port=4000) | kwargs
    with pytest.raises(ValueError):
        Sdp.offer(**args)


def test_answer_mirrors_direction_and_keeps_offered_payload_numbers():
    offer = Sdp.parse(Sdp.offer("198.18.0.2", 40000, formats=(18, 8, 0, 96), direction="sendonly"))
    answer = Sdp.parse(Sdp.answer(offer, "198.18.0.3", 50000))
    [audio] = answer.media
    assert audio.port == 50000 and audio.formats == ["8", "0", "96"]   # offer order, no G.729
    assert audio.rtpmap == {"8": "PCMA/8000", "0": "PCMU/8000", "96": "telephone-event/8000"}
    assert audio.fmtp == {"96": "0-16"} and audio.direction == "recvonly"
    assert answer.connection.address == "198.18.0.3"
    forced = Sdp.parse(Sdp.answer(offer, "198.18.0.3", 50000, direction="inactive"))
    assert forced.direction == "inactive"


def test_answer_refuses_streams_it_cannot_take():
    answer = Sdp.parse(Sdp.answer(TWO_STREAMS, "2001:2::3", 50000))
    audio, video = answer.media
    assert (audio.port, audio.formats, audio.direction) == (50000, ["0"], "sendonly")
    assert (video.kind, video.port, video.formats) == ("video", 0, ["99"])
    assert answer.origin.addrtype == "IP6"
    no_codec = Sdp.parse(Sdp.answer(SDP_OFFER.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 18 101"),
                                    "198.18.0.3", 50000))
    assert no_codec.media[0].port == 0   # telephone-event alone is no audio


def test_message_sdp_view():
    sdp = parse(INVITE_REPLACES).sdp()
    assert sdp.media[0].rtpmap["0"] == "PCMU/8000"
