"""A test's capture.pcap when the tests of a process share one loopback capture
(referee.wire.Capture.shared, fixtures/plugin.py): each test's window holds its own frames, all
of them, and none of another test's, also while two windows are open at once."""

from __future__ import annotations

import socket
import struct

import pytest

from referee.wire import Capture, CaptureError


def udp_socket() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@pytest.fixture
def shared():
    try:
        capture = Capture.shared("lo").start()
    except (CaptureError, PermissionError, OSError) as exc:
        pytest.skip(f"no loopback capture here: {exc}")
    yield capture
    capture.stop()


def payloads(capture: Capture) -> list[bytes]:
    return [data[42:] for data, _, _ in capture.frames()]      # Ethernet + IPv4 + UDP headers


def test_each_window_gets_its_own_frames_also_while_they_overlap(shared):
    (a, port_a), (b, port_b), (c, port_c) = udp_socket(), udp_socket(), udp_socket()
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        send.sendto(b"before", ("127.0.0.1", port_a))
        first = shared.open_window([port_a, port_b])
        send.sendto(b"first-a", ("127.0.0.1", port_a))
        send.sendto(b"nobody's", ("127.0.0.1", port_c))
        second = shared.open_window([port_c])
        send.sendto(b"second-c", ("127.0.0.1", port_c))
        send.sendto(b"first-b", ("127.0.0.1", port_b))
        assert [data[42:] for data, _, _ in first.frames()] == [b"first-a", b"first-b"]   # a peek
        one = first.close()
        send.sendto(b"after", ("127.0.0.1", port_a))
        send.sendto(b"second-c2", ("127.0.0.1", port_c))
        two = second.close()
    finally:
        for sock in (a, b, c, send):
            sock.close()
    assert payloads(one) == [b"first-a", b"first-b"]
    assert payloads(two) == [b"second-c", b"second-c2"]
    assert shared.ports == [] and not shared.frames()          # nothing kept once both are closed


def test_the_pcap_of_a_window_is_what_scapy_writes(shared, tmp_path):
    from scapy.utils import PcapWriter
    rx, port = udp_socket()
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        window = shared.open_window([port])
        for size in (1, 200, 1400, 9000):
            send.sendto(b"x" * size, ("127.0.0.1", port))
        part = window.close()
    finally:
        rx.close()
        send.close()
    ours = tmp_path / "ours.pcap"
    part.write_pcap(ours, fmt="pcap")
    theirs = tmp_path / "scapy.pcap"
    with PcapWriter(str(theirs), linktype=1, nano=True, sync=False) as writer:
        for packet in part.packets:
            writer.write(packet)
    assert ours.read_bytes() == theirs.read_bytes()
    assert struct.unpack("<I", ours.read_bytes()[:4])[0] == 0xA1B23C4D       # nanosecond pcap
