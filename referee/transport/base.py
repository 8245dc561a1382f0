"""What every transport offers."""

from __future__ import annotations

import abc
import dataclasses
import socket
import time
from typing import Callable

Address = tuple[str, int]


class TransportError(OSError):
    """A send or connect failed (peer unreachable, connection refused, closed socket)."""


@dataclasses.dataclass
class Received:
    """One message's bytes as they arrived (a datagram, or a framed stream message)."""
    data: bytes
    source: Address
    local: Address
    transport: str          # 'udp' | 'tcp' | 'tls'
    time: float = dataclasses.field(default_factory=time.time)
    error: str | None = None   # set when the bytes could not be framed (stream transports)


OnReceive = Callable[[Received], None]

# Makes a socket (family, type). The default is socket.socket; a caller can create sockets in
# another network namespace instead (the NAT topology does).
SocketFactory = Callable[[int, int], "socket.socket"]


class Transport(abc.ABC):
    kind: str = ""
    reliable: bool = False

    def __init__(self, on_receive: OnReceive) -> None:
        self.on_receive = on_receive
        self.local: Address = ("", 0)

    @abc.abstractmethod
    async def send(self, data: bytes, dest: Address) -> None:
        """Send one whole message to dest. Raises TransportError."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release sockets and connections; safe to call twice."""

    @property
    def via_transport(self) -> str:
        return self.kind.upper()
