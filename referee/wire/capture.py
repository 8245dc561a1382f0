"""Per-test packet capture with scapy's AsyncSniffer, on loopback or inside a network namespace.

One AF_PACKET socket per interface is opened *inside* the requested namespace (from a helper
thread that joined it, see netns.py), filtered in the kernel with BPF on the test's ports, and
handed to an AsyncSniffer. `start()` returns only after a marker frame injected on every
interface has come back through the sniffer, so nothing the test sends afterwards is missed;
`stop()` does the same before stopping, so everything sent before it is in the capture.

Marker frames use the IEEE "local experimental" EtherType 0x88B5 and a destination MAC no host
owns: peers drop them silently, and they are never part of the results. (On a physical NIC the
two marker frames per capture do go out on that LAN segment.)
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import Literal

from scapy.arch.common import compile_filter
from scapy.config import conf
from scapy.error import Scapy_Exception
from scapy.layers.l2 import Ether
from scapy.libs.structures import sock_fprog
from scapy.packet import Packet
from scapy.sendrecv import AsyncSniffer
from scapy.supersocket import SuperSocket

from .netns import call_in_netns
from .packets import LINKTYPE_ETHERNET, Segment, WireDefect, WireMessage, WireTrace, analyze_frames

MARKER_ETHERTYPE = 0x88B5
_MARKER_DST = b"\x02\x00\x5e\x00\x00\x00"  # locally administered, never a real host's
_MARKER_MAGIC = b"REFEREE-CAPTURE-MARK"  # + 16 hex token + 8 hex round
_MARKER_LEN = 46  # minimum Ethernet payload: NICs pad shorter frames

# Linux constants (not all exposed by the socket module)
_ETH_P_ALL = 0x0003
_ARPHRD_LOOPBACK = 772
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = 35
_RCVBUF = 8 << 20


class CaptureError(RuntimeError):
    """A capture could not be started or stopped as asked."""


def bpf_for_ports(ports: Sequence[int] | None) -> str | None:
    """BPF text: markers, plus UDP/TCP on the given ports (and IP fragments, which carry no
    ports). None captures everything."""
    if ports is None:
        return None
    if not ports:
        raise ValueError("ports must be None (everything) or a non-empty list of port numbers")
    for p in ports:
        if not isinstance(p, int) or isinstance(p, bool) or not 0 < p < 65536:
            raise ValueError(f"bad port {p!r}: expected an integer in 1..65535")
    port_expr = " or ".join(f"port {p}" for p in sorted(set(ports)))
    return (f"(ether proto {MARKER_ETHERTYPE:#06x}) or ((tcp or udp) and ({port_expr}))"
            " or (ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)")


class _ListenSocket(SuperSocket):
    """AF_PACKET listener on one interface of the namespace it was created in.

    Frames come out undissected (scapy Raw) to keep the sniffer thread cheap. On loopback
    each packet passes the tap twice (outgoing and incoming); like libpcap we keep only the
    incoming copy.
    """

    desc = "AF_PACKET listener created inside a network namespace"

    def __init__(self, iface: str, program: object | None) -> None:  # noqa: D107 (no super)
        self.iface = iface
        # Protocol 0 at creation registers no tap yet: the filter is in place before the first
        # frame, and bind() registers once (re-registering costs an RCU grace period).
        self.ins = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.outs = None  # type: ignore[assignment]
        try:
            if program is not None:
                self.ins.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program)
            try:
                self.ins.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
            except OSError:
                self.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            self.ins.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self.ins.bind((iface, _ETH_P_ALL))
            hatype = self.ins.getsockname()[3]
        except OSError:
            self.ins.close()
            raise
        self.loopback = hatype == _ARPHRD_LOOPBACK
        self.LL = conf.raw_layer

    def recv_raw(self, x: int = 65535):  # type: ignore[override]
        data, anc, _flags, sa_ll = self.ins.recvmsg(x, socket.CMSG_SPACE(16))
        if self.loopback and sa_ll[2] == socket.PACKET_OUTGOING:
            return None, None, None
        ts = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(cdata) >= 16:
                sec, nsec = struct.unpack("qq", cdata[:16])
                ts = sec + nsec / 1e9
        return self.LL, data, ts if ts is not None else time.time()

    def read_drops(self) -> int:
        """Frames the kernel dropped since the last call because the buffer was full."""
        try:
            _packets, drops = struct.unpack(
                "II", self.ins.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8))
        except OSError:
            return 0
        return drops


class _Sender:
    """Raw sender for marker frames on one interface (created in the same namespace)."""

    def __init__(self, iface: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # send-only: no tap
        try:
            self.sock.bind((iface, 0))
            self.mac = self.sock.getsockname()[4][:6].ljust(6, b"\0")
        except OSError:
            self.sock.close()
            raise

    def send(self, payload: bytes) -> None:
        self.sock.send(_MARKER_DST + self.mac + struct.pack("!H", MARKER_ETHERTYPE) + payload)


class Capture:
    """Capture on `ifaces` (in network namespace `netns`, None: this one) for the given ports.

    Use as a context manager or call start()/stop(). Results (`packets`, `messages()`,
    `trace()`...) may be read at any time; after stop() they are complete.
    """

    def __init__(self, ifaces: Sequence[str] | str, ports: Sequence[int] | None = None,
                 netns: str | None = None) -> None:
        if isinstance(ifaces, str):
            ifaces = [ifaces]
        if not ifaces or not all(isinstance(i, str) and i for i in ifaces):
            raise ValueError(f"ifaces must be a non-empty list of interface names, got {ifaces!r}")
        if len(set(ifaces)) != len(ifaces):
            raise ValueError(f"interface listed twice in {list(ifaces)!r}")
        self.ifaces = list(ifaces)
        self.ports = list(ports) if ports is not None else None
        self.netns = netns
        self.filter = bpf_for_ports(self.ports)
        self._lock = threading.Lock()
        self._frames: list[tuple[bytes, float, str]] = []  # (data, time, iface)
        self._seen: dict[bytes, set[str]] = {}
        self._seen_cond = threading.Condition(self._lock)
        self._sockets: dict[_ListenSocket, str] = {}
        self._senders: dict[str, _Sender] = {}
        self._sniffer: AsyncSniffer | None = None
        self._token = os.urandom(8).hex().encode()
        self._rounds = 0
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.dropped = 0
        self._trace_cache: tuple[int, WireTrace] | None = None
        self._windows: list[Window] = []          # shared captures only
        self._filter_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 2.0) -> "Capture":
        if self._sniffer is not None or self.stopped_at is not None:
            raise CaptureError("a Capture starts once; make a new one for another capture")
        self._open()
        self._sniffer = AsyncSniffer(opened_socket=dict(self._sockets), prn=self._on_packet,
                                     store=False)
        self._sniffer.start()
        try:
            self._sync(timeout, "start")
        except BaseException:
            self._shutdown(timeout)
            raise
        self.started_at = time.time()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Drain (everything sent before this call is captured), then stop. Idempotent."""
        if self._sniffer is None or self.stopped_at is not None:
            return
        try:
            self._sync(timeout, "stop")
        finally:
            self._shutdown(timeout)
            self.stopped_at = time.time()

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.stop()
            return
        try:  # the test already failed: stop, but never mask its error
            self.stop()
        except CaptureError:
            pass

    # -- one capture for many tests in turn ---------------------------------------------------
    @classmethod
    def shared(cls, ifaces: Sequence[str] | str, netns: str | None = None) -> "Capture":
        """A capture that runs for many tests in turn: each test opens a window on its ports
        (`open_window`) and takes its frames out when done (`close_window`). It captures no
        port until a window is open. Start it once, stop it at the end."""
        capture = cls(ifaces, ports=None, netns=netns)
        capture.ports = []
        capture.filter = _MARKERS_ONLY
        capture._windows = []
        return capture

    def open_window(self, ports: Sequence[int]) -> "Window":
        """Capture `ports` from now on (besides the other open windows' ports). Nothing sent
        after this returns is missed: the kernel applies the new filter to every later frame."""
        bpf_for_ports(ports)              # the same checks as a capture's own ports
        window = Window(self, sorted(set(ports)), time.time())
        with self._filter_lock:
            self._windows.append(window)
            self._refilter()
        window.since = time.time()
        return window

    def close_window(self, window: "Window", timeout: float = 2.0) -> "Capture":
        """The frames of `window`, as a stopped Capture of their own (pcap, messages ...):
        every frame to or from its ports since it opened, up to now (a marker round proves that
        everything sent before this call has been seen). Its ports are no longer captured
        unless another open window has them; frames no open window wants are dropped."""
        try:
            self._sync(timeout, "cut")
        finally:
            with self._filter_lock:
                self._windows.remove(window)
                others = [(set(w.ports), w.since) for w in self._windows]
                self._refilter()
        until = time.time()
        wanted = set(window.ports)
        mine: list[tuple[bytes, float, str]] = []
        kept: list[tuple[bytes, float, str]] = []
        with self._lock:
            for frame in self._frames:
                ports = _frame_ports(frame[0])
                if ports is None:         # an IP fragment (no ports): by time
                    if frame[1] >= window.since:
                        mine.append(frame)
                    if any(frame[1] >= since for _, since in others):
                        kept.append(frame)
                    continue
                if ports & wanted and frame[1] >= window.since:
                    mine.append(frame)
                elif any(ports & theirs for theirs, _ in others):
                    kept.append(frame)
            self._frames = kept
            self._trace_cache = None
        part = Capture(self.ifaces, ports=window.ports, netns=self.netns)
        part._frames = mine
        part.started_at, part.stopped_at = window.since, until
        return part

    def _refilter(self) -> None:
        """Attach the filter for the open windows' ports to every socket (with _filter_lock)."""
        ports = sorted({p for w in self._windows for p in w.ports})
        self.ports = ports
        self.filter = bpf_for_ports(ports) if ports else _MARKERS_ONLY
        program = _compile(self.filter)
        for sock in self._sockets:
            sock.ins.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program)

    def _open(self) -> None:
        where = f" in network namespace {self.netns!r}" if self.netns else ""
        program = _compile(self.filter) if self.filter is not None else None

        def open_all() -> tuple[dict[_ListenSocket, str], dict[str, _Sender]]:
            socks: dict[_ListenSocket, str] = {}
            senders: dict[str, _Sender] = {}
            try:
                for iface in self.ifaces:
                    try:
                        socks[_ListenSocket(iface, program)] = iface
                        senders[iface] = _Sender(iface)
                    except OSError as exc:
                        raise CaptureError(f"cannot capture on interface {iface!r}{where}: "
                                           f"{exc.strerror or exc}") from None
            except BaseException:
                for s in socks:
                    s.close()
                for snd in senders.values():
                    snd.sock.close()
                raise
            return socks, senders

        self._sockets, self._senders = call_in_netns(self.netns, open_all)

    def _shutdown(self, timeout: float) -> None:
        sniffer, self._sniffer = self._sniffer, None
        try:
            if sniffer is not None and sniffer.thread is not None:
                deadline = time.monotonic() + timeout
                while not sniffer.running and sniffer.thread.is_alive() \
                        and time.monotonic() < deadline:
                    time.sleep(0.005)  # thread not in its loop yet: stop() would refuse
                if sniffer.running:
                    sniffer.stop(join=False)
                sniffer.thread.join(max(0.0, deadline - time.monotonic()))
                if sniffer.thread.is_alive():
                    raise CaptureError(f"sniffer thread did not stop within {timeout}s")
        finally:
            for sock in self._sockets:
                self.dropped += sock.read_drops()
            # Closing a packet socket waits for an RCU grace period (~10 ms each): do it aside.
            closing = ([s.close for s in self._sockets]
                       + [s.sock.close for s in self._senders.values()])
            threading.Thread(target=lambda: [c() for c in closing], name="capture-close",
                             daemon=True).start()

    def _sync(self, timeout: float, label: str) -> None:
        """Inject a marker on every interface and wait until the sniffer has seen them all."""
        with self._lock:
            self._rounds += 1
            mark = _MARKER_MAGIC + self._token + b"%08x" % self._rounds  # fixed length
            self._seen[mark] = set()
        try:
            for iface, sender in self._senders.items():
                try:
                    sender.send(mark.ljust(_MARKER_LEN, b"\0"))
                except OSError as exc:
                    raise CaptureError(f"cannot send {label} marker on {iface!r}: {exc}") from None
            deadline = time.monotonic() + timeout
            with self._seen_cond:
                while self._seen[mark] != set(self.ifaces):
                    left = deadline - time.monotonic()
                    exc = self._sniffer.exception if self._sniffer else None
                    if exc is not None:
                        raise CaptureError(f"sniffer failed: {exc!r}")
                    if left <= 0:
                        missing = sorted(set(self.ifaces) - self._seen[mark])
                        raise CaptureError(
                            f"capture {label}: marker frame not seen on {missing} within "
                            f"{timeout}s (seen on {sorted(self._seen[mark])})")
                    self._seen_cond.wait(min(left, 0.05))
        finally:
            with self._lock:
                self._seen.pop(mark, None)

    def _on_packet(self, pkt: Packet) -> None:
        data = bytes(pkt)
        iface = pkt.sniffed_on
        if len(data) >= 14 and data[12:14] == b"\x88\xb5":
            with self._seen_cond:
                seen = self._seen.get(data[14:14 + len(_MARKER_MAGIC) + 24])
                if seen is not None:
                    seen.add(iface)
                    self._seen_cond.notify_all()
            return  # markers (ours or another capture's) are never results
        with self._lock:
            self._frames.append((data, float(pkt.time), iface))

    # -- results ---------------------------------------------------------------------------
    def frames(self) -> list[tuple[bytes, float, str]]:
        """(bytes, time, iface) of every captured frame, in time order."""
        with self._lock:
            frames = list(self._frames)
        frames.sort(key=lambda f: f[1])
        return frames

    @property
    def packets(self) -> list[Packet]:
        """Captured frames as scapy Ether packets with `.time` and `.sniffed_on` set."""
        out = []
        for data, ts, iface in self.frames():
            p = Ether(data)
            p.time = ts
            p.sniffed_on = iface
            out.append(p)
        return out

    def trace(self) -> WireTrace:
        """Segments, SIP messages and defects of what was captured so far."""
        frames = self.frames()
        cached = self._trace_cache
        if cached is not None and cached[0] == len(frames):
            return cached[1]
        trace = analyze_frames((d, LINKTYPE_ETHERNET, t, i) for d, t, i in frames)
        self._trace_cache = (len(frames), trace)
        return trace

    def segments(self) -> list[Segment]:
        return list(self.trace().segments)

    def messages(self) -> list[WireMessage]:
        return list(self.trace().messages)

    def defects(self) -> list[WireDefect]:
        return list(self.trace().defects)

    def write_pcap(self, path: str | os.PathLike,
                   fmt: Literal["pcapng", "pcap"] = "pcapng") -> str:
        """Write the capture. pcapng keeps each packet's interface name; pcap cannot."""
        from scapy.utils import PcapNgWriter

        path = os.fspath(path)
        if fmt not in ("pcapng", "pcap"):
            raise ValueError(f"fmt must be 'pcapng' or 'pcap', got {fmt!r}")
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if fmt == "pcap":                 # plain records: no packet objects needed
            with open(path, "wb") as f:
                f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 0xFFFF, LINKTYPE_ETHERNET))
                for data, ts, _iface in self.frames():
                    sec = int(ts)
                    nsec = int(round((ts - sec) * 1e9))      # as scapy's PcapWriter computes it
                    if nsec >= 1_000_000_000:
                        sec, nsec = sec + 1, nsec - 1_000_000_000
                    f.write(struct.pack("<IIII", sec, nsec, len(data), len(data)))
                    f.write(data)
            return path
        with PcapNgWriter(path) as writer:
            pkts = self.packets
            for p in pkts:
                writer.write(p)
        if not pkts:
            _write_empty_pcapng(path)
        return path


def _pcapng_block(kind: int, body: bytes) -> bytes:
    size = struct.pack("<I", 12 + len(body))
    return struct.pack("<I", kind) + size + body + size


def _write_empty_pcapng(path: str) -> None:
    """A valid pcapng with just a section header and one Ethernet interface."""
    shb = _pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _pcapng_block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0))
    with open(path, "wb") as f:
        f.write(shb + idb)


_MARKERS_ONLY = f"ether proto {MARKER_ETHERTYPE:#06x}"


def _compile(text: str):
    try:
        bpf = compile_filter(text, linktype=LINKTYPE_ETHERNET)
    except Scapy_Exception as exc:
        raise CaptureError(f"cannot compile capture filter {text!r}: {exc}") from None
    return sock_fprog(bpf.bf_len, bpf.bf_insns)


class Window:
    """The ports of one test in a shared capture, captured from `since` (see Capture.shared)."""

    def __init__(self, capture: Capture, ports: list[int], since: float) -> None:
        self.capture = capture
        self.ports = ports
        self.since = since

    def close(self, timeout: float = 2.0) -> Capture:
        return self.capture.close_window(self, timeout)

    def frames(self, timeout: float = 2.0) -> list[tuple[bytes, float, str]]:
        """(bytes, time, iface) of this window's frames so far (everything sent before this
        call included), in time order; the window stays open."""
        self.capture._sync(timeout, "peek")
        wanted = set(self.ports)
        frames = []
        with self.capture._lock:
            for frame in self.capture._frames:
                ports = _frame_ports(frame[0])
                if frame[1] >= self.since and (ports is None or ports & wanted):
                    frames.append(frame)
        frames.sort(key=lambda f: f[1])
        return frames


def _frame_ports(data: bytes) -> set[int] | None:
    """The UDP/TCP ports of an Ethernet frame; None for an IP fragment without them; an empty
    set for anything else."""
    kind = data[12:14]
    if kind == b"\x08\x00" and len(data) >= 34:                     # IPv4
        ihl = (data[14] & 0x0F) * 4
        if struct.unpack("!H", data[20:22])[0] & 0x1FFF:
            return None
        start = 14 + ihl
        proto = data[23]
    elif kind == b"\x86\xdd" and len(data) >= 54:                   # IPv6 (no extension headers)
        proto = data[20]
        if proto == 44:
            return None
        start = 54
    else:
        return set()
    if proto not in (6, 17) or len(data) < start + 4:
        return set()
    sport, dport = struct.unpack("!HH", data[start:start + 4])
    return {sport, dport}
