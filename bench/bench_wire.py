"""Wire layer figures: capture start latency, topology build/teardown, pcap analysis speed.

Run as root:  python bench/bench_wire.py [--packets 100000] [--rounds 30] [--analysis-rounds 3]
Prints figures only; nothing here is a pass/fail test (the machine is shared and noisy).
Goals: capture start < 50 ms, topology build + teardown < 300 ms, pcap analysis at least as
fast as tshark on the same file.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from referee.wire import Capture, Topology, available, iter_pcap, read_pcap
from referee.wire.packets import FrameDecoder


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return (f"median {statistics.median(values) * 1e3:7.2f} ms   p95 {p95 * 1e3:7.2f} ms   "
            f"max {values[-1] * 1e3:7.2f} ms   (n={len(values)})")


def bench_capture_start(rounds: int) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    starts, stops = [], []
    try:
        for _ in range(rounds):
            cap = Capture("lo", ports=[port])
            t0 = time.perf_counter()
            cap.start()
            t1 = time.perf_counter()
            cap.stop()
            stops.append(time.perf_counter() - t1)
            starts.append(t1 - t0)
    finally:
        rx.close()
    print(f"capture start on lo (guaranteed capturing)   {_ms(starts)}")
    print(f"capture stop on lo (drained)                 {_ms(stops)}")


def bench_topology(rounds: int) -> None:
    for alg in (False, True):
        totals, builds, ns_starts = [], [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            topo = Topology(alg=alg, prefix="rfb")
            t1 = time.perf_counter()
            try:
                cap = topo.capture()
                t2 = time.perf_counter()
                cap.start()
                ns_starts.append(time.perf_counter() - t2)
                cap.stop()
            finally:
                t3 = time.perf_counter()
                topo.teardown()
            totals.append((t1 - t0) + (time.perf_counter() - t3))
            builds.append(t1 - t0)
        print(f"topology alg={str(alg):5} build               {_ms(builds)}")
        print(f"topology alg={str(alg):5} build + teardown    {_ms(totals)}")
        print(f"capture start in nat ns (lan0+wan0)          {_ms(ns_starts)}")


_METHODS = ("INVITE", "REFER", "NOTIFY", "BYE")


def _sip_payload(i: int) -> bytes:
    if i % 5 == 4:
        first, cseq = "SIP/2.0 200 OK", f"{i} INVITE"
    else:
        m = _METHODS[i % 4]
        first, cseq = f"{m} sip:bob@198.19.0.2:5060 SIP/2.0", f"{i} {m}"
    return (f"{first}\r\nVia: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK{i:08x};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@198.18.0.2>;tag=a{i}\r\n"
            f"To: <sip:bob@198.19.0.2>\r\nCall-ID: bench{i}@198.18.0.2\r\nCSeq: {cseq}\r\n"
            f"Contact: <sip:alice@198.18.0.2:5060>\r\n"
            f"Refer-To: <sip:carol@198.18.0.3?Replaces=x%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def write_sip_pcap(path: str, count: int) -> None:
    """count Ethernet/IPv4/UDP frames carrying SIP, written with plain struct (fast)."""
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    src, dst = socket.inet_aton("198.18.0.2"), socket.inet_aton("198.19.0.2")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        t0 = 1_700_000_000
        for i in range(count):
            payload = _sip_payload(i)
            udp = struct.pack("!HHHH", 5060, 5060, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                             src, dst) + udp
            frame = eth + ip
            f.write(struct.pack("<IIII", t0 + i // 1000, (i % 1000) * 1000, len(frame), len(frame)))
            f.write(frame)


def bench_analysis(count: int, rounds: int = 3) -> None:
    """pcap analysis against tshark on the same file, best of `rounds` runs each (taking turns).

    referee: read every frame, decode Ethernet/IPv4/UDP by hand and parse each payload into a
    referee.sip message, all kept in memory (read_pcap). tshark: dissect every frame and print
    the SIP method of each SIP packet (`-Y sip -T fields -e sip.Method`).
    """
    fd, path = tempfile.mkstemp(suffix=".pcap", prefix="bench_wire_")
    os.close(fd)
    try:
        t0 = time.perf_counter()
        write_sip_pcap(path, count)
        print(f"generated {count} SIP packets ({os.path.getsize(path) / 1e6:.1f} MB) "
              f"in {time.perf_counter() - t0:.2f} s")
        decode = min(_seconds(_decode_only, path) for _ in range(rounds))
        print(f"referee.wire read + decode only (no SIP parse): {count} packets in "
              f"{decode:.2f} s = {count / decode:,.0f} packets/s")
        ours = theirs = float("inf")
        for _ in range(rounds):
            ours = min(ours, _seconds(_read_pcap, path, count))
            theirs = min(theirs, _seconds(_tshark, path, count))
        print(f"referee.wire.read_pcap (with referee.sip.parse): {ours:.2f} s = "
              f"{count / ours:,.0f} packets/s (SIP parsing and the messages are "
              f"{100 * (ours - decode) / ours:.0f}% of it)")
        print(f"tshark -Y sip -e sip.Method: {theirs:.2f} s = {count / theirs:,.0f} packets/s")
        print(f"ratio referee/tshark: {theirs / ours:.2f}x (best of {rounds} runs each)")
    finally:
        os.unlink(path)


def _seconds(func, *args) -> float:
    t0 = time.perf_counter()
    func(*args)
    return time.perf_counter() - t0


def _decode_only(path: str) -> None:
    decoder = FrameDecoder()
    for frame in iter_pcap(path):
        decoder.decode(*frame)


def _read_pcap(path: str, count: int) -> None:
    trace = read_pcap(path)
    # The garbage collector's first pass over the objects the trace keeps is part of the cost
    # (read_pcap pauses the collector: that pass would come at the caller's next allocation).
    gc.collect(0)
    assert len(trace.messages) == count and not trace.defects


def _tshark(path: str, count: int) -> None:
    out = subprocess.run(["tshark", "-r", path, "-Y", "sip", "-T", "fields", "-e", "sip.Method"],
                         capture_output=True, text=True, timeout=600, check=True)
    assert out.stdout.count("\n") == count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--analysis-rounds", type=int, default=3,
                        help="runs of the pcap analysis, referee's and tshark's (best is kept)")
    args = parser.parse_args()
    ok, reason = available()
    if ok:
        bench_capture_start(args.rounds)
        bench_topology(max(5, args.rounds // 3))
    else:
        print(f"skipping capture and topology figures: {reason}")
    bench_analysis(args.packets, args.analysis_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
