"""referee.transport — asyncio UDP, TCP and TLS for SIP; the only layer that touches sockets.

Transports move bytes: datagrams as they come, stream bytes framed into whole messages by
Content-Length. Parsing is left to the caller, so bad bytes from a DUT reach the agent's log.
"""

from .base import Address, Received, Transport, TransportError
from .policy import DEFAULT_ALLOWED, DestinationPolicy, DestinationRefused
from .stream import TcpTransport, open_tcp, open_tls
from .tlscerts import TestCertificates, make_test_certificates
from .udp import UdpTransport, open_udp

__all__ = ["Address", "Received", "Transport", "TransportError", "DEFAULT_ALLOWED", "DestinationPolicy",
           "DestinationRefused", "TcpTransport", "open_tcp",
           "open_tls", "TestCertificates", "make_test_certificates", "UdpTransport", "open_udp"]


async def open_transport(kind: str, host: str, port: int, on_receive, socket_factory=None,
                         **kwargs) -> Transport:
    """Open a listening transport of `kind` ('udp', 'tcp' or 'tls'); sockets from socket_factory."""
    kind = kind.lower()
    if kind == "udp":
        return await open_udp(host, port, on_receive, socket_factory)
    if kind == "tcp":
        return await open_tcp(host, port, on_receive, socket_factory)
    if kind == "tls":
        return await open_tls(host, port, on_receive, socket_factory=socket_factory, **kwargs)
    raise TransportError(f"unknown transport {kind!r} (expected udp, tcp or tls)")
