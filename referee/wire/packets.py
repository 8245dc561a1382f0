"""From captured frames to SIP evidence.

Frames (raw link-layer bytes with a timestamp and an interface name) are decoded by hand —
Ethernet / Linux cooked / raw IP, IPv4 and IPv6 (with fragment reassembly), UDP and TCP —
into `Segment`s. `SipExtractor` turns segments into `WireMessage`s: one per UDP datagram, and
per TCP direction the reassembled byte stream cut at Content-Length. Whatever cannot be parsed
becomes a `WireDefect`; extraction itself never raises on bad bytes.

Decoding skips full scapy dissection on purpose: it is two orders of magnitude faster, which
matters for large pcaps. For the same reason classic pcap files are read by hand (pcapng and
compressed files by scapy).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Union

from referee import sip

# pcap link-layer types we decode
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_ALT = 12
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

TCP_FIN, TCP_SYN, TCP_RST = 0x01, 0x02, 0x04

_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_ETH_VLAN = (0x8100, 0x88A8, 0x9100)
_IPV6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options
_MAX_FRAG_KEYS = 4096
_MAX_STREAM_BUFFER = 1 << 20  # a SIP message larger than this is not SIP any more


class WireError(ValueError):
    """Input the wire layer cannot work with (not a capture file, bad argument)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """One UDP datagram or TCP segment as seen on one interface."""

    time: float
    iface: str | None
    src: str
    sport: int
    dst: str
    dport: int
    transport: str  # "UDP" or "TCP"
    payload: bytes
    seq: int = 0    # TCP only
    flags: int = 0  # TCP only

    @property
    def source(self) -> tuple[str, int]:
        return (self.src, self.sport)

    @property
    def destination(self) -> tuple[str, int]:
        return (self.dst, self.dport)


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _clock(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")


@dataclasses.dataclass(frozen=True, eq=False)  # identity: the same bytes may pass twice
class WireMessage:
    """A SIP message seen on the wire. For TCP, `time`/`iface` are those of the segment that
    completed the message."""

    time: float
    iface: str | None
    src: str
    sport: int
    dst: str
    dport: int
    transport: str
    msg: sip.Request | sip.Response
    raw: bytes

    @property
    def source(self) -> tuple[str, int]:
        return (self.src, self.sport)

    @property
    def destination(self) -> tuple[str, int]:
        return (self.dst, self.dport)

    @property
    def is_request(self) -> bool:
        return isinstance(self.msg, sip.Request)

    def describe(self) -> str:
        """One line for error messages and logs."""
        where = f" on {self.iface}" if self.iface else ""
        line = self.raw.split(b"\n", 1)[0].strip().decode("utf-8", "replace")
        return (f"{_clock(self.time)}{where} {_endpoint(self.src, self.sport)} -> "
                f"{_endpoint(self.dst, self.dport)} {self.transport} '{line}'")


@dataclasses.dataclass(frozen=True)
class WireDefect:
    """Bytes on a SIP flow that are not a well-formed SIP message (or could not be framed)."""

    time: float
    iface: str | None
    src: str
    sport: int
    dst: str
    dport: int
    transport: str
    raw: bytes
    reason: str
    offset: int | None = None  # byte offset into raw, when the parser gave one

    def describe(self) -> str:
        where = f" on {self.iface}" if self.iface else ""
        at = f" at byte {self.offset}" if self.offset is not None else ""
        return (f"{_clock(self.time)}{where} {_endpoint(self.src, self.sport)} -> "
                f"{_endpoint(self.dst, self.dport)} {self.transport}: {self.reason}{at} "
                f"({len(self.raw)} bytes: {self.raw[:60]!r})")


WireEntry = Union[WireMessage, WireDefect]


@dataclasses.dataclass
class WireTrace:
    """Everything extracted from one capture or pcap file, in capture order."""

    messages: list[WireMessage]
    defects: list[WireDefect]
    segments: list[Segment]
    frames: int = 0        # frames read
    undecoded: int = 0     # frames that were not UDP/TCP over IP (ARP, markers, ...)


# --------------------------------------------------------------------------------------
# frame decoding
# --------------------------------------------------------------------------------------

class _Defragmenter:
    """Reassembles IPv4/IPv6 fragments; incomplete datagrams are dropped when memory is full."""

    def __init__(self) -> None:
        self._parts: dict[tuple, list[tuple[int, bytes, bool]]] = {}

    def add(self, key: tuple, offset: int, more: bool, data: bytes) -> bytes | None:
        parts = self._parts.setdefault(key, [])
        parts.append((offset, data, more))
        parts.sort(key=lambda p: p[0])
        if parts[-1][2]:  # last fragment not seen yet
            return None
        out = bytearray()
        for off, chunk, _ in parts:
            if off > len(out):
                return None  # hole
            out[off:off + len(chunk)] = chunk
        del self._parts[key]
        if len(self._parts) > _MAX_FRAG_KEYS:
            self._parts.pop(next(iter(self._parts)))
        return bytes(out)


class FrameDecoder:
    """Decodes link-layer frames to `Segment`s (None for anything else)."""

    def __init__(self) -> None:
        self._defrag = _Defragmenter()
        self._addr4: dict[bytes, str] = {}
        self._addr6: dict[bytes, str] = {}

    def _a4(self, b: bytes) -> str:
        s = self._addr4.get(b)
        if s is None:
            s = self._addr4[b] = socket.inet_ntop(socket.AF_INET, b)
        return s

    def _a6(self, b: bytes) -> str:
        s = self._addr6.get(b)
        if s is None:
            s = self._addr6[b] = socket.inet_ntop(socket.AF_INET6, b)
        return s

    def decode(self, data: bytes, linktype: int, time: float, iface: str | None) -> Segment | None:
        try:
            return self._decode(data, linktype, time, iface)
        except (IndexError, ValueError, OSError):
            return None  # truncated or garbage frame

    def _decode(self, data: bytes, linktype: int, time: float, iface: str | None) -> Segment | None:
        if linktype == LINKTYPE_ETHERNET:
            off, etype = 14, (data[12] << 8) | data[13]
            while etype in _ETH_VLAN:
                etype = (data[off + 2] << 8) | data[off + 3]
                off += 4
        elif linktype == LINKTYPE_LINUX_SLL:
            off, etype = 16, (data[14] << 8) | data[15]
        elif linktype == LINKTYPE_LINUX_SLL2:
            off, etype = 20, (data[0] << 8) | data[1]
        elif linktype in (LINKTYPE_RAW, LINKTYPE_RAW_ALT, LINKTYPE_IPV4, LINKTYPE_IPV6):
            off, etype = 0, (_ETH_IPV4 if data[0] >> 4 == 4 else _ETH_IPV6)
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            family = int.from_bytes(data[:4], "little" if linktype == LINKTYPE_NULL else "big")
            if family > 0xFFFF:
                family = int.from_bytes(data[:4], "big")
            off, etype = 4, (_ETH_IPV4 if family == 2 else _ETH_IPV6)
        else:
            return None
        if etype == _ETH_IPV4:
            return self._ipv4(data, off, time, iface)
        if etype == _ETH_IPV6:
            return self._ipv6(data, off, time, iface)
        return None

    def _ipv4(self, data: bytes, off: int, time: float, iface: str | None) -> Segment | None:
        vihl = data[off]
        if vihl >> 4 != 4:
            return None
        ihl = (vihl & 0x0F) * 4
        total = (data[off + 2] << 8) | data[off + 3]
        end = off + total if total else len(data)  # 0: segmentation offload, use the frame
        frag = (data[off + 6] << 8) | data[off + 7]
        proto = data[off + 9]
        src = self._a4(data[off + 12:off + 16])
        dst = self._a4(data[off + 16:off + 20])
        l4 = data[off + ihl:end]
        if frag & 0x3FFF:  # MF set or offset != 0
            key = (4, src, dst, data[off + 4:off + 6], proto)
            l4 = self._defrag.add(key, (frag & 0x1FFF) * 8, bool(frag & 0x2000), l4)
            if l4 is None:
                return None
        return self._l4(proto, l4, src, dst, time, iface)

    def _ipv6(self, data: bytes, off: int, time: float, iface: str | None) -> Segment | None:
        if data[off] >> 4 != 6:
            return None
        plen = (data[off + 4] << 8) | data[off + 5]
        nh = data[off + 6]
        src = self._a6(data[off + 8:off + 24])
        dst = self._a6(data[off + 24:off + 40])
        buf = data[off + 40:off + 40 + plen] if plen else data[off + 40:]
        pos = 0
        while True:
            if nh in _IPV6_EXT:
                nh, pos = buf[pos], pos + (buf[pos + 1] + 1) * 8
            elif nh == 51:  # AH
                nh, pos = buf[pos], pos + (buf[pos + 1] + 2) * 4
            elif nh == 44:  # fragment header: reassemble what follows it
                nxt = buf[pos]
                fo = (buf[pos + 2] << 8) | buf[pos + 3]
                key = (6, src, dst, buf[pos + 4:pos + 8])
                whole = self._defrag.add(key, fo & 0xFFF8, bool(fo & 1), buf[pos + 8:])
                if whole is None:
                    return None
                nh, buf, pos = nxt, whole, 0
            else:
                break
        return self._l4(nh, buf[pos:], src, dst, time, iface)

    @staticmethod
    def _l4(proto: int, l4: bytes, src: str, dst: str, time: float,
            iface: str | None) -> Segment | None:
        if proto == 17 and len(l4) >= 8:
            ulen = (l4[4] << 8) | l4[5]
            payload = l4[8:ulen] if ulen >= 8 else l4[8:]
            return Segment(time, iface, src, (l4[0] << 8) | l4[1], dst, (l4[2] << 8) | l4[3],
                           "UDP", payload)
        if proto == 6 and len(l4) >= 20:
            doff = (l4[12] >> 4) * 4
            return Segment(time, iface, src, (l4[0] << 8) | l4[1], dst, (l4[2] << 8) | l4[3],
                           "TCP", l4[doff:], int.from_bytes(l4[4:8], "big"), l4[13])
        return None


# --------------------------------------------------------------------------------------
# SIP extraction
# --------------------------------------------------------------------------------------

def _first_text_byte(payload: bytes) -> int | None:
    for b in payload:
        if b not in (0x0D, 0x0A):
            return b
    return None


def _looks_like_text(payload: bytes) -> bool:
    """SIP starts with a token; RTP, RTCP, STUN, DTLS start with non-printable bytes."""
    b = _first_text_byte(payload)
    return b is not None and 0x21 <= b <= 0x7E


def _find_head_end(buf: bytes | bytearray) -> tuple[int, int]:
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if lf != -1 and (crlf == -1 or lf < crlf):
        return lf, lf + 2
    if crlf != -1:
        return crlf, crlf + 4
    return -1, -1


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            return int(text) if text.isdigit() else -1
    return None


@dataclasses.dataclass
class _Stream:
    next_seq: int | None = None
    buf: bytearray = dataclasses.field(default_factory=bytearray)
    pending: dict[int, bytes] = dataclasses.field(default_factory=dict)
    last: Segment | None = None


class SipExtractor:
    """Feed segments in capture order; get WireMessages and WireDefects back."""

    def __init__(self) -> None:
        self._streams: dict[tuple, _Stream] = {}

    def feed(self, seg: Segment) -> list[WireEntry]:
        if seg.transport == "UDP":
            return self._udp(seg)
        return self._tcp(seg)

    def finish(self) -> list[WireEntry]:
        """Report streams that ended mid-message."""
        out: list[WireEntry] = []
        for stream in self._streams.values():
            out.extend(self._leftover(stream, "capture ended in the middle of a message"))
        self._streams.clear()
        return out

    # -- UDP ------------------------------------------------------------------------------
    @staticmethod
    def _udp(seg: Segment) -> list[WireEntry]:
        if not _looks_like_text(seg.payload):
            return []  # keep-alive CRLFs, RTP, STUN...: not SIP messages
        return [_parse(seg, seg.payload, stream=False)]

    # -- TCP ------------------------------------------------------------------------------
    def _tcp(self, seg: Segment) -> list[WireEntry]:
        key = (seg.iface, seg.src, seg.sport, seg.dst, seg.dport)
        stream = self._streams.get(key)
        out: list[WireEntry] = []
        if seg.flags & TCP_SYN:
            if stream is not None:
                out.extend(self._leftover(stream, "connection restarted mid-message"))
            stream = self._streams[key] = _Stream(next_seq=(seg.seq + 1) & 0xFFFFFFFF)
        elif stream is None:
            stream = self._streams[key] = _Stream()  # capture started mid-connection
        if seg.payload:
            if stream.next_seq is None:
                stream.next_seq = seg.seq
            self._accept(stream, seg.seq, seg.payload)
            stream.last = seg
            out.extend(self._frame(stream, seg))
        if seg.flags & (TCP_FIN | TCP_RST):
            out.extend(self._leftover(stream, "connection closed in the middle of a message"))
            del self._streams[key]
        return out

    @staticmethod
    def _accept(stream: _Stream, seq: int, data: bytes) -> None:
        """Append in-order bytes; keep early ones aside; drop what was seen already."""
        assert stream.next_seq is not None
        rel = (seq - stream.next_seq) & 0xFFFFFFFF
        if rel >= 0x80000000:  # starts before next_seq: retransmission (maybe partly new)
            already = 0x100000000 - rel
            if already >= len(data):
                return
            data, rel = data[already:], 0
        if rel > 0:
            stream.pending[seq] = data
            return
        stream.buf += data
        stream.next_seq = (stream.next_seq + len(data)) & 0xFFFFFFFF
        while stream.pending:
            for pseq in list(stream.pending):
                prel = (pseq - stream.next_seq) & 0xFFFFFFFF
                if prel == 0 or prel >= 0x80000000:
                    chunk = stream.pending.pop(pseq)
                    skip = 0 if prel == 0 else 0x100000000 - prel
                    if skip < len(chunk):
                        stream.buf += chunk[skip:]
                        stream.next_seq = (stream.next_seq + len(chunk) - skip) & 0xFFFFFFFF
                    break
            else:
                return

    @staticmethod
    def _frame(stream: _Stream, seg: Segment) -> list[WireEntry]:
        out: list[WireEntry] = []
        buf = stream.buf
        while True:
            lead = len(buf) - len(buf.lstrip(b"\r\n"))
            if lead:
                del buf[:lead]  # CRLF keep-alives (RFC 5626) between messages
            if not buf:
                break
            if not _looks_like_text(bytes(buf[:1])):
                out.append(_defect(seg, bytes(buf), "non-SIP bytes on a SIP stream"))
                buf.clear()
                break
            head_end, body_start = _find_head_end(buf)
            if head_end == -1:
                if len(buf) > _MAX_STREAM_BUFFER:
                    out.append(_defect(seg, bytes(buf), "no end of headers within 1 MiB"))
                    buf.clear()
                break
            length = _content_length(bytes(buf[:head_end]))
            if length is None or length < 0:
                reason = ("no Content-Length on a stream transport (RFC 3261 18.3)"
                          if length is None else "Content-Length is not a number")
                out.append(_defect(seg, bytes(buf[:body_start]), reason))
                del buf[:body_start]  # resynchronise after this header block
                continue
            end = body_start + length
            if len(buf) < end:
                break
            raw = bytes(buf[:end])
            del buf[:end]
            out.append(_parse(seg, raw, stream=True))
        return out

    @staticmethod
    def _leftover(stream: _Stream, reason: str) -> list[WireEntry]:
        rest = bytes(stream.buf).strip(b"\r\n")
        stream.buf.clear()
        if not rest or stream.last is None:
            return []
        return [_defect(stream.last, rest, f"{reason} ({len(rest)} bytes never completed)")]


def _defect(seg: Segment, raw: bytes, reason: str, offset: int | None = None) -> WireDefect:
    return WireDefect(seg.time, seg.iface, seg.src, seg.sport, seg.dst, seg.dport,
                      seg.transport, raw, reason, offset)


def _parse(seg: Segment, raw: bytes, stream: bool) -> WireEntry:
    try:
        msg = sip.parse(raw, stream=stream)
    except sip.SipParseError as exc:
        return _defect(seg, raw, exc.reason, exc.offset)
    return _wire_message(seg, msg, raw)


def _wire_message(seg: Segment, msg: sip.Request | sip.Response, raw: bytes) -> WireMessage:
    # The object WireMessage(...) makes, without the frozen dataclass's setattr per field
    # (one message per packet: this is a hot path).
    wire = object.__new__(WireMessage)
    wire.__dict__.update(time=seg.time, iface=seg.iface, src=seg.src, sport=seg.sport,
                         dst=seg.dst, dport=seg.dport, transport=seg.transport, msg=msg, raw=raw)
    return wire


# --------------------------------------------------------------------------------------
# whole traces
# --------------------------------------------------------------------------------------

Frame = tuple[bytes, int, float, Union[str, None]]  # (data, linktype, time, iface)


def analyze_frames(frames: Iterable[Frame]) -> WireTrace:
    """Decode frames and extract SIP; the one pipeline behind captures and pcap files."""
    decoder, extractor = FrameDecoder(), SipExtractor()
    trace = WireTrace([], [], [])
    with _collector_paused():
        for data, linktype, time, iface in frames:
            trace.frames += 1
            seg = decoder.decode(data, linktype, time, iface)
            if seg is None:
                trace.undecoded += 1
                continue
            trace.segments.append(seg)
            _sort_into(trace, extractor.feed(seg))
        _sort_into(trace, extractor.finish())
    return trace


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector. The analysis makes a few long-lived objects per
    frame and no reference cycles: the collector would only walk them over and over (up to a
    third of the time on a large pcap). Memory is freed by reference counting all the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sort_into(trace: WireTrace, entries: list[WireEntry]) -> None:
    for e in entries:
        if isinstance(e, WireMessage):
            trace.messages.append(e)
        else:
            trace.defects.append(e)


def iter_pcap(path: str | os.PathLike) -> Iterator[Frame]:
    """Frames of a pcap or pcapng file (interface names come from pcapng; pcap has none)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pcap file not found: {path}")
    with open(path, "rb") as f:
        form = _CLASSIC_PCAP.get(f.read(4))
        if form is not None:
            yield from _classic_pcap_frames(f, path, *form)
            return
    yield from _scapy_pcap_frames(path)


# Classic pcap magic numbers -> (byte order, seconds per unit of the timestamp fraction).
_CLASSIC_PCAP = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_MAX_FRAME = 262144  # the largest snapshot length capture tools use; longer records are cut


def _classic_pcap_frames(f: BinaryIO, path: str, order: str, scale: float) -> Iterator[Frame]:
    """Frames of a classic pcap file after its magic number: a 20-byte header, then records of
    a 16-byte header and the frame. Read by hand: scapy's reader costs more per frame."""
    header = f.read(20)
    if len(header) < 20:
        raise WireError(f"{path} is not a pcap or pcapng file (header cut short)")
    linktype = struct.unpack(order + "16xI", header)[0]
    record = struct.Struct(order + "IIII")
    while True:
        head = f.read(16)
        if len(head) < 16:
            return  # end of file (or a record header cut short by a capture that was killed)
        sec, fraction, caplen, _ = record.unpack(head)
        data = f.read(min(caplen, _MAX_FRAME))
        if caplen > _MAX_FRAME:
            f.seek(caplen - _MAX_FRAME, os.SEEK_CUR)
        yield data, linktype, sec + fraction * scale, None


def _scapy_pcap_frames(path: str) -> Iterator[Frame]:
    """Frames of a pcapng (or compressed) file, read by scapy."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapNgReader, RawPcapReader

    try:
        reader = RawPcapReader(path)
    except Scapy_Exception as exc:
        raise WireError(f"{path} is not a pcap or pcapng file ({exc})") from None
    with reader:
        if isinstance(reader, RawPcapNgReader):
            for data, meta in reader:
                ts = ((meta.tshigh << 32) + meta.tslow) / meta.tsresol
                iface = meta.ifname.decode("utf-8", "replace") if meta.ifname else None
                yield data, meta.linktype, ts, iface
        else:
            scale = 1e-9 if reader.nano else 1e-6
            linktype = reader.linktype
            for data, meta in reader:
                yield data, linktype, meta.sec + meta.usec * scale, None


def read_pcap(path: str | os.PathLike) -> WireTrace:
    """SIP messages, defects and segments of any pcap/pcapng file."""
    return analyze_frames(iter_pcap(path))
