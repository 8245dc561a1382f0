"""SIP over TCP (stream reassembly, Content-Length framing) and over fragmented IP."""

from __future__ import annotations

import random
import socket
import time

from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from referee.wire import Capture, Segment, analyze_frames, assert_response_to_source, read_pcap
from referee.wire.packets import TCP_FIN, TCP_SYN, SipExtractor


def _message(branch: str, local: str, body: str = "") -> bytes:
    return (f"MESSAGE sip:bob@{local} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {local};branch={branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@{local}>;tag=t1\r\nTo: <sip:bob@{local}>\r\n"
            f"Call-ID: {branch}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    deadline = time.monotonic() + 3
    while len(data) < n and time.monotonic() < deadline:
        data += conn.recv(n - len(data))
    assert len(data) == n, f"expected {n} bytes, got {len(data)}"
    return data


def test_tcp_message_split_over_segments_and_pipelined(sockets):
    server = sockets("tcp-listen", "127.0.0.1")
    port = server.getsockname()[1]
    client = sockets("tcp", "127.0.0.1")
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    local = f"127.0.0.1:{client.getsockname()[1]}"
    first = _message("z9hG4bKt1", local, body="x" * 300)
    second, third = _message("z9hG4bKt2", local), _message("z9hG4bKt3", local, body="hi")
    with Capture("lo", ports=[port]) as cap:
        client.connect(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.settimeout(3)
        try:
            # three separate segments: wait for each chunk before sending the next
            for chunk in (first[:40], first[40:200], first[200:]):
                client.sendall(chunk)
                _recv_exactly(conn, len(chunk))
            tail = b"\r\n\r\n" + second + third  # keep-alive, then two messages in one write
            client.sendall(tail)
            _recv_exactly(conn, len(tail))
            conn.sendall(b"SIP/2.0 200 OK\r\n" + first.split(b"\r\n", 1)[1].split(b"Content-Type")[0]
                         + b"Content-Length: 0\r\n\r\n")
            _recv_exactly(client, 1)
        finally:
            client.close()
            conn.close()
    trace = cap.trace()
    assert not trace.defects, [d.describe() for d in trace.defects]
    to_server = [m for m in trace.messages if m.dport == port]
    assert [m.raw for m in to_server] == [first, second, third]
    assert all(m.transport == "TCP" for m in trace.messages)
    carrying = [s for s in trace.segments if s.dport == port and s.payload]
    assert len(carrying) >= 4  # the first message really was split
    (pair,) = assert_response_to_source(trace.messages, method="MESSAGE")
    assert pair[1].msg.status == 200 and pair[0].raw == first


def _seg(payload: bytes, seq: int, flags: int = 0, t: float = 1.0) -> Segment:
    return Segment(t, "lo", "198.18.0.2", 40000, "198.19.0.2", 5060, "TCP", payload, seq, flags)


def _feed(segments: list[Segment]):
    ex = SipExtractor()
    out = []
    for s in segments:
        out.extend(ex.feed(s))
    out.extend(ex.finish())
    return out


def test_reassembly_out_of_order_and_retransmitted_segments():
    m1 = _message("z9hG4bKo1", "198.18.0.2:40000", body="abc")
    m2 = _message("z9hG4bKo2", "198.18.0.2:40000")
    data = m1 + m2
    isn = 1000
    a, b, c = data[:50], data[50:120], data[120:]
    out = _feed([_seg(b"", isn, TCP_SYN),
                 _seg(a, isn + 1),
                 _seg(c, isn + 1 + 120),           # early
                 _seg(a[30:] + b[:10], isn + 31),  # overlapping retransmission
                 _seg(b, isn + 1 + 50),
                 _seg(b"", isn + 1 + len(data), TCP_FIN)])
    assert [e.raw for e in out] == [m1, m2]
    assert out[0].msg.body == b"abc"


def test_reassembly_survives_sequence_wrap_and_mid_stream_start():
    m = _message("z9hG4bKw", "198.18.0.2:40000", body="wrap")
    seq = 0xFFFFFFFF - 20
    out = _feed([_seg(m[:60], seq), _seg(m[60:], (seq + 60) & 0xFFFFFFFF)])
    assert [e.raw for e in out] == [m]


def test_stream_defects_are_recorded_not_raised():
    no_length = b"MESSAGE sip:b@x SIP/2.0\r\nCall-ID: 1\r\nCSeq: 1 MESSAGE\r\n\r\n"
    good = _message("z9hG4bKafter", "198.18.0.2:40000")
    partial = _message("z9hG4bKcut", "198.18.0.2:40000", body="y" * 50)[:-20]
    out = _feed([_seg(no_length + good + partial, 1)])
    kinds = [(type(e).__name__, getattr(e, "reason", "")) for e in out]
    assert kinds[0][0] == "WireDefect" and "Content-Length" in kinds[0][1]
    assert kinds[1][0] == "WireMessage" and out[1].raw == good
    assert kinds[2][0] == "WireDefect" and "never completed" in kinds[2][1]
    assert out[2].raw == partial
    # binary garbage on a SIP stream
    out = _feed([_seg(b"\x16\x03\x01\x00\x05hello", 1)])
    assert len(out) == 1 and "non-SIP" in out[0].reason


def _udp_sip(body_len: int) -> bytes:
    body = "a=" + "z" * body_len + "\r\n"
    return (f"INVITE sip:bob@198.19.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bKf\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:a@198.18.0.2>;tag=1\r\nTo: <sip:bob@198.19.0.2>\r\n"
            f"Call-ID: frag\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def test_fragmented_udp_is_reassembled_ipv4_and_ipv6(tmp_path):
    payload = _udp_sip(3000)
    v4 = fragment(IP(src="198.18.0.2", dst="198.19.0.2", id=77) / UDP(sport=5060, dport=5060)
                  / payload, fragsize=600)
    v6 = fragment6(IPv6(src="2001:2::2", dst="2001:2:0:1::2") / IPv6ExtHdrFragment(id=5)
                   / UDP(sport=5060, dport=5060) / payload, 1000)
    assert len(v4) > 3 and len(v6) > 3
    frames = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p
              for p in list(v4) + list(v6)]
    random.Random(1).shuffle(frames)
    for i, f in enumerate(frames):
        f.time = 1000.0 + i
    trace = analyze_frames((bytes(f), 1, float(f.time), "eth0") for f in frames)
    assert [m.raw for m in trace.messages] == [payload, payload]
    assert {m.src for m in trace.messages} == {"198.18.0.2", "2001:2::2"}
    path = tmp_path / "frag.pcap"
    wrpcap(str(path), frames)
    assert [m.raw for m in read_pcap(path).messages] == [payload, payload]
