"""The wire assertions pass on good traffic and fail, precisely, on bad traffic.

Traffic is real: UDP sockets on loopback, captured with Capture.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from referee.wire import (Capture, WireAssertionError, assert_header, assert_nothing_sent_to,
                          assert_response_to_source, assert_retransmissions_same_branch,
                          cross_check, find_messages, rtp_flows)

H = "127.0.0.1"


@dataclasses.dataclass
class LogEntry:
    direction: str
    raw: bytes
    local: tuple[str, int]
    remote: tuple[str, int]
    time: float = 0.0


def _req(sipmsg, method, sent_by_port, branch="z9hG4bKq1", cseq=1, rport=True):
    return sipmsg.request(method, f"sip:bob@{H}", f"{H}:{sent_by_port}", branch=branch,
                          call_id="cid-1", cseq=cseq, rport=rport,
                          extra=f"Contact: <sip:alice@{H}:{sent_by_port}>\r\n")


def _ask(sockets, sipmsg, *, answer_to_via: bool, rport: bool = True):
    """Requester sends with a Via sent-by port that differs from its socket port; the responder
    answers either to the packet source or to the Via address."""
    requester, responder, via_sock = (sockets("udp", H) for _ in range(3))
    via_port = via_sock.getsockname()[1]
    ports = [s.getsockname()[1] for s in (requester, responder, via_sock)]
    with Capture("lo", ports=ports) as cap:
        req = _req(sipmsg, "OPTIONS", via_port, rport=rport)
        requester.sendto(req, responder.getsockname())
        data, src = responder.recvfrom(65535)
        responder.sendto(sipmsg.response(data), (H, via_port) if answer_to_via else src)
        (via_sock if answer_to_via else requester).recvfrom(65535)
    return cap.messages(), requester, responder


@pytest.mark.rfc3581
def test_response_to_source_passes_when_the_responder_honours_rport(sockets, sipmsg):
    msgs, requester, responder = _ask(sockets, sipmsg, answer_to_via=False)
    (pair,) = assert_response_to_source(msgs)
    assert pair[0].msg.method == "OPTIONS" and pair[1].msg.status == 200
    assert pair[1].destination == requester.getsockname()


@pytest.mark.rfc3581
def test_response_to_via_address_fails_with_rport(sockets, sipmsg):
    msgs, requester, _ = _ask(sockets, sipmsg, answer_to_via=True)
    with pytest.raises(WireAssertionError) as err:
        assert_response_to_source(msgs, method="OPTIONS")
    text = str(err.value)
    assert f"expected {H}:{requester.getsockname()[1]}" in text
    assert "RFC 3581" in text and "rport" in text and "SIP/2.0 200 OK" in text


@pytest.mark.rfc3581
def test_without_rport_the_via_port_is_right(sockets, sipmsg):
    msgs, _, _ = _ask(sockets, sipmsg, answer_to_via=True, rport=False)
    assert len(assert_response_to_source(msgs)) == 1
    msgs, _, _ = _ask(sockets, sipmsg, answer_to_via=False, rport=False)
    with pytest.raises(WireAssertionError, match="no rport: source address, Via port"):
        assert_response_to_source(msgs)


def test_response_to_source_needs_requests_and_responses(sockets, sipmsg):
    a, b = sockets("udp", H), sockets("udp", H)
    with Capture("lo", ports=[b.getsockname()[1]]) as cap:
        a.sendto(_req(sipmsg, "OPTIONS", a.getsockname()[1]), b.getsockname())
    with pytest.raises(WireAssertionError, match="no response to any of 1 OPTIONS"):
        assert_response_to_source(cap.messages(), method="OPTIONS")
    with pytest.raises(WireAssertionError, match="no INVITE on the wire"):
        assert_response_to_source(cap.messages(), method="INVITE")


def _notify_burst(sockets, sipmsg, branches):
    a, b = sockets("udp", H), sockets("udp", H)
    with Capture("lo", ports=[b.getsockname()[1]]) as cap:
        for br in branches:
            a.sendto(_req(sipmsg, "NOTIFY", a.getsockname()[1], branch=br, cseq=7), b.getsockname())
            b.recvfrom(65535)
    return cap.messages()


def test_retransmissions_same_branch(sockets, sipmsg):
    groups = assert_retransmissions_same_branch(
        _notify_burst(sockets, sipmsg, ["z9hG4bKn1"] * 3))
    assert [len(g) for g in groups] == [3]
    with pytest.raises(WireAssertionError, match="different top Via branch") as err:
        assert_retransmissions_same_branch(
            _notify_burst(sockets, sipmsg, ["z9hG4bKn1", "z9hG4bKn1", "z9hG4bKn2"]))
    assert "branch=z9hG4bKn2" in str(err.value)
    with pytest.raises(WireAssertionError, match="no NOTIFY was sent 2 times or more"):
        assert_retransmissions_same_branch(_notify_burst(sockets, sipmsg, ["z9hG4bKn1"]))
    with pytest.raises(WireAssertionError, match="no BYE on the wire"):
        assert_retransmissions_same_branch(_notify_burst(sockets, sipmsg, ["z9hG4bKn1"]), "BYE")


def test_assert_header_and_find_messages(sockets, sipmsg):
    msgs, requester, responder = _ask(sockets, sipmsg, answer_to_via=False)
    rq = requester.getsockname()
    assert len(find_messages(msgs, status=range(200, 300))) == 1
    assert len(find_messages(msgs, method="options", src=rq, transport="udp")) == 1
    assert find_messages(msgs, dst=("::1", rq[1])) == []
    chosen = assert_header(msgs, "Call-ID", "cid-1")  # every message
    assert len(chosen) == 2
    assert_header(msgs, "i", "cid-1", method="OPTIONS")  # compact form
    assert_header(msgs, "CSeq", regex=r"^1 OPTIONS$", status=200)
    assert_header(msgs, "Contact", method="OPTIONS")
    assert_header(msgs, "Refer-To", present=False)
    with pytest.raises(WireAssertionError) as err:
        assert_header(msgs, "Contact", regex=r"198\.19\.0\.1", method="OPTIONS", src=rq)
    text = str(err.value)
    assert "Contact to match /198\\.19\\.0\\.1/" in text and f"<sip:alice@{H}:" in text
    assert f"{H}:{rq[1]} -> " in text and "OPTIONS sip:bob@" in text
    with pytest.raises(WireAssertionError, match=r"Contact: \(absent\)"):
        assert_header(msgs, "Contact", status=200)
    with pytest.raises(WireAssertionError, match="no message matches .*method='REFER'"):
        assert_header(msgs, "Refer-To", method="REFER")
    with pytest.raises(ValueError, match="value or regex, not both"):
        assert_header(msgs, "Call-ID", "a", regex="b")
    with pytest.raises(TypeError, match="src must be a host string or a"):
        find_messages(msgs, src=12)


def test_assert_nothing_sent_to(sockets, sipmsg):
    msgs, requester, responder = _ask(sockets, sipmsg, answer_to_via=False)
    assert_nothing_sent_to(msgs, None, "198.19.0.1")
    assert_nothing_sent_to(msgs, requester.getsockname(), requester.getsockname())
    with pytest.raises(WireAssertionError) as err:
        assert_nothing_sent_to(msgs, responder.getsockname(), H)
    assert f"expected nothing from {H}:{responder.getsockname()[1]} to {H}, but 1 went there" \
        in str(err.value)


def test_cross_check_agent_log_against_wire(sockets, sipmsg):
    a, b = sockets("udp", H), sockets("udp", H)
    la, lb = a.getsockname(), b.getsockname()
    req = _req(sipmsg, "OPTIONS", la[1])
    with Capture("lo", ports=[lb[1]]) as cap:
        a.sendto(req, lb)
        data, _ = b.recvfrom(65535)
        resp = sipmsg.response(data)
        b.sendto(resp, la)
        a.recvfrom(65535)
    msgs = cap.messages()
    log_a = [LogEntry("sent", req, la, lb), LogEntry("received", resp, la, lb)]
    log_b = [LogEntry("received", req, lb, la), LogEntry("sent", resp, lb, la)]
    assert cross_check(log_a, msgs) == 2
    assert cross_check(log_a + log_b, msgs) == 4  # one wire message, two agents' entries
    wildcard = [LogEntry(e.direction, e.raw, ("0.0.0.0", la[1]), e.remote) for e in log_a]
    assert cross_check(wildcard, msgs) == 2

    with pytest.raises(WireAssertionError, match="not logged as received: .*SIP/2.0 200 OK"):
        cross_check(log_a[:1], msgs)
    never = _req(sipmsg, "BYE", la[1], branch="z9hG4bKbye")
    with pytest.raises(WireAssertionError, match=r"logged sent .* 'BYE sip:bob@.*not on the wire"):
        cross_check(log_a + [LogEntry("sent", never, la, lb)], msgs)
    altered = req.replace(b"Max-Forwards: 70", b"Max-Forwards: 69")
    with pytest.raises(WireAssertionError, match="with other bytes \\(first difference at byte"):
        cross_check([LogEntry("sent", altered, la, lb), log_a[1]], msgs)
    with pytest.raises(TypeError, match="lacks direction, raw"):
        cross_check([object()], msgs)
    with pytest.raises(ValueError, match="direction must be 'sent' or 'received'"):
        cross_check([LogEntry("out", req, la, lb)], msgs)
    with pytest.raises(TypeError, match="local must be a \\(host, port\\) tuple"):
        cross_check([LogEntry("sent", req, "nowhere", lb)], msgs)


def _rtp(seq: int, ssrc: int = 0x1234, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + b"\xff" * 160


def test_rtp_flows(sockets):
    src = sockets("udp", H)
    rtp_dst, rtcp_dst, junk_dst, short_dst = (sockets("udp", H) for _ in range(4))
    ports = [s.getsockname()[1] for s in (rtp_dst, rtcp_dst, junk_dst, short_dst)]
    with Capture("lo", ports=ports) as cap:
        for i in range(5):
            src.sendto(_rtp(100 + i), rtp_dst.getsockname())
            src.sendto(_rtp(i, pt=200), rtcp_dst.getsockname())  # RTCP sender report
            src.sendto(b"\x00\x01\x00\x00" + bytes(16), junk_dst.getsockname())  # STUN-like
        src.sendto(_rtp(1), short_dst.getsockname())  # a single packet is not a flow
    flow = ((H, src.getsockname()[1]), rtp_dst.getsockname())
    assert rtp_flows(cap.packets) == {flow}
    assert rtp_flows(cap.segments()) == {flow}
    assert rtp_flows(cap.packets, min_packets=1) == {flow, (flow[0], short_dst.getsockname())}
