"""Parse throughput of referee.sip against sipmessage (a pure-Python SIP parser on PyPI).

    python bench/bench_parse.py [--rounds 5] [--number 5000]

Both parsers get the same bytes: four real call-transfer messages (an INVITE with SDP, a
NOTIFY with a message/sipfrag body, a 200 OK with SDP, a REFER with Replaces in Refer-To).
"distinct" feeds `--number` copies of each message that neither parser has seen before (every
round has new ones: Call-ID, tags, branch, CSeq and Request-URI user all change, so no cache
helps); "repeated" parses one copy over and over (as between two peers, where start lines and
many header lines repeat). Each figure is the best of `--rounds` rounds, both parsers timed in
turn in one process; the ratio is referee's rate over sipmessage's.

What each parse does:
- referee.sip.parse: finds the head (CRLF or bare-LF empty line), decodes it, checks the start
  line and the Request-URI (a start line met before is not checked again; a Request-URI is
  built into an object on first use), that every header name is a token, that Via, From, To,
  Call-ID and CSeq are there and the single-valued headers appear once, the CSeq number and
  method, Call-ID and Content-Length, and cuts the body at Content-Length; keeps the raw bytes.
  Header objects, their index by name and the typed views are made on first use.
- sipmessage.Message.parse: splits head and body at the first CRLFCRLF, decodes the head,
  parses the start line (the Request-URI into a URI object), splits every header line at its
  colon and groups the values by name. It checks neither names nor mandatory headers nor
  Content-Length.

The "full" line (referee only) also reads every typed view and the SDP body of the INVITE.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from referee.sip import parse  # noqa: E402

try:
    from sipmessage import Message as SipmessageMessage
except ImportError:   # the comparison is optional
    SipmessageMessage = None


def build(start: str, headers: list[str], body: bytes = b"") -> bytes:
    lines = [start, *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


SDP = (b"v=0\r\n"
       b"o=bob 2890844526 2890844526 IN IP4 198.18.0.2\r\n"
       b"s=-\r\n"
       b"c=IN IP4 198.18.0.2\r\n"
       b"t=0 0\r\n"
       b"m=audio 49170 RTP/AVP 0 8 101\r\n"
       b"a=rtpmap:0 PCMU/8000\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\n"
       b"a=fmtp:101 0-16\r\n")

# {n} makes each copy different (see distinct_copies).
INVITE = build("INVITE sip:carol{n}@198.18.0.3:5060;transport=udp SIP/2.0", [
    "Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK.a1b2{n};rport",
    "Max-Forwards: 70",
    'From: "Bob" <sip:bob@198.18.0.2>;tag=8d7f{n}',
    "To: <sip:carol@198.18.0.3>",
    "Call-ID: 3c26700f0b9a{n}@198.18.0.2",
    "CSeq: 1{n} INVITE",
    "Contact: <sip:bob@198.18.0.2:5060;transport=udp>",
    "Referred-By: <sip:alice@198.18.0.1>",
    "Replaces: 7a9f2c@198.18.0.1;to-tag=cc12;from-tag=aa34",
    "Allow: INVITE, ACK, CANCEL, BYE, REFER, NOTIFY",
    "Supported: replaces, timer",
    "Content-Type: application/sdp",
], SDP)

NOTIFY = build("NOTIFY sip:alice{n}@198.18.0.1:5060 SIP/2.0", [
    "Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK-notify-{n}",
    "Max-Forwards: 70",
    "From: <sip:bob@198.18.0.2>;tag=1kmmc8{n}",
    'To: "Alice" <sip:alice@198.18.0.1>;tag=a73kszlfl',
    "Call-ID: 4f9c2d1e{n}@198.18.0.1",
    "CSeq: 1993{n} NOTIFY",
    "Contact: <sip:bob@198.18.0.2:5060>",
    "Event: refer;id=93809823",
    "Subscription-State: terminated;reason=noresource",
    "Content-Type: message/sipfrag;version=2.0",
], b"SIP/2.0 200 OK\r\n")

OK_200 = build("SIP/2.0 200 OK", [
    "Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK.a1b2{n};rport=5060;received=198.18.0.2",
    "Record-Route: <sip:198.18.0.9;lr>",
    'From: "Bob" <sip:bob@198.18.0.2>;tag=8d7f{n}',
    "To: <sip:carol@198.18.0.3>;tag=c4r0l{n}",
    "Call-ID: 3c26700f0b9a{n}@198.18.0.2",
    "CSeq: 1{n} INVITE",
    "Contact: <sip:carol@198.18.0.3:5060>",
    "Allow: INVITE, ACK, CANCEL, BYE, REFER, NOTIFY",
    "Supported: replaces",
    "Content-Type: application/sdp",
], SDP.replace(b"bob", b"carol").replace(b"198.18.0.2", b"198.18.0.3"))

REFER = build("REFER sip:bob{n}@198.18.0.2:5060 SIP/2.0", [
    "Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK-refer-{n};rport",
    "Max-Forwards: 70",
    'From: "Alice" <sip:alice@198.18.0.1>;tag=a73k{n}',
    "To: <sip:bob@198.18.0.2>;tag=1kmmc8",
    "Call-ID: 4f9c2d1e{n}@198.18.0.1",
    "CSeq: 93{n} REFER",
    "Contact: <sip:alice@198.18.0.1:5060>",
    "Refer-To: <sip:carol@198.18.0.3:5060?Replaces=7a9f2c%40198.18.0.3%3Bto-tag%3Dcc12"
    "%3Bfrom-tag%3Daa34%3Bearly-only>",
    "Referred-By: <sip:alice@198.18.0.1>",
    "Supported: replaces, norefersub",
])

MESSAGES = {"INVITE with SDP": INVITE, "NOTIFY with sipfrag": NOTIFY, "200 OK with SDP": OK_200,
            "REFER with Replaces": REFER}


def distinct_copies(template: bytes, number: int, first: int = 0) -> list[bytes]:
    """`number` copies of a message, each with its own Call-ID, tags, branch, CSeq and URI."""
    return [template.replace(b"{n}", str(100000 + i).encode())
            for i in range(first, first + number)]


def check_same_message(data: bytes) -> None:
    """Both parsers read the same message the same way (so the timing compares like with like)."""
    ours = parse(data)
    if SipmessageMessage is not None:
        theirs = SipmessageMessage.parse(data)
        assert ours.call_id == theirs.headers.get("Call-ID"), "parsers disagree on Call-ID"
        assert ours.body == theirs.body, "parsers disagree on the body"
        fields = sum(len(theirs.headers.getlist(name)) for name in theirs.headers.keys())
        assert len(ours.headers) == fields, "parsers disagree on the header fields"


def full(data: bytes) -> None:
    msg = parse(data)
    msg.via, msg.cseq, msg.from_, msg.to, msg.contact, msg.call_id, msg.max_forwards
    msg.content_length, msg.content_type, msg.replaces, msg.referred_by, msg.route
    msg.record_route, msg.refer_to, msg.event, msg.supported, msg.allow, msg.uri
    msg.sdp()


def seconds_for(func: Callable[[bytes], object], messages: list[bytes]) -> float:
    start = time.perf_counter()
    for data in messages:
        func(data)
    return time.perf_counter() - start


def best_rates(parsers: dict[str, Callable[[bytes], object]],
               rounds: list[list[bytes]]) -> dict[str, float]:
    """Messages/s of each parser, best of the rounds, the parsers taking turns in each round
    (which one goes first alternates)."""
    best = {name: float("inf") for name in parsers}
    order = list(parsers.items())
    for messages in rounds:
        for name, func in order:
            best[name] = min(best[name], seconds_for(func, messages))
        order.reverse()
    return {name: len(rounds[0]) / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (best is kept)")
    parser.add_argument("--number", type=int, default=5000, help="messages per round")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core
    parsers: dict[str, Callable[[bytes], object]] = {"referee": parse}
    if SipmessageMessage is None:
        print("sipmessage not installed: referee's figures only (pip install sipmessage)")
    else:
        parsers["sipmessage"] = SipmessageMessage.parse
    print(f"Python {sys.version.split()[0]}, one core, best of {args.rounds} rounds "
          f"x {args.number} messages")
    print(f"{'message':22} {'kind':9} {'bytes':>5} {'referee/s':>10} {'sipmessage/s':>13} "
          f"{'ratio':>6}")
    totals = {name: 0.0 for name in parsers}   # seconds for one of each distinct message
    for label, template in MESSAGES.items():
        # Each parser meets every message of a round once, and only in that round.
        distinct = [distinct_copies(template, args.number, first=(r + 1) * args.number)
                    for r in range(args.rounds)]
        repeated = [[distinct_copies(template, 1)[0]] * args.number] * args.rounds
        check_same_message(repeated[0][0])
        for kind, rounds in (("distinct", distinct), ("repeated", repeated)):
            rates = best_rates(parsers, rounds)
            if kind == "distinct":
                for name, rate in rates.items():
                    totals[name] += 1 / rate
            print(_row(label, kind, len(rounds[0][0]), rates))
    mix = {name: len(MESSAGES) / seconds for name, seconds in totals.items()}
    print(_row("all four, distinct", "mix", 0, mix))
    invites = [distinct_copies(INVITE, args.number, first=(r + 1) * args.number)
               for r in range(args.rounds)]
    full_rate = best_rates({"referee": full}, invites)["referee"]
    print(f"referee full parse of the INVITE (every typed view + SDP): {full_rate:,.0f} messages/s")


def _row(label: str, kind: str, size: int, rates: dict[str, float]) -> str:
    ours = rates["referee"]
    theirs = rates.get("sipmessage")
    size_text = str(size) if size else ""
    if theirs is None:
        return f"{label:22} {kind:9} {size_text:>5} {ours:10,.0f} {'-':>13} {'-':>6}"
    return f"{label:22} {kind:9} {size_text:>5} {ours:10,.0f} {theirs:13,.0f} {ours / theirs:5.2f}x"


if __name__ == "__main__":
    main()
