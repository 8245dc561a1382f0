"""Real-world call-transfer messages shared by the referee.sip tests (addresses: 198.18.0.0/15)."""

from __future__ import annotations


def build(start: str, headers: list[str], body: bytes = b"", length: int | None = None) -> bytes:
    """A message from its lines; Content-Length is computed unless `length` is given."""
    lines = [start, *headers, f"Content-Length: {len(body) if length is None else length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


SDP_OFFER = (
    b"v=0\r\n"
    b"o=bob 2890844526 2890844526 IN IP4 198.18.0.2\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.18.0.2\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=sendrecv\r\n")

# Attended transfer (RFC 5589 §7): Alice asks Bob to call Carol, replacing Carol's early dialog.
REFER_REPLACES = build("REFER sip:bob@198.18.0.2:5060 SIP/2.0", [
    "Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK-refer-1;rport",
    "Max-Forwards: 70",
    'From: "Alice" <sip:alice@198.18.0.1>;tag=a73kszlfl',
    "To: <sip:bob@198.18.0.2>;tag=1kmmc8",
    "Call-ID: 4f9c2d1e@198.18.0.1",
    "CSeq: 93809823 REFER",
    "Contact: <sip:alice@198.18.0.1:5060>",
    "Refer-To: <sip:carol@198.18.0.3:5060?Replaces=7a9f2c%40198.18.0.3%3Bto-tag%3Dcc12"
    "%3Bfrom-tag%3Daa34%3Bearly-only>",
    "Referred-By: <sip:alice@198.18.0.1>",
    "X-Trace: unknown-1",
    "Supported: replaces, norefersub",
    "X-Trace: unknown-2",
])

# Blind transfer without an implicit subscription (RFC 4488) inside a known dialog (RFC 4538).
REFER_NOSUB = build("REFER sip:bob@198.18.0.2:5060 SIP/2.0", [
    "Via: SIP/2.0/TCP 198.18.0.1:5060;branch=z9hG4bK-refer-2",
    "Max-Forwards: 70",
    "From: <sip:alice@198.18.0.1>;tag=a73kszlfl",
    "To: <sip:bob@198.18.0.2>;tag=1kmmc8",
    "Call-ID: 4f9c2d1e@198.18.0.1",
    "CSeq: 93809824 REFER",
    "Contact: <sip:alice@198.18.0.1:5060;transport=tcp>",
    "Refer-To: <sip:carol@198.18.0.3>",
    "Refer-Sub: false",
    "Target-Dialog: 9c2d1e4f@198.18.0.1;local-tag=1kmmc8;remote-tag=a73kszlfl",
    "Require: norefersub",
])

SIPFRAG_200 = b"SIP/2.0 200 OK\r\n"

# The final NOTIFY of the implicit subscription (RFC 3515 §2.4.5, RFC 6665 §4.1.3).
NOTIFY_SIPFRAG = build("NOTIFY sip:alice@198.18.0.1:5060 SIP/2.0", [
    "Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK-notify-1",
    "Max-Forwards: 70",
    "From: <sip:bob@198.18.0.2>;tag=1kmmc8",
    'To: "Alice" <sip:alice@198.18.0.1>;tag=a73kszlfl',
    "Call-ID: 4f9c2d1e@198.18.0.1",
    "CSeq: 1993402 NOTIFY",
    "Contact: <sip:bob@198.18.0.2:5060>",
    "Event: refer;id=93809823",
    "Subscription-State: terminated;reason=noresource",
    "Content-Type: message/sipfrag;version=2.0",
], SIPFRAG_200)

# Bob's INVITE to Carol after the REFER above (RFC 3891 §3, RFC 3892).
INVITE_REPLACES = build("INVITE sip:carol@198.18.0.3:5060 SIP/2.0", [
    "Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK-invite-1;rport",
    "Max-Forwards: 70",
    'From: "Bob" <sip:bob@198.18.0.2>;tag=8d7f6e5a',
    "To: <sip:carol@198.18.0.3>",
    "Call-ID: 3c26700f0b9a4a2e@198.18.0.2",
    "CSeq: 1 INVITE",
    "Contact: <sip:bob@198.18.0.2:5060>",
    "Replaces: 7a9f2c@198.18.0.3;to-tag=cc12;from-tag=aa34;early-only",
    'Referred-By: "Alice" <sip:alice@198.18.0.1>;cid="20398823.2UWQFN309shb3@198.18.0.1"',
    "Target-Dialog: 7a9f2c@198.18.0.3;remote-tag=cc12;local-tag=aa34",
    "Allow: INVITE, ACK, CANCEL, BYE, REFER, NOTIFY",
    "Supported: replaces, tdialog",
    "Content-Type: application/sdp",
], SDP_OFFER)

RESPONSE_202 = build("SIP/2.0 202 Accepted", [
    "Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK-refer-1;rport=5060;received=198.18.0.1",
    'From: "Alice" <sip:alice@198.18.0.1>;tag=a73kszlfl',
    "To: <sip:bob@198.18.0.2>;tag=1kmmc8",
    "Call-ID: 4f9c2d1e@198.18.0.1",
    "CSeq: 93809823 REFER",
    "Contact: <sip:bob@198.18.0.2:5060>",
])

# Every header in compact form (RFC 3261 §7.3.3, RFC 3515, RFC 3892, RFC 6665).
COMPACT_REFER = build("REFER sip:bob@198.18.0.2 SIP/2.0", [
    "v: SIP/2.0/UDP 198.18.0.1;branch=z9hG4bK-compact",
    "Max-Forwards: 70",
    "f: <sip:alice@198.18.0.1>;tag=111",
    "t: <sip:bob@198.18.0.2>;tag=222",
    "i: compact-1@198.18.0.1",
    "CSeq: 7 REFER",
    "m: <sip:alice@198.18.0.1>",
    "r: <sip:carol@198.18.0.3>",
    "b: <sip:alice@198.18.0.1>",
    "k: norefersub",
    "u: refer",
    "c: text/plain",
], b"hello").replace(b"Content-Length:", b"l:")

# An IPv6 INVITE (test range 2001:2::/48).
INVITE_IPV6 = build("INVITE sip:carol@[2001:2::3]:5060 SIP/2.0", [
    "Via: SIP/2.0/UDP [2001:2::2]:5060;branch=z9hG4bK-v6;received=2001:2::99",
    "Max-Forwards: 70",
    "From: <sip:bob@[2001:2::2]>;tag=v6a",
    "To: <sip:carol@[2001:2::3]>",
    "Call-ID: v6call@2001:2::2",
    "CSeq: 1 INVITE",
    "Contact: <sip:bob@[2001:2::2]:5060;transport=udp>",
])

REAL_MESSAGES = [REFER_REPLACES, REFER_NOSUB, NOTIFY_SIPFRAG, INVITE_REPLACES, RESPONSE_202,
                 COMPACT_REFER, INVITE_IPV6]
