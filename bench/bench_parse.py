"""Parse throughput of referee.sip on one core: messages per second for a typical ~700-byte
INVITE, lazily (`parse` only) and fully (every typed view plus the SDP body).

    python bench/bench_parse.py [--seconds 2]

Goal: >= 40,000 lazy parses/s. Each figure is the best of several rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from referee.sip import parse  # noqa: E402

SDP = (b"v=0\r\n"
       b"o=bob 2890844526 2890844526 IN IP4 198.18.0.2\r\n"
       b"s=-\r\n"
       b"c=IN IP4 198.18.0.2\r\n"
       b"t=0 0\r\n"
       b"m=audio 49170 RTP/AVP 0 8 101\r\n"
       b"a=rtpmap:0 PCMU/8000\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\n"
       b"a=fmtp:101 0-16\r\n")
HEAD = ("INVITE sip:carol@198.18.0.3:5060;transport=udp SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK.a1b2c3d4e5;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Bob" <sip:bob@198.18.0.2>;tag=8d7f6e5a\r\n'
        "To: <sip:carol@198.18.0.3>\r\n"
        "Call-ID: 3c26700f0b9a4a2e@198.18.0.2\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:bob@198.18.0.2:5060;transport=udp>\r\n"
        "Referred-By: <sip:alice@198.18.0.1>\r\n"
        "Replaces: 7a9f2c@198.18.0.1;to-tag=cc12;from-tag=aa34\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, REFER, NOTIFY\r\n"
        "Supported: replaces, timer\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n"
        "\r\n").encode()
INVITE = HEAD + SDP


def lazy(data: bytes) -> None:
    parse(data)


def full(data: bytes) -> None:
    msg = parse(data)
    msg.via, msg.cseq, msg.from_, msg.to, msg.contact, msg.call_id, msg.max_forwards
    msg.content_length, msg.content_type, msg.replaces, msg.referred_by, msg.route
    msg.record_route, msg.refer_to, msg.event, msg.supported, msg.allow, msg.uri
    msg.sdp()


def rate(func, data: bytes, seconds: float, rounds: int = 5) -> float:
    """Best messages/s over `rounds` timed runs of about seconds/rounds each."""
    batch = 1000
    best = 0.0
    for _ in range(rounds):
        done, start = 0, time.perf_counter()
        while True:
            for _ in range(batch):
                func(data)
            done += batch
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / rounds:
                break
        best = max(best, done / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per figure")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core
    for func in (lazy, full):
        func(INVITE)   # warm up (and check the message parses)
    lazy_rate = rate(lazy, INVITE, args.seconds)
    full_rate = rate(full, INVITE, args.seconds)
    print(f"message: {len(INVITE)}-byte INVITE with SDP, Python {sys.version.split()[0]}, one core")
    print(f"lazy parse (parse only):          {lazy_rate:10,.0f} messages/s "
          f"({1e6 / lazy_rate:.1f} us each) goal >= 40,000")
    print(f"full parse (every view + SDP):    {full_rate:10,.0f} messages/s "
          f"({1e6 / full_rate:.1f} us each)")


if __name__ == "__main__":
    main()
