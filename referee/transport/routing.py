"""Which local address the machine uses to reach a host: where agents must listen so that what
they put in Via and Contact is an address the DUT can send back to."""

from __future__ import annotations

import ipaddress
import socket


def local_address_for(host: str) -> str:
    """The source address the kernel picks toward `host` (no packet is sent: a UDP socket is only
    connected). Loopback hosts get the loopback address of their family."""
    ip = ipaddress.ip_address(host)
    if ip.is_loopback:
        return "::1" if ip.version == 6 else "127.0.0.1"
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, 9))
        except OSError:
            return "::1" if ip.version == 6 else "127.0.0.1"
        return sock.getsockname()[0]
