"""Fixtures for the wire layer tests: NAT topologies and sockets placed in namespaces."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from referee.wire import Topology, available, call_in_netns


@pytest.fixture
def need_netns() -> None:
    ok, reason = available(alg=True)
    if not ok:
        pytest.skip(reason)


@pytest.fixture
def topo_alg(need_netns) -> Iterator[Topology]:
    topo = Topology(alg=True, prefix="rfw")
    try:
        yield topo
    finally:
        topo.teardown()


@pytest.fixture
def topo_plain(need_netns) -> Iterator[Topology]:
    topo = Topology(alg=False, prefix="rfw")
    try:
        yield topo
    finally:
        topo.teardown()


SocketFactory = Callable[..., socket.socket]


@pytest.fixture
def sockets() -> Iterator[SocketFactory]:
    """open(kind, addr, port=0, netns=None) -> a bound socket (closed after the test).

    kind: 'udp' or 'tcp-listen' or 'tcp'. Sockets created in a namespace stay in it.
    """
    opened: list[socket.socket] = []

    def open_(kind: str, addr: str, port: int = 0, netns: str | None = None) -> socket.socket:
        def make() -> socket.socket:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            typ = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
            s = socket.socket(fam, typ)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            if kind == "tcp-listen":
                s.listen(4)
            s.settimeout(3.0)
            return s

        s = call_in_netns(netns, make)
        opened.append(s)
        return s

    yield open_
    for s in opened:
        s.close()


def sip_request(method: str, uri: str, local: str, *, branch: str, call_id: str, cseq: int,
                extra: str = "", body: str = "", rport: bool = True, via_transport: str = "UDP",
                from_tag: str = "a1", to_tag: str | None = None) -> bytes:
    """A hand-written SIP request; `local` is the Via sent-by (host:port)."""
    to = "<" + uri + ">" + (f";tag={to_tag}" if to_tag else "")
    head = (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/{via_transport} {local};branch={branch}{';rport' if rport else ''}\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:alice@{local.rsplit(':', 1)[0]}>;tag={from_tag}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"{extra}"
            f"Content-Length: {len(body.encode())}\r\n\r\n")
    return (head + body).encode()


def sip_response(request: bytes, status: int = 200, reason: str = "OK", to_tag: str = "b1") -> bytes:
    """A minimal response echoing Via/From/To/Call-ID/CSeq of a raw request."""
    lines = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    keep = []
    for line in lines:
        name = line.split(":", 1)[0].strip().lower()
        if name == "to" and ";tag=" not in line:
            line += f";tag={to_tag}"
        if name in ("via", "from", "to", "call-id", "cseq"):
            keep.append(line)
    return (f"SIP/2.0 {status} {reason}\r\n" + "\r\n".join(keep)
            + "\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.fixture
def sipmsg():
    """Access to the message builders above from test modules."""
    class Builders:
        request = staticmethod(sip_request)
        response = staticmethod(sip_response)
    return Builders
