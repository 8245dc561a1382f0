"""UDP transport (IPv4 and IPv6)."""

from __future__ import annotations

import asyncio
import socket

from .base import Address, OnReceive, Received, SocketFactory, Transport, TransportError

MAX_DATAGRAM = 65535


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: "UdpTransport") -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr) -> None:
        self.owner.on_receive(Received(data, (addr[0], addr[1]), self.owner.local, "udp"))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: remember it; the sender sees it as no answer.
        self.owner.last_error = exc


class UdpTransport(Transport):
    kind = "udp"
    reliable = False

    def __init__(self, on_receive: OnReceive) -> None:
        super().__init__(on_receive)
        self._transport: asyncio.DatagramTransport | None = None
        self.last_error: Exception | None = None

    async def send(self, data: bytes, dest: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            raise TransportError("UDP transport is closed")
        if len(data) > MAX_DATAGRAM - 48:
            raise TransportError(f"{len(data)} bytes do not fit in one UDP datagram")
        self._transport.sendto(data, dest)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_udp(host: str, port: int, on_receive: OnReceive,
                   socket_factory: SocketFactory | None = None) -> UdpTransport:
    transport = UdpTransport(on_receive)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = (socket_factory or socket.socket)(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot bind UDP {host}:{port}: {exc.strerror}") from None
    loop = asyncio.get_running_loop()
    transport._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(transport), sock=sock)
    # read each datagram into a buffer of the largest datagram there is: asyncio's default
    # (256 KiB) is above malloc's mmap threshold, so every datagram cost an mmap, an mremap
    # and an munmap
    transport._transport.max_size = MAX_DATAGRAM
    bound = sock.getsockname()
    transport.local = (bound[0], bound[1])
    return transport
