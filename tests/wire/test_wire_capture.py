"""Capture on loopback: start/drain guarantees, filtering, SIP extraction, pcap files."""

from __future__ import annotations

import subprocess

import pytest

from referee.wire import (Capture, CaptureError, NetnsError, WireError, find_messages, read_pcap)


def _options(port: int, branch: str, host: str = "127.0.0.1") -> bytes:
    hp = f"[{host}]" if ":" in host else host
    return (f"OPTIONS sip:probe@{hp}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {hp}:{port};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:a@{hp}>;tag=1\r\nTo: <sip:probe@{hp}>\r\n"
            f"Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def test_everything_sent_between_start_and_stop_is_captured(sockets):
    rx = sockets("udp", "127.0.0.1")
    tx = sockets("udp", "127.0.0.1")
    port = rx.getsockname()[1]
    cap = Capture("lo", ports=[port]).start()
    try:
        for i in range(200):
            tx.sendto(_options(port, f"z9hG4bK{i}"), ("127.0.0.1", port))
    finally:
        cap.stop()  # no wait before stop: the drain must still get all of them
    msgs = cap.messages()
    assert [m.msg.header("Via").split("branch=")[1].split(";")[0] for m in msgs] == \
        [f"z9hG4bK{i}" for i in range(200)]
    assert all(m.iface == "lo" and m.transport == "UDP" for m in msgs)
    assert {m.source for m in msgs} == {tx.getsockname()}
    assert cap.dropped == 0
    times = [m.time for m in msgs]
    assert times == sorted(times) and cap.started_at - 5 < times[0] <= cap.stopped_at
    assert len(cap.packets) == 200 and cap.packets[0].sniffed_on == "lo"  # no loopback duplicates


def test_only_the_test_ports_are_captured(sockets):
    a, b = sockets("udp", "127.0.0.1"), sockets("udp", "127.0.0.1")
    tx = sockets("udp", "127.0.0.1")
    pa, pb = a.getsockname()[1], b.getsockname()[1]
    with Capture(["lo"], ports=[pa]) as cap:
        tx.sendto(_options(pa, "z9hG4bKa"), ("127.0.0.1", pa))
        tx.sendto(_options(pb, "z9hG4bKb"), ("127.0.0.1", pb))
    assert [m.dport for m in cap.messages()] == [pa]


def test_defects_keepalives_and_binary_payloads(sockets):
    rx, tx = sockets("udp", "127.0.0.1"), sockets("udp", "127.0.0.1")
    port = rx.getsockname()[1]
    dst = ("127.0.0.1", port)
    with Capture("lo", ports=[port]) as cap:
        tx.sendto(b"\r\n\r\n", dst)                               # keep-alive: ignored
        tx.sendto(bytes([0x80, 0x00]) + bytes(170), dst)           # RTP-like: not SIP
        tx.sendto(b"INVITE sip:x SIP/2.0\r\nVia: broken\r\n", dst)  # truncated SIP
        tx.sendto(b"NOT SIP AT ALL\r\n\r\n", dst)
        tx.sendto(_options(port, "z9hG4bKok"), dst)
    trace = cap.trace()
    assert len(trace.messages) == 1 and trace.messages[0].msg.method == "OPTIONS"
    assert len(trace.defects) == 2
    d = trace.defects[0]
    assert d.raw.startswith(b"INVITE sip:x") and d.reason and d.offset is not None
    assert "127.0.0.1" in d.describe() and d.iface == "lo"
    assert len(trace.segments) == 5


def test_ipv6_loopback(sockets):
    try:
        rx = sockets("udp", "::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    tx = sockets("udp", "::1")
    port = rx.getsockname()[1]
    with Capture("lo", ports=[port]) as cap:
        tx.sendto(_options(port, "z9hG4bK6", host="::1"), ("::1", port))
    (m,) = cap.messages()
    assert (m.src, m.dst, m.dport) == ("::1", "::1", port)


def test_pcap_files_open_in_tshark_and_read_back(sockets, tmp_path):
    rx, tx = sockets("udp", "127.0.0.1"), sockets("udp", "127.0.0.1")
    port = rx.getsockname()[1]
    with Capture("lo", ports=[port]) as cap:
        for i in range(3):
            tx.sendto(_options(port, f"z9hG4bKp{i}"), ("127.0.0.1", port))
        tx.sendto(b"GARBAGE\r\n", ("127.0.0.1", port))
    for fmt in ("pcapng", "pcap"):
        path = cap.write_pcap(tmp_path / f"cap.{fmt}", fmt=fmt)
        out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "sip.Method",
                              "-e", "udp.dstport"], capture_output=True, text=True, timeout=60,
                             check=True).stdout.split()
        assert out.count("OPTIONS") == 3 and out.count(str(port)) == 4
        trace = read_pcap(path)
        assert [m.raw for m in trace.messages] == [m.raw for m in cap.messages()]
        assert [m.time for m in trace.messages] == pytest.approx([m.time for m in cap.messages()],
                                                                 abs=2e-6)
        assert len(trace.defects) == 1
        assert {m.iface for m in trace.messages} == ({"lo"} if fmt == "pcapng" else {None})


def test_empty_capture_writes_a_valid_pcap(tmp_path):
    with Capture("lo", ports=[9]) as cap:
        pass
    for fmt in ("pcapng", "pcap"):
        path = cap.write_pcap(tmp_path / f"empty.{fmt}", fmt=fmt)
        subprocess.run(["tshark", "-r", path], capture_output=True, timeout=60, check=True)
        assert read_pcap(path).frames == 0


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="bad port 70000"):
        Capture("lo", ports=[70000])
    with pytest.raises(ValueError, match="non-empty list of interface names"):
        Capture([])
    with pytest.raises(CaptureError, match="cannot capture on interface 'nosuch0'"):
        Capture(["nosuch0"], ports=[5060]).start()
    with pytest.raises(NetnsError, match="does not exist"):
        Capture(["lo"], netns="rf-no-such-namespace").start()
    with pytest.raises(FileNotFoundError, match="pcap file not found"):
        read_pcap(tmp_path / "missing.pcap")
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all")
    with pytest.raises(WireError, match="not a pcap or pcapng file"):
        read_pcap(junk)


@pytest.mark.nat
def test_capture_inside_a_namespace_sees_only_that_namespace(topo_plain, sockets):
    # the same ports on loopback of the host and of the lan namespace: only lan's is seen
    lan_rx = sockets("udp", "127.0.0.1", 0, topo_plain.lan)
    port = lan_rx.getsockname()[1]
    lan_tx = sockets("udp", "127.0.0.1", 0, topo_plain.lan)
    host_tx = sockets("udp", "127.0.0.1")
    with Capture("lo", ports=[port], netns=topo_plain.lan) as cap:
        host_tx.sendto(_options(port, "z9hG4bKhost"), ("127.0.0.1", port))
        lan_tx.sendto(_options(port, "z9hG4bKns"), ("127.0.0.1", port))
        lan_rx.recvfrom(65535)
    (m,) = cap.messages()
    assert m.sport == lan_tx.getsockname()[1] and b"z9hG4bKns" in m.raw
    assert find_messages(cap.messages(), method="OPTIONS", dst=("127.0.0.1", port))
