"""pcap files read without a capture: the classic-pcap reader against scapy's, and the
messages read_pcap makes (no root needed)."""

from __future__ import annotations

import dataclasses
import gc
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter, RawPcapReader, wrpcap

from referee.wire import WireError, WireMessage, analyze_frames, iter_pcap, read_pcap


def _sip(i: int) -> bytes:
    return (f"OPTIONS sip:bob@198.19.0.2 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK-pcap{i}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:a@198.18.0.2>;tag={i}\r\nTo: <sip:bob@198.19.0.2>\r\n"
            f"Call-ID: pcap-{i}\r\nCSeq: {i} OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def _frames(count: int = 4) -> list:
    frames = []
    for i in range(count):
        frame = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="198.18.0.2", dst="198.19.0.2") / UDP(sport=5060, dport=5060) / _sip(i))
        frame.time = 1_700_000_000.123456 + i
        frames.append(frame)
    return frames


def _scapy_frames(path) -> list:
    with RawPcapReader(str(path)) as reader:
        scale = 1e-9 if reader.nano else 1e-6
        return [(data, reader.linktype, meta.sec + meta.usec * scale, None) for data, meta in reader]


@pytest.mark.parametrize("nano, endianness", [(False, "<"), (True, "<"), (False, ">"), (True, ">")])
def test_classic_pcap_frames_are_read_as_scapy_reads_them(tmp_path, nano, endianness):
    path = tmp_path / "x.pcap"
    with PcapWriter(str(path), nano=nano, endianness=endianness) as writer:
        writer.write(_frames())
    ours = list(iter_pcap(path))
    assert ours == _scapy_frames(path) and len(ours) == 4
    assert [m.raw for m in read_pcap(path).messages] == [_sip(i) for i in range(4)]


def test_a_pcap_cut_short_gives_the_frames_it_has(tmp_path):
    path = tmp_path / "cut.pcap"
    wrpcap(str(path), _frames())
    data = path.read_bytes()
    path.write_bytes(data[:-30])             # the last frame loses its end
    frames = list(iter_pcap(path))
    assert len(frames) == 4 and frames[-1][0] == _scapy_frames(tmp_path / "cut.pcap")[-1][0]
    trace = read_pcap(path)
    assert len(trace.messages) == 3 and len(trace.defects) == 1
    path.write_bytes(data[:24 + 8])          # a record header cut short: no frame at all
    assert list(iter_pcap(path)) == []


def test_a_record_longer_than_any_snapshot_is_cut_and_the_next_one_read(tmp_path):
    path = tmp_path / "long.pcap"
    wrpcap(str(path), _frames(1))
    header, record = path.read_bytes()[:24], path.read_bytes()[24:]
    huge = struct.pack("<IIII", 1, 0, 300_000, 300_000) + b"\x00" * 300_000
    path.write_bytes(header + huge + record)
    frames = list(iter_pcap(path))
    assert [len(f[0]) for f in frames] == [262_144, len(record) - 16]
    assert [m.raw for m in read_pcap(path).messages] == [_sip(0)]


def test_files_that_are_not_classic_pcap(tmp_path):
    short = tmp_path / "short.pcap"
    short.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00")
    with pytest.raises(WireError, match="not a pcap or pcapng file"):
        list(iter_pcap(short))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture")
    with pytest.raises(WireError, match="not a pcap or pcapng file"):
        read_pcap(junk)
    ng = tmp_path / "x.pcapng"
    wrpcap(str(ng), _frames(2))   # (scapy writes classic pcap whatever the name)
    assert len(read_pcap(ng).messages) == 2


def test_wire_messages_are_the_frozen_dataclass_with_every_field_set(tmp_path):
    path = tmp_path / "x.pcap"
    wrpcap(str(path), _frames(1))
    wire = read_pcap(path).messages[0]
    expected = WireMessage(wire.time, None, "198.18.0.2", 5060, "198.19.0.2", 5060, "UDP",
                           wire.msg, _sip(0))
    names = [f.name for f in dataclasses.fields(WireMessage)]
    assert sorted(vars(wire)) == sorted(names)
    assert [getattr(wire, n) for n in names] == [getattr(expected, n) for n in names]
    assert wire.source == ("198.18.0.2", 5060) and wire.is_request
    with pytest.raises(dataclasses.FrozenInstanceError):
        wire.sport = 1


def test_the_garbage_collector_is_left_as_it_was(tmp_path):
    path = tmp_path / "x.pcap"
    wrpcap(str(path), _frames(2))
    assert gc.isenabled()
    assert len(read_pcap(path).messages) == 2 and gc.isenabled()
    with pytest.raises(WireError, match="broke"):
        analyze_frames(_failing_frames(path))
    assert gc.isenabled()
    gc.disable()
    try:
        read_pcap(path)
        assert not gc.isenabled()
    finally:
        gc.enable()


def _failing_frames(path):
    yield from iter_pcap(path)
    raise WireError("the frame source broke")
