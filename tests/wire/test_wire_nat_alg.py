"""SIP through the lan — nat — wan topology, with the kernel SIP ALG on and off.

Hand-written INVITE and REFER go from lan (198.18.0.2:5060) to wan (198.19.0.2:5060); a
capture inside the nat namespace sees each message on lan0 (before) and wan0 (after NAT).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from referee.wire import (WireAssertionError, assert_header, assert_response_to_source,
                          find_messages)

pytestmark = pytest.mark.nat

LAN, NAT_WAN, WAN, CAROL = "198.18.0.2", "198.19.0.1", "198.19.0.2", "198.18.0.3"
SDP = (f"v=0\r\no=alice 1 1 IN IP4 {LAN}\r\ns=-\r\nc=IN IP4 {LAN}\r\nt=0 0\r\n"
       f"m=audio 40000 RTP/AVP 0\r\n")
REFER_TO = (f"<sip:carol@{CAROL}:5060?Replaces=call2%40{CAROL}%3Bto-tag%3Dc1"
            f"%3Bfrom-tag%3Da2>")


def _invite(sipmsg, host=LAN, sdp=SDP, uri=f"sip:bob@{WAN}"):
    hp = f"[{host}]" if ":" in host else host
    return sipmsg.request("INVITE", uri, f"{hp}:5060", branch="z9hG4bKinv1",
                          call_id=f"call1@{hp}", cseq=1,
                          extra=(f"Contact: <sip:alice@{hp}:5060>\r\n"
                                 "Content-Type: application/sdp\r\n"), body=sdp)


def _refer(sipmsg):
    return sipmsg.request("REFER", f"sip:bob@{WAN}", f"{LAN}:5060", branch="z9hG4bKref1",
                          call_id=f"call1@{LAN}", cseq=2, to_tag="b1",
                          extra=(f"Contact: <sip:alice@{LAN}:5060>\r\n"
                                 f"Refer-To: {REFER_TO}\r\n"
                                 f"Referred-By: <sip:alice@{LAN}>\r\n"))


def _exchange(topo, sockets, sipmsg, requests):
    """Send each request lan -> wan, answer 200 OK from wan; return the capture."""
    lan = sockets("udp", LAN, 5060, topo.lan)
    wan = sockets("udp", WAN, 5060, topo.wan)
    received = []
    with topo.capture(ports=[5060]) as cap:
        for req in requests:
            lan.sendto(req, (WAN, 5060))
            data, src = wan.recvfrom(65535)
            received.append((data, src))
            wan.sendto(sipmsg.response(data), src)
            lan.recvfrom(65535)  # the 200 OK made it back through the NAT
    return cap, received


def test_alg_on_rewrites_via_contact_sdp_but_not_refer_to(topo_alg, sockets, sipmsg, tmp_path):
    topo_alg.add_host("lan", CAROL)
    cap, received = _exchange(topo_alg, sockets, sipmsg, [_invite(sipmsg), _refer(sipmsg)])
    msgs = cap.messages()
    assert not cap.defects()
    # each request and each response seen on both sides of the NAT
    assert len(find_messages(msgs, iface="lan0")) == 4
    assert len(find_messages(msgs, iface="wan0")) == 4

    # before the NAT: the private address everywhere
    assert_header(msgs, "Via", regex=rf"^SIP/2\.0/UDP {re.escape(LAN)}:5060;", iface="lan0",
                  method="INVITE")
    assert_header(msgs, "Contact", f"<sip:alice@{LAN}:5060>", iface="lan0", method="INVITE")

    # after the NAT, ALG on: Via sent-by, From, Contact and SDP rewritten to the NAT address
    for method in ("INVITE", "REFER"):
        assert_header(msgs, "Via", regex=rf"^SIP/2\.0/UDP {re.escape(NAT_WAN)}:5060;branch=",
                      iface="wan0", method=method, src=(NAT_WAN, 5060))
        assert_header(msgs, "Contact", f"<sip:alice@{NAT_WAN}:5060>", iface="wan0", method=method)
        assert_header(msgs, "From", regex=rf"^<sip:alice@{re.escape(NAT_WAN)}(:5060)?>;tag=a1$",
                      iface="wan0", method=method)
    (inv_wan,) = find_messages(msgs, iface="wan0", method="INVITE")
    assert f"c=IN IP4 {NAT_WAN}".encode() in inv_wan.msg.body
    assert f"o=alice 1 1 IN IP4 {NAT_WAN}".encode() in inv_wan.msg.body
    assert LAN.encode() not in inv_wan.msg.body
    assert inv_wan.msg.header("Content-Length") == str(len(inv_wan.msg.body))

    # ... but Refer-To, Referred-By and Call-ID keep the private addresses
    assert_header(msgs, "Refer-To", REFER_TO, iface="wan0", method="REFER")
    assert_header(msgs, "Referred-By", f"<sip:alice@{LAN}>", iface="wan0", method="REFER")
    assert_header(msgs, "Call-ID", f"call1@{LAN}", iface="wan0")

    # what the wan host received is exactly what the capture saw leaving wan0
    wan_requests = [m for m in find_messages(msgs, iface="wan0") if m.is_request]
    assert [m.raw for m in wan_requests] == [data for data, _ in received]
    assert {src for _, src in received} == {(NAT_WAN, 5060)}

    # responses went back to the (translated) source on both sides
    assert len(assert_response_to_source(msgs, iface="wan0")) == 2
    assert len(assert_response_to_source(msgs, iface="lan0")) == 2

    # the capture file keeps both interfaces and opens in tshark
    path = cap.write_pcap(tmp_path / "alg.pcapng")
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "frame.interface_name",
                          "-e", "sip.Method", "-e", "ip.src"], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split("\n")
    rows = [line.split("\t") for line in out if line.strip()]
    assert ["lan0", "REFER", LAN] in rows and ["wan0", "REFER", NAT_WAN] in rows


def test_alg_off_rewrites_only_the_source_address(topo_plain, sockets, sipmsg):
    cap, received = _exchange(topo_plain, sockets, sipmsg, [_invite(sipmsg), _refer(sipmsg)])
    msgs = cap.messages()
    before = find_messages(msgs, iface="lan0", src=LAN)
    after = find_messages(msgs, iface="wan0", dst=WAN)
    assert [m.msg.method for m in before] == ["INVITE", "REFER"]
    assert [m.raw for m in before] == [m.raw for m in after]  # payload untouched
    assert {(m.src, m.sport) for m in after} == {(NAT_WAN, 5060)}  # but masqueraded
    assert_header(msgs, "Contact", f"<sip:alice@{LAN}:5060>", iface="wan0", method="INVITE")
    with pytest.raises(WireAssertionError, match=r"Contact to equal .*198\.19\.0\.1"):
        assert_header(msgs, "Contact", f"<sip:alice@{NAT_WAN}:5060>", iface="wan0", method="INVITE")
    assert received[0][1] == (NAT_WAN, 5060)


def test_alg_on_ipv6(topo_alg, sockets, sipmsg):
    if not topo_alg.ipv6:
        pytest.skip("IPv6 could not be configured in the namespaces")
    lan6, nat6, wan6 = topo_alg.lan_addr6, topo_alg.nat_wan_addr6, topo_alg.wan_addr6
    sdp = f"v=0\r\no=alice 1 1 IN IP6 {lan6}\r\ns=-\r\nc=IN IP6 {lan6}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    lan = sockets("udp", lan6, 5060, topo_alg.lan)
    wan = sockets("udp", wan6, 5060, topo_alg.wan)
    with topo_alg.capture() as cap:
        lan.sendto(_invite(sipmsg, host=lan6, sdp=sdp, uri=f"sip:bob@[{wan6}]"), (wan6, 5060))
        _, src = wan.recvfrom(65535)
    assert src[:2] == (nat6, 5060)
    msgs = cap.messages()
    assert_header(msgs, "Via", regex=rf"^SIP/2\.0/UDP \[{re.escape(nat6)}\]:5060;", iface="wan0")
    assert_header(msgs, "Contact", f"<sip:alice@[{nat6}]:5060>", iface="wan0")
    (inv,) = find_messages(msgs, iface="wan0")
    assert f"c=IN IP6 {nat6}".encode() in inv.msg.body
